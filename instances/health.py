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


def probe_due_age(instance_timeout: float, heartbeat_interval: float) -> float:
    """How old an instance's last sign of life must be before a health pass probes it.

    A failing probe changes nothing by itself (an instance turns unhealthy only once its last sign of
    life is older than ``instance_timeout``); a passing one only refreshes that sign of life. So a probe
    is needed only when the sign of life could go stale before the next passes: older than
    ``instance_timeout - 2 * heartbeat_interval`` (one interval of margin for a late pass). Instances
    that heartbeat are then never probed; silent ones are probed about as often as before. Unhealthy
    instances are always probed (a passing probe is their way back).
    """
    return max(0.0, float(instance_timeout) - 2 * float(heartbeat_interval))


def on_sign_of_life(status: str, source: str) -> Transition | None:
    """A heartbeat, passing probe or re-registration from an unhealthy instance makes it active again."""
    if status == UNHEALTHY:
        return Transition(ACTIVE, f"recovered: {source}")
    return None


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
