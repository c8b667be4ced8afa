"""The collaboration protocol: roles, message types, priorities and the message envelope.

Pure Python (no Django): agents, the REST edge and tests share these definitions. Deployment settings
(extra roles, extra message types) are passed in by the caller, never read here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum, IntEnum, StrEnum
from typing import Any

EMPLOYEE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MESSAGE_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
DEFAULT_TTL_SECONDS = 300


class ProtocolError(ValueError):
    """A message or field that breaks the protocol; ``errors`` maps field -> messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {key: list(value) for key, value in errors.items()}
        text = "; ".join(f"{key}: {' '.join(value)}" for key, value in self.errors.items())
        super().__init__(text or "invalid message")


class EmployeeRole(StrEnum):
    """The seed's built-in AI employee roles; deployments may add their own (see ``validate_role``)."""

    DEVELOPER = "developer"
    QA_ENGINEER = "qa_engineer"
    DESIGNER = "designer"
    PRODUCT_MANAGER = "product_manager"
    ARCHITECT = "architect"
    DEVOPS = "devops"
    DATA_SCIENTIST = "data_scientist"
    MANAGER = "manager"
    ANALYST = "analyst"
    SECURITY_ENGINEER = "security_engineer"
    TECHNICAL_WRITER = "technical_writer"


class MessageType(StrEnum):
    """The built-in message types; more come from settings or ``register_message_types``."""

    TASK_REQUEST = "task_request"
    TASK_RESPONSE = "task_response"
    NOTIFICATION = "notification"
    STATUS_UPDATE = "status_update"
    QUERY = "query"
    QUERY_RESPONSE = "query_response"
    ERROR = "error"
    CONVERSATION = "conversation"


class MessagePriority(IntEnum):
    """Four levels; a higher number is delivered first."""

    LOW = 1
    NORMAL = 2
    HIGH = 3
    URGENT = 4


# Types added at import time by deployment code, e.g. ``register_message_types(CustomMessageType)``
# (the seed's 扩展消息类型 example); settings-defined types are passed to the checks as ``extra``.
_registered_types: set[str] = set()


def register_message_types(types: type[Enum] | Iterable[str | Enum]) -> list[str]:
    """Add custom message types (an ``Enum`` class or names); returns the names added."""
    names = [str(item.value) if isinstance(item, Enum) else str(item) for item in types]
    bad = [name for name in names if not MESSAGE_TYPE_PATTERN.match(name)]
    if bad:
        raise ProtocolError({"message_type": [f"Not a valid message type name: {', '.join(map(repr, bad))}."]})
    _registered_types.update(names)
    return names


def unregister_message_types(names: Iterable[str]) -> None:
    """Remove custom types again (tests, plugin unload); built-in types cannot be removed."""
    _registered_types.difference_update(names)


def message_type_names(extra: Iterable[str] = ()) -> list[str]:
    """Every accepted message type: built-in, registered, then the deployment's ``extra``."""
    names = [t.value for t in MessageType]
    for name in [*sorted(_registered_types), *extra]:
        if name not in names:
            names.append(name)
    return names


def validate_message_type(value: Any, extra: Iterable[str] = ()) -> str:
    """Return the type name, or raise ProtocolError naming the accepted ones."""
    value = value.value if isinstance(value, Enum) else value
    known = message_type_names(extra)
    if not isinstance(value, str) or value not in known:
        raise ProtocolError({"message_type": [f"Unknown message type {value!r}; expected one of: {', '.join(known)}."]})
    return value


def validate_priority(value: Any) -> MessagePriority:
    """1..4 as an int (or the enum); bools, floats, strings and anything else are refused."""
    if isinstance(value, MessagePriority):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value not in MessagePriority._value2member_map_:
        message = f"Priority must be one of 1 (low), 2 (normal), 3 (high), 4 (urgent); got {value!r}."
        raise ProtocolError({"priority": [message]})
    return MessagePriority(value)


def validate_role(value: Any, extra_roles: Iterable[str] | None = None) -> str:
    """A built-in role, one of ``extra_roles`` when the deployment lists them, else any well-formed name."""
    value = value.value if isinstance(value, Enum) else value
    if not isinstance(value, str) or not ROLE_PATTERN.match(value):
        raise ProtocolError({"role": ["Role must match ^[a-z][a-z0-9_]{0,63}$ (e.g. developer, qa_engineer)."]})
    if extra_roles is not None:
        allowed = [r.value for r in EmployeeRole] + [r for r in extra_roles if r not in EmployeeRole._value2member_map_]
        if value not in allowed:
            raise ProtocolError({"role": [f"Unknown role {value!r}; expected one of: {', '.join(allowed)}."]})
    return value


def validate_employee_id(value: Any, field_name: str = "employee_id") -> str:
    """Letters, digits, ``_ . -``, at most 128 characters; no ``:`` (reserved for ``role:x`` routing)."""
    if not isinstance(value, str) or not EMPLOYEE_ID_PATTERN.match(value):
        raise ProtocolError(
            {field_name: ["Employee id must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ (letters, digits, _ . -)."]}
        )
    return value


def _parse_time(value: Any, field_name: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ProtocolError({field_name: [f"Expected an ISO-8601 time, got {value!r}."]})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass
class MessageHeader:
    """Routing facts of a message: who, to whom, what kind, how urgent, how long it lives."""

    sender: str
    receiver: str
    type: str = MessageType.NOTIFICATION.value
    priority: MessagePriority = MessagePriority.NORMAL
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    expires_at: datetime | None = None
    correlation_id: str | None = None
    conversation_id: str | None = None
    message_id: str | None = None

    def __post_init__(self) -> None:
        if self.expires_at is None and isinstance(self.ttl_seconds, int) and isinstance(self.timestamp, datetime):
            self.expires_at = self.timestamp + timedelta(seconds=self.ttl_seconds)


@dataclass
class MessagePayload:
    """What the message asks or says: ``message.payload.action`` and ``message.payload.data``."""

    action: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProtocolMessage:
    """One message on the bus: a header plus a payload; maps 1:1 to the REST message representation."""

    header: MessageHeader
    payload: MessagePayload = field(default_factory=MessagePayload)

    def is_expired(self, now: datetime | None = None) -> bool:
        """True once the message's TTL has run out."""
        return self.header.expires_at is not None and (now or datetime.now(UTC)) >= self.header.expires_at

    def validate(self, *, extra_types: Iterable[str] = (), max_ttl_seconds: int | None = None) -> ProtocolMessage:
        """Raise ProtocolError with every broken field; returns self so calls chain."""
        errors: dict[str, list[str]] = {}
        checks = [
            lambda: validate_employee_id(self.header.sender, "sender_id"),
            lambda: validate_employee_id(self.header.receiver, "receiver_id"),
            lambda: validate_message_type(self.header.type, extra_types),
            lambda: validate_priority(self.header.priority),
        ]
        for check in checks:
            try:
                check()
            except ProtocolError as exc:
                errors.update(exc.errors)
        ttl = self.header.ttl_seconds
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
            errors["ttl_seconds"] = ["TTL must be a whole number of seconds, at least 1."]
        elif max_ttl_seconds is not None and ttl > max_ttl_seconds:
            errors["ttl_seconds"] = [f"TTL must be at most {max_ttl_seconds} seconds."]
        if not isinstance(self.payload.action, str) or len(self.payload.action) > 128:
            errors["action"] = ["Action must be a string of at most 128 characters."]
        if not isinstance(self.payload.data, dict):
            errors["data"] = ["Data must be a JSON object."]
        if errors:
            raise ProtocolError(errors)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The flat representation used by the REST API and the monitor."""
        h = self.header
        return {
            "id": h.id,
            "sender_id": h.sender,
            "receiver_id": h.receiver,
            "message_type": h.type.value if isinstance(h.type, Enum) else h.type,
            "action": self.payload.action,
            "data": self.payload.data,
            "priority": int(h.priority),
            "created_at": _iso(h.timestamp),
            "expires_at": _iso(h.expires_at),
            "ttl_seconds": h.ttl_seconds,
            "correlation_id": h.correlation_id,
            "conversation_id": h.conversation_id,
            "message_id": h.message_id,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ProtocolMessage:
        """Build from the flat representation (or ``{"header": ..., "payload": ...}``); raise ProtocolError."""
        if not isinstance(raw, Mapping):
            raise ProtocolError({"non_field_errors": ["Expected a JSON object."]})
        if "header" in raw:
            header, payload = raw.get("header") or {}, raw.get("payload") or {}
            if not isinstance(header, Mapping) or not isinstance(payload, Mapping):
                raise ProtocolError({"non_field_errors": ["header and payload must be objects."]})
            flat = {
                **{k: v for k, v in header.items() if k not in {"sender", "receiver", "type"}},
                "sender_id": header.get("sender"),
                "receiver_id": header.get("receiver"),
                "message_type": header.get("type"),
                "created_at": header.get("timestamp"),
                **payload,
            }
        else:
            flat = dict(raw)
        missing = [name for name in ("sender_id", "receiver_id", "message_type") if flat.get(name) in (None, "")]
        if missing:
            raise ProtocolError({name: ["This field is required."] for name in missing})
        timestamp = _parse_time(flat.get("created_at"), "created_at") or datetime.now(UTC)
        header_obj = MessageHeader(
            sender=flat["sender_id"],
            receiver=flat["receiver_id"],
            type=flat["message_type"],
            priority=flat.get("priority", MessagePriority.NORMAL),
            id=str(flat.get("id") or uuid.uuid4()),
            timestamp=timestamp,
            ttl_seconds=flat.get("ttl_seconds", DEFAULT_TTL_SECONDS),
            expires_at=_parse_time(flat.get("expires_at"), "expires_at"),
            correlation_id=flat.get("correlation_id"),
            conversation_id=flat.get("conversation_id"),
            message_id=flat.get("message_id"),
        )
        if isinstance(header_obj.priority, int) and header_obj.priority in MessagePriority._value2member_map_:
            header_obj.priority = MessagePriority(header_obj.priority)
        return cls(header=header_obj, payload=MessagePayload(action=flat.get("action", ""), data=flat.get("data", {})))


class CollaborationProtocol:
    """One employee's view of the protocol (the seed's ``CollaborationProtocol(employee_id, role)``)."""

    def __init__(self, employee_id: str, role: EmployeeRole | str) -> None:
        self.employee_id = validate_employee_id(employee_id)
        self.role = validate_role(role)

    def create_message(
        self,
        receiver: str,
        message_type: MessageType | str,
        action: str = "",
        data: dict[str, Any] | None = None,
        *,
        priority: MessagePriority | int = MessagePriority.NORMAL,
        ttl: timedelta | int = DEFAULT_TTL_SECONDS,
        correlation_id: str | None = None,
        extra_types: Iterable[str] = (),
    ) -> ProtocolMessage:
        """A validated message from this employee."""
        ttl_seconds = int(ttl.total_seconds()) if isinstance(ttl, timedelta) else ttl
        kind = message_type.value if isinstance(message_type, Enum) else message_type
        header = MessageHeader(
            sender=self.employee_id,
            receiver=receiver,
            type=kind,
            priority=priority,
            ttl_seconds=ttl_seconds,
            correlation_id=correlation_id,
        )
        return ProtocolMessage(header, MessagePayload(action, data or {})).validate(extra_types=extra_types)

    def reply(self, message: ProtocolMessage, message_type: MessageType | str, action: str = "", data=None):
        """A response to ``message``: addressed to its sender, correlated with its id."""
        return self.create_message(
            message.header.sender,
            message_type,
            action,
            data,
            priority=message.header.priority,
            correlation_id=message.header.correlation_id or message.header.id,
        )
