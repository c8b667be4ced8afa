"""The send body's plain-Python check gives the serializer's answer, and answers the common bodies itself."""

import uuid

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from collaboration.serializers import SendSerializer, _send_params_fast, send_params
from seedproject.api import validated


def drf(body):
    """The serializer's answer: its validated data, or the errors it raises."""
    try:
        return dict(validated(SendSerializer, body))
    except ValidationError as exc:
        return exc.detail


def assert_same_answer(body):
    fast = _send_params_fast(body)
    if fast is not None:
        assert fast == drf(body), body
    answer = drf(body)
    try:
        assert send_params(body) == answer
    except ValidationError as exc:
        assert exc.detail == answer


COMMON = [
    {"receiver_id": "qa_001", "message_type": "notification"},
    {"receiver_id": "qa_001", "message_type": "notification", "action": "bench", "data": {"n": 1}},
    {
        "receiver_id": "qa.team-1",
        "message_type": "task_request",
        "action": "review 你好",
        "data": {"text": "你好", "list": [1, 2.5, None, True]},
        "priority": 4,
        "ttl_seconds": 60,
        "correlation_id": "corr-1",
        "conversation_id": str(uuid.uuid4()),
        "message_id": "m-1",
        "routing": "round_robin",
    },
    {"receiver_id": "qa_001", "message_type": "query", "action": "", "ttl_seconds": None, "message_id": None},
    {"receiver_id": "Q", "message_type": "query", "ttl_seconds": 7 * 24 * 3600, "priority": 1},
]


@pytest.mark.parametrize("body", COMMON)
def test_common_bodies_are_answered_without_the_serializer(body):
    assert _send_params_fast(body) is not None
    assert_same_answer(body)


LEFT_TO_THE_SERIALIZER = [
    {"receiver_id": "role:qa_engineer", "message_type": "notification"},  # role receivers
    {"receiver_id": " qa_001 ", "message_type": "notification"},  # DRF trims
    {"receiver_id": "qa_001\n", "message_type": "notification"},
    {"receiver_id": "qa_001", "message_type": "notification", "action": " padded "},
    {"receiver_id": "qa_001", "message_type": "notification", "action": "nul\x00"},
    {"receiver_id": "qa_001", "message_type": "notification", "action": "lone \ud800"},
    {"receiver_id": "qa_001", "message_type": "notification", "action": "x" * 129},
    {"receiver_id": "qa_001", "message_type": "notification", "action": None},
    {"receiver_id": "qa_001", "message_type": "notification", "data": None},
    {"receiver_id": "qa_001", "message_type": "notification", "data": [1]},
    {"receiver_id": "qa_001", "message_type": "notification", "priority": True},
    {"receiver_id": "qa_001", "message_type": "notification", "priority": "2"},
    {"receiver_id": "qa_001", "message_type": "notification", "priority": 2.0},
    {"receiver_id": "qa_001", "message_type": "notification", "priority": 5},
    {"receiver_id": "qa_001", "message_type": "notification", "ttl_seconds": 0},
    {"receiver_id": "qa_001", "message_type": "notification", "ttl_seconds": 7 * 24 * 3600 + 1},
    {"receiver_id": "qa_001", "message_type": "notification", "ttl_seconds": "60"},
    {"receiver_id": "qa_001", "message_type": "notification", "correlation_id": ""},
    {"receiver_id": "qa_001", "message_type": "notification", "message_id": 12},
    {"receiver_id": "qa_001", "message_type": "notification", "conversation_id": "not-a-uuid"},
    {"receiver_id": "qa_001", "message_type": "notification", "conversation_id": 5},
    {"receiver_id": "qa_001", "message_type": "notification", "routing": "fastest"},
    {"receiver_id": "qa_001", "message_type": "no_such_type"},
    {"receiver_id": "qa_001", "message_type": " notification"},
    {"receiver_id": "qa_001"},
    {"message_type": "notification"},
    {"receiver_id": 12, "message_type": "notification"},
    {"receiver_id": "", "message_type": "notification"},
    {"receiver_id": "x" * 129, "message_type": "notification"},
]


@pytest.mark.parametrize("body", LEFT_TO_THE_SERIALIZER)
def test_anything_unusual_is_left_to_the_serializer(body):
    assert _send_params_fast(body) is None
    assert_same_answer(body)


def test_bad_input_still_gets_the_serializers_400():
    with pytest.raises(ValidationError) as exc:
        send_params({"receiver_id": "qa_001", "message_type": "notification", "priority": 9})
    assert set(exc.value.detail) == {"priority"}
    with pytest.raises(ValidationError):
        send_params(["not", "an", "object"])


def test_extra_message_types_from_settings_are_known_to_both(settings):
    settings.SEED_EXTRA_MESSAGE_TYPES = ["deploy_request"]
    body = {"receiver_id": "qa_001", "message_type": "deploy_request"}
    assert _send_params_fast(body) is not None
    assert_same_answer(body)


texts = st.one_of(
    st.text(max_size=140),
    st.sampled_from(["", " ", "qa_001", " qa_001", "role:qa_engineer", "notification", "a\x00b", "\ud800"]),
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=6),  # priorities and their edges
    st.sampled_from([7 * 24 * 3600, 7 * 24 * 3600 + 1]),  # SEED_MAX_TTL_SECONDS and one past it
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False),
    texts,
    st.just(str(uuid.UUID(int=7))),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
FIELDS = [
    "receiver_id",
    "message_type",
    "action",
    "data",
    "priority",
    "ttl_seconds",
    "correlation_id",
    "conversation_id",
    "message_id",
    "routing",
]


@hsettings(max_examples=600, deadline=None)
@given(
    base=st.sampled_from(COMMON),
    changes=st.dictionaries(st.sampled_from(FIELDS), values, min_size=1, max_size=2),
    dropped=st.sets(st.sampled_from(FIELDS), max_size=2),
)
def test_any_body_gets_the_serializers_answer(base, changes, dropped):
    body = {k: v for k, v in {**base, **changes}.items() if k not in dropped}
    assert_same_answer(body)
