"""REST edge of the collaboration bus: parse, call one service or selector, render.

Every per-employee view takes the employee id from the URL and derives from ``EmployeeView``, whose
permission lets only that employee's own token (or an operator) in (seedproject.permissions).
"""

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from collaboration import schema, selectors, services
from collaboration.serializers import (
    AckBatchSerializer,
    ConnectSerializer,
    ConversationCreateSerializer,
    PostSerializer,
    ReceiveSerializer,
    RegisterSerializer,
    connection_data,
    conversation_data,
    employee_data,
    message_data,
    post_data,
    send_params,
)
from seedproject.api import page_params, validated
from seedproject.permissions import AnyPrincipal, ConversationMember, EmployeeSelf, Enroller, ReadAnyWriteEmployeeSelf


def _created(created: bool) -> int:
    return status.HTTP_201_CREATED if created else status.HTTP_200_OK


class EmployeeView(APIView):
    """Base of the views that act for the employee named in the URL (``employee_id``)."""

    permission_classes = [EmployeeSelf]


class RegisterView(APIView):
    """POST employees/register: 201 new, 200 same id+role again, 409 same id with another role.

    Needs the enrollment token (or staff). The employee's own token is in the answer once, when issued.
    """

    permission_classes = [Enroller]

    @schema.employee_register
    def post(self, request: Request) -> Response:
        employee, created = services.employee_register(**validated(RegisterSerializer, request.data))
        body = {"success": True, "employee": employee_data(employee)}
        if employee.new_token:  # shown once: only its hash is stored
            body["token"] = employee.new_token
        return Response(body, status=_created(created))


class EmployeeListView(APIView):
    """GET employees?role=&status=&limit=&offset=."""

    permission_classes = [AnyPrincipal]

    @schema.employee_list
    def get(self, request: Request) -> Response:
        limit, offset = page_params(request)
        params = request.query_params
        employees, count = selectors.employee_list(
            role=params.get("role"), status=params.get("status"), limit=limit, offset=offset
        )
        return Response({"success": True, "employees": [employee_data(e) for e in employees], "count": count})


class EmployeeDetailView(EmployeeView):
    """GET employees/{id}; DELETE unregisters (connections dropped, messages kept)."""

    permission_classes = [ReadAnyWriteEmployeeSelf]

    @schema.employee_get
    def get(self, request: Request, employee_id: str) -> Response:
        employee = selectors.employee_get(employee_id=employee_id)
        return Response({"success": True, "employee": employee_data(employee)})

    @schema.employee_unregister
    def delete(self, request: Request, employee_id: str) -> Response:
        employee = services.employee_unregister(employee_id=employee_id)
        return Response({"success": True, "employee": employee_data(employee)})


class ConnectView(EmployeeView):
    """POST employees/{id}/connect {target_employee_id}: 201 new, 200 existing."""

    @schema.connection_create
    def post(self, request: Request, employee_id: str) -> Response:
        target = validated(ConnectSerializer, request.data)["target_employee_id"]
        conn, created = services.connection_create(employee_id=employee_id, target_employee_id=target)
        return Response({"success": True, "connection": connection_data(conn, employee_id)}, status=_created(created))


class ConnectionListView(EmployeeView):
    """GET employees/{id}/connections."""

    @schema.connection_list
    def get(self, request: Request, employee_id: str) -> Response:
        connections = selectors.connection_list(employee_id=employee_id)
        data = [connection_data(c, employee_id) for c in connections]
        return Response({"success": True, "connections": data, "count": len(data)})


class ConnectionDetailView(EmployeeView):
    """DELETE employees/{id}/connections/{target}."""

    @schema.connection_delete
    def delete(self, request: Request, employee_id: str, target_employee_id: str) -> Response:
        services.connection_delete(employee_id=employee_id, target_employee_id=target_employee_id)
        return Response({"success": True})


class MessagesView(EmployeeView):
    """POST employees/{id}/messages sends (201, 200 on a repeated message_id); GET lists the inbox, no side effects."""

    @schema.message_send
    def post(self, request: Request, employee_id: str) -> Response:
        message, created = services.message_send(sender_id=employee_id, **send_params(request.data))
        return Response({"success": True, "message": message_data(message)}, status=_created(created))

    @schema.message_list
    def get(self, request: Request, employee_id: str) -> Response:
        limit, offset = page_params(request)
        status_filter = request.query_params.get("status")
        messages, count = selectors.message_list(
            employee_id=employee_id, status=status_filter, limit=limit, offset=offset
        )
        return Response({"success": True, "messages": [message_data(m) for m in messages], "count": count})


class ReceiveView(EmployeeView):
    """POST employees/{id}/messages/receive {limit, wait}: lease due messages (empty list when none)."""

    @schema.messages_receive
    def post(self, request: Request, employee_id: str) -> Response:
        params = validated(ReceiveSerializer, request.data or {})  # an empty body means the defaults
        messages = services.messages_receive(employee_id=employee_id, **params)
        return Response({"success": True, "messages": [message_data(m) for m in messages]})


class AckView(EmployeeView):
    """POST employees/{id}/messages/{mid}/ack: 200 (also when already acked); 404 unknown; 409 not leased."""

    @schema.message_ack
    def post(self, request: Request, employee_id: str, message_id) -> Response:
        message = services.message_ack(employee_id=employee_id, message_id=message_id)
        return Response({"success": True, "message": message_data(message)})


class AckBatchView(EmployeeView):
    """POST employees/{id}/messages/ack {"ids": [...]}: all or nothing, like the single ack."""

    @schema.messages_ack_batch
    def post(self, request: Request, employee_id: str) -> Response:
        ids = validated(AckBatchSerializer, request.data)["ids"]
        messages = services.messages_ack(employee_id=employee_id, ids=ids)
        return Response({"success": True, "messages": [message_data(m) for m in messages], "count": len(messages)})


class EmployeeConversationsView(EmployeeView):
    """POST employees/{id}/conversations creates (201); GET lists the employee's conversations."""

    @schema.conversation_create
    def post(self, request: Request, employee_id: str) -> Response:
        params = validated(ConversationCreateSerializer, request.data)
        conversation = services.conversation_create(employee_id=employee_id, **params)
        return Response({"success": True, "conversation": conversation_data(conversation)}, status=201)

    @schema.conversation_list
    def get(self, request: Request, employee_id: str) -> Response:
        limit, offset = page_params(request)
        items, count = selectors.conversation_list(employee_id=employee_id, limit=limit, offset=offset)
        return Response({"success": True, "conversations": [conversation_data(c) for c in items], "count": count})


class ConversationMessagesView(APIView):
    """GET conversations/{cid}/messages: history, each post once, in order. POST posts to every other participant.

    Posting requires membership: a non-participant gets 403 ``forbidden`` (not 409: the sender is
    known and the conversation exists, it simply may not use it). A full queue of any participant
    -> 429 and nothing is posted.
    """

    permission_classes = [ConversationMember]

    @schema.conversation_history
    def get(self, request: Request, conversation_id) -> Response:
        limit, offset = page_params(request)
        posts, count = selectors.conversation_history(conversation_id=conversation_id, limit=limit, offset=offset)
        return Response({"success": True, "messages": [post_data(p) for p in posts], "count": count})

    @schema.conversation_post
    def post(self, request: Request, conversation_id) -> Response:
        post = services.conversation_post(conversation_id=conversation_id, **validated(PostSerializer, request.data))
        return Response({"success": True, "message": post_data(post)}, status=201)


class EmployeeStatsView(EmployeeView):
    """GET employees/{id}/stats."""

    @schema.employee_stats
    def get(self, request: Request, employee_id: str) -> Response:
        return Response({"success": True, "stats": selectors.employee_stats(employee_id=employee_id)})


class SystemStatsView(APIView):
    """GET system/stats: totals across employees, messages, conversations, connections."""

    permission_classes = [AnyPrincipal]

    @schema.system_stats
    def get(self, request: Request) -> Response:
        return Response({"success": True, "stats": selectors.system_stats()})
