"""The heartbeat body and loadbalance query fast paths accept only what the serializers accept, unchanged."""

import math

from hypothesis import given
from hypothesis import strategies as st

from instances.serializers import (
    HeartbeatSerializer,
    LoadBalanceQuerySerializer,
    plain_heartbeat,
    plain_loadbalance_query,
)

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=2**31 + 5),
    st.sampled_from([0, 100, 2**31 - 1, 2**31, -1, 3.0, 100.0, 100.5, -0.0, math.nan, math.inf, -math.inf]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)
bodies = st.dictionaries(st.sampled_from(["cpu_usage", "memory_usage", "connections", "other"]), values, max_size=4)


def serializer_result(serializer_class, data):
    serializer = serializer_class(data=data)
    return dict(serializer.validated_data) if serializer.is_valid() else None


@given(bodies)
def test_a_heartbeat_body_the_fast_path_takes_is_one_the_serializer_takes_the_same_way(body):
    fast = plain_heartbeat(body)
    if fast is not None:
        assert fast == serializer_result(HeartbeatSerializer, body)
        assert all(type(fast[k]) is type(v) for k, v in serializer_result(HeartbeatSerializer, body).items())


def test_the_common_heartbeat_bodies_take_the_fast_path():
    assert plain_heartbeat({}) == {}
    assert plain_heartbeat({"cpu_usage": 12.5, "memory_usage": 40, "connections": 3}) == {
        "cpu_usage": 12.5,
        "memory_usage": 40.0,
        "connections": 3,
    }
    for refused in ({"cpu_usage": True}, {"cpu_usage": math.nan}, {"connections": 1.0}, {"x": 1}, [1]):
        assert plain_heartbeat(refused) is None


@given(
    st.dictionaries(
        st.sampled_from(["strategy", "exclude", "other"]),
        st.one_of(
            st.sampled_from(["round_robin", "random", " random", "weighted\x00", "", "least_connections", "custom"]),
            st.text(max_size=8),
        ),
        max_size=3,
    )
)
def test_a_loadbalance_query_the_fast_path_takes_is_one_the_serializer_takes_the_same_way(params):
    fast = plain_loadbalance_query(params)
    if fast is not None:
        assert fast == serializer_result(LoadBalanceQuerySerializer, params)


def test_the_common_loadbalance_queries_take_the_fast_path():
    assert plain_loadbalance_query({}) == {}
    assert plain_loadbalance_query({"strategy": "weighted"}) == {"strategy": "weighted"}
    assert plain_loadbalance_query({"strategy": " weighted"}) is None
    assert plain_loadbalance_query({"strategy": "weighted", "exclude": ""}) is None
