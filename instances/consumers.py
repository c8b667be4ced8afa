"""The cluster monitor socket: a snapshot on connect, every cluster update, a snapshot every interval."""

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from instances.events import CLUSTER_GROUP, cluster_frame
from seedproject.auth import socket_authorized
from seedproject.monitoring import local_streams

_snapshot = database_sync_to_async(cluster_frame)


class ClusterMonitorConsumer(AsyncJsonWebsocketConsumer):
    """Gets every cluster update (relayed by ``local_streams``); ``{"action": "snapshot"}`` asks for a fresh one."""

    async def connect(self) -> None:
        if not await socket_authorized(self, lambda principal: True):  # anyone the cluster knows
            return
        await self.accept()
        local_streams.join(CLUSTER_GROUP, self, _snapshot)
        await local_streams.relay(CLUSTER_GROUP)  # one group member per process, not per socket
        await self.send_json(await _snapshot())

    async def disconnect(self, code: int) -> None:
        if "principal" not in self.scope:
            return  # refused before it joined anything
        local_streams.leave(CLUSTER_GROUP, self)

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
