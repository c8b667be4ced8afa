"""Instance status transitions (pure: no Django).

The service feeds these rules the facts (status, when the instance last showed life, the clock,
the timeout) and applies whatever transition they return; probing and the database stay at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ACTIVE = "active"
UNHEALTHY = "unhealthy"
DRAINING = "draining"
DISABLED = "disabled"

# Operator-set statuses: only an operator moves an instance out of them.
OPERATOR_STATUSES = frozenset({DRAINING, DISABLED})


@dataclass(frozen=True)
class Transition:
    """A status change the rules ask for, and why."""

    to_status: str
    reason: str


def is_stale(last_seen: datetime | None, now: datetime, instance_timeout: float) -> bool:
    """True when nothing was heard from the instance for longer than ``instance_timeout`` seconds."""
    if last_seen is None:
        return True
    return (now - last_seen).total_seconds() > instance_timeout


def evaluate(status: str, last_seen: datetime | None, now: datetime, instance_timeout: float) -> Transition | None:
    """The transition a health pass applies, or None: active & stale -> unhealthy, unhealthy & fresh -> active."""
    if status in OPERATOR_STATUSES:
        return None
    stale = is_stale(last_seen, now, instance_timeout)
    if status == ACTIVE and stale:
        return Transition(UNHEALTHY, f"no heartbeat or passing probe for {_seconds(instance_timeout)} s")
    if status == UNHEALTHY and not stale:
        return Transition(ACTIVE, "heartbeat or passing probe within instance_timeout")
    return None


def on_sign_of_life(status: str, source: str) -> Transition | None:
    """A heartbeat, passing probe or re-registration from an unhealthy instance makes it active again."""
    if status == UNHEALTHY:
        return Transition(ACTIVE, f"recovered: {source}")
    return None


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
