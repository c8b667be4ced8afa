"""least_connections: the least loaded first, a burst spread, heartbeats, registry changes, Redis's sorted set.

The tests without the ``services`` marker hold on both paths: the sorted set in Redis (service-backed
runs) and the database count (the embedded default, or the ``sql_picks`` fixture).
"""

import json
import logging
import os
import select
import signal
import time
from collections import Counter as Tally
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from instances import services
from instances.balancing import least_loaded_member_id
from instances.load_reports import LoadReports
from instances.models import Instance
from seedproject.cache import RedisCacheClient
from seedproject.errors import NoHealthyInstance
from tests.e2e.harness import wait_for
from tests.instances.test_picks import bulk_instances

pytestmark = pytest.mark.django_db


def pick(exclude=()):
    return services.instance_select(strategy="least_connections", exclude=exclude)[0].pk


def least_loaded_scores():
    """{instance id: score} of the sorted set in Redis."""
    client = cache._cache.get_client(write=True)
    members = client.zrange(cache.make_and_validate_key(services.LEAST_LOADED_KEY), 0, -1, withscores=True)
    return {least_loaded_member_id(member.decode()): score for member, score in members}


def test_the_least_loaded_first_then_a_burst_spreads_ties_in_registration_order():
    rows = bulk_instances(4, connections=lambda i: [3, 1, 2, 1][i])
    # Loads 3, 1, 2, 1: rows 1 and 3 tie, the earlier registered first; each pick adds one to its load.
    assert [pick() for _ in range(8)] == [rows[i].pk for i in (1, 3, 1, 2, 3, 0, 1, 2)]


def test_ties_go_by_registration_order_not_by_id():
    rows = bulk_instances(6)
    assert [pick() for _ in range(12)] == [row.pk for row in rows] * 2


def test_a_heartbeat_with_fewer_connections_brings_the_instance_back(make_instance):
    a, b = make_instance(9001).pk, make_instance(9002).pk
    services.instance_heartbeat(instance_id=a, connections=10)
    assert [pick() for _ in range(3)] == [b, b, b]
    services.instance_heartbeat(instance_id=a, connections=1)
    # a at 1, 2, then 3 ties with b (a registered first), then b.
    assert [pick() for _ in range(4)] == [a, a, a, b]
    services.instance_heartbeat(instance_id=b, connections=0)
    assert pick() == b


def test_drain_deregistration_and_reactivation_through_the_services(make_instance):
    a, b, c = (make_instance(9001 + i).pk for i in range(3))
    assert [pick() for _ in range(3)] == [a, b, c]
    services.instance_update(instance_id=a, status="draining")
    assert Tally(pick() for _ in range(6)) == {b: 3, c: 3}
    services.instance_deregister(instance_id=b)
    assert {pick() for _ in range(3)} == {c}
    services.instance_update(instance_id=a, status="active")
    assert [pick() for _ in range(2)] == [a, a]  # c carries 7 picks, a at most 1


def test_another_process_draining_the_least_loaded_reaches_the_next_pick():
    rows = bulk_instances(3, connections=lambda i: [0, 5, 5][i])
    assert pick() == rows[0].pk  # this process holds a copy of rows[0]'s row, the set its load
    # Another process drains it through its services: its row changes and the registry version moves;
    # nothing in this process is told.
    Instance.objects.filter(pk=rows[0].pk).update(status="draining")
    cache.set(services.REGISTRY_VERSION_KEY, cache.get(services.REGISTRY_VERSION_KEY, 0) + 1)
    assert Tally(pick() for _ in range(4)) == {rows[1].pk: 2, rows[2].pk: 2}


def test_exclude_and_no_candidate(make_instance):
    a, b, c = (make_instance(9001 + i).pk for i in range(3))
    for pk, connections in ((a, 0), (b, 1), (c, 5)):
        services.instance_heartbeat(instance_id=pk, connections=connections)
    assert pick(exclude=[a]) == b
    assert pick(exclude=[str(a), str(b)]) == c
    assert pick() == a
    with pytest.raises(NoHealthyInstance):
        pick(exclude=[a, b, c])
    for pk in (a, b, c):
        services.instance_update(instance_id=pk, status="disabled")
    with pytest.raises(NoHealthyInstance):
        pick()


def test_no_instance_registered_is_no_healthy_instance(db):
    with pytest.raises(NoHealthyInstance):
        pick()


def test_least_connections_heals_a_change_made_behind_its_back(make_instance, monkeypatch):
    a, b = make_instance(9001).pk, make_instance(9002).pk
    assert [pick(), pick()] == [a, b]
    Instance.objects.filter(pk=a).update(status="disabled")  # no version bump
    monkeypatch.setattr(services, "PICKED_ROW_TTL", 0.0)  # once the picked rows' copies are that old
    assert {pick() for _ in range(4)} == {b}


# --- the sorted set in Redis ---------------------------------------------------------------------


@pytest.mark.services
def test_a_pick_is_one_redis_round_trip_and_no_query_when_its_row_copy_is_fresh(redis_round_trips):
    rows = bulk_instances(2, connections=lambda i: [0, 100][i])
    assert pick() == rows[0].pk  # builds the set, copies rows[0]'s row
    redis_round_trips.clear()
    with CaptureQueriesContext(connection) as captured:
        assert [pick() for _ in range(5)] == [rows[0].pk] * 5
    assert captured.captured_queries == []
    assert len(redis_round_trips) == 5, redis_round_trips


@pytest.mark.services
def test_picks_are_counted_in_the_set_and_the_rows_are_left_alone():
    rows = bulk_instances(3, connections=lambda i: [4, 0, 1][i])
    assert [pick() for _ in range(4)] == [rows[i].pk for i in (1, 1, 2, 1)]
    assert least_loaded_scores() == {str(rows[0].pk): 4, str(rows[1].pk): 3, str(rows[2].pk): 2}
    assert set(Instance.objects.values_list("picks_since_heartbeat", flat=True)) == {0}


@pytest.mark.services
def test_a_heartbeat_is_one_statement_and_one_redis_round_trip(make_instance, redis_round_trips):
    a = make_instance(9001).pk
    pick()
    redis_round_trips.clear()
    with CaptureQueriesContext(connection) as captured:
        services.instance_heartbeat(instance_id=a, connections=7)
    assert len(captured.captured_queries) == 1
    assert len(redis_round_trips) == 1, redis_round_trips
    assert least_loaded_scores() == {str(a): 7}


@pytest.mark.services
def test_a_heartbeat_survives_a_cache_failure(make_instance, monkeypatch, caplog):
    a = make_instance(9001).pk

    def failing(*args, **kwargs):
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(RedisCacheClient, "least_loaded_report", failing)
    with caplog.at_level(logging.ERROR, logger="instances.load_reports"):
        beat = services.instance_heartbeat(instance_id=a, connections=3)
    assert beat.connections == 3 and Instance.objects.get(pk=a).connections == 3
    assert "least-loaded set" in caplog.text


@pytest.mark.services
def test_the_set_comes_back_after_redis_loses_it():
    rows = bulk_instances(2, connections=lambda i: [0, 3][i])
    assert [pick() for _ in range(4)] == [rows[0].pk] * 4  # 0, 1, 2, then 3 ties with rows[1]
    # Redis restarted: the set, its version and the registry version are gone. The set is rebuilt
    # from the database: the heartbeats' figures hold, the picks since them are lost.
    cache.clear()
    assert [pick() for _ in range(4)] == [rows[0].pk] * 4
    assert least_loaded_scores() == {str(rows[0].pk): 4, str(rows[1].pk): 3}
    # Only the set evicted (its built-at version left): rebuilt too, not "no healthy instance".
    cache.delete(services.LEAST_LOADED_KEY)
    assert pick() == rows[0].pk
    assert least_loaded_scores() == {str(rows[0].pk): 1, str(rows[1].pk): 3}


@pytest.mark.services
def test_a_rebuild_keeps_the_counted_picks_of_the_instances_it_had(make_instance):
    a, b = make_instance(9001).pk, make_instance(9002).pk
    assert [pick() for _ in range(4)] == [a, b, a, b]
    c = make_instance(9003).pk  # the registry version moves: the next pick rebuilds the set
    assert [pick() for _ in range(3)] == [c, c, a]  # a and b keep their 2 picks; c starts from its row
    assert least_loaded_scores() == {str(a): 3, str(b): 2, str(c): 2}


@pytest.mark.services
def test_an_instance_found_inactive_is_dropped_from_the_set(make_instance, monkeypatch):
    a, b = make_instance(9001).pk, make_instance(9002).pk
    assert [pick(), pick()] == [a, b]
    Instance.objects.filter(pk=a).update(status="disabled")  # no version bump
    monkeypatch.setattr(services, "PICKED_ROW_TTL", 0.0)
    assert pick() == b  # the set named a: answered in SQL, and the set is marked for a rebuild
    assert pick() == b
    assert set(least_loaded_scores()) == {str(b)}


@pytest.mark.services
def test_a_pick_whose_rebuild_races_a_registration_answers_exactly_in_sql(monkeypatch):
    rows = bulk_instances(1, connections=lambda i: 5)
    read_loads = services.active_loads
    newcomers = []

    def racing_read():
        loads = read_loads()
        if not newcomers:  # another process registers an idle instance right after the rows were read
            newcomers.append(Instance.objects.create(host="10.0.0.2", port=2000))
            cache.incr(services.REGISTRY_VERSION_KEY)
        return loads

    monkeypatch.setattr(services, "active_loads", racing_read)
    # The set built from the read misses the newcomer and its version is already old: the pick is
    # answered in SQL, which sees it; the next pick rebuilds and knows it too.
    assert pick() == newcomers[0].pk
    assert pick() == newcomers[0].pk
    assert set(least_loaded_scores()) == {str(rows[0].pk), str(newcomers[0].pk)}


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_picks_are_all_counted():
    rows = bulk_instances(4)
    threads, per_thread = 8, 25

    def picking(_):
        try:
            return [pick() for _ in range(per_thread)]
        finally:
            connection.close()  # this thread's connection: the test database is dropped at the end

    with ThreadPoolExecutor(threads) as pool:
        batches = list(pool.map(picking, range(threads)))  # re-raises a thread's failure here
    chosen = [pk for batch in batches for pk in batch]
    total = threads * per_thread
    # Every pick took the least loaded and counted itself atomically (the first ones rebuilt the set
    # concurrently, losing none): equal loads stay equal.
    assert Tally(chosen) == {row.pk: total // 4 for row in rows}
    assert sum(least_loaded_scores().values()) == total


@pytest.mark.services
def test_with_a_report_delay_heartbeats_answer_without_redis_and_their_figures_go_together(
    settings, monkeypatch, make_instance, redis_round_trips
):
    a, b = make_instance(9001).pk, make_instance(9002).pk
    assert [pick(), pick()] == [a, b]
    # A sender of its own that waits long: this test sends by hand.
    reports = LoadReports(services._send_load_reports)
    monkeypatch.setattr(services, "load_reports", reports)
    settings.SEED_LEAST_LOADED_REPORT_DELAY = 30
    redis_round_trips.clear()
    services.instance_heartbeat(instance_id=a, connections=5)
    services.instance_heartbeat(instance_id=b, connections=7)
    services.instance_heartbeat(instance_id=a, connections=4)  # the later figure replaces the earlier
    assert redis_round_trips == []
    assert least_loaded_scores() == {str(a): 1, str(b): 1}  # not sent yet
    redis_round_trips.clear()
    assert reports.flush() == 2
    assert len(redis_round_trips) == 1
    assert least_loaded_scores() == {str(a): 4, str(b): 7}
    assert pick() == a


@pytest.mark.services
def test_the_background_sender_delivers_heartbeat_figures(settings, make_instance):
    a = make_instance(9001).pk
    pick()
    settings.SEED_LEAST_LOADED_REPORT_DELAY = 0.05
    services.instance_heartbeat(instance_id=a, connections=9)
    wait_for(lambda: least_loaded_scores() == {str(a): 9}, timeout=10, what="the figure in the set")


def test_a_failed_send_of_figures_is_logged_and_the_next_ones_still_go(settings, caplog):
    settings.SEED_LEAST_LOADED_REPORT_DELAY = 0.01  # through the background sender
    sent: list[dict] = []

    def send(loads):
        if "bad" in loads:
            raise ConnectionError("Redis is away")
        sent.append(loads)

    reports = LoadReports(send)
    with caplog.at_level(logging.ERROR, logger="instances.load_reports"):
        reports.add("bad", 1)
        wait_for(lambda: "could not send 1 heartbeat figures" in caplog.text, timeout=10, what="the error logged")
    reports.add("good", 2)
    wait_for(lambda: sent == [{"good": 2}], timeout=10, what="the next figures sent")


def test_a_forked_process_sends_its_own_figures_with_a_sender_of_its_own(settings):
    settings.SEED_LEAST_LOADED_REPORT_DELAY = 0.01  # through the background sender
    read_end, write_end = os.pipe()

    def send(loads):
        os.write(write_end, json.dumps(loads).encode() + b"\n")

    reports = LoadReports(send)
    reports.add("parent", 1)  # the parent's sender thread is running (and may hold the lock) when it forks
    pid = os.fork()
    if pid == 0:  # the child: its figure must reach send() through a thread of its own
        try:
            reports.add("child", 2)
            time.sleep(5)  # the sender sends it meanwhile; the parent stops waiting at once
        finally:
            os._exit(0)
    try:
        seen: list[dict] = []
        with os.fdopen(read_end, "rb") as pipe:
            while {"child": 2} not in seen:
                ready, _, _ = select.select([pipe], [], [], 10)
                assert ready, f"no figures from the child; seen {seen}"
                seen.append(json.loads(pipe.readline()))
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(write_end)
