"""Monitor events cross processes and servers through the Redis channel layer (real servers, real sockets)."""

import asyncio
import json
import time
from collections.abc import Callable

import aiohttp
import httpx
import pytest

from tests.e2e.harness import fake_instance

pytestmark = [pytest.mark.e2e, pytest.mark.services]


async def _frames_until(ws: aiohttp.ClientWebSocketResponse, predicate: Callable[[dict], bool], timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        assert message.type == aiohttp.WSMsgType.TEXT, f"socket ended: {message}"
        frame = json.loads(message.data)
        if predicate(frame):
            return frame
    raise AssertionError("no matching frame")


def _status_of(port: int) -> Callable[[dict], str | None]:
    def status(frame: dict) -> str | None:
        return next((i["status"] for i in frame.get("instances", []) if i["port"] == port), None)

    return status


def test_a_monitor_on_one_server_sees_changes_made_through_another_and_by_the_worker(pg_cluster):
    server_a, server_b = pg_cluster().start(2)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"ws://127.0.0.1:{server_a.port}/api/v1/multi-instance/monitor")
            first = await _frames_until(ws, lambda f: f["type"] == "cluster_update", timeout=10)
            with fake_instance() as instance:
                port = instance.server_address[1]
                status = _status_of(port)
                registered = httpx.post(
                    f"{server_b.url}/api/v1/multi-instance/instances", json={"host": "127.0.0.1", "port": port}
                )
                assert registered.status_code == 201, registered.text
                seen = await _frames_until(ws, lambda f: status(f) == "active", timeout=10)
                assert seen["seq"] > first["seq"]
            # The instance is gone: the health pass in a Celery worker marks it, and the event reaches A.
            await _frames_until(ws, lambda f: status(f) == "unhealthy", timeout=30)
            await ws.close()

    asyncio.run(scenario())


def test_an_idle_monitor_socket_survives_longer_than_redis_socket_timeouts(pg_cluster):
    """channels-redis with redis-py 8 dropped idle sockets every few seconds (channels_redis#422)."""
    (server,) = pg_cluster().start(1)
    quiet = httpx.put(
        f"{server.url}/api/v1/multi-instance/cluster/config", json={"heartbeat_interval": 30, "instance_timeout": 90}
    )
    assert quiet.status_code == 200, quiet.text

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"ws://127.0.0.1:{server.port}/api/v1/multi-instance/monitor")
            await _frames_until(ws, lambda f: f["type"] == "cluster_update", timeout=10)
            await asyncio.sleep(16)  # idle: no periodic frame is due for 30 s
            with fake_instance() as instance:
                port = instance.server_address[1]
                httpx.post(f"{server.url}/api/v1/multi-instance/instances", json={"host": "127.0.0.1", "port": port})
                await _frames_until(ws, lambda f: _status_of(port)(f) == "active", timeout=10)
            await ws.close()

    asyncio.run(scenario())
