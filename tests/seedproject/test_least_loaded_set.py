"""The least-loaded sorted set's scripts in Redis (seedproject.cache): take, rebuild, report."""

import pytest
from django.core.cache import cache

pytestmark = pytest.mark.services

SET, BUILT_AT, VERSION = "t:least_loaded", "t:least_loaded:built_at", "t:registry_version"


def member(n):
    return f"{n:020d}:00000000-0000-4000-8000-{n:012d}"


def scores():
    client = cache._cache.get_client(write=True)
    return {m.decode(): s for m, s in client.zrange(cache.make_and_validate_key(SET), 0, -1, withscores=True)}


def take(excluded=()):
    return cache.least_loaded_take(SET, BUILT_AT, VERSION, [member(n).partition(":")[2] for n in excluded])


def test_a_missing_set_asks_for_a_rebuild_with_the_version_as_stored():
    found = take()
    assert (found.outcome, found.member, found.version, found.version_raw) == ("rebuild", None, None, b"")
    cache.incr_counter(VERSION)
    found = take()
    assert (found.outcome, found.version, found.version_raw) == ("rebuild", 1, b"1")


def test_take_counts_the_lowest_honours_exclude_and_says_none_when_all_are_excluded():
    cache.incr_counter(VERSION)
    cache.least_loaded_rebuild(SET, BUILT_AT, take().version_raw, [(member(1), 2), (member(2), 0), (member(3), 0)])
    assert [take().member for _ in range(3)] == [member(2), member(3), member(2)]
    assert take(excluded=[1, 2]).member == member(3)
    assert scores() == {member(1): 2, member(2): 2, member(3): 2}
    found = take(excluded=[1, 2, 3, 4])
    assert (found.outcome, found.version) == ("none", 1)


def test_a_version_change_asks_for_a_rebuild():
    cache.incr_counter(VERSION)
    cache.least_loaded_rebuild(SET, BUILT_AT, take().version_raw, [(member(1), 0)])
    assert take().outcome == "taken"
    cache.incr_counter(VERSION)
    assert take().outcome == "rebuild"
    assert scores() == {member(1): 1}  # nothing taken


def test_a_rebuild_of_ten_thousand_keeps_the_scores_it_had_and_drops_the_gone():
    cache.incr_counter(VERSION)
    cache.least_loaded_rebuild(SET, BUILT_AT, take().version_raw, [(member(n), 0) for n in range(10_000)])
    assert [take().member for _ in range(3)] == [member(0), member(1), member(2)]
    cache.incr_counter(VERSION)
    # Member 0 is gone, 1..10,000 are in the database at load 5 (10,000 is new).
    cache.least_loaded_rebuild(SET, BUILT_AT, take().version_raw, [(member(n), 5) for n in range(1, 10_001)])
    held = scores()
    assert len(held) == 10_000 and member(0) not in held
    assert (held[member(1)], held[member(2)], held[member(3)], held[member(10_000)]) == (1, 1, 0, 5)
    assert take().member == member(3)


def test_a_report_sets_the_score_of_a_member_and_adds_nobody():
    cache.incr_counter(VERSION)
    cache.least_loaded_rebuild(SET, BUILT_AT, take().version_raw, [(member(1), 0)])
    take()
    cache.least_loaded_report(SET, {member(1): 7, member(2): 0})
    assert scores() == {member(1): 7}


def test_the_keys_carry_the_cache_prefix():
    cache.incr_counter(VERSION)
    cache.least_loaded_rebuild(SET, BUILT_AT, take().version_raw, [(member(1), 0)])
    client = cache._cache.get_client(write=True)
    assert client.exists(cache.make_and_validate_key(SET), cache.make_and_validate_key(BUILT_AT)) == 2
    assert not client.exists(SET) and not client.exists(BUILT_AT)
