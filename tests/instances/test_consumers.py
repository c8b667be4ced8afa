"""The cluster monitor socket (async scenarios run through async_to_sync: no asyncio plugin needed)."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from instances.consumers import ClusterMonitorConsumer
from instances.services import instance_register, instances_check_health
from seedproject.asgi import application

PATH = "/api/v1/multi-instance/monitor"

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def register(port):
    return instance_register(host="127.0.0.1", port=port, verify=False)[0]


async def connect():
    communicator = WebsocketCommunicator(ClusterMonitorConsumer.as_asgi(), PATH)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _test_snapshot_on_connect():
    await register(9001)
    communicator = await connect()
    frame = await communicator.receive_json_from()
    assert frame["type"] == "cluster_update"
    assert frame["cluster_stats"]["total_instances"] == 1
    assert [i["port"] for i in frame["instances"]] == [9001]
    assert frame["instances"][0]["url"] == "http://127.0.0.1:9001"
    assert isinstance(frame["seq"], int)
    await communicator.disconnect()


async def _test_registration_pushes_an_update():
    communicator = await connect()
    first = await communicator.receive_json_from()
    assert first["cluster_stats"]["total_instances"] == 0
    await register(9002)
    update = await communicator.receive_json_from(timeout=5)
    assert update["type"] == "cluster_update"
    assert update["cluster_stats"]["total_instances"] == 1
    assert update["instances"][0]["port"] == 9002
    assert update["seq"] > first["seq"]
    await communicator.disconnect()


async def _test_health_pass_pushes_an_update():
    await register(9003)
    communicator = await connect()
    await communicator.receive_json_from()
    await database_sync_to_async(instances_check_health)()
    update = await communicator.receive_json_from(timeout=5)
    assert update["type"] == "cluster_update"
    await communicator.disconnect()


async def _test_snapshot_action_and_bad_frames():
    communicator = await connect()
    await communicator.receive_json_from()
    await communicator.send_json_to({"action": "snapshot"})
    assert (await communicator.receive_json_from())["type"] == "cluster_update"
    await communicator.send_to(text_data="not json")
    assert (await communicator.receive_json_from())["type"] == "error"
    await communicator.send_json_to({"action": "explode"})
    assert (await communicator.receive_json_from())["type"] == "error"
    # Still open: it answers again.
    await communicator.send_json_to({"action": "snapshot"})
    assert (await communicator.receive_json_from())["type"] == "cluster_update"
    await communicator.disconnect()


async def _test_route_is_served_by_the_asgi_application():
    communicator = WebsocketCommunicator(
        application, PATH, headers=[(b"host", b"localhost"), (b"origin", b"http://localhost")]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "cluster_update"
    await communicator.disconnect()


def test_snapshot_on_connect():
    async_to_sync(_test_snapshot_on_connect)()


def test_registration_pushes_an_update():
    async_to_sync(_test_registration_pushes_an_update)()


def test_health_pass_pushes_an_update():
    async_to_sync(_test_health_pass_pushes_an_update)()


def test_snapshot_action_and_bad_frames():
    async_to_sync(_test_snapshot_action_and_bad_frames)()


def test_route_is_served_by_the_asgi_application():
    async_to_sync(_test_route_is_served_by_the_asgi_application)()
