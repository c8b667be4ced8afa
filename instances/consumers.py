"""The cluster monitor socket: a snapshot on connect, every cluster update, a snapshot every interval."""

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from instances.events import CLUSTER_GROUP, cluster_frame
from seedproject.auth import socket_authorized
from seedproject.monitoring import local_streams

_snapshot = database_sync_to_async(cluster_frame)


class ClusterMonitorConsumer(AsyncJsonWebsocketConsumer):
    """Joins the "cluster" group and forwards its updates; ``{"action": "snapshot"}`` asks for a fresh one."""

    async def connect(self) -> None:
        if not await socket_authorized(self, lambda principal: True):  # anyone the cluster knows
            return
        await self.channel_layer.group_add(CLUSTER_GROUP, self.channel_name)
        await self.accept()
        await self.send_json(await _snapshot())
        local_streams.join(CLUSTER_GROUP, self.channel_name, _snapshot)

    async def disconnect(self, code: int) -> None:
        if "principal" not in self.scope:
            return  # refused before it joined anything
        local_streams.leave(CLUSTER_GROUP, self.channel_name)
        await self.channel_layer.group_discard(CLUSTER_GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        # The base class would crash the socket on a frame that is not JSON; answer with an error instead.
        try:
            content = json.loads(text_data if text_data is not None else bytes_data)
        except (TypeError, ValueError):
            await self.send_json({"type": "error", "code": "invalid", "error": "Frames must be JSON objects."})
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and content.get("action") == "snapshot":
            await self.send_json(await _snapshot())
            return
        await self.send_json(
            {"type": "error", "code": "invalid", "error": 'Unknown frame; the only action is {"action": "snapshot"}.'}
        )

    async def cluster_update(self, event: dict) -> None:
        await self.send_json(event["payload"])

    async def monitor_snapshot(self, event: dict) -> None:
        await self.send_json(event["frame"])
