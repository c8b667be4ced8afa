"""gunicorn -> daphne WebSocket handoff (seedproject.handoff), with real sockets on loopback."""

import json
import socket
from pathlib import Path

import pytest

from seedproject.handoff import WebSocketHandoff, raw_request

UPGRADE_HEADERS = {
    "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_UPGRADE": "websocket",
    "HTTP_CONNECTION": "Upgrade",
    "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
    "HTTP_SEC_WEBSOCKET_VERSION": "13",
    "HTTP_AUTHORIZATION": "Bearer emp_secret",
}


def environ(**extra) -> dict:
    return {
        "REQUEST_METHOD": "GET",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/api/v1/multi-instance/monitor",
        "QUERY_STRING": "",
        **UPGRADE_HEADERS,
        **extra,
    }


def test_raw_request_gives_back_the_request_head_gunicorn_read():
    head = raw_request(environ(RAW_URI="/api/v1/collaboration/employees/dev%20001/monitor?token=a%2Bb"))
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "GET /api/v1/collaboration/employees/dev%20001/monitor?token=a%2Bb HTTP/1.1"
    assert "Sec-Websocket-Key: dGhlIHNhbXBsZSBub25jZQ==" in lines
    assert "Authorization: Bearer emp_secret" in lines
    assert "Upgrade: websocket" in lines
    assert head.endswith(b"\r\n\r\n")


def test_raw_request_without_raw_uri_uses_path_and_query_and_keeps_latin1_bytes():
    head = raw_request(environ(QUERY_STRING="a=1", HTTP_X_NAME="caf\xe9"))
    assert head.startswith(b"GET /api/v1/multi-instance/monitor?a=1 HTTP/1.1\r\n")
    assert b"X-Name: caf\xe9\r\n" in head


@pytest.fixture
def tcp_pair():
    """(client, server-side connection) over loopback, as gunicorn would hold it."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    client.settimeout(5)
    yield client, accepted
    client.close()
    accepted.close()


@pytest.fixture
def daphne_stand_in(tmp_path: Path):
    """A Unix socket where a handoff can be received (what seedproject.wsserver listens on)."""
    path = str(tmp_path / "daphne-1.handoff")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    listener.settimeout(5)
    yield path, listener
    listener.close()


def _receive_handoff(listener: socket.socket) -> tuple[bytes, list[int]]:
    channel, _ = listener.accept()
    with channel:
        data, fds, _flags, _addr = socket.recv_fds(channel, 65536, 4)
        while chunk := channel.recv(65536):
            data += chunk
    return data, fds


def test_an_upgrade_is_handed_over_with_the_client_connection_and_gunicorn_keeps_a_dead_end(tcp_pair, daphne_stand_in):
    client, accepted = tcp_pair
    path, listener = daphne_stand_in
    app_calls = []
    middleware = WebSocketHandoff(lambda env, start: app_calls.append(env) or [], [path])
    statuses = []

    body = middleware(
        environ(RAW_URI="/api/v1/multi-instance/monitor", **{"gunicorn.socket": accepted}),
        lambda status, headers: statuses.append(status),
    )

    assert app_calls == []  # Django never sees the upgrade
    assert list(body) == []
    assert statuses == ["101 Switching Protocols"]
    data, fds = _receive_handoff(listener)
    assert data.startswith(b"GET /api/v1/multi-instance/monitor HTTP/1.1\r\n")
    (fd,) = fds
    with socket.socket(fileno=fd) as adopted:
        # What gunicorn does to its descriptor afterwards cannot reach the client...
        with pytest.raises(OSError):
            accepted.sendall(b"HTTP/1.1 101 gunicorn's answer\r\n\r\n")
        accepted.close()
        # ...while the handed-over descriptor is the client's live connection, both ways.
        adopted.sendall(b"from daphne")
        assert client.recv(100) == b"from daphne"
        client.sendall(b"from the client")
        assert adopted.recv(100) == b"from the client"


def test_without_a_listening_daphne_the_upgrade_gets_a_503_and_the_connection_stays_gunicorns(tcp_pair, tmp_path: Path):
    client, accepted = tcp_pair
    middleware = WebSocketHandoff(lambda env, start: [], [str(tmp_path / "nobody.handoff")])
    statuses = []

    body = b"".join(middleware(environ(**{"gunicorn.socket": accepted}), lambda s, h: statuses.append(s)))

    assert statuses == ["503 Service Unavailable"]
    assert json.loads(body) == {
        "success": False,
        "error": "The WebSocket server is not available.",
        "code": "unavailable",
        "details": {},
    }
    accepted.sendall(b"still connected")
    assert client.recv(100) == b"still connected"


def test_handoffs_take_turns_over_daphnes_and_skip_one_that_is_down(tcp_pair, tmp_path: Path, daphne_stand_in):
    path, listener = daphne_stand_in
    middleware = WebSocketHandoff(lambda env, start: [], [str(tmp_path / "down.handoff"), path])
    for _ in range(2):  # whichever daphne is first in turn, the live one gets it
        with socket.create_server(("127.0.0.1", 0)) as server:
            client = socket.create_connection(server.getsockname())
            accepted, _ = server.accept()
        with client, accepted:
            middleware(environ(**{"gunicorn.socket": accepted}), lambda s, h: None)
            _data, fds = _receive_handoff(listener)
            for fd in fds:
                socket.socket(fileno=fd).close()
            assert len(fds) == 1


def test_plain_requests_and_non_gunicorn_servers_go_to_django_untouched(tcp_pair):
    _client, accepted = tcp_pair
    seen = []
    middleware = WebSocketHandoff(lambda env, start: seen.append(env["PATH_INFO"]) or [b"ok"], ["/nonexistent"])
    plain = environ(**{"gunicorn.socket": accepted})
    del plain["HTTP_UPGRADE"]
    assert middleware(plain, None) == [b"ok"]
    assert middleware(environ(), None) == [b"ok"]  # no gunicorn.socket: nothing to hand over
    assert seen == ["/api/v1/multi-instance/monitor"] * 2


def test_the_wsgi_application_hands_over_only_when_runseed_names_handoff_sockets(monkeypatch):
    app = object()
    monkeypatch.delenv("SEED_WS_HANDOFF", raising=False)
    assert WebSocketHandoff.wrap_from_environment(app) is app
    monkeypatch.setenv("SEED_WS_HANDOFF", "/run/a.handoff:/run/b.handoff")
    wrapped = WebSocketHandoff.wrap_from_environment(app)
    assert wrapped.app is app
    assert wrapped.paths == ["/run/a.handoff", "/run/b.handoff"]
