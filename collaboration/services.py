"""Writes of the collaboration domain: registration, connections, the message queue, conversations.

Every rule of the bus lives here or in the pure modules (protocol.py, queue.py); the edges call these.
"""

import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from collaboration import queue
from collaboration.choices import EmployeeStatus, MessageStatus
from collaboration.events import publish, publish_employee_update
from collaboration.models import Connection, Conversation, ConversationParticipant, ConversationPost, Employee, Message
from collaboration.protocol import MessageType
from collaboration.selectors import columns, conversation_get, employee_get, rows_as
from instances.balancing import UnknownStrategy, get_strategy
from seedproject.auth import EMPLOYEE_TOKEN_PREFIX
from seedproject.counters import counter
from seedproject.db import batch_possible, fetch_not_durable, one_batch, release_connection_while_waiting
from seedproject.errors import Conflict, DomainError, Forbidden, NotConnected, NotFound, QueueFull, invalid
from seedproject.security import token_hash, token_issue

LIVE = (MessageStatus.QUEUED, MessageStatus.LEASED)
MAX_PARTICIPANTS = 100
# last_seen is refreshed at most this often: one conditional UPDATE that usually matches no row.
LAST_SEEN_RESOLUTION = timedelta(seconds=5)
RECEIVE_POLL_SECONDS = 0.2
ROLE_PREFIX = "role:"
DEFAULT_ROLE_ROUTING = "least_connections"  # for employees: fewest live (queued + leased) messages


class NotParticipant(Forbidden):
    """The employee is not a member of the conversation it tries to use."""

    default_message = "Only participants may post to or read this conversation."


class NoRoute(DomainError):
    """A ``role:<role>`` receiver matched no active employee of that role connected to the sender."""

    status_code = 409
    code = "no_route"
    default_message = "No active employee of that role is connected to the sender."


def limits() -> queue.QueueLimits:
    """The queue knobs from settings (read per call so tests and operators can change them)."""
    return queue.QueueLimits.from_settings(settings)


def _skip_locked() -> dict[str, bool]:
    # PostgreSQL: concurrent receivers skip each other's rows. SQLite has no row locks; its IMMEDIATE
    # transactions serialise writers, which is just as correct there.
    return {"skip_locked": True} if connection.features.has_select_for_update_skip_locked else {}


def employee_touch(*, employee_id: str) -> None:
    """Refresh last_seen cheaply: a single UPDATE that only writes when the value is stale."""
    now = timezone.now()
    Employee.objects.filter(pk=employee_id, last_seen__lt=now - LAST_SEEN_RESOLUTION).update(last_seen=now)


# --- employees -----------------------------------------------------------------------------------


def employee_register(*, employee_id: str, role: str, rotate_token: bool = False) -> tuple[Employee, bool]:
    """Register (201) or re-register with the same role (200, revives an unregistered one); other role -> 409.

    A new employee gets a bearer token, as ``employee.new_token`` (shown once, stored hashed); a
    re-registration gets a fresh one only with ``rotate_token`` (or when it never had one), so the other
    processes of a running agent keep theirs.
    """
    employee, created = _employee_upsert(employee_id=employee_id, role=role)
    employee.new_token = None
    if created or rotate_token or not employee.token_hash:
        employee.new_token = employee_token_rotate(employee_id=employee_id)
    return employee, created


def employee_token_rotate(*, employee_id: str) -> str:
    """A fresh bearer token for the employee (the old one stops working); shown once."""
    token = token_issue(EMPLOYEE_TOKEN_PREFIX)
    if not Employee.objects.filter(pk=employee_id).update(token_hash=token_hash(token)):
        raise NotFound(f"Employee {employee_id!r} is not registered.", details={"employee_id": employee_id})
    return token


def employee_token_revoke(*, employee_id: str) -> None:
    """The employee's token stops working until staff rotates it or it re-registers with rotation."""
    if not Employee.objects.filter(pk=employee_id).update(token_hash=""):
        raise NotFound(f"Employee {employee_id!r} is not registered.", details={"employee_id": employee_id})


def _employee_upsert(*, employee_id: str, role: str) -> tuple[Employee, bool]:
    now = timezone.now()
    with transaction.atomic():
        employee = Employee.objects.select_for_update().filter(pk=employee_id).first()
        if employee is None:
            try:
                with transaction.atomic():
                    employee = Employee.objects.create(
                        employee_id=employee_id, role=role, registered_at=now, last_seen=now
                    )
            except IntegrityError:
                employee = Employee.objects.select_for_update().get(pk=employee_id)
            else:
                publish_employee_update(employee_id)
                return employee, True
        if employee.role != role:
            raise Conflict(
                f"Employee {employee_id!r} is already registered with role {employee.role!r}.",
                details={"employee_id": employee_id, "role": employee.role},
            )
        employee.status = EmployeeStatus.ACTIVE
        employee.last_seen = now
        employee.save(update_fields=["status", "last_seen"])
    publish_employee_update(employee_id)
    return employee, False


@transaction.atomic
def employee_unregister(*, employee_id: str) -> Employee:
    """Mark the employee unregistered and drop its connections; its messages are kept."""
    employee = employee_get(employee_id=employee_id)
    Connection.objects.filter(Q(employee_a_id=employee_id) | Q(employee_b_id=employee_id)).delete()
    employee.status = EmployeeStatus.UNREGISTERED
    employee.save(update_fields=["status"])
    publish_employee_update(employee_id)
    return employee


# --- connections ---------------------------------------------------------------------------------


@transaction.atomic
def connection_create(*, employee_id: str, target_employee_id: str) -> tuple[Connection, bool]:
    """Connect two employees both ways (idempotent); both must exist, an employee cannot connect to itself."""
    if employee_id == target_employee_id:
        raise invalid("target_employee_id", "An employee cannot connect to itself.")
    employee_get(employee_id=employee_id)
    employee_get(employee_id=target_employee_id)
    low, high = sorted((employee_id, target_employee_id))
    conn, created = Connection.objects.get_or_create(employee_a_id=low, employee_b_id=high)
    if created:
        publish(updates=[employee_id, target_employee_id])
    return conn, created


@transaction.atomic
def connection_delete(*, employee_id: str, target_employee_id: str) -> None:
    """Drop the connection between two employees (404 if there is none)."""
    employee_get(employee_id=employee_id)
    low, high = sorted((employee_id, target_employee_id))
    deleted, _ = Connection.objects.filter(employee_a_id=low, employee_b_id=high).delete()
    if not deleted:
        raise NotFound(
            f"{employee_id!r} and {target_employee_id!r} are not connected.",
            details={"target_employee_id": target_employee_id},
        )
    publish(updates=[employee_id, target_employee_id])


def connections_prune(*, stale_seconds: int | None = None) -> int:
    """Remove connections of employees that unregistered or were not seen for stale_seconds; returns the count."""
    stale = stale_seconds if stale_seconds is not None else settings.SEED_CONNECTION_STALE_SECONDS
    gone = Employee.objects.filter(
        Q(status=EmployeeStatus.UNREGISTERED) | Q(last_seen__lt=timezone.now() - timedelta(seconds=stale))
    ).values("pk")
    deleted, _ = Connection.objects.filter(Q(employee_a__in=gone) | Q(employee_b__in=gone)).delete()
    return deleted


# --- sending -------------------------------------------------------------------------------------


@dataclass
class _RouteCandidate:
    """An employee as the instance strategies see it: ``connections`` is its live queue depth."""

    id: str
    connections: int
    weight: int = 1
    picks_since_heartbeat: int = 0


def message_route(*, sender_id: str, receiver_id: str, routing: str | None = None) -> str:
    """Resolve ``role:<role>`` to one connected, active employee of that role; a plain id is returned as is.

    The pick reuses the instance strategies (instances.balancing): by default the fewest live messages
    (least_connections over queue depth), or ``round_robin`` / ``random`` / a custom strategy by name.
    """
    if not receiver_id.startswith(ROLE_PREFIX):
        return receiver_id
    role = receiver_id[len(ROLE_PREFIX) :]
    employee_get(employee_id=sender_id)
    name = routing or getattr(settings, "SEED_ROLE_ROUTING_STRATEGY", DEFAULT_ROLE_ROUTING)
    try:
        picker = get_strategy(name, counter=counter, custom=settings.SEED_CUSTOM_STRATEGIES)
    except UnknownStrategy as exc:
        raise invalid("routing", str(exc)) from exc
    if hasattr(picker, "key"):  # a rotation of its own per role, apart from the instance rotation
        picker.key = f"route:{role}:{name}"
    pairs = Connection.objects.filter(Q(employee_a_id=sender_id) | Q(employee_b_id=sender_id))
    peers = {pid for pair in pairs.values_list("employee_a_id", "employee_b_id") for pid in pair} - {sender_id}
    live = Q(received_messages__status__in=LIVE, received_messages__expires_at__gt=timezone.now())
    rows = (
        Employee.objects.filter(pk__in=peers, role=role, status=EmployeeStatus.ACTIVE)
        .annotate(depth=Count("received_messages", filter=live))
        .order_by("pk")
        .values_list("pk", "depth")
    )
    candidates = [_RouteCandidate(id=pk, connections=depth) for pk, depth in rows]
    if not candidates:
        raise NoRoute(
            f"No active employee with role {role!r} is connected to {sender_id!r}.",
            details={"sender_id": sender_id, "receiver_id": receiver_id, "role": role},
        )
    chosen = picker.select_instance(candidates)
    if all(chosen is not c for c in candidates):
        raise TypeError(f"routing strategy {name!r} returned {chosen!r}, which is not one of the candidates")
    return chosen.id


def _existing_by_client_id(sender_id: str, message_id: str | None) -> Message | None:
    if message_id is None:
        return None
    return Message.objects.filter(sender_id=sender_id, client_message_id=message_id).first()


def _lock_receivers(receiver_ids: Iterable[str], max_size: int) -> None:
    """Lock the receivers' rows (in id order, so concurrent senders cannot deadlock) and check their bounds.

    The row lock serialises senders to one receiver on PostgreSQL, so queued+leased never passes the
    bound; on SQLite the IMMEDIATE transaction already serialises every writer.
    """
    ids = sorted(set(receiver_ids))
    list(Employee.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))
    _check_room(ids, max_size)


def _check_room(receiver_ids: list[str], max_size: int) -> None:
    """429 unless every (already locked) receiver has room: one indexed COUNT of live messages.

    Counted after the lock, in a statement of its own: under READ COMMITTED that statement sees every
    message a sender that held the lock before us committed, so the bound stays strict.
    """
    bound = queue.QueueLimits(max_size=max_size)
    now = timezone.now()
    if len(receiver_ids) == 1:
        [rid] = receiver_ids
        live = Message.objects.filter(receiver_id=rid, status__in=LIVE, expires_at__gt=now)
        counts = {rid: live.order_by()[: max_size + 1].count()}  # stops counting once the queue is known to be full
    else:
        counts = dict(
            Message.objects.filter(receiver_id__in=receiver_ids, status__in=LIVE, expires_at__gt=now)
            .order_by()
            .values_list("receiver_id")
            .annotate(n=Count("pk"))
            .values_list("receiver_id", "n")
        )
    full = [rid for rid in receiver_ids if not queue.has_room(counts.get(rid, 0), bound)]
    if full:
        raise QueueFull(details={"receiver_ids": full, "max_size": max_size})


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _send_checks_sql(sender_id: str, receiver_id: str, stale_before) -> tuple[str, list[Any]]:
    """SQL columns, over one snapshot: is the sender's touch due (NULL: no such sender), are the two connected."""
    qn = connection.ops.quote_name
    employees, pk = _table(Employee), qn("employee_id")
    low, high = sorted((sender_id, receiver_id))
    sql = (
        f"(SELECT {qn('last_seen')} < %s FROM {employees} WHERE {pk} = %s) AS sender_stale, "  # noqa: S608 - quoted names, values are parameters
        f"EXISTS(SELECT 1 FROM {_table(Connection)} WHERE {qn('employee_a_id')} = %s AND {qn('employee_b_id')} = %s) "
        "AS connected"
    )
    return sql, [connection.ops.adapt_datetimefield_value(stale_before), sender_id, low, high]


def _room_sql(message: Message, max_size: int) -> tuple[str, list[Any]]:
    """SQL condition: queue.has_room (live + 1 <= max_size) over a COUNT of the receiver's live messages.

    The COUNT stops at max_size rows. It must run in a statement after the one that took the receiver's
    lock: under READ COMMITTED that statement's snapshot is taken after the lock was granted, so it sees
    every message a sender that held the lock before us committed, and the bound stays strict.
    """
    qn = connection.ops.quote_name
    live = (
        f"SELECT 1 FROM {_table(Message)} WHERE {qn('receiver_id')} = %s AND {qn('status')} IN (%s, %s) "  # noqa: S608
        f"AND {qn('expires_at')} > %s LIMIT %s"
    )
    now = connection.ops.adapt_datetimefield_value(message.created_at)
    return f"(SELECT COUNT(*) FROM ({live}) live) + 1 <= %s", [  # noqa: S608
        message.receiver_id,
        *(s.value for s in LIVE),
        now,
        max_size,
        max_size,
    ]


def _insert_sql(message: Message) -> tuple[str, list[Any]]:
    """``INSERT INTO message (columns) SELECT values`` of the message's row; the caller appends FROM/WHERE."""
    qn = connection.ops.quote_name
    fields = Message._meta.concrete_fields
    values = [f.get_db_prep_save(f.pre_save(message, True), connection) for f in fields]
    columns = ", ".join(qn(f.column) for f in fields)
    return f"INSERT INTO {_table(Message)} ({columns}) SELECT {', '.join(['%s'] * len(fields))}", values


def _stored(message: Message) -> Message:
    message._state.adding = False
    message._state.db = connection.alias
    return message


def _refuse_unsendable(sender_id: str, receiver_id: str, found: bool, sender_stale: Any, connected: Any) -> None:
    """404 for a missing sender (named first) or receiver, 409 when the two are not connected."""
    if not found or sender_stale is None:
        employee_get(employee_id=sender_id)  # the error path only: 404 names the sender if it is the one missing
        employee_get(employee_id=receiver_id)
    if not connected:
        raise NotConnected(
            f"Employees are not connected (员工未连接): {sender_id!r} -> {receiver_id!r}.",
            details={"sender_id": sender_id, "receiver_id": receiver_id},
        )


def _lock_receiver_for_send(sender_id: str, receiver_id: str, stale_before) -> bool:
    """One statement: lock the receiver's row and learn whether the sender exists and the two are connected.

    Returns whether the sender's last_seen is older than ``stale_before`` (its touch is due). Raises 404
    (sender first, as before) or 409 not_connected. Hand-written SQL: the ORM would compile this
    annotated query afresh on every send, which cost more than running it.
    """
    checks, params = _send_checks_sql(sender_id, receiver_id, stale_before)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""  # SQLite: IMMEDIATE serialises
    sql = f"SELECT {checks} FROM {_table(Employee)} WHERE {connection.ops.quote_name('employee_id')} = %s{lock}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, receiver_id])
        row = cursor.fetchone()
    sender_stale, connected = row or (None, False)
    _refuse_unsendable(sender_id, receiver_id, row is not None, sender_stale, connected)
    return bool(sender_stale)


def _insert_if_room(message: Message, max_size: int) -> bool:
    """INSERT the message only if its (locked) receiver has room (see _room_sql); False when the queue is full."""
    insert, values = _insert_sql(message)
    room, room_params = _room_sql(message, max_size)
    with connection.cursor() as cursor:
        cursor.execute(f"{insert} WHERE {room}", [*values, *room_params])
        stored = cursor.rowcount == 1
    if stored:
        _stored(message)
    return stored


def _send_in_one_round_trip(message: Message, max_size: int, stale_before) -> tuple[Message, bool, bool]:
    """The whole send transaction in one round trip: ``BEGIN; lock; insert if sendable; COMMIT``.

    Used outside a transaction on PostgreSQL (seedproject.db.batch_possible) for plain receivers without a
    conversation; role receivers and conversation sends take the step-by-step path.

    The receiver's row lock is taken by a statement of its own, then a second statement decides over one
    snapshot (taken after the lock was granted, so the bound stays strict, see _room_sql): the sender's
    earlier message with the same message_id (returned instead, as a retry), both employees exist, they
    are connected, and the queue has room; it inserts only when all hold and reports each answer. A
    refused send commits nothing; the answers pick the error, in the step-by-step path's order.
    Returns (message, created, sender touch due).
    """
    qn = connection.ops.quote_name
    employees, pk = _table(Employee), qn("employee_id")
    sender_id, receiver_id, client_id = message.sender_id, message.receiver_id, message.client_message_id
    checks, check_params = _send_checks_sql(sender_id, receiver_id, stale_before)
    room, room_params = _room_sql(message, max_size)
    insert, values = _insert_sql(message)
    sql = (
        f"BEGIN; SELECT 1 FROM {employees} WHERE {pk} = %s FOR UPDATE; "  # noqa: S608 - quoted names, values are parameters
        f"WITH checks AS (SELECT "
        f"(SELECT {qn('id')} FROM {_table(Message)} WHERE {qn('sender_id')} = %s AND {qn('client_message_id')} = %s) "
        f"AS earlier, EXISTS(SELECT 1 FROM {employees} WHERE {pk} = %s) AS found, {checks}, {room} AS room), "
        f"stored AS ({insert} FROM checks WHERE earlier IS NULL AND found AND sender_stale IS NOT NULL "
        f"AND connected AND room RETURNING 1) "
        f"SELECT earlier, found, sender_stale, connected, EXISTS(SELECT 1 FROM stored) FROM checks; COMMIT"
    )
    params = [receiver_id, sender_id, client_id, receiver_id, *check_params, *room_params, *values]
    with one_batch() as cursor:
        cursor.execute(sql, params)
        cursor.nextset()  # BEGIN's status, then the lock's row
        cursor.nextset()
        earlier, found, sender_stale, connected, inserted = cursor.fetchone()
    if inserted:
        return _stored(message), True, bool(sender_stale)
    if earlier is not None:
        return Message.objects.get(pk=earlier), False, False
    _refuse_unsendable(sender_id, receiver_id, found, sender_stale, connected)
    raise QueueFull(details={"receiver_ids": [receiver_id], "max_size": max_size})


def message_send(
    *,
    sender_id: str,
    receiver_id: str,
    message_type: str,
    action: str = "",
    data: dict[str, Any] | None = None,
    priority: int = 2,
    ttl_seconds: int | None = None,
    correlation_id: str | None = None,
    conversation_id: Any = None,
    message_id: str | None = None,
    max_size: int | None = None,
    routing: str | None = None,
) -> tuple[Message, bool]:
    """Queue a message for the receiver; returns (message, created). A repeated message_id returns the original.

    Requires a connection (409 not_connected), room in the receiver's queue (429 queue_full, nothing
    stored) and, with conversation_id, that both are participants. The row is committed before return.
    ``receiver_id`` may be ``role:<role>`` (see message_route; ``routing`` names the strategy).
    """
    rules = limits()
    priority = int(queue.check_priority(priority))
    ttl = queue.resolve_ttl(ttl_seconds, rules)
    bound = max_size or rules.max_size

    def new_message(receiver: str) -> Message:
        now = timezone.now()
        return Message(
            sender_id=sender_id,
            receiver_id=receiver,
            message_type=message_type,
            action=action,
            data=data or {},
            priority=priority,
            created_at=now,
            expires_at=queue.expiry_time(now, ttl),
            correlation_id=correlation_id,
            conversation_id=conversation_id,
            client_message_id=message_id,
        )

    try:
        if batch_possible() and conversation_id is None and not receiver_id.startswith(ROLE_PREFIX):
            message, created, sender_stale = _send_in_one_round_trip(
                new_message(receiver_id), bound, timezone.now() - LAST_SEEN_RESOLUTION
            )
            if not created:
                return message, False
            publish(messages=[message], updates=[receiver_id, sender_id])  # autocommit: sent at once
        else:
            if (existing := _existing_by_client_id(sender_id, message_id)) is not None:
                return existing, False  # checked before routing: a retried role send must not pick a second receiver
            receiver_id = message_route(sender_id=sender_id, receiver_id=receiver_id, routing=routing)
            with transaction.atomic():
                sender_stale = _lock_receiver_for_send(sender_id, receiver_id, timezone.now() - LAST_SEEN_RESOLUTION)
                if conversation_id is not None:
                    _require_members(conversation_id, [sender_id, receiver_id])
                message = new_message(receiver_id)
                if not _insert_if_room(message, bound):
                    raise QueueFull(details={"receiver_ids": [receiver_id], "max_size": bound})
                publish(messages=[message], updates=[receiver_id, sender_id])
    except IntegrityError:
        # A concurrent request with the same message_id won the race: return what it stored.
        if (existing := _existing_by_client_id(sender_id, message_id)) is not None:
            return existing, False
        raise
    if sender_stale:
        # After commit, in its own statement: no second row lock inside the send transaction (two senders
        # writing to each other could otherwise deadlock on the touch), and usually skipped entirely.
        employee_touch(employee_id=sender_id)
    return message, True


def _require_members(conversation_id: Any, employee_ids: list[str]) -> Conversation:
    conversation = conversation_get(conversation_id=conversation_id)
    members = {m.employee_id for m in conversation.memberships.all()}
    outsiders = [e for e in employee_ids if e not in members]
    if outsiders:
        raise NotParticipant(
            f"Not a participant of conversation {conversation_id}: {', '.join(outsiders)}.",
            details={"employee_ids": outsiders},
        )
    return conversation


# --- receiving and acking ------------------------------------------------------------------------


def _reclaim(filters: Q, now, rules: queue.QueueLimits) -> dict[str, int]:
    """Expire what outlived its TTL, then return run-out leases to the queue (or to dead after max deliveries)."""
    expired = Message.objects.filter(filters, status__in=LIVE, expires_at__lte=now).update(
        status=MessageStatus.EXPIRED, lease_expires_at=None
    )
    stale = Message.objects.filter(filters, status=MessageStatus.LEASED, lease_expires_at__lte=now)
    dead = stale.filter(delivery_count__gte=rules.max_deliveries).update(
        status=MessageStatus.DEAD, lease_expires_at=None
    )
    requeued = stale.filter(delivery_count__lt=rules.max_deliveries).update(
        status=MessageStatus.QUEUED, lease_expires_at=None
    )
    return {"expired": expired, "requeued": requeued, "dead": dead}


def _reclaim_due(receiver_id: str, now) -> bool:
    """Whether the receiver has anything to reclaim: a live message past its TTL or a run-out lease.

    One indexed EXISTS (usually false) instead of three UPDATEs on every receive.
    """
    due = Q(status__in=LIVE, expires_at__lte=now) | Q(status=MessageStatus.LEASED, lease_expires_at__lte=now)
    return Message.objects.filter(due, receiver_id=receiver_id).exists()


def _lease_batch(receiver_id: str, limit: int, rules: queue.QueueLimits) -> list[Message]:
    if batch_possible():
        return _lease_in_one_round_trip(receiver_id, limit, rules)
    with transaction.atomic():
        now = timezone.now()
        if _reclaim_due(receiver_id, now):
            _reclaim(Q(receiver_id=receiver_id), now, rules)
        # Everything past its TTL is expired now (same `now`, same transaction), so no expires_at filter
        # is needed: equality on (receiver, status) + ORDER BY matches the dequeue index exactly.
        leased = list(
            Message.objects.select_for_update(**_skip_locked()).filter(
                receiver_id=receiver_id, status=MessageStatus.QUEUED
            )[:limit]
        )  # the model's ordering: -priority, created_at
        if not leased:
            return []
        lease_until = queue.lease_expiry(now, rules)
        Message.objects.filter(pk__in=[m.pk for m in leased]).update(
            status=MessageStatus.LEASED,
            lease_expires_at=lease_until,
            delivery_count=F("delivery_count") + 1,
        )
        for message in leased:  # what the UPDATE wrote (the rows are locked): no read-back
            message.status = MessageStatus.LEASED
            message.lease_expires_at = lease_until
            message.delivery_count += 1
        publish_employee_update(receiver_id)
    return sorted(leased, key=lambda m: queue.ordering_key(m.priority, m.created_at))


def _lease_in_one_round_trip(receiver_id: str, limit: int, rules: queue.QueueLimits) -> list[Message]:
    """_lease_batch's transaction as one batch of statements (PostgreSQL, autocommit; see db.batch_possible).

    The same steps in the same order, each its own statement so each sees the one before: expire what
    outlived its TTL, return run-out leases to the queue (or to dead), then lease up to ``limit`` queued
    rows (SKIP LOCKED) and read them back from the UPDATE's RETURNING. The reclaim UPDATEs run every time
    instead of behind an EXISTS: when nothing is due they are the same index probe, and the round trip
    is paid anyway.
    """
    qn = connection.ops.quote_name
    table, status, lease, expires = _table(Message), qn("status"), qn("lease_expires_at"), qn("expires_at")
    receiver, count = qn("receiver_id"), qn("delivery_count")
    now = timezone.now()
    lease_until = queue.lease_expiry(now, rules)
    at, until = connection.ops.adapt_datetimefield_value(now), connection.ops.adapt_datetimefield_value(lease_until)
    queued, leased, expired, dead = (
        s.value for s in (MessageStatus.QUEUED, MessageStatus.LEASED, MessageStatus.EXPIRED, MessageStatus.DEAD)
    )
    sql = (
        f"BEGIN; "  # noqa: S608 - quoted names, values are parameters
        f"UPDATE {table} SET {status} = %s, {lease} = NULL "
        f"WHERE {receiver} = %s AND {status} IN (%s, %s) AND {expires} <= %s; "
        f"UPDATE {table} SET {status} = CASE WHEN {count} >= %s THEN %s ELSE %s END, {lease} = NULL "
        f"WHERE {receiver} = %s AND {status} = %s AND {lease} <= %s; "
        f"WITH picked AS (SELECT {qn('id')} FROM {table} WHERE {receiver} = %s AND {status} = %s "
        f"ORDER BY {qn('priority')} DESC, {qn('created_at')} LIMIT %s FOR UPDATE SKIP LOCKED) "
        f"UPDATE {table} SET {status} = %s, {lease} = %s, {count} = {table}.{count} + 1 FROM picked "
        f"WHERE {table}.{qn('id')} = picked.{qn('id')} "
        f"RETURNING {columns(Message, table)}; COMMIT"
    )
    params = [
        expired, receiver_id, queued, leased, at,
        rules.max_deliveries, dead, queued, receiver_id, leased, at,
        receiver_id, queued, limit, leased, until,
    ]  # fmt: skip
    with one_batch() as cursor:
        cursor.execute(sql, params)
        for _ in range(3):  # BEGIN, the two reclaim UPDATEs, then the leased rows
            cursor.nextset()
        leased_rows = rows_as(Message, cursor.fetchall())
    if not leased_rows:
        return []
    publish_employee_update(receiver_id)  # autocommit: sent at once, after the commit
    return sorted(leased_rows, key=lambda m: queue.ordering_key(m.priority, m.created_at))


def messages_receive(*, employee_id: str, limit: int = 10, wait: float = 0) -> list[Message]:
    """Lease up to ``limit`` due messages, highest priority first, FIFO within a priority.

    With ``wait`` > 0 and nothing due, polls with short sleeps (outside any transaction) until a
    message arrives or the wait runs out. An empty list means nothing is due.
    """
    rules = limits()
    wait = queue.check_wait(wait, rules)
    employee = employee_get(employee_id=employee_id)
    deadline = time.monotonic() + wait
    while True:
        leased = _lease_batch(employee_id, limit, rules)
        remaining = deadline - time.monotonic()
        if leased or remaining <= 0:
            if employee.last_seen < timezone.now() - LAST_SEEN_RESOLUTION:
                employee_touch(employee_id=employee_id)  # after the lease committed; usually skipped
            return leased
        release_connection_while_waiting()
        time.sleep(min(RECEIVE_POLL_SECONDS, remaining))


def messages_ack(*, employee_id: str, ids: list[Any]) -> list[Message]:
    """Acknowledge the receiver's leased messages in one UPDATE; already acked ones are fine (idempotent).

    Unknown ids (or another receiver's) -> 404; a message that is not leased any more (its lease ran
    out and it went back to the queue, or it expired or died) -> 409, and nothing is acked. Outside a
    transaction on PostgreSQL this is one statement (_ack_in_one_statement); elsewhere one UPDATE, then
    one read of the rows (with the receiver's last_seen, so the touch is skipped unless stale), rolled
    back on a refusal.
    """
    wanted = list(dict.fromkeys(str(i) for i in ids))
    if not wanted:
        employee_get(employee_id=employee_id)
        return []
    if batch_possible() and _canonical_ids(wanted):
        rows, acked, receiver_stale = _ack_in_one_statement(employee_id, wanted)
        _refuse_unackable(employee_id, wanted, rows)
    else:
        with transaction.atomic():
            acked = Message.objects.filter(receiver_id=employee_id, pk__in=wanted, status=MessageStatus.LEASED).update(
                status=MessageStatus.ACKED, lease_expires_at=None
            )
            rows = list(
                Message.objects.filter(receiver_id=employee_id, pk__in=wanted)
                .select_related("receiver")
                .order_by("-priority", "created_at")
            )
            _refuse_unackable(employee_id, wanted, rows)
            receiver_stale = rows[0].receiver.last_seen < timezone.now() - LAST_SEEN_RESOLUTION
    if acked:
        publish_employee_update(employee_id)
    if receiver_stale:
        employee_touch(employee_id=employee_id)
    return rows


def _refuse_unackable(employee_id: str, wanted: list[str], rows: list[Message]) -> None:
    """404 when a wanted id is not in the employee's inbox (or the employee is unknown), 409 when one is stuck."""
    found = {str(m.pk): m for m in rows}
    missing = [i for i in wanted if i not in found]
    if missing:
        employee_get(employee_id=employee_id)  # an unknown employee is a 404 of its own
        raise NotFound("Message not found in this employee's inbox.", details={"ids": missing})
    stuck = {i: m.status for i, m in found.items() if m.status != MessageStatus.ACKED}
    if stuck:
        raise Conflict("Only leased messages can be acknowledged.", details={"statuses": stuck})


def _canonical_ids(wanted: list[str]) -> bool:
    """Whether every id is a UUID in its canonical text form (as the API passes them).

    The one-statement ack decides "all found" in SQL, where any spelling of a UUID matches; the refusal
    is decided over the canonical text, so other spellings take the step-by-step path, which rolls back.
    """
    try:
        return all(str(uuid.UUID(i)) == i for i in wanted)
    except ValueError:
        return False


def _ack_in_one_statement(employee_id: str, wanted: list[str]) -> tuple[list[Message], int, bool]:
    """The ack as one statement (its own transaction): lock the wanted rows, ack only if all may be acked.

    ``wanted`` locks the receiver's rows among the ids (FOR UPDATE: a row a concurrent lease, sweep or ack
    changed is read at its newest version); ``verdict`` is "every id found and each leased or acked";
    ``acked`` updates the leased ones only then. The rows come back with the UPDATE's effect applied in
    Python (they are locked: no read-back), in dequeue order; when the verdict refused, whatever is not
    leased or acked is what the caller's refusal names, as on the step-by-step path. Returns (rows, how
    many were acked, whether the receiver's last_seen touch is due).
    """
    qn = connection.ops.quote_name
    table, status, pk = _table(Message), qn("status"), qn("id")
    leased, acked_status = MessageStatus.LEASED.value, MessageStatus.ACKED.value
    sql = (
        f"WITH wanted AS (SELECT {columns(Message)} FROM {table} "  # noqa: S608 - quoted names, values are parameters
        f"WHERE {qn('receiver_id')} = %s AND {pk} = ANY(%s) FOR UPDATE), "
        f"verdict AS (SELECT COUNT(*) = %s AND COALESCE(BOOL_AND({status} IN (%s, %s)), TRUE) AS ok FROM wanted), "
        f"acked AS (UPDATE {table} SET {status} = %s, {qn('lease_expires_at')} = NULL FROM verdict "
        f"WHERE verdict.ok AND {table}.{pk} IN (SELECT {pk} FROM wanted) AND {table}.{status} = %s RETURNING 1) "
        f"SELECT {columns(Message, 'wanted')}, (SELECT ok FROM verdict), (SELECT COUNT(*) FROM acked), "
        f"(SELECT {qn('last_seen')} < %s FROM {_table(Employee)} WHERE {qn('employee_id')} = %s) "
        f"FROM wanted ORDER BY {qn('priority')} DESC, {qn('created_at')}"
    )
    stale_before = connection.ops.adapt_datetimefield_value(timezone.now() - LAST_SEEN_RESOLUTION)
    params = [
        employee_id, [uuid.UUID(i) for i in wanted], len(wanted), leased, acked_status,
        acked_status, leased, stale_before, employee_id,
    ]  # fmt: skip
    width = len(Message._meta.concrete_fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        raw = cursor.fetchall()
    rows = rows_as(Message, (r[:width] for r in raw))
    _, acked, receiver_stale = raw[0][width:] if raw else (False, 0, False)
    for message in rows:  # what the UPDATE wrote, or would have (a refusal raises over what is left)
        if message.status == leased:
            message.status, message.lease_expires_at = acked_status, None
    return rows, acked, bool(receiver_stale)


def message_ack(*, employee_id: str, message_id: Any) -> Message:
    """Acknowledge one leased message (see messages_ack)."""
    return messages_ack(employee_id=employee_id, ids=[message_id])[0]


# --- sweeps and operator actions -----------------------------------------------------------------


# Rows per sweep transaction: bounds each commit's lock set and WAL burst, so sends keep flowing meanwhile.
EXPIRE_BATCH_SIZE = 5000
# Receivers whose monitors hear about one sweep (as before: a bounded fan-out, not one event per row).
EXPIRE_EVENT_RECEIVERS = 200


def _sweep_batches(due: str, params: list[Any], assignments: str, set_params: list[Any], size: int) -> Counter:
    """Update the rows matching ``due`` ``size`` at a time; returns how many changed per ``(receiver_id, status)``.

    On PostgreSQL outside a transaction the work can be split between ``SEED_EXPIRY_WORKERS`` threads, each
    with its own connection and its own share of the receivers (a hash of the receiver id): a changed row
    is CPU work in PostgreSQL (a new row version and an entry in each index), so a backlog drains about
    as many times faster as PostgreSQL has idle cores. The default is one: on a database server with two
    cores, two workers took both and held concurrent sends back for 100-250 ms (bench/README.md, item 13).
    Shares never overlap, so the workers never wait on each other's rows. Elsewhere (SQLite, inside a
    transaction) one worker does it all, in this thread.
    """
    workers = max(1, settings.SEED_EXPIRY_WORKERS)
    if workers == 1 or not batch_possible():
        return _sweep_share(due, params, assignments, set_params, size)
    qn = connection.ops.quote_name
    # A share of the receivers: a hash of the id, its sign bit cleared (never negative), modulo the workers.
    share = f"{due} AND (hashtext({qn('receiver_id')}) & 2147483647) %% %s = %s"

    def sweep_one_share(index: int) -> Counter:
        try:
            return _sweep_share(share, [*params, workers, index], assignments, set_params, size)
        finally:
            connection.close()  # this thread's connection (pooled: back to the pool)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seed-sweep") as pool:
        return sum(pool.map(sweep_one_share, range(workers)), Counter())


def _sweep_share(due: str, params: list[Any], assignments: str, set_params: list[Any], size: int) -> Counter:
    """Update the rows matching ``due`` ``size`` at a time, one statement (its own transaction) per batch.

    PostgreSQL: ``UPDATE … WHERE ctid = ANY(ARRAY(SELECT ctid … WHERE due LIMIT size)) AND due``: a TID
    scan of one bounded batch, no ids through Python, no separate lock pass (SELECT … FOR UPDATE writes
    every row twice). ``due`` is repeated on the UPDATE so a row a receiver changed meanwhile is re-checked
    on its newest version (READ COMMITTED) and skipped if it no longer qualifies. The changed rows are
    counted per receiver and new status in the same statement, so a batch of 5,000 rows sends back one row
    per receiver, not one per message. SQLite: the same with ``id IN (…)``, counted here. Runs until a
    batch changes nothing; returns how many changed per ``(receiver_id, status)``.
    """
    qn = connection.ops.quote_name
    table, receiver, status = qn(Message._meta.db_table), qn("receiver_id"), qn("status")
    if connection.vendor == "postgresql":
        pick = f"ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {due} LIMIT %s))"  # noqa: S608
    else:
        pick = f"{qn('id')} IN (SELECT {qn('id')} FROM {table} WHERE {due} LIMIT %s)"  # noqa: S608
    # Identifiers quoted by the backend, every value a parameter.
    update = f"UPDATE {table} SET {assignments} WHERE {pick} AND {due} RETURNING {receiver}, {status}"  # noqa: S608
    counted = f"WITH changed AS ({update}) SELECT {receiver}, {status}, COUNT(*) FROM changed GROUP BY 1, 2"  # noqa: S608
    values = [*set_params, *params, size, *params]
    changed: Counter = Counter()
    while True:
        if batch_possible():
            # Not durable on purpose: a batch lost in a database crash is swept again by the next pass (its
            # rows are still past their TTL), so no batch waits for its WAL to reach the disk.
            batch = Counter({(rid, new_status): n for rid, new_status, n in fetch_not_durable(counted, values)})
        else:
            with connection.cursor() as cursor:
                cursor.execute(update, values)
                batch = Counter(tuple(row) for row in cursor.fetchall())
        if not batch:
            return changed
        changed.update(batch)


def messages_expire(*, batch_size: int | None = None) -> dict[str, int]:
    """The beat sweep: mark TTL-expired messages, then reclaim run-out leases; returns the counts.

    Works in batches of ``batch_size`` rows (EXPIRE_BATCH_SIZE), each one UPDATE committed on its own
    (see _sweep_batches), so a large backlog never holds one long transaction or slows senders while it
    drains. TTL wins over a run-out lease (expiry runs first and the lease pass skips what is past its
    TTL); expired stays a state (nothing is deleted). Monitors hear about each changed receiver once,
    after its batch committed, at most EXPIRE_EVENT_RECEIVERS of them per sweep.
    """
    rules = limits()
    size = batch_size or EXPIRE_BATCH_SIZE
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    qn = connection.ops.quote_name
    status, expires, lease = qn("status"), qn("expires_at"), qn("lease_expires_at")
    cleared = f"{lease} = NULL"
    expired = _sweep_batches(
        f"{status} IN (%s, %s) AND {expires} <= %s",
        [MessageStatus.QUEUED.value, MessageStatus.LEASED.value, now],
        f"{status} = %s, {cleared}",
        [MessageStatus.EXPIRED.value],
        size,
    )
    reclaimed = _sweep_batches(
        f"{status} = %s AND {lease} <= %s AND {expires} > %s",
        [MessageStatus.LEASED.value, now, now],
        f"{status} = CASE WHEN {qn('delivery_count')} >= %s THEN %s ELSE %s END, {cleared}",
        [rules.max_deliveries, MessageStatus.DEAD.value, MessageStatus.QUEUED.value],
        size,
    )
    receivers = dict.fromkeys(receiver_id for receiver_id, _ in [*expired, *reclaimed])
    publish(updates=list(receivers)[:EXPIRE_EVENT_RECEIVERS])

    def total(counts: Counter, new_status: MessageStatus) -> int:
        return sum(n for (_, status), n in counts.items() if status == new_status.value)

    return {
        "expired": total(expired, MessageStatus.EXPIRED),
        "requeued": total(reclaimed, MessageStatus.QUEUED),
        "dead": total(reclaimed, MessageStatus.DEAD),
    }


@transaction.atomic
def messages_expire_now(*, ids: Iterable[Any]) -> int:
    """Operator: expire the given queued or leased messages at once; returns how many changed."""
    receivers = set(Message.objects.filter(pk__in=list(ids), status__in=LIVE).values_list("receiver_id", flat=True))
    changed = Message.objects.filter(pk__in=list(ids), status__in=LIVE).update(
        status=MessageStatus.EXPIRED, lease_expires_at=None, expires_at=timezone.now()
    )
    publish(updates=sorted(receivers))
    return changed


@transaction.atomic
def messages_requeue_dead(*, ids: Iterable[Any] | None = None, receiver_id: str | None = None) -> int:
    """Operator: put dead messages back in their queues with a fresh delivery count and TTL; returns the count.

    The bound is not checked: requeueing is a deliberate operator decision.
    """
    qs = Message.objects.filter(status=MessageStatus.DEAD)
    if ids is not None:
        qs = qs.filter(pk__in=list(ids))
    if receiver_id is not None:
        qs = qs.filter(receiver_id=receiver_id)
    receivers = set(qs.values_list("receiver_id", flat=True))
    now = timezone.now()
    changed = qs.update(
        status=MessageStatus.QUEUED,
        delivery_count=0,
        lease_expires_at=None,
        expires_at=queue.expiry_time(now, limits().default_ttl),
    )
    publish(updates=sorted(receivers))
    return changed


# --- conversations -------------------------------------------------------------------------------


def conversation_create(
    *, employee_id: str, participants: list[str], topic: str = "", initial_message: dict[str, Any] | None = None
) -> Conversation:
    """Start a conversation among existing employees (the creator among them); the initial message is its first post."""
    members = list(dict.fromkeys(participants))
    if employee_id not in members:
        raise invalid("participants", "The creator must be one of the participants.")
    if len(members) < 2:
        raise invalid("participants", "A conversation needs at least two distinct participants.")
    if len(members) > MAX_PARTICIPANTS:
        raise invalid("participants", f"A conversation has at most {MAX_PARTICIPANTS} participants.")
    with transaction.atomic():
        found = set(Employee.objects.filter(pk__in=members).values_list("pk", flat=True))
        missing = [m for m in members if m not in found]
        if missing:
            raise NotFound(f"Unknown employees: {', '.join(missing)}.", details={"participants": missing})
        conversation = Conversation.objects.create(topic=topic, created_by_id=employee_id)
        ConversationParticipant.objects.bulk_create(
            ConversationParticipant(conversation=conversation, employee_id=m) for m in members
        )
        if initial_message:
            payload = dict(initial_message)
            action = payload.pop("action", "message")
            if not isinstance(action, str) or len(action) > 128:
                raise invalid("initial_message", "action must be a string of at most 128 characters.")
            conversation_post(conversation_id=conversation.pk, sender_id=employee_id, action=action, data=payload)
        publish(updates=members)
    return Conversation.objects.prefetch_related("memberships").get(pk=conversation.pk)


def conversation_post(
    *,
    conversation_id: Any,
    sender_id: str,
    action: str = "message",
    data: dict[str, Any] | None = None,
    priority: int = 2,
    ttl_seconds: int | None = None,
) -> ConversationPost:
    """Post to a conversation: one `conversation` message per other participant, all or nothing (429 if one is full)."""
    rules = limits()
    priority = int(queue.check_priority(priority))
    ttl = queue.resolve_ttl(ttl_seconds, rules)
    with transaction.atomic():
        employee_get(employee_id=sender_id)
        conversation = _require_members(conversation_id, [sender_id])
        others = [m.employee_id for m in conversation.memberships.all() if m.employee_id != sender_id]
        _lock_receivers(others, rules.max_size)
        now = timezone.now()
        post = ConversationPost.objects.create(
            conversation=conversation,
            sender_id=sender_id,
            action=action,
            data=data or {},
            priority=priority,
            created_at=now,
        )
        messages = Message.objects.bulk_create(
            Message(
                sender_id=sender_id,
                receiver_id=other,
                message_type=MessageType.CONVERSATION.value,
                action=action,
                data=post.data,
                priority=priority,
                created_at=now,
                expires_at=queue.expiry_time(now, ttl),
                conversation=conversation,
                post=post,
            )
            for other in others
        )
        employee_touch(employee_id=sender_id)
        publish(messages=messages, updates=[*(m.receiver_id for m in messages), sender_id])
    return post
