"""``python -m seedproject.wsserver --handoff PATH``: daphne serving the WebSockets gunicorn hands over.

A daphne server (Channels' ASGI application, ``seedproject.asgi``) that, besides its own endpoints,
listens on the Unix socket ``PATH`` for connections handed over by gunicorn (``seedproject.handoff``):
each handoff carries one client socket as a file descriptor plus the request head gunicorn already
read. The socket is adopted into daphne's reactor and the request replayed into daphne's own HTTP
protocol, which then performs the WebSocket handshake as for any connection it accepted itself.
"""

import daphne.server  # noqa: I001 - first: installs the asyncio reactor before anything imports Twisted's default

import argparse
import contextlib
import logging
import os
import socket
import sys

from daphne.access import AccessLogGenerator
from twisted.internet import reactor
from twisted.internet.interfaces import IFileDescriptorReceiver
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from seedproject.handoff import MAX_HANDOFF_BYTES

logger = logging.getLogger("seed.wsserver")


class _Replaying(Factory):
    """Builds daphne's protocol for an adopted socket and remembers it, to replay the request into it."""

    def __init__(self, inner: Factory) -> None:
        self.inner = inner
        self.built = None

    def buildProtocol(self, addr):
        self.built = self.inner.buildProtocol(addr)
        return self.built


def adopt(http_factory: Factory, fd: int, request: bytes) -> bool:
    """Make the connected socket ``fd`` one of daphne's connections and feed it ``request``.

    Takes ownership of ``fd`` (closed here; the reactor keeps its own duplicate).
    """
    with socket.socket(fileno=fd) as client:
        if client.type != socket.SOCK_STREAM or client.family not in {socket.AF_INET, socket.AF_INET6}:
            return False
        client.setblocking(False)  # the reactor requires it
        factory = _Replaying(http_factory)
        reactor.adoptStreamConnection(client.fileno(), client.family, factory)
    if factory.built is None:
        return False
    factory.built.dataReceived(request)
    return True


@implementer(IFileDescriptorReceiver)
class HandoffReceiver(Protocol):
    """One handoff: a client socket's descriptor, then the request head, then the sender closes."""

    def __init__(self, http_factory: Factory) -> None:
        self.http_factory = http_factory
        self.fds: list[int] = []
        self.chunks: list[bytes] = []
        self.size = 0

    def fileDescriptorReceived(self, descriptor: int) -> None:
        self.fds.append(descriptor)

    def dataReceived(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > MAX_HANDOFF_BYTES:
            self.transport.loseConnection()
            return
        self.chunks.append(data)

    def connectionLost(self, reason=None) -> None:
        request = b"".join(self.chunks)
        fds, self.fds = self.fds, []
        if len(fds) != 1 or not request or self.size > MAX_HANDOFF_BYTES:
            logger.warning("dropped a malformed handoff (%d descriptors, %d bytes)", len(fds), self.size)
            for fd in fds:
                os.close(fd)
            return
        try:
            if not adopt(self.http_factory, fds[0], request):
                logger.warning("dropped a handoff whose descriptor is not a TCP connection")
        except Exception:  # adopt() owns the descriptor and has closed it
            logger.exception("could not adopt a handed-over connection")


class HandoffFactory(Factory):
    def __init__(self, server: daphne.server.Server) -> None:
        self.server = server

    def buildProtocol(self, addr):
        return HandoffReceiver(self.server.http_factory)


def listen_for_handoffs(server: daphne.server.Server, path: str) -> None:
    """Listen on ``path`` (replacing a socket file a previous run of this process left behind)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    # A burst of upgrades (a fleet of monitors reconnecting) must queue, not be refused: a deep backlog.
    reactor.listenUNIX(path, HandoffFactory(server), backlog=1024, mode=0o600)
    logger.info("accepting WebSocket handoffs on %s", path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handoff", required=True, help="Unix socket path gunicorn hands WebSockets to")
    parser.add_argument("-e", "--endpoint", action="append", default=[], help="daphne endpoint (repeatable)")
    parser.add_argument("--websocket-max-message-size", type=int, default=1024 * 1024)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "seedproject.settings.base")
    from seedproject.asgi import application  # sets Django up

    endpoints = args.endpoint or [f"unix:{args.handoff}.http"]
    server = daphne.server.Server(
        application=application,
        endpoints=endpoints,
        action_logger=AccessLogGenerator(sys.stdout),
        websocket_max_message_size=args.websocket_max_message_size,
        websocket_max_frame_size=args.websocket_max_message_size,
        websocket_connect_timeout=5,
        websocket_handshake_timeout=5,
    )
    server.ready_callable = lambda: listen_for_handoffs(server, args.handoff)
    server.run()
    if server.abort_start:
        sys.exit(1)


if __name__ == "__main__":
    main()
