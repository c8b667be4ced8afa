"""The ASGI application as a client meets it: origin rules on sockets, HTTP through WSGI."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from seedproject.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/api/v1/multi-instance/monitor"


async def _connects(headers: list[tuple[bytes, bytes]]) -> bool:
    communicator = WebsocketCommunicator(application, PATH, headers=headers)
    connected, _ = await communicator.connect()
    if connected:
        await communicator.disconnect()
    return connected


def test_a_program_without_origin_may_open_a_socket():
    assert async_to_sync(_connects)([(b"host", b"localhost")]) is True


def test_a_browser_page_of_an_allowed_host_may_open_a_socket():
    assert async_to_sync(_connects)([(b"host", b"localhost"), (b"origin", b"http://localhost:8000")]) is True


def test_a_page_of_another_site_may_not():
    assert async_to_sync(_connects)([(b"host", b"localhost"), (b"origin", b"http://evil.example")]) is False
