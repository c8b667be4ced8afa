"""Queue rules of the message bus as plain functions: bounds, TTL, leases, redelivery, ordering.

Pure Python (no Django): the services apply these rules to rows; the tests check them without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from collaboration.protocol import MessagePriority, ProtocolError, validate_priority
from seedproject.errors import InvalidInput, invalid


class MessageStatus(StrEnum):
    """Life of a message: queued -> leased -> acked; leased -> queued | dead; queued|leased -> expired."""

    QUEUED = "queued"
    LEASED = "leased"
    ACKED = "acked"
    EXPIRED = "expired"
    DEAD = "dead"


# The only moves a message may make; everything else is a bug (or an operator requeue of a dead one).
TRANSITIONS: dict[MessageStatus, frozenset[MessageStatus]] = {
    MessageStatus.QUEUED: frozenset({MessageStatus.LEASED, MessageStatus.EXPIRED}),
    MessageStatus.LEASED: frozenset(
        {MessageStatus.ACKED, MessageStatus.QUEUED, MessageStatus.DEAD, MessageStatus.EXPIRED}
    ),
    MessageStatus.ACKED: frozenset(),
    MessageStatus.EXPIRED: frozenset(),
    MessageStatus.DEAD: frozenset({MessageStatus.QUEUED}),
}
LIVE_STATUSES = (MessageStatus.QUEUED, MessageStatus.LEASED)


def can_transition(current: MessageStatus | str, target: MessageStatus | str) -> bool:
    """Whether a message may move from ``current`` to ``target``."""
    return MessageStatus(target) in TRANSITIONS[MessageStatus(current)]


@dataclass(frozen=True)
class QueueLimits:
    """The knobs of every queue, read once from settings by the caller."""

    max_size: int = 1000
    default_ttl: int = 300
    max_ttl: int = 7 * 24 * 3600
    lease_seconds: int = 60
    max_deliveries: int = 5
    max_wait: int = 30

    @classmethod
    def from_settings(cls, settings: Any) -> QueueLimits:
        """Build from an object with the SEED_* attributes (Django's settings)."""
        return cls(
            max_size=settings.SEED_MESSAGE_QUEUE_MAX_SIZE,
            default_ttl=settings.SEED_DEFAULT_TTL_SECONDS,
            max_ttl=settings.SEED_MAX_TTL_SECONDS,
            lease_seconds=settings.SEED_LEASE_SECONDS,
            max_deliveries=settings.SEED_MAX_DELIVERIES,
            max_wait=settings.SEED_MAX_RECEIVE_WAIT,
        )


def check_priority(value: Any) -> MessagePriority:
    """The priority as the enum, or a 400 naming the four accepted levels."""
    try:
        return validate_priority(value)
    except ProtocolError as exc:
        raise InvalidInput(str(exc), details=exc.errors) from exc


def resolve_ttl(ttl_seconds: int | None, limits: QueueLimits) -> int:
    """The default TTL when none is given; 1..max_ttl otherwise (a 400 outside)."""
    if ttl_seconds is None:
        return limits.default_ttl
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise invalid("ttl_seconds", "TTL must be a whole number of seconds.")
    if not 1 <= ttl_seconds <= limits.max_ttl:
        raise invalid("ttl_seconds", f"TTL must be between 1 and {limits.max_ttl} seconds.")
    return ttl_seconds


def expiry_time(now: datetime, ttl_seconds: int) -> datetime:
    """When a message sent now with this TTL stops being deliverable."""
    return now + timedelta(seconds=ttl_seconds)


def lease_expiry(now: datetime, limits: QueueLimits) -> datetime:
    """When a lease taken now runs out and the message becomes receivable again."""
    return now + timedelta(seconds=limits.lease_seconds)


def has_room(live_count: int, limits: QueueLimits, incoming: int = 1) -> bool:
    """Whether ``incoming`` more messages fit next to ``live_count`` queued+leased ones."""
    return live_count + incoming <= limits.max_size


def status_after_lease(delivery_count: int, limits: QueueLimits) -> MessageStatus:
    """An un-acked lease ran out: back to the queue, or dead once it was delivered max_deliveries times.

    ``delivery_count`` counts deliveries (it is incremented when a lease is taken), so a message is
    handed out at most ``max_deliveries`` times: no poison loop.
    """
    return MessageStatus.DEAD if delivery_count >= limits.max_deliveries else MessageStatus.QUEUED


def is_deliverable(status: MessageStatus | str, expires_at: datetime, now: datetime) -> bool:
    """Only a queued message whose TTL has not run out may be leased."""
    return MessageStatus(status) is MessageStatus.QUEUED and now < expires_at


def ordering_key(priority: int, created_at: datetime) -> tuple[int, datetime]:
    """Dequeue order: highest priority first, FIFO within a priority."""
    return (-int(priority), created_at)


def check_wait(wait: float | int | None, limits: QueueLimits) -> float:
    """Long-poll seconds: 0 (default) .. max_wait."""
    if wait is None:
        return 0.0
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= limits.max_wait:
        raise invalid("wait", f"wait must be between 0 and {limits.max_wait} seconds.")
    return float(wait)
