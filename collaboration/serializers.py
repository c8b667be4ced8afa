"""Shapes of the collaboration API: input serializers (they validate, never write) and representations."""

import re
import uuid
from typing import Any

from django.conf import settings
from rest_framework import serializers

from collaboration import protocol
from collaboration.models import Connection, Conversation, ConversationPost, Employee, Message
from instances.balancing import strategy_names
from seedproject.api import validated

ROLE_PREFIX = "role:"  # services.ROLE_PREFIX; serializers do not import services


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def employee_data(employee: Employee) -> dict[str, Any]:
    """Employee representation (API.md)."""
    return {
        "employee_id": employee.employee_id,
        "role": employee.role,
        "status": employee.status,
        "registered_at": _iso(employee.registered_at),
        "last_seen": _iso(employee.last_seen),
    }


def connection_data(connection: Connection, employee_id: str) -> dict[str, Any]:
    """A connection seen from ``employee_id``."""
    return {
        "employee_id": employee_id,
        "target_employee_id": connection.other(employee_id),
        "created_at": _iso(connection.created_at),
    }


def message_data(message: Message) -> dict[str, Any]:
    """Message representation: flat, mirroring the send body (API.md)."""
    return {
        "id": str(message.id),
        "sender_id": message.sender_id,
        "receiver_id": message.receiver_id,
        "message_type": message.message_type,
        "action": message.action,
        "data": message.data,
        "priority": message.priority,
        "status": message.status,
        "created_at": _iso(message.created_at),
        "expires_at": _iso(message.expires_at),
        "lease_expires_at": _iso(message.lease_expires_at),
        "delivery_count": message.delivery_count,
        "correlation_id": message.correlation_id,
        "conversation_id": str(message.conversation_id) if message.conversation_id else None,
        "message_id": message.client_message_id,
    }


def conversation_data(conversation: Conversation) -> dict[str, Any]:
    """Conversation representation; participants in joining order (prefetch ``memberships``)."""
    members = sorted(conversation.memberships.all(), key=lambda m: m.pk)
    return {
        "id": str(conversation.id),
        "topic": conversation.topic,
        "created_by": conversation.created_by_id,
        "participants": [m.employee_id for m in members],
        "created_at": _iso(conversation.created_at),
    }


def post_data(post: ConversationPost) -> dict[str, Any]:
    """One entry of a conversation's history."""
    return {
        "id": post.pk,
        "conversation_id": str(post.conversation_id),
        "sender_id": post.sender_id,
        "message_type": protocol.MessageType.CONVERSATION.value,
        "action": post.action,
        "data": post.data,
        "priority": post.priority,
        "created_at": _iso(post.created_at),
    }


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON number: "3", 3.5 and true are refused."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string that must arrive as a JSON string (DRF would quietly turn 12 or true into text)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class EmployeeIdField(StrictCharField):
    """An employee id as the protocol defines it."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 128)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return protocol.validate_employee_id(value, self.field_name or "employee_id")
        except protocol.ProtocolError as exc:
            raise serializers.ValidationError(next(iter(exc.errors.values()))) from exc


class ReceiverField(EmployeeIdField):
    """An employee id, or ``role:<role>`` to let the server pick a connected employee of that role."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 128 + len(ROLE_PREFIX))
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and data.startswith(ROLE_PREFIX):
            try:
                return ROLE_PREFIX + protocol.validate_role(data[len(ROLE_PREFIX) :])
            except protocol.ProtocolError as exc:
                raise serializers.ValidationError([f"A role receiver is role:<role>; {exc.errors['role'][0]}"]) from exc
        return super().to_internal_value(data)


class RegisterSerializer(serializers.Serializer):
    """POST employees/register."""

    employee_id = EmployeeIdField()
    role = StrictCharField(max_length=64)
    rotate_token = serializers.BooleanField(
        default=False, help_text="Issue a fresh token on re-registration (the old one stops working)."
    )

    def validate_role(self, value: str) -> str:
        try:
            # No (or an empty) SEED_EXTRA_ROLES: any well-formed role; a list: built-in roles + that list.
            return protocol.validate_role(value, getattr(settings, "SEED_EXTRA_ROLES", None) or None)
        except protocol.ProtocolError as exc:
            raise serializers.ValidationError(exc.errors["role"]) from exc


class ConnectSerializer(serializers.Serializer):
    """POST employees/{id}/connect."""

    target_employee_id = EmployeeIdField()


class SendSerializer(serializers.Serializer):
    """POST employees/{id}/messages: the seed's send body plus correlation, conversation and idempotency ids."""

    receiver_id = ReceiverField()
    message_type = StrictCharField(max_length=64)
    action = StrictCharField(max_length=128, required=False, allow_blank=True, default="")
    data = serializers.JSONField(required=False, default=dict)
    priority = serializers.JSONField(required=False, default=int(protocol.MessagePriority.NORMAL))
    ttl_seconds = StrictIntegerField(required=False, allow_null=True, default=None)
    correlation_id = StrictCharField(max_length=128, required=False, allow_null=True, default=None)
    conversation_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    message_id = StrictCharField(max_length=128, required=False, allow_null=True, default=None)
    routing = StrictCharField(max_length=64, required=False, allow_null=True, default=None)

    def validate_routing(self, value: str | None) -> str | None:
        names = strategy_names(settings.SEED_CUSTOM_STRATEGIES)
        if value is not None and value not in names:
            raise serializers.ValidationError(
                f"Unknown routing strategy {value!r}; expected one of: {', '.join(names)}."
            )
        return value

    def validate_message_type(self, value: str) -> str:
        try:
            return protocol.validate_message_type(value, settings.SEED_EXTRA_MESSAGE_TYPES)
        except protocol.ProtocolError as exc:
            raise serializers.ValidationError(exc.errors["message_type"]) from exc

    def validate_priority(self, value: Any) -> int:
        try:
            return int(protocol.validate_priority(value))
        except protocol.ProtocolError as exc:
            raise serializers.ValidationError(exc.errors["priority"]) from exc

    def validate_data(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError("data must be a JSON object.")
        return value

    def validate_ttl_seconds(self, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= settings.SEED_MAX_TTL_SECONDS:
            raise serializers.ValidationError(f"TTL must be between 1 and {settings.SEED_MAX_TTL_SECONDS} seconds.")
        return value


_SURROGATES = re.compile("[\ud800-\udfff]")
_PRIORITIES = frozenset(int(p) for p in protocol.MessagePriority)


def _kept_as_is(value: Any, max_length: int, *, blank: bool = False) -> bool:
    """Whether a StrictCharField would accept ``value`` and return it unchanged.

    DRF strips surrounding whitespace and refuses NUL and lone surrogate characters; a value that needs
    any of that is left to the serializer.
    """
    return (
        isinstance(value, str)
        and len(value) <= max_length
        and (blank or value != "")
        and value == value.strip()
        and "\x00" not in value
        and not _SURROGATES.search(value)
    )


def _send_params_fast(data: Any) -> dict[str, Any] | None:
    """SendSerializer's validated data for a plainly well-formed body, or None to let the serializer decide.

    Each check is the serializer's own rule (or a narrower one), so whatever this accepts the serializer
    accepts with the same result; anything else (errors, role receivers, values DRF would trim) returns
    None. tests/collaboration/test_send_params.py holds the two to the same answers.
    """
    if type(data) is not dict:
        return None
    get = data.get
    receiver_id, message_type, action = get("receiver_id"), get("message_type"), get("action", "")
    if not (isinstance(receiver_id, str) and protocol.EMPLOYEE_ID_PATTERN.fullmatch(receiver_id)):
        return None
    if not _kept_as_is(message_type, 64) or message_type not in protocol.message_type_names(
        settings.SEED_EXTRA_MESSAGE_TYPES
    ):
        return None
    if not _kept_as_is(action, 128, blank=True):
        return None
    payload = get("data", None) if "data" in data else {}
    priority = get("priority", int(protocol.MessagePriority.NORMAL))
    ttl_seconds = get("ttl_seconds")
    if type(payload) is not dict or type(priority) is not int or priority not in _PRIORITIES:
        return None
    if ttl_seconds is not None and not (type(ttl_seconds) is int and 1 <= ttl_seconds <= settings.SEED_MAX_TTL_SECONDS):
        return None
    correlation_id, message_id, routing = get("correlation_id"), get("message_id"), get("routing")
    if correlation_id is not None and not _kept_as_is(correlation_id, 128):
        return None
    if message_id is not None and not _kept_as_is(message_id, 128):
        return None
    if routing is not None and not (
        _kept_as_is(routing, 64) and routing in strategy_names(settings.SEED_CUSTOM_STRATEGIES)
    ):
        return None
    conversation_id = get("conversation_id")
    if conversation_id is not None:
        if not isinstance(conversation_id, str):
            return None
        try:
            conversation_id = uuid.UUID(hex=conversation_id)
        except ValueError:
            return None
    return {
        "receiver_id": receiver_id,
        "message_type": message_type,
        "action": action,
        "data": payload,
        "priority": priority,
        "ttl_seconds": ttl_seconds,
        "correlation_id": correlation_id,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "routing": routing,
    }


def send_params(data: Any) -> dict[str, Any]:
    """The validated body of a send (SendSerializer's answer, 400 with its errors on bad input).

    Sends are the bus's hottest route and DRF builds ten field objects per serializer instance; the
    plain-Python check answers the common well-formed body, the serializer everything else.
    """
    fast = _send_params_fast(data)
    return fast if fast is not None else dict(validated(SendSerializer, data))


class ReceiveSerializer(serializers.Serializer):
    """POST employees/{id}/messages/receive."""

    limit = StrictIntegerField(min_value=1, max_value=100, required=False, default=10)
    wait = serializers.FloatField(min_value=0, required=False, default=0)

    def validate_wait(self, value: float) -> float:
        if isinstance(self.initial_data.get("wait"), bool | str):
            raise serializers.ValidationError("wait must be a number of seconds.")
        if value > settings.SEED_MAX_RECEIVE_WAIT:
            raise serializers.ValidationError(f"wait must be at most {settings.SEED_MAX_RECEIVE_WAIT} seconds.")
        return value


class AckBatchSerializer(serializers.Serializer):
    """POST employees/{id}/messages/ack."""

    ids = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=1000)


class ConversationCreateSerializer(serializers.Serializer):
    """POST employees/{id}/conversations."""

    participants = serializers.ListField(child=EmployeeIdField(), min_length=2, max_length=100)
    topic = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    initial_message = serializers.JSONField(required=False, allow_null=True, default=None)

    def validate_initial_message(self, value: Any) -> dict | None:
        if value is None:
            return None
        if isinstance(value, str):
            return {"content": value}
        if not isinstance(value, dict):
            raise serializers.ValidationError('initial_message must be an object such as {"content": "..."}.')
        return value


class PostSerializer(serializers.Serializer):
    """POST conversations/{cid}/messages: ``content`` (text) or ``data`` (object)."""

    sender_id = EmployeeIdField()
    content = StrictCharField(required=False, allow_blank=True, max_length=65536)
    data = serializers.JSONField(required=False)
    action = StrictCharField(max_length=128, required=False, allow_blank=True, default="message")
    priority = serializers.JSONField(required=False, default=int(protocol.MessagePriority.NORMAL))
    ttl_seconds = StrictIntegerField(required=False, allow_null=True, default=None)

    validate_priority = SendSerializer.validate_priority
    validate_ttl_seconds = SendSerializer.validate_ttl_seconds

    def validate_data(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError("data must be a JSON object.")
        return value

    def validate(self, attrs: dict) -> dict:
        if "content" not in attrs and "data" not in attrs:
            raise serializers.ValidationError({"content": ["Give content (text) or data (an object)."]})
        data = dict(attrs.pop("data", {}) or {})
        if "content" in attrs:
            data["content"] = attrs.pop("content")
        attrs["data"] = data
        return attrs
