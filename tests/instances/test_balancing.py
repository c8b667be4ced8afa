"""Strategies and their registry (pure: no database)."""

import itertools
from collections import Counter as Tally
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instances.balancing import (
    LeastConnectionsStrategy,
    LoadBalanceStrategy,
    RandomStrategy,
    RoundRobinStrategy,
    UnknownStrategy,
    WeightedStrategy,
    bounded_weights,
    get_strategy,
    least_loaded_member,
    least_loaded_member_id,
    rotation_index,
    smooth_weighted_sequence,
)


@dataclass
class Node:
    id: str
    weight: int = 1
    connections: int = 0
    picks_since_heartbeat: int = 0


class FakeCounter:
    """An in-memory stand-in for the cache-backed counter."""

    def __init__(self):
        self.values = {}

    def incr(self, key: str) -> int:
        self.values[key] = self.values.get(key, 0) + 1
        return self.values[key]


class FirstStrategy:
    """A custom strategy as the seed writes one: no constructor arguments."""

    def select_instance(self, instances):
        return instances[-1]


class CountingStrategy:
    """A custom strategy that wants the shared counter."""

    def __init__(self, counter):
        self.counter = counter

    def select_instance(self, instances):
        return instances[self.counter.incr("custom") % len(instances)]


def picks(strategy, nodes, n):
    return [strategy.select_instance(nodes).id for _ in range(n)]


def test_enum_values_are_the_seed_names():
    assert [s.value for s in LoadBalanceStrategy] == ["round_robin", "least_connections", "random", "weighted"]
    assert LoadBalanceStrategy.ROUND_ROBIN == "round_robin"


def test_round_robin_rotates_in_order():
    nodes = [Node("a"), Node("b"), Node("c")]
    assert picks(RoundRobinStrategy(counter=FakeCounter()), nodes, 7) == ["a", "b", "c", "a", "b", "c", "a"]


def test_round_robin_position_lives_in_the_shared_counter():
    # Two strategy objects (two processes) sharing one counter continue each other's rotation.
    shared = FakeCounter()
    nodes = [Node("a"), Node("b"), Node("c")]
    first, second = RoundRobinStrategy(counter=shared), RoundRobinStrategy(counter=shared)
    assert [first.select_instance(nodes).id, second.select_instance(nodes).id, first.select_instance(nodes).id] == [
        "a",
        "b",
        "c",
    ]


def test_weighted_smooth_sequence_5_1_1():
    nodes = [Node("a", 5), Node("b", 1), Node("c", 1)]
    assert picks(WeightedStrategy(counter=FakeCounter()), nodes, 14) == list("aabacaa" * 2)


def test_weighted_sequence_divides_by_gcd():
    assert smooth_weighted_sequence((10, 2, 2)) == smooth_weighted_sequence((5, 1, 1))
    assert len(smooth_weighted_sequence((10, 2, 2))) == 7


@pytest.mark.parametrize("weights", [(5, 1, 1), (3, 2), (1, 1, 1, 1), (7, 3, 1, 1), (100, 1), (2, 3, 5, 7)])
def test_weighted_proportions_within_one(weights):
    nodes = [Node(str(i), w) for i, w in enumerate(weights)]
    strategy = WeightedStrategy(counter=FakeCounter())
    total = sum(weights)
    tally = Tally()
    for n in range(1, 10_001):
        tally[strategy.select_instance(nodes).id] += 1
        # The ±1 bound holds at every prefix, not only at the end: that is what "smooth" means.
        if n % 97 == 0 or n == 10_000:
            for node in nodes:
                assert abs(tally[node.id] - n * node.weight / total) <= 1, (n, dict(tally))


def test_least_connections_picks_the_fewest():
    nodes = [Node("a", connections=5), Node("b", connections=2), Node("c", connections=9)]
    assert LeastConnectionsStrategy().select_instance(nodes).id == "b"


def test_least_connections_ties_go_to_the_first():
    nodes = [Node("a", connections=3), Node("b", connections=3)]
    assert LeastConnectionsStrategy().select_instance(nodes).id == "a"


def test_least_connections_spreads_a_burst_between_heartbeats():
    # The service adds one to picks_since_heartbeat on every pick; mirror that here.
    nodes = [Node("a", connections=10), Node("b", connections=0), Node("c", connections=4)]
    strategy = LeastConnectionsStrategy()
    chosen = []
    for _ in range(30):
        node = strategy.select_instance(nodes)
        node.picks_since_heartbeat += 1
        chosen.append(node.id)
    tally = Tally(chosen)
    assert chosen[:4] == ["b", "b", "b", "b"]
    assert set(tally) == {"a", "b", "c"}
    loads = [n.connections + n.picks_since_heartbeat for n in nodes]
    assert max(loads) - min(loads) <= 1


@given(
    st.lists(
        st.tuples(
            st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)),
            st.uuids(),
        ),
        min_size=2,
        max_size=20,
    )
)
def test_least_loaded_members_sort_as_the_sql_pick_breaks_ties(rows):
    # Redis orders equal scores by member, byte by byte; the SQL pick by registered_at, then id.
    members = sorted(least_loaded_member(registered_at, pk) for registered_at, pk in rows)
    assert members == [least_loaded_member(registered_at, pk) for registered_at, pk in sorted(rows)]
    assert [least_loaded_member_id(m) for m in members] == [str(pk) for _, pk in sorted(rows)]


def test_random_is_uniform_enough():
    nodes = [Node("a"), Node("b"), Node("c")]
    tally = Tally(picks(RandomStrategy(), nodes, 3000))
    assert set(tally) == {"a", "b", "c"}
    assert all(700 < count < 1300 for count in tally.values())


def test_registry_builds_each_builtin():
    counter = FakeCounter()
    kinds = {name: type(get_strategy(name, counter=counter, custom={})) for name in LoadBalanceStrategy}
    assert kinds == {
        "round_robin": RoundRobinStrategy,
        "least_connections": LeastConnectionsStrategy,
        "random": RandomStrategy,
        "weighted": WeightedStrategy,
    }


def test_registry_loads_custom_strategy_by_dotted_path():
    custom = {"last": f"{__name__}.FirstStrategy", "counting": f"{__name__}.CountingStrategy"}
    nodes = [Node("a"), Node("b"), Node("c")]
    assert get_strategy("last", counter=FakeCounter(), custom=custom).select_instance(nodes).id == "c"
    counting = get_strategy("counting", counter=FakeCounter(), custom=custom)
    assert list(itertools.islice((counting.select_instance(nodes).id for _ in itertools.count()), 3)) == ["b", "c", "a"]


def test_unknown_strategy_lists_the_valid_names():
    with pytest.raises(UnknownStrategy) as caught:
        get_strategy("fastest", counter=FakeCounter(), custom={"mine": f"{__name__}.FirstStrategy"})
    message = str(caught.value)
    assert "fastest" in message
    for name in ("round_robin", "least_connections", "random", "weighted", "mine"):
        assert name in message
    assert isinstance(caught.value, ValueError)


def test_custom_strategy_with_a_bad_path_is_a_clear_error():
    with pytest.raises(UnknownStrategy, match="cannot load"):
        get_strategy("broken", counter=FakeCounter(), custom={"broken": "no.such.module.Strategy"})


def reference_smooth_weighted(weights):
    """nginx's smooth WRR step by step over every candidate (the O(n) per step definition)."""
    divisor = __import__("math").gcd(*weights)
    reduced = [w // divisor for w in weights]
    total = sum(reduced)
    current = [0] * len(reduced)
    out = []
    for _ in range(total):
        for i, w in enumerate(reduced):
            current[i] += w
        best = max(range(len(current)), key=current.__getitem__)
        current[best] -= total
        out.append(best)
    return tuple(out)


@given(st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=12))
def test_weighted_sequence_is_exactly_nginx(weights):
    # The service computes one period per registry version with equal weights stepped as a class.
    assert smooth_weighted_sequence(tuple(weights)) == reference_smooth_weighted(weights)


def test_weighted_sequence_of_10000_instances_is_cheap():
    weights = tuple(1 + i % 5 for i in range(10_000))
    sequence = smooth_weighted_sequence(weights)
    assert len(sequence) == sum(weights)
    assert Tally(sequence) == {i: w for i, w in enumerate(weights)}


def test_bounded_weights_keeps_small_periods_exact():
    assert bounded_weights((10, 2, 2)) == (5, 1, 1)
    assert bounded_weights((1000, 999, 1)) == (1000, 999, 1)


def test_bounded_weights_scales_a_huge_period_down():
    weights = list(range(1, 1001)) * 3  # 3,000 candidates, 1,000 distinct weights: Σw = 1,501,500
    bounded = bounded_weights(weights, max_work=2_000_000)
    assert sum(bounded) * len(set(bounded)) <= 2_000_000
    assert min(bounded) >= 1 and len(bounded) == len(weights)
    # The order of the weights survives, and the heavy ones keep their proportions within rounding.
    assert bounded[999] > bounded[499] > bounded[99] > bounded[0] == 1
    assert abs(bounded[999] / bounded[499] - 1000 / 500) < 0.1


def test_rotation_index():
    assert [rotation_index(k, 3) for k in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_weighted_strategy_with_many_candidates_is_fast():
    nodes = [Node(str(i), 1 + i % 5) for i in range(10_000)]
    strategy = WeightedStrategy(counter=FakeCounter())
    assert picks(strategy, nodes, 3) == ["4", "9", "14"]
