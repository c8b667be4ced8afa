"""Status transition rules (pure: no database)."""

from datetime import UTC, datetime, timedelta

import pytest

from instances import health

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def ago(seconds):
    return NOW - timedelta(seconds=seconds)


def test_active_and_stale_becomes_unhealthy_with_a_reason():
    change = health.evaluate("active", ago(31), NOW, 30)
    assert change == health.Transition("unhealthy", "no heartbeat or passing probe for 30 s")


def test_active_and_fresh_stays():
    assert health.evaluate("active", ago(29), NOW, 30) is None
    assert health.evaluate("active", ago(30), NOW, 30) is None  # exactly at the timeout is still fresh


def test_never_seen_is_stale():
    assert health.evaluate("active", None, NOW, 30).to_status == "unhealthy"


def test_unhealthy_and_fresh_becomes_active():
    assert health.evaluate("unhealthy", ago(1), NOW, 30).to_status == "active"


def test_unhealthy_and_stale_stays():
    assert health.evaluate("unhealthy", ago(300), NOW, 30) is None


@pytest.mark.parametrize("status", ["draining", "disabled"])
@pytest.mark.parametrize("seconds", [1, 3000])
def test_operator_statuses_never_change_automatically(status, seconds):
    assert health.evaluate(status, ago(seconds), NOW, 30) is None
    assert health.on_sign_of_life(status, "heartbeat") is None


def test_sign_of_life_recovers_only_unhealthy():
    assert health.on_sign_of_life("unhealthy", "heartbeat") == health.Transition("active", "recovered: heartbeat")
    assert health.on_sign_of_life("active", "heartbeat") is None


def test_status_names_match_the_model_choices():
    from instances.choices import InstanceStatus

    assert set(InstanceStatus.values) == {health.ACTIVE, health.UNHEALTHY, health.DRAINING, health.DISABLED}
