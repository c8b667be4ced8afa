"""daphne answers a request it cannot parse the way the API answers any bad input: 400 with a JSON error body.

Twisted's HTTP channel (under daphne) drops the connection without a word when a request line or a header
line is longer than 16 KiB, and answers other unparsable requests with a bare ``400`` (no body, no content
type). A client then sees a network error instead of ``{success: false, error, code}`` (schemathesis found
a 30 KB query string). Imported by ``seedproject.asgi``, so every daphne process of a Seed server (the
embedded default's, and the WebSocket one behind gunicorn) answers these properly before it closes.
"""

import json

from twisted.web import http

from seedproject.api import error_body


def _bad_request(message: str) -> bytes:
    body = json.dumps(error_body(message, "invalid")).encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _line_too_long(channel: http.HTTPChannel, line: bytes) -> None:
    what = "request line" if getattr(channel, "_HTTPChannel__first_line", True) else "header line"
    channel.transport.write(_bad_request(f"The {what} is longer than {channel.MAX_LENGTH} bytes."))
    channel.loseConnection()


def _unparsable(channel: http.HTTPChannel) -> None:
    channel.transport.write(_bad_request("The request could not be parsed as HTTP/1.1."))
    channel.loseConnection()


http.HTTPChannel.lineLengthExceeded = _line_too_long
http.HTTPChannel._respondToBadRequestAndDisconnect = _unparsable
