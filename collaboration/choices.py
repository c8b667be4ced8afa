"""Django choices for the collaboration models (values mirror the pure enums in queue.py)."""

from django.db import models

from collaboration.queue import MessageStatus as _QueueStatus


class EmployeeStatus(models.TextChoices):
    """An employee is active from registration until it unregisters (a re-register revives it)."""

    ACTIVE = "active", "Active"
    UNREGISTERED = "unregistered", "Unregistered"


class MessageStatus(models.TextChoices):
    """See queue.MessageStatus for the allowed transitions."""

    QUEUED = _QueueStatus.QUEUED.value, "Queued"
    LEASED = _QueueStatus.LEASED.value, "Leased"
    ACKED = _QueueStatus.ACKED.value, "Acked"
    EXPIRED = _QueueStatus.EXPIRED.value, "Expired"
    DEAD = _QueueStatus.DEAD.value, "Dead"


class MessagePriority(models.IntegerChoices):
    """1 low .. 4 urgent (protocol.MessagePriority)."""

    LOW = 1, "Low"
    NORMAL = 2, "Normal"
    HIGH = 3, "High"
    URGENT = 4, "Urgent"
