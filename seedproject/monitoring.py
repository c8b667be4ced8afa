"""Monitor frames for the sockets of this process: periodic snapshots, and group events relayed once.

Periodic snapshots: every monitor stream gets a fresh snapshot at least every ``heartbeat_interval``
(API.md). One asyncio task per server process builds each stream's frame once per interval and hands
it to the sockets of that stream that live in this process, so the database is read once per stream per
interval, never per socket; each server refreshes its own sockets only.

Relayed groups (the cluster monitor, which many sockets watch): instead of every socket joining the
channel-layer group, which makes each event one Redis message per socket (and one Redis read per socket
on the receiving side), the process joins the group once with a relay channel and hands each event to
its local sockets in memory, JSON-encoded once. An event then costs one Redis message per server process
whatever the number of sockets (bench/README.md, "monitor fan-out").

The registry below is bookkeeping about this process's own sockets, not state shared between processes.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

FrameBuilder = Callable[[], Awaitable[dict[str, Any] | None]]
# channels-redis drops group members after group_expiry (a day by default); relays re-join well before.
RELAY_REJOIN_SECONDS = 3600.0


class LocalStreams:
    """Which local sockets (consumers) watch which stream, the snapshot task and the group relays."""

    def __init__(self) -> None:
        self._members: dict[str, dict[Any, None]] = {}  # insertion-ordered sets of consumers
        self._builders: dict[str, FrameBuilder] = {}
        self._task: asyncio.Task | None = None
        self._relays: dict[str, asyncio.Task] = {}
        self._joined: dict[str, asyncio.Future] = {}  # per relay: set once it is a member of its group

    # --- membership --------------------------------------------------------------------------------
    def join(self, stream: str, consumer: Any, builder: FrameBuilder) -> None:
        """``consumer`` gets ``stream``'s periodic snapshot (and its relayed events, see ``relay``)."""
        self._members.setdefault(stream, {})[consumer] = None
        self._builders[stream] = builder
        loop = asyncio.get_running_loop()
        # A server has one loop; tests start a loop per scenario, so a task of another loop counts as gone.
        if not _alive_on(self._task, loop):
            self._task = loop.create_task(self._snapshots(), name="monitor-snapshots")

    def leave(self, stream: str, consumer: Any) -> None:
        members = self._members.get(stream)
        if members is None:
            return
        members.pop(consumer, None)
        if not members:
            self._members.pop(stream, None)
            self._builders.pop(stream, None)
            self._joined.pop(stream, None)
            relay = self._relays.pop(stream, None)
            if relay is not None:
                relay.cancel()

    async def relay(self, stream: str) -> None:
        """Make sure this process listens to the channel-layer group ``stream`` for its local sockets.

        Call after ``join``; returns once the relay is a member of the group, so no event sent after
        that is missed. Events sent to the group (``{"type": ..., "payload": frame}``) reach every local
        member of ``stream``, in the order the group received them.
        """
        loop = asyncio.get_running_loop()
        if stream not in self._members:
            return
        if not _alive_on(self._relays.get(stream), loop):
            self._joined[stream] = joined = loop.create_future()
            self._relays[stream] = loop.create_task(self._relay(stream, joined), name=f"monitor-relay-{stream}")
        await asyncio.shield(self._joined[stream])

    # --- delivery ----------------------------------------------------------------------------------
    async def deliver(self, stream: str, frame: dict[str, Any]) -> None:
        """Send ``frame`` to every local socket of ``stream``, encoded once."""
        text = json.dumps(frame)
        for consumer in list(self._members.get(stream, ())):
            with contextlib.suppress(Exception):  # a socket that just closed is not an error
                await consumer.send(text_data=text)

    async def _relay(self, stream: str, joined: asyncio.Future) -> None:
        layer = get_channel_layer()
        # The layer's default prefix on purpose: channels-redis reads one process-local stream, named
        # after it, for every channel of this process; a channel of another prefix would never be read.
        channel = await layer.new_channel()
        receiving = None
        try:
            await layer.group_add(stream, channel)
            joined.set_result(None)
            while stream in self._members:
                receiving = receiving or asyncio.ensure_future(layer.receive(channel))
                done, _ = await asyncio.wait({receiving}, timeout=RELAY_REJOIN_SECONDS)
                if not done:  # quiet for an hour: renew the membership before the layer expires it
                    await layer.group_add(stream, channel)
                    continue
                message, receiving = receiving.result(), None
                payload = message.get("payload")
                if isinstance(payload, dict):
                    await self.deliver(stream, payload)
        except Exception as exc:
            if not joined.done():
                joined.set_exception(exc)
            raise
        finally:
            if receiving is not None:
                receiving.cancel()
            with contextlib.suppress(Exception):
                await asyncio.shield(layer.group_discard(stream, channel))

    async def _interval(self) -> float:
        from instances.selectors import heartbeat_interval_seconds

        try:
            return max(0.5, float(await database_sync_to_async(heartbeat_interval_seconds)()))
        except Exception:  # noqa: BLE001 - the database may be briefly away; keep the sockets alive
            return 10.0

    async def _snapshots(self) -> None:
        while self._members:
            await asyncio.sleep(await self._interval())
            for stream in list(self._members):
                builder = self._builders.get(stream)
                if builder is None:
                    continue
                try:
                    frame = await builder()
                except Exception:
                    logger.exception("monitor snapshot for %s failed", stream)
                    continue
                if frame is not None:
                    await self.deliver(stream, frame)


def _alive_on(task: asyncio.Task | None, loop: asyncio.AbstractEventLoop) -> bool:
    return task is not None and not task.done() and task.get_loop() is loop


local_streams = LocalStreams()
