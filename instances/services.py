"""Writes of the instances app: registration, heartbeats, status changes, picks, health passes, config."""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from instances import health, prepared, probing
from instances.balancing import (
    LeastConnectionsStrategy,
    RandomStrategy,
    RoundRobinStrategy,
    UnknownStrategy,
    WeightedStrategy,
    get_strategy,
    least_loaded_member,
    least_loaded_member_id,
    rotation_index,
)
from instances.choices import OPERATOR_SETTABLE_STATUSES, EventActor, EventKind, InstanceStatus
from instances.events import publish_cluster_update
from instances.load_reports import LoadReports
from instances.models import ClusterConfig, Instance, InstanceEvent
from instances.selectors import (
    active_ids,
    active_instance,
    active_instance_at,
    active_instances,
    active_loads,
    active_weights,
    cluster_config_get,
    instance_get,
    least_loaded_candidates,
    least_loaded_instance,
    parse_instance_id,
)
from seedproject.auth import INSTANCE_TOKEN_PREFIX
from seedproject.counters import counter
from seedproject.db import release_connection_while_waiting
from seedproject.errors import InstanceUnreachable, NoHealthyInstance, NotFound, invalid
from seedproject.security import token_hash, token_issue

logger = logging.getLogger(__name__)

# A hostname (RFC 1123 labels), an IPv4 address or an IPv6 address: nothing that could smuggle a path
# or credentials into the probe URL.
_HOST_RE = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)
_PATH_RE = re.compile(r"^/[\x21-\x7e]{0,254}$")
MAX_INTERVAL_SECONDS = 86_400


def validate_host(host: Any) -> str:
    """The host if it is a hostname or IP address, else 400 on ``host``."""
    if isinstance(host, str) and ":" in host:
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            pass
    elif isinstance(host, str) and _HOST_RE.match(host):
        return host
    raise invalid("host", "Enter a hostname or an IP address.")


def validate_health_check_path(path: Any) -> str:
    """The path if it starts with "/" and holds only visible ASCII, else 400 on ``health_check_path``."""
    if not isinstance(path, str) or not _PATH_RE.match(path):
        raise invalid("health_check_path", 'Enter a path starting with "/" (visible ASCII, at most 255 characters).')
    return path


def _check_int(field: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(field, f"Ensure this value is an integer between {low} and {high}.")


def _check_percent(field: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 100.0:
        raise invalid(field, "Ensure this value is a number between 0 and 100.")


# Bumped on every register / deregister / status change / weight change: the weighted pick's cached
# smooth-WRR period is keyed by it, so a change makes the next pick rebuild the period.
REGISTRY_VERSION_KEY = "lb:registry_version"


def registry_changed() -> None:
    """Invalidate what picks cache about the registry (call it on any change to who is active or their weight).

    Bumped at once and again after commit: a process that reloads its copy while the change is not yet
    committed reads the old rows under the new version; the second bump makes it reload once they are.
    """
    _bump_registry_version()
    transaction.on_commit(_bump_registry_version)


def _bump_registry_version() -> None:
    forget_registry_copies()  # this process sees its own change at once (others at their next pick)
    try:
        counter.incr(REGISTRY_VERSION_KEY)
    except Exception:
        # A cache outage must not fail the write; the cached period also expires (WEIGHTED_PERIOD_TTL).
        logger.exception("could not bump the registry version")


def _record(instance: Instance, *, kind: str, from_status: str, to_status: str, reason: str, actor: str) -> None:
    InstanceEvent.objects.create(
        instance=instance,
        address=instance.address,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        reason=reason[:300],
        actor=actor,
    )


def _transition(instance: Instance, *, to_status: str, reason: str, actor: str) -> bool:
    """Move ``instance`` to ``to_status`` if nobody changed it meanwhile; record the event. True if it moved."""
    from_status = instance.status
    # Conditional UPDATE: two health passes (or a pass and a heartbeat) racing record one event, not two.
    moved = Instance.objects.filter(pk=instance.pk, status=from_status).update(status=to_status)
    if not moved:
        return False
    instance.status = to_status
    registry_changed()
    _record(
        instance,
        kind=EventKind.STATUS_CHANGED,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        actor=actor,
    )
    return True


def instance_register(
    *,
    host: str,
    port: int,
    weight: int = 1,
    metadata: dict | None = None,
    health_check_path: str = "/health",
    verify: bool = True,
    actor: str = "api",
    rotate_token: bool = False,
) -> tuple[Instance, bool]:
    """Register host:port (probing it first when ``verify``); the same address again updates it in place.

    A new instance gets a bearer token, as ``instance.new_token`` (shown once, stored hashed); a
    re-registration gets a fresh one only with ``rotate_token`` (or when it never had one).
    """
    host = validate_host(host)
    _check_int("port", port, 1, 65535)
    _check_int("weight", weight, 1, 1000)
    validate_health_check_path(health_check_path)
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("metadata", "Expected a JSON object.")
    # The network rule applies to every registration, probed or not: health passes will probe it later.
    try:
        probing.allowed_address(host, port)
    except probing.AddressNotAllowed as exc:
        raise invalid("host", f"{exc}.") from exc
    probed_at = None
    if verify:
        url = Instance(host=host, port=port).url + health_check_path
        # Probe before any write: a slow instance must not hold a database transaction open, nor (while
        # it answers) a pooled connection that other requests need.
        release_connection_while_waiting()
        result = probing.probe_address(host, port, health_check_path, timeout=settings.SEED_PROBE_TIMEOUT)
        if not result.ok:
            raise InstanceUnreachable(
                f"Instance registration failed (实例注册失败): {result.cause}",
                details={"cause": result.cause, "url": url},
            )
        probed_at = timezone.now()
    now = timezone.now()
    with transaction.atomic():
        instance = Instance.objects.select_for_update().filter(host=host, port=port).first()
        created = instance is None
        if created:
            try:
                with transaction.atomic():
                    instance = Instance.objects.create(
                        host=host,
                        port=port,
                        weight=weight,
                        metadata=metadata or {},
                        health_check_path=health_check_path,
                        last_heartbeat=now,
                        last_probe_ok=probed_at,
                    )
            except IntegrityError:
                # Another process registered the same address between our read and our insert.
                created = False
                instance = Instance.objects.select_for_update().get(host=host, port=port)
        if created:
            _record(
                instance,
                kind=EventKind.REGISTERED,
                from_status="",
                to_status=instance.status,
                reason="registered",
                actor=actor,
            )
        else:
            instance.weight = weight
            instance.metadata = metadata or {}
            instance.health_check_path = health_check_path
            instance.last_heartbeat = now
            instance.last_probe_ok = probed_at or instance.last_probe_ok
            instance.picks_since_heartbeat = 0
            fields = [
                "weight",
                "metadata",
                "health_check_path",
                "last_heartbeat",
                "last_probe_ok",
                "picks_since_heartbeat",
            ]
            instance.save(update_fields=fields)
            change = health.on_sign_of_life(instance.status, "re-registered")
            if change:
                _transition(instance, to_status=change.to_status, reason=change.reason, actor=actor)
        registry_changed()
        instance.new_token = None
        if created or rotate_token or not instance.token_hash:
            instance.new_token = _issue_token(instance)
        publish_cluster_update()
    if not created:
        _least_loaded_report(instance)  # its picks were reset above, as a heartbeat resets them
    return instance, created


def _issue_token(instance: Instance) -> str:
    token = token_issue(INSTANCE_TOKEN_PREFIX)
    Instance.objects.filter(pk=instance.pk).update(token_hash=token_hash(token))
    instance.token_hash = token_hash(token)
    return token


def instance_token_rotate(*, instance_id: Any) -> str:
    """A fresh bearer token for the instance (the old one stops working); shown once."""
    return _issue_token(instance_get(instance_id=instance_id))


def instance_token_revoke(*, instance_id: Any) -> None:
    """The instance's token stops working; staff (or a re-registration with rotation) can issue another."""
    Instance.objects.filter(pk=instance_get(instance_id=instance_id).pk).update(token_hash="")


def instance_update(
    *,
    instance_id: Any,
    weight: int | None = None,
    metadata: dict | None = None,
    status: str | None = None,
    actor: str = "api",
) -> Instance:
    """Change an instance's weight, metadata or operator status (active / draining / disabled)."""
    if weight is not None:
        _check_int("weight", weight, 1, 1000)
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("metadata", "Expected a JSON object.")
    if status is not None and status not in OPERATOR_SETTABLE_STATUSES:
        allowed = ", ".join(str(s) for s in OPERATOR_SETTABLE_STATUSES)
        raise invalid("status", f"Status may be set to {allowed} only; got {status!r}.")
    pk = parse_instance_id(instance_id)
    with transaction.atomic():
        instance = Instance.objects.select_for_update().filter(pk=pk).first()
        if instance is None:
            raise NotFound(f"Instance {pk} not found.", details={"instance_id": str(pk)})
        fields = []
        if weight is not None:
            instance.weight = weight
            fields.append("weight")
        if metadata is not None:
            instance.metadata = metadata
            fields.append("metadata")
        if fields:
            instance.save(update_fields=fields)
            if weight is not None:
                registry_changed()
        if status is not None and status != instance.status:
            _transition(instance, to_status=status, reason=f"set to {status} by {actor}", actor=actor)
        if fields or status is not None:
            publish_cluster_update()
    return instance


def instance_deregister(*, instance_id: Any, actor: str = "api") -> None:
    """Remove an instance from the cluster; its event history stays."""
    pk = parse_instance_id(instance_id)
    with transaction.atomic():
        instance = Instance.objects.select_for_update().filter(pk=pk).first()
        if instance is None:
            raise NotFound(f"Instance {pk} not found.", details={"instance_id": str(pk)})
        _record(
            instance,
            kind=EventKind.DEREGISTERED,
            from_status=instance.status,
            to_status="",
            reason="deregistered",
            actor=actor,
        )
        instance.delete()
        registry_changed()
        publish_cluster_update()


def instances_set_status(*, instance_ids: Iterable[Any], status: str, actor: str = "admin") -> int:
    """Set the operator status of several instances; returns how many changed."""
    changed = 0
    for instance_id in instance_ids:
        before = instance_get(instance_id=instance_id).status
        changed += instance_update(instance_id=instance_id, status=status, actor=actor).status != before
    return changed


def instances_deregister(*, instance_ids: Iterable[Any], actor: str = "admin") -> int:
    """Deregister several instances; returns how many were removed."""
    removed = 0
    for instance_id in instance_ids:
        try:
            instance_deregister(instance_id=instance_id, actor=actor)
        except NotFound:
            continue
        removed += 1
    return removed


def instance_heartbeat(
    *,
    instance_id: Any,
    cpu_usage: float | None = None,
    memory_usage: float | None = None,
    connections: int | None = None,
) -> Instance:
    """Record a sign of life and the instance's figures; an unhealthy instance recovers (two queries normally)."""
    _check_percent("cpu_usage", cpu_usage)
    _check_percent("memory_usage", memory_usage)
    if connections is not None:
        _check_int("connections", connections, 0, 2**31 - 1)
    pk = parse_instance_id(instance_id)
    fields: dict[str, Any] = {"last_heartbeat": timezone.now(), "picks_since_heartbeat": 0}
    for name, value in (("cpu_usage", cpu_usage), ("memory_usage", memory_usage), ("connections", connections)):
        if value is not None:
            fields[name] = value
    # The hottest write: one UPDATE … RETURNING by primary key; a transaction only when it recovers.
    instance = _heartbeat_update(pk, fields)
    if instance is None:
        raise NotFound(f"Instance {pk} not found.", details={"instance_id": str(pk)})
    _least_loaded_report(instance)
    change = health.on_sign_of_life(instance.status, "heartbeat")
    if change:
        with transaction.atomic():
            if _transition(instance, to_status=change.to_status, reason=change.reason, actor=EventActor.HEARTBEAT):
                publish_cluster_update()
    return instance


def _heartbeat_update(pk: Any, fields: dict[str, Any]) -> Instance | None:
    """``UPDATE … SET fields WHERE id = pk RETURNING *`` as an Instance (None: no such row).

    One statement where the database can return rows from a write (PostgreSQL, SQLite ≥ 3.35); the
    UPDATE and a read back elsewhere. ``QuerySet.update`` cannot return the row, hence the raw SQL,
    built from the model's own field definitions (column names, value preparation).
    """
    if not connection.features.can_return_columns_from_insert:
        if not Instance.objects.filter(pk=pk).update(**fields):
            return None
        return Instance.objects.filter(pk=pk).first()
    meta = Instance._meta
    names = tuple(fields)

    def build():
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in names)
        # Only quoted names from the model's metadata go into the text; every value is a parameter.
        sql = (
            f"UPDATE {quote(meta.db_table)} SET {assignments} "  # noqa: S608
            f"WHERE {quote(meta.pk.column)} = %s RETURNING {prepared.returning_list()}"
        )
        return prepared.by_position(sql, len(names) + 1)

    values = [meta.get_field(name).get_db_prep_save(value, connection) for name, value in fields.items()]
    values.append(meta.pk.get_db_prep_value(pk, connection))
    # fetchall() in Prepared steps the statement to its end, so the write is complete before we go on.
    # Not durable: a heartbeat lost in a database crash is replaced by the next one within the interval,
    # and the fsync wait was most of a heartbeat's time (bench/README.md).
    rows = prepared.prepared("heartbeat_update", names, build).instances(values, durable=False)
    return rows[0] if rows else None


def _strategy_for(name: str) -> Any:
    try:
        return get_strategy(name, counter=counter, custom=settings.SEED_CUSTOM_STRATEGIES)
    except UnknownStrategy as exc:
        raise invalid("strategy", str(exc)) from exc


# The weighted pick's period lives in the cache as (version, length) plus chunks of packed ids; it is
# also dropped after this many seconds, which bounds how long a change made behind the services' back
# (SQL straight into the table, a missed version bump) can go unseen.
WEIGHTED_PERIOD_KEY = "lb:swrr"
WEIGHTED_PERIOD_TTL = 60
WEIGHTED_CHUNK = 512


def instance_select(*, strategy: str | None = None, exclude: Iterable = ()) -> tuple[Instance, str]:
    """Pick one active instance with ``strategy`` (default: the cluster's), skipping ``exclude``.

    The built-in strategies share their state through the cache (a position, a period, a sorted set;
    least_connections without Redis: the rows' pick counts) and answer with one row by primary key, often
    from this process's copy of it; when a copy turns out stale they fall back to an exact pick in SQL
    with bounded work. A custom strategy gets the full candidate list, as its ``select_instance(self,
    instances)`` contract says.
    """
    name = strategy or cluster_config_get()["load_balance_strategy"]
    picker = _strategy_for(name)
    excluded = []
    for item in exclude:
        try:
            excluded.append(parse_instance_id(item))
        except NotFound as exc:
            raise invalid("exclude", f"{item!s:.80} is not an instance id.") from exc
    if type(picker) is RoundRobinStrategy:
        chosen = _round_robin_pick(picker, excluded)
    elif type(picker) is RandomStrategy:
        chosen = _random_pick(picker, excluded)
    elif type(picker) is LeastConnectionsStrategy:
        chosen = _least_connections_pick(excluded)
    elif type(picker) is WeightedStrategy:
        chosen = _weighted_pick(picker, excluded)
    else:
        candidates = list(active_instances(exclude=excluded))
        chosen = picker.select_instance(candidates) if candidates else None
        if chosen is not None and (not isinstance(chosen, Instance) or all(chosen.pk != c.pk for c in candidates)):
            raise TypeError(f"strategy {name!r} returned {chosen!r}, which is not one of the candidates")
    if chosen is None:
        raise NoHealthyInstance(details={"excluded": [str(pk) for pk in excluded]})
    return chosen, name


# On Redis, least_connections picks from a sorted set: member least_loaded_member(registered_at, id) of
# each active instance, score connections + picks since its last heartbeat. A pick takes the lowest
# score and adds one in one script call (no row lock, no index write); a heartbeat sets the score to the
# reported connections. The set is rebuilt from the database when the registry version moved since it
# was built (the version it was built at: LEAST_LOADED_BUILT_AT_KEY), or when it is missing.
LEAST_LOADED_KEY = "lb:least_loaded"
LEAST_LOADED_BUILT_AT_KEY = "lb:least_loaded:built_at"


def _least_connections_pick(excluded: list[UUID]) -> Instance | None:
    """The least-loaded candidate, its pick counted: on Redis one script call, then a row by primary key if not fresh.

    Without Seed's Redis cache (the embedded default: locmem, per process) the count must be shared by
    every process some other way: it is the database's ``picks_since_heartbeat`` (``_least_loaded_take``).
    """
    take = getattr(cache, "least_loaded_take", None)
    if take is None:
        return _least_loaded_take(excluded)
    excluded_ids = [str(pk) for pk in excluded]
    found = take(LEAST_LOADED_KEY, LEAST_LOADED_BUILT_AT_KEY, REGISTRY_VERSION_KEY, excluded_ids)
    if found.outcome == "rebuild":
        if not _least_loaded_rebuild(found.version_raw):
            return None  # no active instance at the version the pick read
        found = take(LEAST_LOADED_KEY, LEAST_LOADED_BUILT_AT_KEY, REGISTRY_VERSION_KEY, excluded_ids)
        if found.outcome == "rebuild":
            # The registry moved again while we read it: rather than chase it, this pick is answered in SQL.
            return _least_loaded_take(excluded)
    if found.outcome == "none":
        return None
    chosen = _picked_instance(UUID(least_loaded_member_id(found.member)), found.version or 0)
    if chosen is None:
        # The set named an instance that is no longer active, a change the registry version did not
        # announce (SQL straight into the table): the set is rebuilt at the next pick (dropping its
        # built-at version is enough), and this pick is answered exactly, in SQL.
        forget_registry_copies()
        cache.delete(LEAST_LOADED_BUILT_AT_KEY)
        return _least_loaded_take(excluded)
    return chosen


def _least_loaded_rebuild(version_raw: bytes) -> bool:
    """Rebuild the least-loaded set from the active rows, as at ``version_raw``; False if none is active.

    ``version_raw`` was read before the rows: if the registry moves meanwhile, the set is marked with
    the older version and the next pick rebuilds it again. Members already in the set keep their score
    (see ``RedisCache.least_loaded_rebuild``), so a rebuild loses no pick; after a Redis restart or an
    eviction the set comes back from the database, without the picks since each instance's last heartbeat.
    """
    loads = [(least_loaded_member(registered_at, pk), load) for pk, registered_at, load in active_loads()]
    cache.least_loaded_rebuild(LEAST_LOADED_KEY, LEAST_LOADED_BUILT_AT_KEY, version_raw, loads)
    return bool(loads)


def _least_loaded_report(instance: Instance) -> None:
    """A heartbeat's figure reaches the least-loaded set: the score becomes the reported connections.

    On Redis only, and only for an active instance (only those are in the set; ZADD XX adds nobody).
    Sent by this process's background sender a moment later (``instances.load_reports``), or at once
    when ``SEED_LEAST_LOADED_REPORT_DELAY`` is 0. A cache failure is logged and the heartbeat stands:
    the score is then stale until the next heartbeat.
    """
    if hasattr(cache, "least_loaded_report") and instance.status == InstanceStatus.ACTIVE:
        load_reports.add(least_loaded_member(instance.registered_at, instance.pk), instance.connections)


def _send_load_reports(loads: dict[str, int]) -> None:
    cache.least_loaded_report(LEAST_LOADED_KEY, loads)


load_reports = LoadReports(_send_load_reports)


def _least_loaded_take(excluded: list[UUID]) -> Instance | None:
    """The least-loaded candidate by the database, its ``picks_since_heartbeat`` counted, in one statement.

    The pick without Redis, and on Redis the exact answer when the sorted set cannot give one.

    ``UPDATE … SET picks_since_heartbeat = picks_since_heartbeat + 1 WHERE id = (SELECT id … ORDER BY
    connections + picks_since_heartbeat, registered_at, id LIMIT 1) RETURNING *``: the inner query is the
    ``instance_least_loaded`` index's first entry. Two concurrent picks may both take the same instance
    (as with a read, then an update); each pick is still counted.
    """
    if not connection.features.can_return_columns_from_insert:
        chosen = least_loaded_instance(exclude=excluded)
        if chosen is not None:
            Instance.objects.filter(pk=chosen.pk).update(picks_since_heartbeat=F("picks_since_heartbeat") + 1)
            chosen.picks_since_heartbeat += 1
        return chosen

    def build():
        stand_ins = [prepared.stand_in_id(i) for i in range(len(excluded))]
        inner_sql, params = prepared.compiled(least_loaded_candidates(exclude=stand_ins).values("pk")[:1])
        meta, quote = Instance._meta, connection.ops.quote_name
        picks = quote(meta.get_field("picks_since_heartbeat").column)
        # Only quoted names from the model's metadata and ORM-compiled SQL go into the text.
        sql = (
            f"UPDATE {quote(meta.db_table)} SET {picks} = {picks} + 1 "  # noqa: S608
            f"WHERE {quote(meta.pk.column)} = ({inner_sql}) RETURNING {prepared.returning_list()}"
        )
        return sql, params, prepared.stand_in_slots(stand_ins)

    # Not durable: the count only spreads picks until the instance's next heartbeat resets it.
    rows = prepared.prepared("least_loaded_take", len(excluded), build).instances(
        [prepared.db_id(pk) for pk in excluded], durable=False
    )
    return rows[0] if rows else None


# Round robin and random picks index this process's copy of the active ids: no pick walks an index to
# its position (an OFFSET walks up to every candidate). The copy is keyed by the registry version, which
# every pick reads (round robin in the same round trip as its position), so a change made through the
# services in any process reaches the next pick. A change made behind their back (SQL straight into the
# table) goes unseen at most ACTIVE_IDS_TTL seconds, and the copy is dropped as soon as a drawn id is no
# longer active.
ACTIVE_IDS_TTL = 60


class _ActiveIdsCopy(NamedTuple):
    version: Any  # the registry version the ids were read at
    loaded_at: float
    ids: list[UUID]


_active_ids_copy: _ActiveIdsCopy | None = None


def _active_ids_snapshot(version: Any) -> list[UUID]:
    global _active_ids_copy
    copy = _active_ids_copy
    now = time.monotonic()
    if copy is None or copy.version != version or now - copy.loaded_at > ACTIVE_IDS_TTL:
        copy = _active_ids_copy = _ActiveIdsCopy(version, now, active_ids())
    return copy.ids


# The rows picks hand out, kept per registry version for PICKED_ROW_TTL seconds: a pick that draws an
# instance picked a moment ago answers without a database round trip (on a small fleet, nearly every
# pick). Who is active is exact (a status change moves the registry version, which drops the rows); the
# telemetry in the answer (connections, cpu_usage, last_heartbeat) may be up to PICKED_ROW_TTL old, as a
# heartbeat moves no version, and so may a status set behind the services' back.
PICKED_ROW_TTL = 1.0
PICKED_ROWS_MAX = 1000  # per process; a full table is dropped wholesale


class _PickedRows(NamedTuple):
    version: Any
    rows: dict[UUID, tuple[float, Instance]]  # id -> (when read, the active row)


_picked_rows = _PickedRows(None, {})


def _picked_instance(instance_id: UUID, version: Any) -> Instance | None:
    """The instance if it is active: this process's copy of its row if fresh, else one row by primary key."""
    global _picked_rows
    picked = _picked_rows
    if picked.version != version:
        # A new table, not a cleared one: a thread still on the old version fills the old table.
        picked = _picked_rows = _PickedRows(version, {})
    now = time.monotonic()
    entry = picked.rows.get(instance_id)
    if entry is not None and now - entry[0] < PICKED_ROW_TTL:
        return entry[1]
    row = active_instance(instance_id=instance_id)
    if row is not None:
        if len(picked.rows) >= PICKED_ROWS_MAX:
            picked.rows.clear()
        picked.rows[instance_id] = (now, row)
    return row


def forget_registry_copies() -> None:
    """Drop this process's copies of the active ids and of picked rows (the next picks reload them).

    Called on every registry change made in this process (registry_changed), when a pick finds its copy
    stale, and by tests when the cache was cleared while the table kept rows (the registry version may
    then go back to a number a copy was taken at).
    """
    global _active_ids_copy, _picked_rows
    _active_ids_copy = None
    _picked_rows = _PickedRows(None, {})


def _next_ordinal_reading(picker: RoundRobinStrategy | WeightedStrategy, read_keys: list[str]) -> tuple[int, list]:
    """``picker.next_ordinal()``, and the cached values of ``read_keys`` read in the same round trip."""
    count, values = counter.incr_and_get(picker.key, read_keys)
    return count - 1, values  # next_ordinal's rule: the first pick is ordinal 0


def _round_robin_pick(picker: RoundRobinStrategy, excluded: list[UUID]) -> Instance | None:
    """The candidate at the next round-robin position: one cache round trip, then a row by primary key if not fresh.

    The position (the shared counter) and the registry version come back together. The position
    indexes this process's copy of the active ids (registration order, the same list in every process
    of a registry version), so no pick walks an index to its position (an OFFSET did, which grew with
    the registry). A stale copy (the instance at the position is gone or no longer active) falls back
    to the exact SQL position.
    """
    ordinal, (version,) = _next_ordinal_reading(picker, [REGISTRY_VERSION_KEY])
    version = version or 0
    ids = _active_ids_snapshot(version)
    if excluded:
        skip = set(excluded)
        ids = [pk for pk in ids if pk not in skip]
    if ids:
        chosen = _picked_instance(ids[rotation_index(ordinal, len(ids))], version)
        if chosen is not None:
            return chosen
    forget_registry_copies()
    return active_instance_at(ordinal=ordinal, exclude=excluded)


def _random_pick(picker: RandomStrategy, excluded: list[UUID]) -> Instance | None:
    """A uniformly random active candidate: one cache read (the registry version), a row by primary key if not fresh.

    When the process's id copy turns out stale (the drawn instance is gone or no longer active, or no id
    is left after ``exclude``), the pick falls back to a random offset in SQL, which is always exact.
    """
    version = cache.get(REGISTRY_VERSION_KEY, 0)
    ids = _active_ids_snapshot(version)
    chosen_id = None
    if ids:
        skip = set(excluded)
        for _ in range(3):  # a few draws avoid building the remaining list on the failover path
            candidate = picker.select_instance(ids)
            if candidate not in skip:
                chosen_id = candidate
                break
        else:
            remaining = [pk for pk in ids if pk not in skip]
            chosen_id = picker.select_instance(remaining) if remaining else None
    if chosen_id is not None:
        chosen = _picked_instance(chosen_id, version)
        if chosen is not None:
            return chosen
    forget_registry_copies()
    return active_instance_at(ordinal=picker.random_ordinal(), exclude=excluded)


def _weighted_period(picker: WeightedStrategy, version: Any, meta: Any) -> tuple[str, int] | None:
    """(key prefix, period length) of this registry version's smooth-WRR period, built if ``meta`` is not it.

    ``meta`` is the cached ``lb:swrr`` entry (version, prefix, length), read with the pick's position;
    None rebuilds. Cached: ``prefix:N`` -> chunk N of the period (packed 16-byte ids);
    ``prefix:candidates`` -> (packed ids, weights) in registration order, for ``?exclude=``.
    """
    if meta is not None and meta[0] == version:
        return meta[1], meta[2]
    rows = active_weights()
    if not rows:
        return None
    ids = [pk for pk, _ in rows]
    weights = [weight for _, weight in rows]
    sequence = picker.sequence(weights)
    prefix = f"{WEIGHTED_PERIOD_KEY}:{version}:{uuid4().hex[:8]}"
    entries: dict[str, Any] = {
        f"{prefix}:{start // WEIGHTED_CHUNK}": b"".join(ids[i].bytes for i in sequence[start : start + WEIGHTED_CHUNK])
        for start in range(0, len(sequence), WEIGHTED_CHUNK)
    }
    entries[f"{prefix}:candidates"] = (b"".join(pk.bytes for pk in ids), weights)
    cache.set_many(entries, timeout=WEIGHTED_PERIOD_TTL + 5)
    cache.set(WEIGHTED_PERIOD_KEY, (version, prefix, len(sequence)), timeout=WEIGHTED_PERIOD_TTL)
    return prefix, len(sequence)


def _weighted_slot(picker: WeightedStrategy, prefix: str, ordinal: int, length: int, excluded: set[UUID]) -> Any:
    """The id at this ordinal; ``False`` when the cache lost part of the period (rebuild), None if all are excluded.

    Without exclusions: one chunk read. With ``?exclude=``: smooth WRR over the remaining candidates (as
    before this was cached): O(candidates), but from the cache, and only on that failover path.
    """
    if not excluded:
        position = rotation_index(ordinal, length)
        chunk = _weighted_chunk(f"{prefix}:{position // WEIGHTED_CHUNK}")
        if chunk is None:
            return False
        offset = (position % WEIGHTED_CHUNK) * 16
        return UUID(bytes=chunk[offset : offset + 16])
    candidates = cache.get(f"{prefix}:candidates")
    if candidates is None:
        return False
    packed, weights = candidates
    ids = [UUID(bytes=packed[i : i + 16]) for i in range(0, len(packed), 16)]
    keep = [i for i, pk in enumerate(ids) if pk not in excluded]
    if not keep:
        return None
    sequence = picker.sequence([weights[i] for i in keep])
    return ids[keep[sequence[rotation_index(ordinal, len(sequence))]]]


# Chunks never change once written (a rebuilt period gets a new prefix), so each process keeps the ones
# it has read: a pick then needs no cache read for its slot. Bounded: at most this many 8 KiB chunks.
WEIGHTED_LOCAL_CHUNKS = 256
_weighted_chunks: dict[str, bytes] = {}


def _weighted_chunk(key: str) -> bytes | None:
    chunk = _weighted_chunks.get(key)
    if chunk is None:
        chunk = cache.get(key)
        if chunk is not None:
            if len(_weighted_chunks) >= WEIGHTED_LOCAL_CHUNKS:
                _weighted_chunks.clear()
            _weighted_chunks[key] = chunk
    return chunk


def _weighted_pick(picker: WeightedStrategy, excluded: list[UUID]) -> Instance | None:
    """Smooth weighted round robin from the cached period: one cache round trip, a chunk read, a row if not fresh.

    The position, the registry version and the period's entry come back together. The period (ids in
    nginx's smooth order) is rebuilt when the registry version moved, when it expired
    (WEIGHTED_PERIOD_TTL) or was evicted, or when the slot names an instance that is no longer active.
    """
    ordinal, (version, meta) = _next_ordinal_reading(picker, [REGISTRY_VERSION_KEY, WEIGHTED_PERIOD_KEY])
    version = version or 0
    for attempt in range(2):
        period = _weighted_period(picker, version, None if attempt else meta)
        if period is None:
            return None
        prefix, length = period
        instance_id = _weighted_slot(picker, prefix, ordinal, length, set(excluded))
        if instance_id is None:
            return None
        if instance_id is False:
            continue
        chosen = _picked_instance(instance_id, version)
        if chosen is not None:
            return chosen
    return None


def instances_check_health(
    *, now: datetime | None = None, instance_ids: Iterable[Any] | None = None, actor: str = "health_check"
) -> dict[str, int]:
    """One health pass: probe the instances that need it concurrently, then apply the status rules.

    Only unhealthy instances and those whose last sign of life is old enough to matter are read and
    probed (``health.probe_due_age``): the rest can neither turn stale before the next passes nor gain
    anything from a probe, so a fleet that heartbeats costs the pass one indexed query, not one probe
    per instance. ``instance_ids`` (an operator's "probe now") probes those instances whatever their age.
    """
    config = cluster_config_get()
    timeout = config["instance_timeout"]
    now = now or timezone.now()
    queryset = Instance.objects.filter(status__in=[InstanceStatus.ACTIVE, InstanceStatus.UNHEALTHY])
    if instance_ids is not None:
        queryset = queryset.filter(pk__in=[parse_instance_id(pk) for pk in instance_ids])
    else:
        due_before = now - timedelta(seconds=health.probe_due_age(timeout, config["heartbeat_interval"]))
        # The last sign of life as health.evaluate sees it: the later of heartbeat and passing probe, else
        # the registration (Greatest is NULL with a NULL argument on SQLite, skips NULLs on PostgreSQL).
        seen = Coalesce(Greatest("last_heartbeat", "last_probe_ok"), "last_heartbeat", "last_probe_ok", "registered_at")
        queryset = queryset.alias(seen=seen).filter(Q(status=InstanceStatus.UNHEALTHY) | Q(seen__lte=due_before))
    targets = list(queryset.order_by("registered_at", "id"))
    results = probing.probe_many(
        [(instance.host, instance.port, instance.health_check_path) for instance in targets],
        timeout=settings.SEED_PROBE_TIMEOUT,
    )
    passed = [instance.pk for instance, result in zip(targets, results, strict=True) if result.ok]
    if passed:
        Instance.objects.filter(pk__in=passed).update(last_probe_ok=now)
    changed = 0
    for instance, result in zip(targets, results, strict=True):
        if result.ok:
            instance.last_probe_ok = now
        seen = [t for t in (instance.last_heartbeat, instance.last_probe_ok) if t is not None]
        last_seen = max(seen) if seen else instance.registered_at
        change = (result.ok and health.on_sign_of_life(instance.status, "passing probe")) or health.evaluate(
            instance.status, last_seen, now, timeout
        )
        if change:
            with transaction.atomic():
                changed += _transition(instance, to_status=change.to_status, reason=change.reason, actor=actor)
    # Only a change is an event; fresh figures reach monitors through their periodic snapshot.
    if changed:
        publish_cluster_update()
    return {"checked": len(targets), "passed": len(passed), "failed": len(targets) - len(passed), "changed": changed}


def cluster_config_check(*, load_balance_strategy: str, heartbeat_interval: int, instance_timeout: int) -> None:
    """Raise InvalidInput unless these effective settings make a sensible cluster."""
    try:
        get_strategy(load_balance_strategy, counter=counter, custom=settings.SEED_CUSTOM_STRATEGIES)
    except UnknownStrategy as exc:
        raise invalid("load_balance_strategy", str(exc)) from exc
    _check_int("heartbeat_interval", heartbeat_interval, 1, MAX_INTERVAL_SECONDS)
    _check_int("instance_timeout", instance_timeout, 1, MAX_INTERVAL_SECONDS)
    if instance_timeout <= heartbeat_interval:
        raise invalid(
            "instance_timeout",
            f"Must be greater than heartbeat_interval ({heartbeat_interval} s), got {instance_timeout} s.",
        )


def cluster_config_update(
    *,
    load_balance_strategy: str | None = None,
    heartbeat_interval: int | None = None,
    instance_timeout: int | None = None,
    reset: Iterable[str] = (),
) -> dict[str, Any]:
    """Override the live cluster settings (None leaves a field as is; names in ``reset`` go back to the default)."""
    changes = {
        "load_balance_strategy": load_balance_strategy,
        "heartbeat_interval": heartbeat_interval,
        "instance_timeout": instance_timeout,
    }
    reset = set(reset)
    for name in sorted(reset - set(changes)):
        raise invalid(name, "Unknown cluster setting.")
    defaults = {
        "load_balance_strategy": settings.SEED_LOAD_BALANCE_STRATEGY,
        "heartbeat_interval": settings.SEED_HEARTBEAT_INTERVAL,
        "instance_timeout": settings.SEED_INSTANCE_TIMEOUT,
    }
    with transaction.atomic():
        config, _ = ClusterConfig.objects.select_for_update().get_or_create(pk=ClusterConfig.SINGLETON_PK)
        for name, value in changes.items():
            if name in reset:
                setattr(config, name, "" if name == "load_balance_strategy" else None)
            elif value is not None:
                setattr(config, name, value)
        effective = {name: getattr(config, name) or default for name, default in defaults.items()}
        cluster_config_check(**effective)
        config.save()
        publish_cluster_update()
    return cluster_config_get()
