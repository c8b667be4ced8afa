"""Periodic monitor snapshots for the sockets of this process.

Every monitor stream gets a fresh snapshot at least every ``heartbeat_interval`` (API.md). One asyncio
task per server process builds each stream's frame once per interval and hands it to the sockets of that
stream that live in this process, so the database is read once per stream per interval, never per socket.
Frames are sent straight to local channel names: each server refreshes its own sockets, and no server
fans its snapshot out to another's.

The registry below is bookkeeping about this process's own sockets, not state shared between processes.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

FrameBuilder = Callable[[], Awaitable[dict[str, Any] | None]]


class LocalStreams:
    """Which local channels watch which stream, and the task that refreshes them."""

    def __init__(self) -> None:
        self._members: dict[str, set[str]] = {}
        self._builders: dict[str, FrameBuilder] = {}
        self._task: asyncio.Task | None = None

    def join(self, stream: str, channel_name: str, builder: FrameBuilder) -> None:
        self._members.setdefault(stream, set()).add(channel_name)
        self._builders[stream] = builder
        loop = asyncio.get_running_loop()
        # A server has one loop; tests start a loop per scenario, so a task of another loop counts as gone.
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run(), name="monitor-snapshots")

    def leave(self, stream: str, channel_name: str) -> None:
        members = self._members.get(stream)
        if members is None:
            return
        members.discard(channel_name)
        if not members:
            self._members.pop(stream, None)
            self._builders.pop(stream, None)

    def watched(self) -> dict[str, int]:
        return {stream: len(members) for stream, members in self._members.items()}

    async def _interval(self) -> float:
        from instances.selectors import heartbeat_interval_seconds

        try:
            return max(0.5, float(await database_sync_to_async(heartbeat_interval_seconds)()))
        except Exception:  # noqa: BLE001 - the database may be briefly away; keep the sockets alive
            return 10.0

    async def _run(self) -> None:
        layer = get_channel_layer()
        while self._members:
            await asyncio.sleep(await self._interval())
            for stream, members in list(self._members.items()):
                builder = self._builders.get(stream)
                if builder is None or not members:
                    continue
                try:
                    frame = await builder()
                except Exception:
                    logger.exception("monitor snapshot for %s failed", stream)
                    continue
                if frame is None:
                    continue
                for channel_name in list(members):
                    with contextlib.suppress(Exception):  # a socket that just closed is not an error
                        await layer.send(channel_name, {"type": "monitor.snapshot", "frame": frame})


local_streams = LocalStreams()
