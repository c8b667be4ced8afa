"""Persistence for the instance registry: instances, their status history, the live cluster settings."""

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from instances.choices import EventActor, EventKind, InstanceStatus


class Instance(models.Model):
    """A Seed server instance registered in the cluster."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    weight = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(1000)])
    status = models.CharField(max_length=16, choices=InstanceStatus.choices, default=InstanceStatus.ACTIVE)
    metadata = models.JSONField(default=dict, blank=True)
    health_check_path = models.CharField(max_length=255, default="/health")
    cpu_usage = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(100.0)])
    memory_usage = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(100.0)]
    )
    connections = models.PositiveIntegerField(default=0)
    # Picks handed out by least_connections since the last heartbeat: a burst between two reports
    # spreads instead of landing on the instance that last reported the fewest connections. Counted here
    # without Redis; with Redis the count lives in the cache's least-loaded set (instances.services
    # LEAST_LOADED_KEY) and this column only holds the picks answered in SQL (a fallback).
    picks_since_heartbeat = models.PositiveIntegerField(default=0)
    registered_at = models.DateTimeField(auto_now_add=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    last_probe_ok = models.DateTimeField(null=True, blank=True)
    # SHA-256 of the instance's bearer token (heartbeats, updates); shown once, at registration.
    token_hash = models.CharField(max_length=64, blank=True, default="", db_index=True, editable=False)

    class Meta:
        ordering = ["registered_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["host", "port"], name="instance_unique_address"),
            models.CheckConstraint(condition=Q(port__gte=1, port__lte=65535), name="instance_port_range"),
            models.CheckConstraint(condition=Q(weight__gte=1, weight__lte=1000), name="instance_weight_range"),
        ]
        indexes = [
            # Serves `?status=` and the eligible-instance pick: status = 'active' ORDER BY registered_at, id.
            models.Index(fields=["status", "registered_at", "id"], name="instance_status_order"),
            models.Index(fields=["registered_at", "id"], name="instance_order"),
            # Serves the least_connections pick: the first active instance by load, then registration order.
            models.Index(
                F("connections") + F("picks_since_heartbeat"),
                F("registered_at"),
                F("id"),
                name="instance_least_loaded",
                condition=Q(status="active"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.status})"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class InstanceEvent(models.Model):
    """One change in an instance's life (registration, status change, deregistration): who, from, to, why."""

    # SET_NULL keeps the history after the instance is deregistered; `address` still names it.
    instance = models.ForeignKey(Instance, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    address = models.CharField(max_length=300)
    kind = models.CharField(max_length=16, choices=EventKind.choices, default=EventKind.STATUS_CHANGED)
    from_status = models.CharField(max_length=16, blank=True, default="")
    to_status = models.CharField(max_length=16, blank=True, default="")
    reason = models.CharField(max_length=300, blank=True, default="")
    actor = models.CharField(max_length=16, choices=EventActor.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.address}: {self.from_status or '-'} -> {self.to_status or '-'} ({self.actor})"


class ClusterConfig(models.Model):
    """The live cluster settings (a single row); an empty field means "use the settings default"."""

    SINGLETON_PK = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    load_balance_strategy = models.CharField(max_length=64, blank=True, default="")
    heartbeat_interval = models.PositiveIntegerField(null=True, blank=True)
    instance_timeout = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "cluster config"
        verbose_name_plural = "cluster config"

    def __str__(self) -> str:
        return "Cluster config"
