"""The employee monitor socket: stats on connect, every event of the employee's stream, and queue actions.

Client frames: ``{"action": "snapshot"}``, ``{"action": "receive", "limit": n}`` (leases like
``POST …/messages/receive``) and ``{"action": "ack", "id": …}`` / ``{"action": "ack", "ids": [...]}``.
Anything else gets an error frame and the socket stays open.
"""

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework.exceptions import ValidationError

from collaboration import selectors, services
from collaboration.events import current_seq, employee_group
from collaboration.serializers import AckBatchSerializer, ReceiveSerializer, conversation_data, message_data
from seedproject.api import flatten_errors
from seedproject.auth import socket_authorized
from seedproject.errors import DomainError, NotFound
from seedproject.monitoring import local_streams

CLOSE_UNKNOWN_EMPLOYEE = 4404
OVERVIEW_STREAM = "collaboration.overview"


def _snapshot(employee_id: str) -> dict[str, Any] | None:
    """The stats frame; carries the stream's current ``seq`` and consumes none."""
    try:
        stats = selectors.employee_stats(employee_id=employee_id)
    except NotFound:
        return None
    return {"type": "employee_update", "stats": stats, "seq": current_seq(employee_id)}


def _receive(employee_id: str, frame: dict[str, Any]) -> dict[str, Any]:
    serializer = ReceiveSerializer(data={"limit": frame.get("limit", 10)})
    serializer.is_valid(raise_exception=True)
    messages = services.messages_receive(employee_id=employee_id, limit=serializer.validated_data["limit"], wait=0)
    return {"type": "messages", "messages": [message_data(m) for m in messages]}


def _ack(employee_id: str, frame: dict[str, Any]) -> dict[str, Any]:
    ids = frame["ids"] if "ids" in frame else [frame.get("id")]
    serializer = AckBatchSerializer(data={"ids": ids})
    serializer.is_valid(raise_exception=True)
    acked = services.messages_ack(employee_id=employee_id, ids=serializer.validated_data["ids"])
    return {"type": "acked", "ids": [str(m.id) for m in acked]}


ACTIONS = {"receive": _receive, "ack": _ack}


class EmployeeMonitorConsumer(AsyncJsonWebsocketConsumer):
    """Joins ``employee.<id>`` and forwards ``employee_update`` and ``message`` events to the client."""

    group: str | None = None

    async def connect(self) -> None:
        self.employee_id = self.scope["url_route"]["kwargs"]["employee_id"]
        if not await socket_authorized(self, lambda principal: principal.acts_for_employee(self.employee_id)):
            return
        snapshot = await database_sync_to_async(_snapshot)(self.employee_id)
        await self.accept()  # accept first so browsers see the close code, not a failed handshake
        if snapshot is None:
            await self.close(code=CLOSE_UNKNOWN_EMPLOYEE)
            return
        self.group = employee_group(self.employee_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send_json(snapshot)
        local_streams.join(self.group, self, self._periodic_snapshot)

    async def _periodic_snapshot(self) -> dict[str, Any] | None:
        return await database_sync_to_async(_snapshot)(self.employee_id)

    async def disconnect(self, code: int) -> None:
        if self.group:
            local_streams.leave(self.group, self)
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = json.loads(text_data) if text_data is not None else None
        except ValueError:
            frame = None
        action = frame.get("action") if isinstance(frame, dict) else None
        if action == "snapshot":
            snapshot = await database_sync_to_async(_snapshot)(self.employee_id)
            await self.send_json(snapshot or {"type": "error", "code": "not_found", "error": "Employee is gone."})
        elif action in ACTIONS:
            await self.send_json(await database_sync_to_async(self._act)(ACTIONS[action], frame))
        else:
            error = 'Expected {"action": "snapshot" | "receive" | "ack"} as a JSON object.'
            await self.send_json({"type": "error", "code": "invalid", "error": error})

    def _act(self, handler, frame: dict[str, Any]) -> dict[str, Any]:
        try:
            return handler(self.employee_id, frame)
        except DomainError as exc:
            return {"type": "error", "code": exc.code, "error": exc.message, "details": exc.details}
        except ValidationError as exc:
            return {
                "type": "error",
                "code": "invalid",
                "error": "Invalid frame.",
                "details": flatten_errors(exc.detail),
            }

    async def employee_update(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def message(self, event: dict[str, Any]) -> None:
        await self.send_json(event)


def collaboration_overview() -> dict[str, Any]:
    """The operators' frame: every employee with its queue depth, recent messages and conversations."""
    return {
        "type": "collaboration_update",
        "stats": selectors.system_stats(),
        "employees": selectors.employee_overview(),
        "messages": [message_data(m) for m in selectors.messages_recent()],
        "conversations": [conversation_data(c) for c in selectors.conversations_recent()],
    }


class CollaborationMonitorConsumer(AsyncJsonWebsocketConsumer):
    """The operators' view of the whole bus: a snapshot on connect and every ``heartbeat_interval``."""

    async def connect(self) -> None:
        if not await socket_authorized(self, lambda principal: principal.is_operator):
            return
        await self.accept()
        await self.send_json(await self._snapshot())
        local_streams.join(OVERVIEW_STREAM, self, self._snapshot)

    async def _snapshot(self) -> dict[str, Any]:
        return await database_sync_to_async(collaboration_overview)()

    async def disconnect(self, code: int) -> None:
        if "principal" in self.scope:
            local_streams.leave(OVERVIEW_STREAM, self)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = json.loads(text_data) if text_data is not None else None
        except ValueError:
            frame = None
        if isinstance(frame, dict) and frame.get("action") == "snapshot":
            await self.send_json(await self._snapshot())
        else:
            await self.send_json({"type": "error", "code": "invalid", "error": 'Expected {"action": "snapshot"}.'})
