"""Choices of the instances app: statuses, event actors and kinds, strategies."""

from django.db import models

from instances import health
from instances.balancing import LoadBalanceStrategy

__all__ = ["EventActor", "EventKind", "InstanceStatus", "LoadBalanceStrategy"]


class InstanceStatus(models.TextChoices):
    """Where an instance stands: only ``active`` instances are ever load-balanced to."""

    ACTIVE = health.ACTIVE, "Active"
    UNHEALTHY = health.UNHEALTHY, "Unhealthy"
    DRAINING = health.DRAINING, "Draining"
    DISABLED = health.DISABLED, "Disabled"


# Statuses an operator (API, admin, command) may set; `unhealthy` is only ever set by the health rules.
OPERATOR_SETTABLE_STATUSES = (InstanceStatus.ACTIVE, InstanceStatus.DRAINING, InstanceStatus.DISABLED)


class EventActor(models.TextChoices):
    """Who caused an instance event."""

    API = "api", "API"
    HEARTBEAT = "heartbeat", "Heartbeat"
    HEALTH_CHECK = "health_check", "Health check"
    ADMIN = "admin", "Admin"
    COMMAND = "command", "Management command"
    SERVER = "server", "Seed server"


class EventKind(models.TextChoices):
    """What happened to the instance."""

    REGISTERED = "registered", "Registered"
    STATUS_CHANGED = "status_changed", "Status changed"
    DEREGISTERED = "deregistered", "Deregistered"
