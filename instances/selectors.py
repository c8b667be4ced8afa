"""Reads of the instances app: lists, one instance, cluster stats, the effective cluster config."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, F, Q, QuerySet, Sum
from django.db.models.expressions import RawSQL

from instances import prepared
from instances.choices import InstanceStatus
from instances.models import ClusterConfig, Instance, InstanceEvent
from seedproject.errors import NotFound

# A monitor frame lists at most this many instances (the stats still count all of them).
SNAPSHOT_MAX_INSTANCES = 500
SNAPSHOT_RECENT_EVENTS = 20


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def instance_to_dict(instance: Instance) -> dict[str, Any]:
    """The API representation of an instance (API.md "Representations"), JSON-ready."""
    return {
        "id": str(instance.id),
        "host": instance.host,
        "port": instance.port,
        "url": instance.url,
        "weight": instance.weight,
        "status": instance.status,
        "metadata": instance.metadata,
        "health_check_path": instance.health_check_path,
        "cpu_usage": instance.cpu_usage,
        "memory_usage": instance.memory_usage,
        "connections": instance.connections,
        "registered_at": _iso(instance.registered_at),
        "last_heartbeat": _iso(instance.last_heartbeat),
        "last_probe_ok": _iso(instance.last_probe_ok),
    }


def parse_instance_id(instance_id: Any) -> uuid.UUID:
    """A UUID from whatever the caller has; anything that is not one names no instance (404)."""
    if isinstance(instance_id, uuid.UUID):
        return instance_id
    try:
        return uuid.UUID(str(instance_id))
    except (ValueError, TypeError, AttributeError) as exc:
        raise NotFound(
            f"Instance {instance_id!s:.80} not found.", details={"instance_id": str(instance_id)[:80]}
        ) from exc


def instance_get(*, instance_id: Any) -> Instance:
    """One instance by id, or NotFound."""
    pk = parse_instance_id(instance_id)
    try:
        return Instance.objects.get(pk=pk)
    except Instance.DoesNotExist as exc:
        raise NotFound(f"Instance {pk} not found.", details={"instance_id": str(pk)}) from exc


def instance_get_by_address(*, host: str, port: int) -> Instance:
    """One instance by host:port, or NotFound."""
    try:
        return Instance.objects.get(host=host, port=port)
    except Instance.DoesNotExist as exc:
        raise NotFound(f"Instance {host}:{port} not found.", details={"address": f"{host}:{port}"}) from exc


def _instances(status: str | None):
    queryset = Instance.objects.order_by("registered_at", "id")
    return queryset.filter(status=status) if status else queryset


def instance_list(*, status: str | None = None, limit: int = 100, offset: int = 0) -> list[Instance]:
    """Instances in registration order, optionally of one status."""
    return list(_instances(status)[offset : offset + limit])


def instance_page(*, status: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[Instance], int]:
    """One page of ``instance_list`` plus the total count of matching instances."""
    return instance_list(status=status, limit=limit, offset=offset), _instances(status).count()


def active_instances(*, exclude: Iterable[uuid.UUID] = ()) -> QuerySet[Instance]:
    """The pick candidates: active instances minus ``exclude``, in registration order (``instance_status_order``)."""
    queryset = Instance.objects.filter(status=InstanceStatus.ACTIVE)
    exclude = list(exclude)
    if exclude:
        queryset = queryset.exclude(pk__in=exclude)
    return queryset.order_by("registered_at", "id")


def active_instance_at(*, ordinal: int, exclude: Iterable[uuid.UUID] = ()) -> Instance | None:
    """The candidate at position ``ordinal mod count`` (``balancing.rotation_index``), in one statement.

    ``WHERE id = (SELECT id … ORDER BY registered_at, id LIMIT 1 OFFSET ordinal % (SELECT COUNT(*) …))``:
    the count and the position are read from the ``(status, registered_at, id)`` index (the inner
    query needs only ids, so the offset walks index entries, not table rows), the count and the fetch
    see the same snapshot, and one row leaves the database. None when there is no candidate.
    """
    exclude = list(exclude)

    def build():
        stand_ins = [prepared.stand_in_id(i) for i in range(len(exclude))]
        rows = active_instances(exclude=stand_ins)
        ids_sql, ids_params = rows.values("pk").query.sql_with_params()
        count_sql, count_params = rows.order_by().values("pk").query.sql_with_params()
        count_sql = f"SELECT COUNT(*) FROM ({count_sql}) AS candidates"  # noqa: S608 (compiled by Django)
        # Only SQL that Django compiled from the querysets above goes into the text; every value is a parameter.
        pick = RawSQL(  # noqa: S611
            f"{ids_sql} LIMIT 1 OFFSET COALESCE(%s %% NULLIF(({count_sql}), 0), 0)",
            (*ids_params, prepared.ORDINAL, *count_params),
        )
        sql, params = prepared.compiled(Instance.objects.filter(pk=pick).order_by("pk")[:1])
        return sql, params, prepared.stand_in_slots(stand_ins, ordinal_slot=len(exclude))

    statement = prepared.prepared("active_instance_at", len(exclude), build)
    rows = statement.instances([*(prepared.db_id(pk) for pk in exclude), ordinal])
    return rows[0] if rows else None


def least_loaded_candidates(*, exclude: Iterable[uuid.UUID] = ()) -> QuerySet[Instance]:
    """Candidates by fewest connections + picks since their heartbeat, then registration order.

    Served by the partial index ``instance_least_loaded``.
    """
    load = F("connections") + F("picks_since_heartbeat")
    return active_instances(exclude=exclude).order_by(load, "registered_at", "id")


def least_loaded_instance(*, exclude: Iterable[uuid.UUID] = ()) -> Instance | None:
    """The candidate with the fewest connections + picks since its heartbeat (ties: registration order)."""
    return least_loaded_candidates(exclude=exclude).first()


def active_loads() -> list[tuple[uuid.UUID, datetime, int]]:
    """(id, registered_at, connections + picks since heartbeat) of each active instance (the least-loaded set)."""
    load = F("connections") + F("picks_since_heartbeat")
    return list(active_instances().order_by().annotate(load=load).values_list("id", "registered_at", "load"))


def active_weights() -> list[tuple[uuid.UUID, int]]:
    """(id, weight) of every active instance in registration order: what the smooth-WRR period is built from."""
    return list(active_instances().values_list("id", "weight"))


def active_ids() -> list[uuid.UUID]:
    """The id of every active instance, in registration order (what round robin and random picks index)."""
    return list(active_instances().values_list("id", flat=True))


def active_instance(*, instance_id: uuid.UUID) -> Instance | None:
    """The instance if it is (still) active."""

    def build():
        stand_in = prepared.stand_in_id(0)
        queryset = Instance.objects.filter(pk=stand_in, status=InstanceStatus.ACTIVE).order_by()[:1]
        return (*prepared.compiled(queryset), prepared.stand_in_slots([stand_in]))

    rows = prepared.prepared("active_instance", 1, build).instances([prepared.db_id(instance_id)])
    return rows[0] if rows else None


def instance_events(*, instance_id: Any = None, limit: int = 100, offset: int = 0) -> list[InstanceEvent]:
    """Instance events, newest first, optionally of one instance."""
    queryset = InstanceEvent.objects.all()
    if instance_id is not None:
        queryset = queryset.filter(instance_id=parse_instance_id(instance_id))
    return list(queryset[offset : offset + limit])


def cluster_config_get() -> dict[str, Any]:
    """The effective cluster settings, and for each whether it is an override ("config") or the default ("settings")."""
    row = ClusterConfig.objects.filter(pk=ClusterConfig.SINGLETON_PK).first()
    defaults = {
        "load_balance_strategy": settings.SEED_LOAD_BALANCE_STRATEGY,
        "heartbeat_interval": settings.SEED_HEARTBEAT_INTERVAL,
        "instance_timeout": settings.SEED_INSTANCE_TIMEOUT,
    }
    effective: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for field, default in defaults.items():
        value = getattr(row, field, None) if row else None
        overridden = value not in (None, "")
        effective[field] = value if overridden else default
        sources[field] = "config" if overridden else "settings"
    effective["sources"] = sources
    effective["updated_at"] = _iso(row.updated_at) if row else None
    return effective


def heartbeat_interval_seconds() -> float:
    """The live heartbeat interval; beat asks on every tick, so this is one primary-key read."""
    value = (
        ClusterConfig.objects.filter(pk=ClusterConfig.SINGLETON_PK).values_list("heartbeat_interval", flat=True).first()
    )
    return float(value or settings.SEED_HEARTBEAT_INTERVAL)


def cluster_stats() -> dict[str, Any]:
    """The seed's cluster_stats keys (then draining/disabled counts), in one aggregate query.

    Connections and CPU/memory averages cover instances whose figures are live (every status but
    ``unhealthy``, whose last report is stale by definition).
    """
    live = ~Q(status=InstanceStatus.UNHEALTHY)
    row = Instance.objects.aggregate(
        total=Count("id"),
        healthy=Count("id", filter=Q(status=InstanceStatus.ACTIVE)),
        unhealthy=Count("id", filter=Q(status=InstanceStatus.UNHEALTHY)),
        draining=Count("id", filter=Q(status=InstanceStatus.DRAINING)),
        disabled=Count("id", filter=Q(status=InstanceStatus.DISABLED)),
        connections=Sum("connections", filter=live),
        cpu=Avg("cpu_usage", filter=live),
        memory=Avg("memory_usage", filter=live),
    )
    return {
        "total_instances": row["total"],
        "healthy_instances": row["healthy"],
        "unhealthy_instances": row["unhealthy"],
        "total_connections": row["connections"] or 0,
        "avg_cpu_usage": round(row["cpu"] or 0.0, 2),
        "avg_memory_usage": round(row["memory"] or 0.0, 2),
        "load_balance_strategy": cluster_config_get()["load_balance_strategy"],
        "draining_instances": row["draining"],
        "disabled_instances": row["disabled"],
    }


def event_to_dict(event: InstanceEvent) -> dict[str, Any]:
    """An instance event, JSON-ready (the dashboard's "recent status events")."""
    return {
        "instance_id": str(event.instance_id) if event.instance_id else None,
        "address": event.address,
        "kind": event.kind,
        "from_status": event.from_status or None,
        "to_status": event.to_status or None,
        "reason": event.reason,
        "actor": event.actor,
        "created_at": _iso(event.created_at),
    }


def cluster_snapshot() -> dict[str, Any]:
    """The monitor frame: ``{"type": "cluster_update", "cluster_stats", "instances", "events"}``."""
    instances = Instance.objects.order_by("registered_at", "id")[:SNAPSHOT_MAX_INSTANCES]
    return {
        "type": "cluster_update",
        "cluster_stats": cluster_stats(),
        "instances": [instance_to_dict(instance) for instance in instances],
        "events": [event_to_dict(event) for event in instance_events(limit=SNAPSHOT_RECENT_EVENTS)],
    }


def instance_id_for_token(*, token_hash: str) -> uuid.UUID | None:
    """The instance whose token hashes to ``token_hash`` (one indexed lookup)."""
    if not token_hash:
        return None
    return Instance.objects.filter(token_hash=token_hash).values_list("id", flat=True).first()
