"""WebSockets on the HTTP port: gunicorn hands each WebSocket upgrade over to a daphne process.

On PostgreSQL + Redis ``runseed`` serves plain HTTP with gunicorn's threaded workers and Django's WSGI
handler (ARCHITECTURE.md, "Serving HTTP": the ASGI path costs several times more per request) and keeps
daphne for the sockets only. Both share one port without a proxy: when a request asks to upgrade to a
WebSocket, the WSGI middleware below sends the client's socket (``SCM_RIGHTS``) together with the
request it has already read to a daphne process over a Unix socket. daphne adopts the connection and
replays the request (``seedproject.wsserver``), so from the handshake on the socket is daphne's, exactly
as if daphne had accepted it. gunicorn's own file descriptor is then pointed at a dead end, so whatever
gunicorn writes to it or closes afterwards cannot touch the client's connection.

The Unix sockets live in a directory only the server's user can open (``runseed`` makes it 0700):
anything that can connect there could hand daphne a connection.
"""

import array
import itertools
import json
import logging
import os
import socket
from collections.abc import Callable, Iterable, Sequence

logger = logging.getLogger("seed.handoff")

HANDOFF_ENV = "SEED_WS_HANDOFF"  # os.pathsep-separated handoff socket paths, set by runseed for gunicorn
MAX_HANDOFF_BYTES = 64 * 1024  # a request line + headers; gunicorn refuses bigger ones before we see them
CONNECT_TIMEOUT = 2.0


def raw_request(environ: dict) -> bytes:
    """The request head as it came over the wire, rebuilt from a WSGI environ (without a body).

    gunicorn keeps the request target verbatim in ``RAW_URI``; header names come back from their CGI
    form (``HTTP_SEC_WEBSOCKET_KEY`` -> ``Sec-Websocket-Key``: HTTP header names are case-insensitive,
    and gunicorn drops names that contain ``_``, so the dash is the only spelling). Values are
    latin-1 native strings in WSGI, so latin-1 gives the original bytes back.
    """
    target = environ.get("RAW_URI")
    if not target:
        query = environ.get("QUERY_STRING", "")
        target = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "/") + (f"?{query}" if query else "")
    lines = [f"{environ['REQUEST_METHOD']} {target} {environ.get('SERVER_PROTOCOL', 'HTTP/1.1')}"]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:]
        elif key in {"CONTENT_TYPE", "CONTENT_LENGTH"} and value:
            name = key
        else:
            continue
        lines.append(f"{name.replace('_', '-').title()}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def is_websocket_upgrade(environ: dict) -> bool:
    return environ.get("HTTP_UPGRADE", "").lower() == "websocket"


def hand_over(client: socket.socket, request: bytes, path: str) -> None:
    """Send ``client``'s file descriptor and the request head to the daphne listening at ``path``.

    Returns once the kernel holds the descriptor in flight (daphne gets its own copy); raises OSError
    when nobody listens there.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
        channel.settimeout(CONNECT_TIMEOUT)
        channel.connect(path)
        fds = array.array("i", [client.fileno()])
        sent = channel.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        channel.sendall(request[sent:])  # the descriptor went with the first bytes


def detach(client: socket.socket) -> None:
    """Point ``client``'s descriptor at a dead end, so the caller's later writes and close miss the peer.

    The connection itself stays open: daphne holds another descriptor of it. ``dup2`` swaps the
    descriptor number atomically, so there is no moment at which the number is free for reuse.
    """
    dead_end, other_end = socket.socketpair()
    other_end.close()
    os.dup2(dead_end.fileno(), client.fileno())
    dead_end.close()


class WebSocketHandoff:
    """WSGI middleware: WebSocket upgrades go to daphne (see the module docstring), the rest to ``app``."""

    def __init__(self, app: Callable, paths: Sequence[str]) -> None:
        self.app = app
        self.paths = list(paths)
        self._next = itertools.cycle(range(len(self.paths)))

    @classmethod
    def wrap_from_environment(cls, app: Callable) -> Callable:
        """``app`` wrapped when runseed named handoff sockets (``SEED_WS_HANDOFF``), else ``app`` itself."""
        paths = [p for p in os.environ.get(HANDOFF_ENV, "").split(os.pathsep) if p]
        return cls(app, paths) if paths else app

    def _targets(self) -> Iterable[str]:
        """Every path once, starting with the next in turn: load spread over daphnes, failover past a dead one."""
        start = next(self._next)
        return self.paths[start:] + self.paths[:start]

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        client = environ.get("gunicorn.socket")
        if client is None or not is_websocket_upgrade(environ):
            return self.app(environ, start_response)
        request = raw_request(environ)
        if len(request) > MAX_HANDOFF_BYTES:
            return _error(
                start_response, "431 Request Header Fields Too Large", "Request headers too large.", "too_large"
            )
        for path in self._targets():
            try:
                hand_over(client, request, path)
            except OSError as exc:
                logger.warning("WebSocket handoff to %s failed: %s", path, exc)
                continue
            detach(client)
            # Nobody reads this answer: it goes to the dead end. "close" ends gunicorn's keep-alive there.
            start_response("101 Switching Protocols", [("Connection", "close")])
            return []
        return _error(
            start_response, "503 Service Unavailable", "The WebSocket server is not available.", "unavailable"
        )


def _error(start_response: Callable, status: str, message: str, code: str) -> list[bytes]:
    from seedproject.api import error_body  # at request time: importing DRF needs Django's settings

    body = json.dumps(error_body(message, code)).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
