"""The pure queue rules (no database)."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from collaboration import queue
from collaboration.queue import MessageStatus, QueueLimits
from seedproject.errors import InvalidInput
from tests.collaboration.test_protocol import imported_modules

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LIMITS = QueueLimits(max_size=3, default_ttl=300, max_ttl=600, lease_seconds=60, max_deliveries=2, max_wait=5)


def test_queue_module_imports_no_django():
    assert not {m for m in imported_modules(queue) if m.split(".")[0] in {"django", "rest_framework"}}


def test_limits_from_settings():
    settings = SimpleNamespace(
        SEED_MESSAGE_QUEUE_MAX_SIZE=7, SEED_DEFAULT_TTL_SECONDS=8, SEED_MAX_TTL_SECONDS=9,
        SEED_LEASE_SECONDS=10, SEED_MAX_DELIVERIES=11, SEED_MAX_RECEIVE_WAIT=12,
    )  # fmt: skip
    assert QueueLimits.from_settings(settings) == QueueLimits(7, 8, 9, 10, 11, 12)


@pytest.mark.parametrize("value", [0, 5, "x", None, 1.5])
def test_bad_priority_is_invalid_input(value):
    with pytest.raises(InvalidInput) as info:
        queue.check_priority(value)
    assert "priority" in info.value.details


def test_ttl_default_and_bounds():
    assert queue.resolve_ttl(None, LIMITS) == 300
    assert queue.resolve_ttl(1, LIMITS) == 1
    assert queue.resolve_ttl(600, LIMITS) == 600
    for bad in (0, -5, 601, True, "10"):
        with pytest.raises(InvalidInput) as info:
            queue.resolve_ttl(bad, LIMITS)
        assert "ttl_seconds" in info.value.details


def test_expiry_and_lease_times():
    assert queue.expiry_time(NOW, 30) == NOW + timedelta(seconds=30)
    assert queue.lease_expiry(NOW, LIMITS) == NOW + timedelta(seconds=60)


def test_bound():
    assert queue.has_room(2, LIMITS)
    assert not queue.has_room(3, LIMITS)
    assert not queue.has_room(2, LIMITS, incoming=2)


def test_redelivery_becomes_dead_at_the_delivery_limit():
    assert queue.status_after_lease(1, LIMITS) is MessageStatus.QUEUED
    assert queue.status_after_lease(2, LIMITS) is MessageStatus.DEAD
    assert queue.status_after_lease(3, LIMITS) is MessageStatus.DEAD


def test_only_queued_unexpired_messages_are_deliverable():
    later = NOW + timedelta(seconds=1)
    assert queue.is_deliverable("queued", later, NOW)
    assert not queue.is_deliverable("queued", NOW, NOW)
    for status in ("leased", "acked", "expired", "dead"):
        assert not queue.is_deliverable(status, later, NOW)


def test_ordering_key_priority_then_fifo():
    items = [(2, NOW), (4, NOW + timedelta(seconds=2)), (2, NOW - timedelta(seconds=1)), (4, NOW)]
    ordered = sorted(items, key=lambda item: queue.ordering_key(*item))
    assert ordered == [(4, NOW), (4, NOW + timedelta(seconds=2)), (2, NOW - timedelta(seconds=1)), (2, NOW)]


def test_transitions():
    assert queue.can_transition("queued", "leased")
    assert queue.can_transition("leased", "queued")
    assert queue.can_transition("leased", "dead")
    assert queue.can_transition("dead", "queued")
    assert not queue.can_transition("acked", "queued")
    assert not queue.can_transition("expired", "leased")
    assert not queue.can_transition("queued", "acked")


def test_wait_bounds():
    assert queue.check_wait(None, LIMITS) == 0
    assert queue.check_wait(2.5, LIMITS) == 2.5
    for bad in (-1, 6, True, "1"):
        with pytest.raises(InvalidInput):
            queue.check_wait(bad, LIMITS)
