"""The shared counter: starts at 0, counts atomically, expires; on Redis one round trip per increment."""

import threading
import time

import pytest
from django.core.cache import cache

from seedproject.cache import RedisCache
from seedproject.counters import counter


def test_a_missing_key_starts_at_zero_and_counts_up():
    assert [counter.incr("t:counts") for _ in range(3)] == [1, 2, 3]
    assert cache.get("t:counts") == 3


def test_a_counter_with_a_timeout_is_gone_after_it():
    counter.incr("t:short", timeout=1)
    counter.incr("t:short", timeout=1)
    assert cache.get("t:short") == 2
    time.sleep(2.1)  # Redis expiries are whole seconds
    assert cache.get("t:short") is None
    assert counter.incr("t:short", timeout=1) == 1


def test_concurrent_increments_lose_no_count():
    def work():
        for _ in range(50):
            counter.incr("t:race", timeout=60)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("t:race") == 200


def test_incr_and_get_counts_and_reads_what_the_cache_holds():
    cache.set("t:version", 7)
    cache.set("t:meta", ("v", "prefix", 3))
    assert counter.incr_and_get("t:position", ["t:version", "t:meta", "t:missing"]) == (
        1,
        [7, ("v", "prefix", 3), None],
    )
    assert counter.incr_and_get("t:position", []) == (2, [])


@pytest.mark.services
class TestOnRedis:
    @pytest.fixture(autouse=True)
    def _redis_cache(self):
        from django.core.cache import caches

        assert isinstance(caches["default"], RedisCache), "the services run must use Seed's Redis backend"

    def test_an_increment_is_one_round_trip_whether_or_not_the_key_exists(self, redis_round_trips):
        # The first calls connect (HELLO etc.) and may load the script into a fresh Redis (SCRIPT LOAD).
        counter.incr("t:warm", timeout=30)
        redis_round_trips.clear()
        assert counter.incr("t:one", timeout=30) == 1
        assert counter.incr("t:one", timeout=30) == 2
        assert counter.incr("t:persistent") == 1
        assert len(redis_round_trips) == 3

    def test_incr_and_get_is_one_round_trip(self, redis_round_trips):
        counter.incr_and_get("t:warm", ["t:version"])
        cache.set("t:version", 3)
        redis_round_trips.clear()
        assert counter.incr_and_get("t:pos", ["t:version", "t:none"]) == (1, [3, None])
        assert len(redis_round_trips) == 1

    def test_the_timeout_is_set_when_the_key_is_made_and_not_pushed_back_later(self):
        client = cache._cache.get_client(write=True)
        key = cache.make_key("t:ttl")
        counter.incr("t:ttl", timeout=100)
        assert 95 <= client.ttl(key) <= 100
        client.expire(key, 50)
        counter.incr("t:ttl", timeout=100)
        assert client.ttl(key) <= 50  # an existing window keeps its end

    def test_without_a_timeout_the_counter_never_expires(self):
        counter.incr("t:forever")
        assert cache._cache.get_client(write=True).ttl(cache.make_key("t:forever")) == -1

    def test_a_fractional_timeout_rounds_up_to_whole_seconds(self):
        counter.incr("t:fraction", timeout=0.2)
        assert cache._cache.get_client(write=True).ttl(cache.make_key("t:fraction")) == 1

    def test_cache_calls_reuse_one_redis_client(self):
        assert cache._cache.get_client(write=True) is cache._cache.get_client("any")


class TestWindowTally:
    """The throttle's batched window count (seedproject.counters.WindowTally), on whichever cache runs."""

    def test_far_below_the_limit_hits_are_sent_in_batches_and_counted_exactly(self):
        from django.core.cache import cache

        from seedproject.counters import WindowTally

        tally = WindowTally()
        estimates = [tally.hit("throttle:a:1", limit=1000, timeout=60) for _ in range(25)]
        assert estimates == list(range(1, 26))  # this process's answer counts every hit
        assert cache.get("throttle:a:1") == 20  # sent: two batches of 10; 5 wait for the next batch

    def test_from_half_the_limit_every_hit_is_shared_so_two_processes_stop_at_the_limit(self):
        from seedproject.counters import WindowTally

        first, second = WindowTally(), WindowTally()  # two server processes sharing the cache
        admitted = 0
        for i in range(60):
            tally = first if i % 2 else second
            if tally.hit("throttle:b:1", limit=20, timeout=60) <= 20:
                admitted += 1
        # each process may admit fewer than BATCH requests it had not yet reported
        assert 20 <= admitted < 20 + 2 * WindowTally.BATCH

    def test_past_half_the_limit_the_shared_count_is_exact_after_every_hit(self):
        from django.core.cache import cache

        from seedproject.counters import WindowTally

        tally = WindowTally()
        for hits in range(1, 16):
            tally.hit("throttle:d:1", limit=20, timeout=60)
            if hits >= 10:
                assert cache.get("throttle:d:1") == hits

    def test_windows_are_counted_apart(self):
        from seedproject.counters import WindowTally

        tally = WindowTally()
        for _ in range(3):
            tally.hit("throttle:c:1", limit=4, timeout=60)
        assert tally.hit("throttle:c:2", limit=4, timeout=60) == 1
