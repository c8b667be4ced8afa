"""OpenAPI description of the collaboration routes: response envelopes and one ``extend_schema`` per operation.

The views render plain dicts (``serializers.message_data`` and friends); the response serializers below
only describe them. The request serializers are the views' own, subclassed where a field is checked in
code (priority, wait, patterns) so that the schema states the same bound the code enforces.
"""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers

from collaboration import protocol
from collaboration.choices import EmployeeStatus, MessageStatus
from collaboration.serializers import (
    AckBatchSerializer,
    ConnectSerializer,
    ConversationCreateSerializer,
    PostSerializer,
    ReceiveSerializer,
    RegisterSerializer,
    SendSerializer,
)
from seedproject.api import PageParams, SuccessSerializer, error_responses

TAG_EMPLOYEES = ["employees"]
TAG_MESSAGES = ["messages"]
TAG_CONVERSATIONS = ["conversations"]
TAG_STATS = ["stats"]
# Every route may answer these once authentication and throttling apply (API.md "Security").
AUTH_ERRORS = (401, 403, 429)

EMPLOYEE_ID_RE = protocol.EMPLOYEE_ID_PATTERN.pattern
ROLE_RE = protocol.ROLE_PATTERN.pattern


def _employee_id_field(**kwargs) -> serializers.RegexField:
    return serializers.RegexField(EMPLOYEE_ID_RE, max_length=128, **kwargs)


# --- requests (documentation subclasses of the views' serializers) -------------------------------


class RegisterRequestSerializer(RegisterSerializer):
    """POST employees/register."""

    employee_id = _employee_id_field()
    role = serializers.RegexField(ROLE_RE, max_length=64)


class ConnectRequestSerializer(ConnectSerializer):
    """POST employees/{id}/connect."""

    target_employee_id = _employee_id_field()


class SendRequestSerializer(SendSerializer):
    """POST employees/{id}/messages."""

    receiver_id = serializers.CharField(
        max_length=128 + 5, help_text="An employee id, or role:<role> to let the server pick a connected employee."
    )
    message_type = serializers.ChoiceField(
        choices=protocol.message_type_names(settings.SEED_EXTRA_MESSAGE_TYPES),
        help_text="The built-in types plus those this deployment registers (SEED_EXTRA_MESSAGE_TYPES); else 400.",
    )
    data = serializers.DictField(required=False)
    priority = serializers.IntegerField(
        min_value=1, max_value=4, required=False, default=2, help_text="1 low, 2 normal, 3 high, 4 urgent."
    )
    ttl_seconds = serializers.IntegerField(
        min_value=1, max_value=settings.SEED_MAX_TTL_SECONDS, required=False, allow_null=True, default=None
    )


class ReceiveRequestSerializer(ReceiveSerializer):
    """POST employees/{id}/messages/receive (an empty body means the defaults)."""

    wait = serializers.FloatField(
        min_value=0,
        max_value=settings.SEED_MAX_RECEIVE_WAIT,
        required=False,
        default=0,
        help_text="Seconds to long-poll when nothing is due.",
    )


class AckBatchRequestSerializer(AckBatchSerializer):
    """POST employees/{id}/messages/ack."""


class ConversationCreateRequestSerializer(ConversationCreateSerializer):
    """POST employees/{id}/conversations."""

    participants = serializers.ListField(child=_employee_id_field(), min_length=2, max_length=100)
    initial_message = serializers.DictField(
        required=False, allow_null=True, help_text='{"content": "..."} (a plain string is accepted too).'
    )


class PostRequestSerializer(PostSerializer):
    """POST conversations/{cid}/messages: ``content`` (text) or ``data`` (object)."""

    sender_id = _employee_id_field()
    data = serializers.DictField(required=False)
    priority = serializers.IntegerField(min_value=1, max_value=4, required=False, default=2)
    ttl_seconds = serializers.IntegerField(
        min_value=1, max_value=settings.SEED_MAX_TTL_SECONDS, required=False, allow_null=True, default=None
    )


# --- responses ---------------------------------------------------------------------------------


class EmployeeSerializer(serializers.Serializer):
    """An employee (API.md "Representations")."""

    employee_id = serializers.CharField()
    role = serializers.CharField()
    status = serializers.ChoiceField(choices=EmployeeStatus.choices)
    registered_at = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()


class EmployeeResponseSerializer(serializers.Serializer):
    """``{success, employee}``."""

    success = serializers.BooleanField()
    employee = EmployeeSerializer()


class EmployeeRegisteredSerializer(EmployeeResponseSerializer):
    """``{success, employee}`` after registration, plus the employee's bearer token when one was issued."""

    token = serializers.CharField(
        required=False, allow_null=True, help_text="The employee's bearer token (emp_…), returned once."
    )


class EmployeeListResponseSerializer(serializers.Serializer):
    """``{success, employees, count}``."""

    success = serializers.BooleanField()
    employees = EmployeeSerializer(many=True)
    count = serializers.IntegerField(min_value=0)


class ConnectionSerializer(serializers.Serializer):
    """A connection seen from ``employee_id``."""

    employee_id = serializers.CharField()
    target_employee_id = serializers.CharField()
    created_at = serializers.DateTimeField()


class ConnectionResponseSerializer(serializers.Serializer):
    """``{success, connection}``."""

    success = serializers.BooleanField()
    connection = ConnectionSerializer()


class ConnectionListResponseSerializer(serializers.Serializer):
    """``{success, connections, count}``."""

    success = serializers.BooleanField()
    connections = ConnectionSerializer(many=True)
    count = serializers.IntegerField(min_value=0)


class MessageSerializer(serializers.Serializer):
    """A message: flat, mirroring the send body (API.md "Representations")."""

    id = serializers.UUIDField()
    sender_id = serializers.CharField()
    receiver_id = serializers.CharField()
    message_type = serializers.CharField()
    action = serializers.CharField(allow_blank=True)
    data = serializers.DictField()
    priority = serializers.IntegerField(min_value=1, max_value=4)
    status = serializers.ChoiceField(choices=MessageStatus.choices)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    lease_expires_at = serializers.DateTimeField(allow_null=True)
    delivery_count = serializers.IntegerField(min_value=0)
    correlation_id = serializers.CharField(allow_null=True)
    conversation_id = serializers.UUIDField(allow_null=True)
    message_id = serializers.CharField(allow_null=True, help_text="The sender's idempotency key, if it gave one.")


class MessageResponseSerializer(serializers.Serializer):
    """``{success, message}``."""

    success = serializers.BooleanField()
    message = MessageSerializer()


class MessageListResponseSerializer(serializers.Serializer):
    """``{success, messages, count}``."""

    success = serializers.BooleanField()
    messages = MessageSerializer(many=True)
    count = serializers.IntegerField(min_value=0)


class ReceiveResponseSerializer(serializers.Serializer):
    """``{success, messages}``: the leased messages, an empty list when nothing is due."""

    success = serializers.BooleanField()
    messages = MessageSerializer(many=True)


class ConversationSerializer(serializers.Serializer):
    """A conversation; participants in joining order."""

    id = serializers.UUIDField()
    topic = serializers.CharField(allow_blank=True)
    created_by = serializers.CharField()
    participants = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()


class ConversationResponseSerializer(serializers.Serializer):
    """``{success, conversation}``."""

    success = serializers.BooleanField()
    conversation = ConversationSerializer()


class ConversationListResponseSerializer(serializers.Serializer):
    """``{success, conversations, count}``."""

    success = serializers.BooleanField()
    conversations = ConversationSerializer(many=True)
    count = serializers.IntegerField(min_value=0)


class ConversationPostSerializer(serializers.Serializer):
    """One entry of a conversation's history."""

    id = serializers.IntegerField()
    conversation_id = serializers.UUIDField()
    sender_id = serializers.CharField()
    message_type = serializers.CharField()
    action = serializers.CharField(allow_blank=True)
    data = serializers.DictField()
    priority = serializers.IntegerField(min_value=1, max_value=4)
    created_at = serializers.DateTimeField()


class ConversationPostResponseSerializer(serializers.Serializer):
    """``{success, message}``: the post just made."""

    success = serializers.BooleanField()
    message = ConversationPostSerializer()


class ConversationHistoryResponseSerializer(serializers.Serializer):
    """``{success, messages, count}``: the history, each post once, in order."""

    success = serializers.BooleanField()
    messages = ConversationPostSerializer(many=True)
    count = serializers.IntegerField(min_value=0)


class MessageCountsSerializer(serializers.Serializer):
    """An employee's message counts."""

    sent = serializers.IntegerField(min_value=0)
    received = serializers.IntegerField(min_value=0)
    acked = serializers.IntegerField(min_value=0)
    queued = serializers.IntegerField(min_value=0)
    leased = serializers.IntegerField(min_value=0)
    expired = serializers.IntegerField(min_value=0)
    dead = serializers.IntegerField(min_value=0)
    total = serializers.IntegerField(min_value=0)


class EmployeeStatsSerializer(serializers.Serializer):
    """One employee's stats (``message_stats`` as the seed names it)."""

    employee_id = serializers.CharField()
    role = serializers.CharField()
    # Not a second enum: one choice set in two components would get a hashed enum name.
    status = serializers.CharField(help_text="The employee's status, as in Employee.status.")
    last_seen = serializers.DateTimeField()
    connections = serializers.IntegerField(min_value=0)
    conversations = serializers.IntegerField(min_value=0)
    queue_depth = serializers.DictField(
        child=serializers.IntegerField(min_value=0), help_text='Waiting messages by priority: {"1": n, ..., "4": n}.'
    )
    queue_size = serializers.IntegerField(min_value=0)
    queue_max_size = serializers.IntegerField(min_value=0)
    message_stats = MessageCountsSerializer()


class EmployeeStatsResponseSerializer(serializers.Serializer):
    """``{success, stats}``."""

    success = serializers.BooleanField()
    stats = EmployeeStatsSerializer()


class EmployeeTotalsSerializer(serializers.Serializer):
    """Employees by status and role."""

    total = serializers.IntegerField(min_value=0)
    active = serializers.IntegerField(min_value=0)
    unregistered = serializers.IntegerField(min_value=0)
    by_role = serializers.DictField(child=serializers.IntegerField(min_value=0))


class MessageTotalsSerializer(serializers.Serializer):
    """Messages by status."""

    total = serializers.IntegerField(min_value=0)
    queued = serializers.IntegerField(min_value=0)
    leased = serializers.IntegerField(min_value=0)
    acked = serializers.IntegerField(min_value=0)
    expired = serializers.IntegerField(min_value=0)
    dead = serializers.IntegerField(min_value=0)


class SystemStatsSerializer(serializers.Serializer):
    """Totals across the bus."""

    employees = EmployeeTotalsSerializer()
    messages = MessageTotalsSerializer()
    conversations = serializers.IntegerField(min_value=0)
    connections = serializers.IntegerField(min_value=0)


class SystemStatsResponseSerializer(serializers.Serializer):
    """``{success, stats}``."""

    success = serializers.BooleanField()
    stats = SystemStatsSerializer()


# --- operations --------------------------------------------------------------------------------

EMPLOYEE_ID = OpenApiParameter(
    "employee_id", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=EMPLOYEE_ID_RE, description="Employee id."
)
TARGET_EMPLOYEE_ID = OpenApiParameter(
    "target_employee_id", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=EMPLOYEE_ID_RE, description="The peer."
)
MESSAGE_ID = OpenApiParameter("message_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Message id.")
CONVERSATION_ID = OpenApiParameter(
    "conversation_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Conversation id."
)
EMPLOYEE_FILTERS = [
    OpenApiParameter("role", OpenApiTypes.STR, OpenApiParameter.QUERY, description="Only employees of this role."),
    OpenApiParameter("status", OpenApiTypes.STR, OpenApiParameter.QUERY, enum=EmployeeStatus.values),
]
MESSAGE_STATUS = OpenApiParameter("status", OpenApiTypes.STR, OpenApiParameter.QUERY, enum=MessageStatus.values)

employee_register = extend_schema(
    operation_id="employees_register",
    tags=TAG_EMPLOYEES,
    summary="Register an employee",
    description="201 new; 200 the same id and role again (agents restart); 409 the same id with another role.",
    request=RegisterRequestSerializer,
    responses={
        201: EmployeeRegisteredSerializer,
        200: EmployeeRegisteredSerializer,
        **error_responses(400, *AUTH_ERRORS, 409, 413),
    },
)

employee_list = extend_schema(
    operation_id="employees_list",
    tags=TAG_EMPLOYEES,
    summary="List employees",
    parameters=[*EMPLOYEE_FILTERS, PageParams],
    responses={200: EmployeeListResponseSerializer, **error_responses(400, *AUTH_ERRORS)},
)

employee_get = extend_schema(
    operation_id="employees_get",
    tags=TAG_EMPLOYEES,
    summary="Read an employee",
    parameters=[EMPLOYEE_ID],
    responses={200: EmployeeResponseSerializer, **error_responses(*AUTH_ERRORS, 404)},
)

employee_unregister = extend_schema(
    operation_id="employees_unregister",
    tags=TAG_EMPLOYEES,
    summary="Unregister an employee (connections dropped, messages kept)",
    parameters=[EMPLOYEE_ID],
    responses={200: EmployeeResponseSerializer, **error_responses(*AUTH_ERRORS, 404)},
)

connection_create = extend_schema(
    operation_id="connections_create",
    tags=TAG_EMPLOYEES,
    summary="Connect two employees (bidirectional)",
    description="201 new; 200 already connected; 404 when either employee does not exist.",
    parameters=[EMPLOYEE_ID],
    request=ConnectRequestSerializer,
    responses={
        201: ConnectionResponseSerializer,
        200: ConnectionResponseSerializer,
        **error_responses(400, *AUTH_ERRORS, 404, 413),
    },
)

connection_list = extend_schema(
    operation_id="connections_list",
    tags=TAG_EMPLOYEES,
    summary="List an employee's connections",
    parameters=[EMPLOYEE_ID],
    responses={200: ConnectionListResponseSerializer, **error_responses(*AUTH_ERRORS, 404)},
)

connection_delete = extend_schema(
    operation_id="connections_delete",
    tags=TAG_EMPLOYEES,
    summary="Drop a connection",
    parameters=[EMPLOYEE_ID, TARGET_EMPLOYEE_ID],
    responses={200: SuccessSerializer, **error_responses(*AUTH_ERRORS, 404)},
)

message_send = extend_schema(
    operation_id="messages_send",
    tags=TAG_MESSAGES,
    summary="Send a message",
    description="201 stored; 200 a repeated message_id (the original). 409 not_connected / no_route; "
    "429 queue_full (nothing stored).",
    parameters=[EMPLOYEE_ID],
    request=SendRequestSerializer,
    responses={
        201: MessageResponseSerializer,
        200: MessageResponseSerializer,
        **error_responses(400, *AUTH_ERRORS, 404, 409, 413),
    },
)

message_list = extend_schema(
    operation_id="messages_list",
    tags=TAG_MESSAGES,
    summary="List the inbox (no side effects)",
    parameters=[EMPLOYEE_ID, MESSAGE_STATUS, PageParams],
    responses={200: MessageListResponseSerializer, **error_responses(400, *AUTH_ERRORS, 404)},
)

messages_receive = extend_schema(
    operation_id="messages_receive",
    tags=TAG_MESSAGES,
    summary="Lease due messages (highest priority first, FIFO within one)",
    parameters=[EMPLOYEE_ID],
    request=ReceiveRequestSerializer,
    responses={200: ReceiveResponseSerializer, **error_responses(400, *AUTH_ERRORS, 404, 413)},
)

message_ack = extend_schema(
    operation_id="messages_ack",
    tags=TAG_MESSAGES,
    summary="Acknowledge one message",
    description="200 also when already acked; 404 unknown; 409 not leased.",
    parameters=[EMPLOYEE_ID, MESSAGE_ID],
    request=None,
    responses={200: MessageResponseSerializer, **error_responses(*AUTH_ERRORS, 404, 409)},
)

messages_ack_batch = extend_schema(
    operation_id="messages_ack_batch",
    tags=TAG_MESSAGES,
    summary="Acknowledge a batch of messages (all or nothing)",
    parameters=[EMPLOYEE_ID],
    request=AckBatchRequestSerializer,
    responses={200: MessageListResponseSerializer, **error_responses(400, *AUTH_ERRORS, 404, 409, 413)},
)

conversation_create = extend_schema(
    operation_id="conversations_create",
    tags=TAG_CONVERSATIONS,
    summary="Create a conversation (the creator must be a participant)",
    parameters=[EMPLOYEE_ID],
    request=ConversationCreateRequestSerializer,
    responses={201: ConversationResponseSerializer, **error_responses(400, *AUTH_ERRORS, 404, 413)},
)

conversation_list = extend_schema(
    operation_id="conversations_list",
    tags=TAG_CONVERSATIONS,
    summary="List an employee's conversations",
    parameters=[EMPLOYEE_ID, PageParams],
    responses={200: ConversationListResponseSerializer, **error_responses(400, *AUTH_ERRORS, 404)},
)

conversation_history = extend_schema(
    operation_id="conversations_history",
    tags=TAG_CONVERSATIONS,
    summary="A conversation's history",
    parameters=[CONVERSATION_ID, PageParams],
    responses={200: ConversationHistoryResponseSerializer, **error_responses(400, *AUTH_ERRORS, 404)},
)

conversation_post = extend_schema(
    operation_id="conversations_post",
    tags=TAG_CONVERSATIONS,
    summary="Post to every other participant",
    description="403 when the sender is not a participant; 429 when a participant's queue is full.",
    parameters=[CONVERSATION_ID],
    request=PostRequestSerializer,
    responses={201: ConversationPostResponseSerializer, **error_responses(400, *AUTH_ERRORS, 404, 413)},
)

employee_stats = extend_schema(
    operation_id="employees_stats",
    tags=TAG_STATS,
    summary="One employee's stats",
    parameters=[EMPLOYEE_ID],
    responses={200: EmployeeStatsResponseSerializer, **error_responses(*AUTH_ERRORS, 404)},
)

system_stats = extend_schema(
    operation_id="system_stats",
    tags=TAG_STATS,
    summary="Totals across the bus",
    responses={200: SystemStatsResponseSerializer, **error_responses(*AUTH_ERRORS)},
)
