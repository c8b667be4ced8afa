"""Picks stay bounded as the registry grows: the built-in strategies choose in SQL, one row comes back."""

import uuid
from collections import Counter as Tally
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from instances import services
from instances.models import Instance
from seedproject.errors import NoHealthyInstance

pytestmark = pytest.mark.django_db

STRATEGIES = ["round_robin", "random", "least_connections", "weighted"]


def bulk_instances(n, weights=(1,), connections=lambda i: 0):
    """``n`` active instances registered one millisecond apart, straight into the table (then announced)."""
    start = timezone.now() - timedelta(hours=1)
    rows = [
        Instance(
            id=uuid.uuid4(),
            host="10.0.0.1",
            port=1000 + i,
            weight=weights[i % len(weights)],
            connections=connections(i),
            registered_at=start + timedelta(milliseconds=i),
        )
        for i in range(n)
    ]
    Instance.objects.bulk_create(rows)
    # auto_now_add overrides registered_at on create: set the intended order explicitly.
    for row in rows:
        Instance.objects.filter(pk=row.pk).update(registered_at=row.registered_at)
    services.registry_changed()
    return rows


def reads_of_instances(queries):
    """Statements that return instance rows: SELECTs, and UPDATE … RETURNING (least_connections counts its pick)."""
    sqls = [q["sql"] for q in queries]
    return [
        sql
        for sql in sqls
        if "instances_instance" in sql and (sql.lstrip().upper().startswith("SELECT") or " RETURNING " in sql.upper())
    ]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_pick_among_200_never_reads_them_all(strategy, monkeypatch):
    monkeypatch.setattr(services, "PICKED_ROW_TTL", 0.0)  # no pick answers from a copy of its row
    bulk_instances(200, weights=(1, 2, 3))
    services.instance_select(strategy=strategy)  # warm: the weighted period is built once per registry version
    for _ in range(5):
        with CaptureQueriesContext(connection) as captured:
            chosen, name = services.instance_select(strategy=strategy)
        assert name == strategy and chosen.status == "active"
        # One statement per pick: least_connections on Redis reads its row by primary key (the count is in
        # the cache); without Redis it counts its pick in the same UPDATE … RETURNING.
        assert len(captured.captured_queries) == 1, captured.captured_queries
        selects = reads_of_instances(captured.captured_queries)
        assert selects, "a pick reads its instance from the database"
        # The old path was `SELECT … WHERE status = 'active' ORDER BY …` with no LIMIT: 200 rows per pick.
        for sql in selects:
            assert "LIMIT" in sql.upper(), sql


def test_round_robin_over_30_picks_is_exactly_even_and_in_order(make_instance):
    ids = [make_instance(9001 + i).pk for i in range(3)]
    chosen = [services.instance_select(strategy="round_robin")[0].pk for _ in range(30)]
    assert chosen == ids * 10


def test_round_robin_with_exclude_rotates_over_the_rest(make_instance):
    a, b, c = (make_instance(9001 + i).pk for i in range(3))
    chosen = [services.instance_select(strategy="round_robin", exclude=[str(b)])[0].pk for _ in range(6)]
    assert Tally(chosen) == {a: 3, c: 3}
    with pytest.raises(NoHealthyInstance):
        services.instance_select(strategy="round_robin", exclude=[a, b, c])


def test_round_robin_among_200_visits_each_once_per_lap():
    rows = bulk_instances(200)
    chosen = [services.instance_select(strategy="round_robin")[0].pk for _ in range(400)]
    assert chosen == [row.pk for row in rows] * 2


def test_random_covers_the_candidates_and_honours_exclude(make_instance):
    a, b, c = (make_instance(9001 + i).pk for i in range(3))
    tally = Tally(services.instance_select(strategy="random", exclude=[c])[0].pk for _ in range(300))
    assert set(tally) == {a, b}
    assert all(100 < count < 200 for count in tally.values())


def test_least_connections_picks_the_least_loaded_then_spreads():
    rows = bulk_instances(200, connections=lambda i: 5 if i != 150 else 3)
    chosen = [services.instance_select(strategy="least_connections")[0].pk for _ in range(4)]
    # 150 has load 3, 4, then 5 ties with everyone: the earliest registered (rows 0, 1) win the ties.
    assert chosen == [rows[150].pk, rows[150].pk, rows[0].pk, rows[1].pk]


def test_least_connections_in_sql_counts_its_picks_in_the_rows(sql_picks):
    rows = bulk_instances(200, connections=lambda i: 5 if i != 150 else 3)
    chosen = [services.instance_select(strategy="least_connections")[0].pk for _ in range(3)]
    assert chosen == [rows[150].pk, rows[150].pk, rows[0].pk]
    assert Instance.objects.get(pk=rows[150].pk).picks_since_heartbeat == 2


def test_weighted_sequence_through_the_service(make_instance):
    a, b, c = (make_instance(9001 + i, weight=w).pk for i, w in enumerate((5, 1, 1)))
    chosen = [services.instance_select(strategy="weighted")[0].pk for _ in range(14)]
    assert chosen == [a, a, b, a, c, a, a] * 2


@pytest.mark.parametrize("weights", [(5, 1, 1), (7, 3, 1, 1), (2, 3, 5, 7)])
def test_weighted_proportions_hold_at_every_prefix(weights):
    rows = bulk_instances(len(weights) * 10, weights=weights)
    total = sum(row.weight for row in rows)
    tally = Tally()
    for n in range(1, 2 * total + 1):
        tally[services.instance_select(strategy="weighted")[0].pk] += 1
        if n % 7 == 0 or n == 2 * total:
            for row in rows:
                assert abs(tally[row.pk] - n * row.weight / total) <= 1, (n, row.weight, tally[row.pk])


def test_weighted_follows_a_weight_change(make_instance):
    a, b = make_instance(9001, weight=1).pk, make_instance(9002, weight=1).pk
    assert [services.instance_select(strategy="weighted")[0].pk for _ in range(4)] == [a, b, a, b]
    services.instance_update(instance_id=b, weight=3)
    tally = Tally(services.instance_select(strategy="weighted")[0].pk for _ in range(8))
    assert tally == {a: 2, b: 6}


def test_weighted_follows_status_changes_and_deregistration(make_instance):
    a, b, c = (make_instance(9001 + i).pk for i in range(3))
    services.instance_update(instance_id=b, status="draining")
    assert set(services.instance_select(strategy="weighted")[0].pk for _ in range(6)) == {a, c}
    services.instance_deregister(instance_id=a)
    assert set(services.instance_select(strategy="weighted")[0].pk for _ in range(6)) == {c}
    services.instance_update(instance_id=b, status="active")
    assert set(services.instance_select(strategy="weighted")[0].pk for _ in range(6)) == {b, c}


def test_weighted_heals_a_change_made_behind_its_back(make_instance, monkeypatch):
    a, b = make_instance(9001).pk, make_instance(9002).pk
    services.instance_select(strategy="weighted")
    Instance.objects.filter(pk=a).update(status="disabled")  # no version bump
    monkeypatch.setattr(services, "PICKED_ROW_TTL", 0.0)  # once the picked rows' copies are that old
    assert {services.instance_select(strategy="weighted")[0].pk for _ in range(4)} == {b}


def test_weighted_exclude_is_smooth_wrr_over_the_rest(make_instance):
    a, b, c, d = (make_instance(9001 + i, weight=w).pk for i, w in enumerate((5, 1, 2, 1)))
    chosen = [services.instance_select(strategy="weighted", exclude=[a])[0].pk for _ in range(8)]
    # As before the period was cached: nginx's sequence over b, c, d (1, 2, 1), not a's slots handed on.
    assert chosen == [c, b, d, c] * 2
    with pytest.raises(NoHealthyInstance):
        services.instance_select(strategy="weighted", exclude=[a, b, c, d])


def test_weighted_exclude_among_many():
    rows = bulk_instances(services.WEIGHTED_CHUNK + 10)
    excluded = [row.pk for row in rows[1:-1]]
    chosen = [services.instance_select(strategy="weighted", exclude=excluded)[0].pk for _ in range(4)]
    assert chosen == [rows[0].pk, rows[-1].pk] * 2


class LastStrategy:
    """A custom strategy: it gets the full candidate list (its contract) and picks the last."""

    seen = 0

    def select_instance(self, instances):
        LastStrategy.seen = len(instances)
        return instances[-1]


def test_custom_strategy_still_gets_every_candidate(make_instance, settings):
    settings.SEED_CUSTOM_STRATEGIES = {"last": f"{__name__}.LastStrategy"}
    ids = [make_instance(9001 + i).pk for i in range(4)]
    chosen, name = services.instance_select(strategy="last", exclude=[ids[3]])
    assert (chosen.pk, name, LastStrategy.seen) == (ids[2], "last", 3)


def test_random_is_uniform_among_many_and_never_returns_an_excluded_one():
    rows = bulk_instances(20)
    excluded = [row.pk for row in rows[:5]]
    tally = Tally(services.instance_select(strategy="random", exclude=excluded)[0].pk for _ in range(3000))
    assert set(tally) == {row.pk for row in rows[5:]}
    # 15 candidates, 200 expected each: a count outside 120..280 is > 5.5 standard deviations away.
    assert all(120 < count < 280 for count in tally.values()), tally


def test_random_draws_by_primary_key_without_walking_the_candidates():
    bulk_instances(200)
    services.instance_select(strategy="random")  # warm: the process's copy of the active ids
    with CaptureQueriesContext(connection) as captured:
        services.instance_select(strategy="random")
    (sql,) = [q["sql"] for q in captured.captured_queries]
    assert "OFFSET" not in sql.upper() and "COUNT(" not in sql.upper(), sql


def test_random_sees_a_registration_at_once(make_instance):
    a = make_instance(9001).pk
    assert services.instance_select(strategy="random")[0].pk == a
    b = make_instance(9002).pk
    assert {services.instance_select(strategy="random")[0].pk for _ in range(60)} == {a, b}


def test_random_heals_a_change_made_behind_its_back(make_instance, monkeypatch):
    a, b = make_instance(9001).pk, make_instance(9002).pk
    services.instance_select(strategy="random")
    Instance.objects.filter(pk=a).update(status="disabled")  # no version bump
    monkeypatch.setattr(services, "PICKED_ROW_TTL", 0.0)  # once the picked rows' copies are that old
    assert {services.instance_select(strategy="random")[0].pk for _ in range(30)} == {b}
    Instance.objects.filter(pk=b).update(status="disabled")
    with pytest.raises(NoHealthyInstance):
        services.instance_select(strategy="random")
    c = Instance.objects.create(host="127.0.0.1", port=9003).pk  # behind its back too
    assert services.instance_select(strategy="random")[0].pk == c


@pytest.mark.services
@pytest.mark.parametrize(
    ("strategy", "round_trips"), [("round_robin", 1), ("random", 1), ("least_connections", 1), ("weighted", 1)]
)
def test_a_pick_costs_at_most_one_redis_round_trip(strategy, round_trips, redis_round_trips):
    bulk_instances(20, weights=(1, 2))
    services.instance_select(strategy=strategy)  # warm: connection, script, weighted period, id copy, least-loaded set
    redis_round_trips.clear()
    for _ in range(3):
        services.instance_select(strategy=strategy)
    assert len(redis_round_trips) == 3 * round_trips, redis_round_trips


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_least_connections_pick_in_sql_counts_itself_without_waiting_for_the_disk(sql_picks):
    bulk_instances(3, connections=lambda i: [5, 0, 9][i])
    with CaptureQueriesContext(connection) as captured:
        chosen, _ = services.instance_select(strategy="least_connections")
    (statement,) = [q["sql"] for q in captured.captured_queries]
    assert statement.startswith("BEGIN; SET LOCAL synchronous_commit TO OFF; UPDATE")
    assert chosen.port == 1001
    assert Instance.objects.get(pk=chosen.pk).picks_since_heartbeat == 1  # committed


def test_a_change_made_by_another_process_reaches_the_next_pick():
    from django.core.cache import cache

    bulk_instances(2)
    services.instance_select(strategy="round_robin")  # this process's copy: two instances
    # Another process registers one: the row and the version bump reach us only through the database and cache.
    newcomer = Instance.objects.create(host="10.0.0.2", port=2000, status="active", registered_at=timezone.now())
    cache.set(services.REGISTRY_VERSION_KEY, cache.get(services.REGISTRY_VERSION_KEY, 0) + 1)
    seen = [services.instance_select(strategy="round_robin")[0].pk for _ in range(3)]
    assert newcomer.pk in seen


@pytest.mark.parametrize("strategy", ["round_robin", "random", "weighted", "least_connections"])
def test_another_process_taking_an_instance_out_stops_the_next_pick_handing_it_out(strategy):
    from django.core.cache import cache

    rows = bulk_instances(3)
    for _ in range(6):  # every row is in this process's copy of picked rows
        services.instance_select(strategy=strategy)
    # Another process drains one: the row changes and the registry version moves (as its services do).
    Instance.objects.filter(pk=rows[0].pk).update(status="draining")
    cache.set(services.REGISTRY_VERSION_KEY, cache.get(services.REGISTRY_VERSION_KEY, 0) + 1)
    picked = {services.instance_select(strategy=strategy)[0].pk for _ in range(12)}
    assert picked == {rows[1].pk, rows[2].pk}


def test_a_pick_answers_from_a_fresh_copy_of_its_row_without_the_database(monkeypatch):
    rows = bulk_instances(2)
    for _ in range(2):
        services.instance_select(strategy="round_robin")
    with CaptureQueriesContext(connection) as captured:
        picked = [services.instance_select(strategy="round_robin")[0].pk for _ in range(4)]
    assert captured.captured_queries == []
    assert picked == [rows[0].pk, rows[1].pk] * 2
    monkeypatch.setattr(services, "PICKED_ROW_TTL", 0.0)  # the copies are that old: each pick reads its row
    with CaptureQueriesContext(connection) as captured:
        services.instance_select(strategy="round_robin")
    assert len(captured.captured_queries) == 1
