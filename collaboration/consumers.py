"""The employee monitor socket: a stats snapshot on connect, then every event of the employee's stream."""

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from collaboration import selectors
from collaboration.events import current_seq, employee_group
from seedproject.errors import NotFound

CLOSE_UNKNOWN_EMPLOYEE = 4404


@database_sync_to_async
def _snapshot(employee_id: str) -> dict[str, Any] | None:
    try:
        stats = selectors.employee_stats(employee_id=employee_id)
    except NotFound:
        return None
    return {"type": "employee_update", "stats": stats, "seq": current_seq(employee_id)}


class EmployeeMonitorConsumer(AsyncJsonWebsocketConsumer):
    """Joins ``employee.<id>`` and forwards ``employee_update`` and ``message`` events to the client."""

    group: str | None = None

    async def connect(self) -> None:
        self.employee_id = self.scope["url_route"]["kwargs"]["employee_id"]
        snapshot = await _snapshot(self.employee_id)
        await self.accept()  # accept first so browsers see the close code, not a failed handshake
        if snapshot is None:
            await self.close(code=CLOSE_UNKNOWN_EMPLOYEE)
            return
        self.group = employee_group(self.employee_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send_json(snapshot)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Client frames: {"action": "snapshot"}; anything else gets an error frame, the socket stays open."""
        try:
            frame = json.loads(text_data) if text_data is not None else None
        except ValueError:
            frame = None
        if not isinstance(frame, dict) or frame.get("action") != "snapshot":
            await self.send_json({"type": "error", "code": "invalid", "error": 'Expected {"action": "snapshot"}.'})
            return
        await self.send_json(await _snapshot(self.employee_id) or {"type": "error", "code": "not_found"})

    async def employee_update(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def message(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
