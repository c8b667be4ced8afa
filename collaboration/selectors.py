"""Reads of the collaboration domain: lists, inboxes, histories and stats (no side effects)."""

from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models import Count, Q
from django.utils import timezone

from collaboration.choices import EmployeeStatus, MessageStatus
from collaboration.models import Connection, Conversation, ConversationParticipant, ConversationPost, Employee, Message
from collaboration.protocol import MessagePriority
from seedproject.errors import NotFound, invalid

LIVE = (MessageStatus.QUEUED, MessageStatus.LEASED)


def rows_as(model: type[models.Model], rows: Iterable[Sequence[Any]]) -> list[Any]:
    """Model instances from raw rows that hold every concrete column in field order, converted as the ORM would.

    For the hot paths' hand-written SQL (a RETURNING list, a primary-key lookup): compiling the ORM
    query costs more than PostgreSQL takes to answer it.
    """
    fields = model._meta.concrete_fields
    converters = []
    for i, field in enumerate(fields):
        funcs = [
            *connection.ops.get_db_converters(field.get_col(model._meta.db_table)),
            *field.get_db_converters(connection),
        ]
        if funcs:
            converters.append((i, field, funcs))
    names = [f.attname for f in fields]
    instances = []
    for row in rows:
        values = list(row)
        for i, field, funcs in converters:
            for convert in funcs:
                values[i] = convert(values[i], field, connection)
        instances.append(model.from_db(connection.alias, names, values))
    return instances


def columns(model: type[models.Model], table: str | None = None) -> str:
    """Every concrete column of the model, in field order, quoted (optionally qualified by ``table``)."""
    qn = connection.ops.quote_name
    prefix = f"{table}." if table else ""
    return ", ".join(f"{prefix}{qn(f.column)}" for f in model._meta.concrete_fields)


def employee_get(*, employee_id: str) -> Employee:
    """The employee, or 404 (one primary-key lookup in plain SQL: it precedes most hot paths)."""
    qn = connection.ops.quote_name
    sql = f"SELECT {columns(Employee)} FROM {qn(Employee._meta.db_table)} WHERE {qn('employee_id')} = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [employee_id])
        found = rows_as(Employee, cursor.fetchall())
    if not found:
        raise NotFound(f"Employee {employee_id!r} is not registered.", details={"employee_id": employee_id})
    return found[0]


def _choice(value: str | None, field: str, choices: type) -> str | None:
    if value in (None, ""):
        return None
    if value not in choices.values:
        raise invalid(field, f"Unknown {field} {value!r}; expected one of: {', '.join(choices.values)}.")
    return value


def employee_list(*, role: str | None = None, status: str | None = None, limit: int, offset: int):
    """Employees filtered by role/status, one page, plus the total count."""
    qs = Employee.objects.all()
    if role:
        qs = qs.filter(role=role)
    if status := _choice(status, "status", EmployeeStatus):
        qs = qs.filter(status=status)
    return list(qs[offset : offset + limit]), qs.count()


def connection_list(*, employee_id: str) -> list[Connection]:
    """Every connection of the employee (404 if it does not exist)."""
    employee_get(employee_id=employee_id)
    return list(Connection.objects.filter(Q(employee_a_id=employee_id) | Q(employee_b_id=employee_id)))


def connection_exists(*, employee_id: str, target_employee_id: str) -> bool:
    """Whether the two employees are connected (either direction)."""
    low, high = sorted((employee_id, target_employee_id))
    return Connection.objects.filter(employee_a_id=low, employee_b_id=high).exists()


def message_list(*, employee_id: str, status: str | None = None, limit: int, offset: int):
    """The employee's inbox in dequeue order, optionally by status; never leases anything."""
    employee_get(employee_id=employee_id)
    qs = Message.objects.filter(receiver_id=employee_id)
    if status := _choice(status, "status", MessageStatus):
        qs = qs.filter(status=status)
    return list(qs.order_by("-priority", "created_at")[offset : offset + limit]), qs.count()


def live_message_count(*, receiver_id: str) -> int:
    """Queued + leased messages whose TTL has not run out: what the queue bound counts."""
    return Message.objects.filter(receiver_id=receiver_id, status__in=LIVE, expires_at__gt=timezone.now()).count()


def conversation_get(*, conversation_id: Any) -> Conversation:
    """The conversation with its participants, or 404."""
    conversation = Conversation.objects.prefetch_related("memberships").filter(pk=conversation_id).first()
    if conversation is None:
        raise NotFound("Conversation not found.", details={"conversation_id": str(conversation_id)})
    return conversation


def conversation_list(*, employee_id: str, limit: int, offset: int):
    """Conversations the employee takes part in, newest first."""
    employee_get(employee_id=employee_id)
    qs = Conversation.objects.filter(memberships__employee_id=employee_id).prefetch_related("memberships")
    return list(qs.order_by("-created_at")[offset : offset + limit]), qs.count()


def conversation_history(*, conversation_id: Any, limit: int, offset: int):
    """The conversation's posts in posting order (each post once, however many it was delivered to)."""
    conversation_get(conversation_id=conversation_id)
    qs = ConversationPost.objects.filter(conversation_id=conversation_id).order_by("id")
    return list(qs[offset : offset + limit]), qs.count()


def employee_stats(*, employee_id: str) -> dict[str, Any]:
    """Connections, conversations, queue depth by priority and message counts for one employee.

    ``received`` counts messages delivered to the employee at least once; ``queued`` those still waiting.
    Two statements in plain SQL (the employee, then every count as one row): monitors get a fresh
    snapshot after each change they watch, and the ORM spent ~2.5 ms compiling the five queries this was.
    """
    employee = employee_get(employee_id=employee_id)
    qn = connection.ops.quote_name
    status, expires, priority = qn("status"), qn("expires_at"), qn("priority")
    messages = qn(Message._meta.db_table)
    live = f"{status} IN (%s, %s) AND {expires} > %s"
    waiting = f"{status} = %s AND {expires} > %s"
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    queued, leased = MessageStatus.QUEUED.value, MessageStatus.LEASED.value
    counts: list[tuple[str, str, list[Any]]] = [
        ("total", "1 = 1", []),
        ("received", f"{qn('delivery_count')} > 0", []),
        ("live", live, [queued, leased, now]),
        ("leased", f"{status} = %s", [leased]),
        ("acked", f"{status} = %s", [MessageStatus.ACKED.value]),
        ("expired", f"{status} = %s", [MessageStatus.EXPIRED.value]),
        ("dead", f"{status} = %s", [MessageStatus.DEAD.value]),
        ("queued", waiting, [queued, now]),
        *((f"p{p.value}", f"{waiting} AND {priority} = %s", [queued, now, p.value]) for p in MessagePriority),
    ]
    inbox_columns = ", ".join(f"COUNT(CASE WHEN {condition} THEN 1 END)" for _, condition, _ in counts)
    sql = (
        f"SELECT (SELECT COUNT(*) FROM {qn(Connection._meta.db_table)} "  # noqa: S608 - quoted names, values are parameters
        f"WHERE {qn('employee_a_id')} = %s OR {qn('employee_b_id')} = %s), "
        f"(SELECT COUNT(*) FROM {qn(ConversationParticipant._meta.db_table)} WHERE {qn('employee_id')} = %s), "
        f"(SELECT COUNT(*) FROM {messages} WHERE {qn('sender_id')} = %s), "
        f"{inbox_columns} FROM {messages} WHERE {qn('receiver_id')} = %s"
    )
    params = [employee_id] * 4 + [p for _, _, ps in counts for p in ps] + [employee_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        connections, conversations, sent, *inbox_values = cursor.fetchone()
    inbox = dict(zip((name for name, _, _ in counts), inbox_values, strict=True))
    return {
        "employee_id": employee.employee_id,
        "role": employee.role,
        "status": employee.status,
        "last_seen": employee.last_seen.isoformat().replace("+00:00", "Z"),
        "connections": connections,
        "conversations": conversations,
        "queue_depth": {str(p.value): inbox[f"p{p.value}"] for p in MessagePriority},
        "queue_size": inbox["live"],
        "queue_max_size": settings.SEED_MESSAGE_QUEUE_MAX_SIZE,
        "message_stats": {
            "sent": sent,
            "received": inbox["received"],
            "acked": inbox["acked"],
            "queued": inbox["queued"],
            "leased": inbox["leased"],
            "expired": inbox["expired"],
            "dead": inbox["dead"],
            "total": inbox["total"],
        },
    }


def system_stats() -> dict[str, Any]:
    """Totals across the bus: employees (by status and role), messages by status, conversations, connections."""
    employees = Employee.objects.aggregate(
        total=Count("pk"),
        active=Count("pk", filter=Q(status=EmployeeStatus.ACTIVE)),
        unregistered=Count("pk", filter=Q(status=EmployeeStatus.UNREGISTERED)),
    )
    by_role = dict(Employee.objects.order_by().values_list("role").annotate(n=Count("pk")).values_list("role", "n"))
    messages = Message.objects.aggregate(
        total=Count("pk"), **{s.value: Count("pk", filter=Q(status=s.value)) for s in MessageStatus}
    )
    return {
        "employees": {**employees, "by_role": by_role},
        "messages": messages,
        "conversations": Conversation.objects.count(),
        "connections": Connection.objects.count(),
    }


def employee_overview(*, limit: int = 500) -> list[dict[str, Any]]:
    """Registered employees with their waiting messages by priority (two queries, for the dashboard)."""
    employees = list(Employee.objects.exclude(status=EmployeeStatus.UNREGISTERED).order_by("employee_id")[:limit])
    depth = (
        Message.objects.filter(
            receiver_id__in=[e.employee_id for e in employees],
            status=MessageStatus.QUEUED,
            expires_at__gt=timezone.now(),
        )
        .order_by()
        .values_list("receiver_id", "priority")
        .annotate(n=Count("pk"))
    )
    waiting: dict[str, dict[str, int]] = {}
    for receiver_id, priority, count in depth:
        waiting.setdefault(receiver_id, {})[str(priority)] = count
    return [
        {
            "employee_id": e.employee_id,
            "role": e.role,
            "status": e.status,
            "last_seen": e.last_seen.isoformat().replace("+00:00", "Z"),
            "queue_depth": {str(p.value): waiting.get(e.employee_id, {}).get(str(p.value), 0) for p in MessagePriority},
        }
        for e in employees
    ]


def messages_recent(*, limit: int = 20) -> list[Message]:
    """The newest messages on the bus, for operators."""
    return list(Message.objects.order_by("-created_at", "-id")[:limit])


def conversations_recent(*, limit: int = 10) -> list[Conversation]:
    """The newest conversations with their participants, for operators."""
    return list(Conversation.objects.order_by("-created_at").prefetch_related("memberships")[:limit])


def employee_id_for_token(*, token_hash: str) -> str | None:
    """The registered employee whose token hashes to ``token_hash`` (one indexed lookup).

    Runs on every request an employee makes, so it is plain SQL: compiling the ORM query cost several
    times what PostgreSQL takes to answer it. Hashes are unique in practice (SHA-256 of a random token).
    """
    if not token_hash:
        return None
    qn = connection.ops.quote_name
    sql = (
        f"SELECT {qn('employee_id')} FROM {qn(Employee._meta.db_table)} "  # noqa: S608 - quoted names, values are parameters
        f"WHERE {qn('token_hash')} = %s AND {qn('status')} <> %s LIMIT 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [token_hash, EmployeeStatus.UNREGISTERED.value])
        row = cursor.fetchone()
    return row[0] if row else None


def conversation_has_member(*, conversation_id: Any, employee_id: str | None) -> bool:
    """Whether the employee takes part in the conversation (False for unknown or malformed ids)."""
    try:
        return ConversationParticipant.objects.filter(conversation_id=conversation_id, employee_id=employee_id).exists()
    except (ValueError, TypeError, ValidationError):
        return False
