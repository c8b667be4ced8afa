"""``CollaborationProtocol``: an AI employee's connection to the Seed bus, in a few lines of agent code.

    protocol = CollaborationProtocol(employee_id="qa_001", role=EmployeeRole.QA_ENGINEER,
                                     seed_urls=["http://localhost:8000"])

    @protocol.handler("test_code")
    async def test_code(message: ProtocolMessage):
        return {"passed": True}          # a task_request's return value is sent back as its task_response

    asyncio.run(protocol.run())

Receiving: the employee monitor socket signals arrivals, then the agent leases them with
``messages/receive``; without a socket it long-polls. Each leased message goes to the handler of its
action and is acked after the handler returns; if the handler raises it is not acked, so the lease
runs out and the server delivers it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any
from urllib.parse import quote

from collaboration.client.buffer import InboxBuffer
from collaboration.client.errors import RequestTimeout, SeedAPIError, SeedClientError
from collaboration.client.transport import Backoff, SeedTransport
from collaboration.protocol import EmployeeRole, MessagePriority, MessageType, ProtocolMessage

logger = logging.getLogger("collaboration.client")

API = "/api/v1/collaboration"
ANY_ACTION = "*"
# Replies get a message id derived from the request's id: a redelivered request handled twice
# still produces one task_response on the server.
REPLY_NAMESPACE = uuid.UUID("5b0c7a52-4f0e-4d55-9b8e-2f1d2a7c9e10")

Handler = Callable[["ReceivedMessage"], Awaitable[Any] | Any]


@dataclass
class ReceivedMessage(ProtocolMessage):
    """A leased message: the seed's ``ProtocolMessage`` plus how often it was delivered and the raw body."""

    delivery_count: int = 0
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The server's message id."""
        return self.header.id

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> ReceivedMessage:
        """Build from the REST message representation."""
        message = cls.from_dict(body)
        message.delivery_count = int(body.get("delivery_count") or 0)
        message.raw = dict(body)
        return message


def _name(value: Any) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


class CollaborationProtocol:
    """One AI employee on the bus: register, connect, send, handle by action, request/reply, fail over."""

    def __init__(
        self,
        employee_id: str,
        role: EmployeeRole | str,
        *,
        seed_urls: Iterable[str] = ("http://localhost:8000",),
        discover: bool = True,
        enrollment_token: str | None = None,
        token: str | None = None,
        max_size: int = 1000,
        concurrency: int = 4,
        batch_size: int = 10,
        poll_interval: float = 2.0,
        long_poll_wait: float = 10.0,
        use_socket: bool = True,
        peer_refresh_seconds: float = 15.0,
        backoff: Backoff | None = None,
        http_transport: Any = None,
    ) -> None:
        self.employee_id = employee_id
        self.role = _name(role)
        self.enrollment_token = enrollment_token
        self.token = token
        self.transport = SeedTransport(
            seed_urls, discover=discover, backoff=backoff, timeout=long_poll_wait + 10, http_transport=http_transport
        )
        self.inbox: InboxBuffer[ReceivedMessage] = InboxBuffer(max_size)
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.long_poll_wait = long_poll_wait
        self.use_socket = use_socket
        self.peer_refresh_seconds = peer_refresh_seconds
        self.handlers: dict[str, Handler] = {}
        self.registered = False
        self.socket_connected = False
        self._pending: dict[str, asyncio.Future[ReceivedMessage]] = {}
        self._replied: set[str] = set()
        self._wakeup = asyncio.Event()
        self._stopped = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # --- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> CollaborationProtocol:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Register (once) and start receiving in the background; idempotent."""
        if self._tasks:
            return
        if not self.registered:
            await self.register()
        self._stopped.clear()
        loops = [self._pump(), self._peer_refresher()]
        if self.use_socket:
            loops.append(self._socket_listener())
        loops += [self._worker() for _ in range(self.concurrency)]
        self._tasks = [asyncio.create_task(loop) for loop in loops]

    async def run(self) -> None:
        """Start and keep handling messages until ``close()`` is called (or the task is cancelled)."""
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop receiving and close connections; unacked leased messages return to the queue on their own."""
        self._stopped.set()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for future in self._pending.values():
            future.cancel()
        await self.transport.aclose()

    # --- handlers ----------------------------------------------------------------------------------

    def handler(self, action: str = ANY_ACTION, func: Handler | None = None) -> Any:
        """Register ``func`` for ``action`` (``"*"``: every action without its own handler); usable as a decorator."""

        def decorate(f: Handler) -> Handler:
            self.handlers[action] = f
            return f

        return decorate(func) if func is not None else decorate

    # --- REST calls --------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, json: Any = None, **kwargs: Any) -> dict[str, Any]:
        return await self.transport.request(method, f"{API}{path}", json=json, token=self.token, **kwargs)

    async def register(self) -> dict[str, Any]:
        """Register this employee (same id and role again is fine); keeps the token the server issues.

        An agent that has no token yet (a fresh process of an employee that already exists) asks for
        a new one; one that has a token keeps it, so its sibling processes keep theirs too.
        """
        body = await self.transport.request(
            "POST",
            f"{API}/employees/register",
            json={"employee_id": self.employee_id, "role": self.role, "rotate_token": self.token is None},
            token=self.enrollment_token,
        )
        if body.get("token"):
            self.token = body["token"]
        self.registered = True
        return body["employee"]

    async def connect(self, target: str) -> dict[str, Any]:
        """Connect to another employee (both ways; idempotent)."""
        body = await self._call("POST", f"/employees/{quote(self.employee_id)}/connect", {"target_employee_id": target})
        return body["connection"]

    async def send(
        self,
        receiver: str,
        action: str = "",
        data: dict[str, Any] | None = None,
        *,
        message_type: MessageType | str = MessageType.NOTIFICATION,
        priority: MessagePriority | int = MessagePriority.NORMAL,
        ttl_seconds: int | timedelta | None = None,
        correlation_id: str | None = None,
        conversation_id: str | None = None,
        routing: str | None = None,
        message_id: str | None = None,
    ) -> ProtocolMessage:
        """Send one message (``receiver`` may be ``role:<role>``); retried safely under one client message id."""
        body: dict[str, Any] = {
            "receiver_id": receiver,
            "message_type": _name(message_type),
            "action": action,
            "data": data or {},
            "priority": int(priority),
            "message_id": message_id or str(uuid.uuid4()),
        }
        if ttl_seconds is not None:
            body["ttl_seconds"] = (
                int(ttl_seconds.total_seconds()) if isinstance(ttl_seconds, timedelta) else ttl_seconds
            )
        optional = {"correlation_id": correlation_id, "conversation_id": conversation_id, "routing": routing}
        body.update({key: value for key, value in optional.items() if value is not None})
        answer = await self._call("POST", f"/employees/{quote(self.employee_id)}/messages", body)
        return ReceivedMessage.from_api(answer["message"])

    async def request(
        self,
        receiver: str,
        action: str,
        data: dict[str, Any] | None = None,
        *,
        timeout: float = 30.0,
        priority: MessagePriority | int = MessagePriority.NORMAL,
        routing: str | None = None,
    ) -> ReceivedMessage:
        """Send a ``task_request`` and wait for the ``task_response`` carrying its correlation id.

        Raises RequestTimeout (a TimeoutError) when none arrives within ``timeout`` seconds.
        """
        await self.start()
        correlation_id = str(uuid.uuid4())
        future: asyncio.Future[ReceivedMessage] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            await self.send(
                receiver,
                action,
                data,
                message_type=MessageType.TASK_REQUEST,
                priority=priority,
                ttl_seconds=max(1, int(timeout) + 1),
                correlation_id=correlation_id,
                routing=routing,
            )
            return await asyncio.wait_for(future, timeout)
        except TimeoutError as exc:
            raise RequestTimeout(receiver, action, correlation_id, timeout) from exc
        finally:
            self._pending.pop(correlation_id, None)

    async def reply(
        self, message: ProtocolMessage, data: dict[str, Any] | None = None, *, message_type: Any = None
    ) -> ProtocolMessage:
        """Answer ``message``: a ``task_response`` (or ``message_type``) to its sender with its correlation id."""
        self._replied.add(message.header.id)
        kind = message_type or (
            MessageType.QUERY_RESPONSE if message.header.type == MessageType.QUERY.value else MessageType.TASK_RESPONSE
        )
        return await self.send(
            message.header.sender,
            message.payload.action,
            data,
            message_type=kind,
            priority=message.header.priority,
            correlation_id=message.header.correlation_id or message.header.id,
            message_id=str(uuid.uuid5(REPLY_NAMESPACE, message.header.id)),
        )

    async def receive(self, *, limit: int = 10, wait: float = 0) -> list[ReceivedMessage]:
        """Lease up to ``limit`` messages (``wait`` seconds long-poll); the background loop does this for you."""
        body = await self._call(
            "POST", f"/employees/{quote(self.employee_id)}/messages/receive", {"limit": limit, "wait": wait}
        )
        return [ReceivedMessage.from_api(raw) for raw in body["messages"]]

    async def ack(self, *ids: str) -> None:
        """Acknowledge leased messages in one call."""
        if ids:
            await self._call("POST", f"/employees/{quote(self.employee_id)}/messages/ack", {"ids": list(ids)})

    async def stats(self) -> dict[str, Any]:
        """This employee's stats (queue depth by priority, sent, received, acked, expired)."""
        return (await self._call("GET", f"/employees/{quote(self.employee_id)}/stats"))["stats"]

    # --- background loops --------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Lease messages into the inbox: on socket signals (plus a slow safety poll), else by long-polling."""
        while not self._stopped.is_set():
            room = min(self.batch_size, self.inbox.free)
            if room == 0:
                await asyncio.sleep(0.05)
                continue
            socket_up = self.socket_connected
            self._wakeup.clear()
            try:
                leased = await self.receive(limit=room, wait=0 if socket_up else self.long_poll_wait)
            except SeedClientError as exc:  # the transport already retried and failed over; keep the agent alive
                logger.warning("receive failed: %s", exc)
                await asyncio.sleep(self.poll_interval)
                continue
            for message in leased:
                if not await self._settle_response(message):
                    await self.inbox.put(message)
            if not leased and (socket_up or self.long_poll_wait <= 0):
                # Signals only come from the server the socket is on; the poll catches the rest
                # (messages sent through another server, leases that ran out).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.poll_interval)

    async def _settle_response(self, message: ReceivedMessage) -> bool:
        """Resolve a waiting ``request()`` with this response; True when it was one (then it is acked)."""
        future = self._pending.get(message.header.correlation_id or "")
        if future is None or message.header.type == MessageType.TASK_REQUEST.value:
            return False
        if not future.done():
            future.set_result(message)
        await self._ack_quietly(message)
        return True

    async def _worker(self) -> None:
        while True:
            message = await self.inbox.get()
            try:
                await self._dispatch(message)
            finally:
                self.inbox.task_done()

    async def _dispatch(self, message: ReceivedMessage) -> None:
        handler = self.handlers.get(message.payload.action) or self.handlers.get(ANY_ACTION)
        if handler is None:
            logger.warning("no handler for action %r; acking message %s", message.payload.action, message.id)
            await self._ack_quietly(message)
            return
        try:
            result = handler(message)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            # Not acked: the lease runs out and the server delivers the message again.
            logger.exception("handler for %r failed on message %s", message.payload.action, message.id)
            return
        try:
            if (
                result is not None
                and message.header.type == MessageType.TASK_REQUEST.value
                and message.id not in self._replied
            ):
                await self.reply(message, result if isinstance(result, dict) else {"result": result})
        except Exception:
            logger.exception("automatic reply to message %s failed; not acking", message.id)
            return
        finally:
            self._replied.discard(message.id)
        await self._ack_quietly(message)

    async def _ack_quietly(self, message: ReceivedMessage) -> None:
        try:
            await self.ack(message.id)
        except SeedAPIError as exc:
            # 409: the lease ran out before the handler finished; the message will come again.
            logger.warning("ack of %s refused: %s", message.id, exc)
        except SeedClientError as exc:
            logger.warning("ack of %s failed: %s", message.id, exc)

    def _monitor_url(self, base: str) -> str:
        url = f"{base.replace('http', 'ws', 1)}{API}/employees/{quote(self.employee_id)}/monitor"
        return f"{url}?token={quote(self.token)}" if self.token else url

    async def _socket_listener(self) -> None:
        """Keep the employee monitor socket open; each ``message`` frame wakes the pump."""
        try:
            import aiohttp
        except ImportError:
            logger.info("aiohttp is not installed: receiving by long-polling only")
            return
        attempt = 0
        async with aiohttp.ClientSession() as session:
            while not self._stopped.is_set():
                try:
                    base = await self.transport.base_url()
                    # The server's origin check refuses sockets without an Origin: present its own URL,
                    # whose host is in its ALLOWED_HOSTS whenever its HTTP routes work for us.
                    socket = session.ws_connect(self._monitor_url(base), heartbeat=20, origin=base)
                    async with socket as ws:
                        async for frame in ws:
                            if frame.type != aiohttp.WSMsgType.TEXT:
                                break
                            data = frame.json()
                            if data.get("type") == "employee_update" and not self.socket_connected:
                                self.socket_connected = True  # the snapshot: subscribed from here on
                                attempt = 0
                                self._wakeup.set()
                            elif data.get("type") == "message":
                                self._wakeup.set()
                except asyncio.CancelledError:
                    raise
                except (aiohttp.ClientError, OSError, ValueError, TimeoutError, SeedClientError) as exc:
                    logger.debug("monitor socket failed: %r", exc)
                self.socket_connected = False
                self._wakeup.set()  # the pump switches to long-polling now
                await asyncio.sleep(self.transport.backoff.delay(attempt))
                attempt = min(attempt + 1, 5)

    async def _peer_refresher(self) -> None:
        while not self._stopped.is_set():
            with contextlib.suppress(Exception):
                await self.transport.refresh_peers()
            await asyncio.sleep(self.peer_refresh_seconds)
