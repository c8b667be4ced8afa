"""Requests daphne's HTTP channel cannot parse get the API's JSON 400 before the connection closes."""

import json

import pytest
from twisted.internet.testing import StringTransport
from twisted.web import http

import seedproject.asgi  # noqa: F401 - installs the answers, as in every daphne process of a server


def _answer(raw: bytes) -> tuple[bytes, dict, StringTransport]:
    channel = http.HTTPChannel()
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(raw)
    head, _, body = transport.value().partition(b"\r\n\r\n")
    return head, json.loads(body), transport


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (b"GET /api/v1/multi-instance/instances/loadbalance?q=" + b"x" * 40_000 + b" HTTP/1.1\r\n", "request line"),
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"y" * 20_000 + b"\r\n\r\n", "header line"),
    ],
)
def test_a_line_too_long_gets_a_json_400_not_a_dropped_connection(raw, what):
    head, body, transport = _answer(raw)
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Type: application/json" in head
    assert body == {
        "success": False,
        "error": f"The {what} is longer than 16384 bytes.",
        "code": "invalid",
        "details": {},
    }
    assert transport.disconnecting


def test_a_request_twisted_cannot_parse_gets_a_json_400():
    head, body, transport = _answer(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: banana\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert body["success"] is False and body["code"] == "invalid"
    assert transport.disconnecting
