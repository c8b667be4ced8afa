"""The shared counter: starts at 0, counts atomically, expires; on Redis one round trip per increment."""

import threading
import time

import pytest
import redis.connection
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


@pytest.fixture
def redis_round_trips(monkeypatch):
    """Every request written to a Redis socket (a pipeline is one)."""
    sent = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent


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
