"""The cluster monitor socket (async scenarios run through async_to_sync: no asyncio plugin needed)."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from instances.consumers import ClusterMonitorConsumer
from instances.models import Instance
from instances.services import cluster_config_update, instance_register, instances_check_health
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


@database_sync_to_async
def make_stale(instance, seconds=3600):
    past = timezone.now() - timedelta(seconds=seconds)
    Instance.objects.filter(pk=instance.pk).update(last_heartbeat=past, registered_at=past)


async def _test_health_pass_pushes_a_status_change():
    instance = await register(9003)  # nothing listens there: the probe fails
    await make_stale(instance)
    communicator = await connect()
    first = await communicator.receive_json_from()
    await database_sync_to_async(instances_check_health)()
    update = await communicator.receive_json_from(timeout=5)
    assert update["type"] == "cluster_update"
    assert [i["status"] for i in update["instances"]] == ["unhealthy"]
    assert update["seq"] == first["seq"] + 1
    assert update["events"][0]["to_status"] == "unhealthy"
    await communicator.disconnect()


async def _test_snapshots_carry_the_current_seq_without_consuming_one():
    await register(9004)
    first, second = await connect(), await connect()
    a = await first.receive_json_from()
    b = await second.receive_json_from()
    await first.send_json_to({"action": "snapshot"})
    again = await first.receive_json_from()
    assert a["seq"] == b["seq"] == again["seq"]  # no gap for the other socket
    await first.disconnect()
    await second.disconnect()


async def _test_periodic_snapshot_every_heartbeat_interval():
    await database_sync_to_async(cluster_config_update)(heartbeat_interval=1, instance_timeout=3)
    communicator = await connect()
    first = await communicator.receive_json_from()
    periodic = await communicator.receive_json_from(timeout=5)  # nothing changed: the periodic snapshot
    assert periodic["type"] == "cluster_update"
    assert periodic["seq"] == first["seq"]
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


def test_health_pass_pushes_a_status_change():
    async_to_sync(_test_health_pass_pushes_a_status_change)()


def test_snapshots_carry_the_current_seq_without_consuming_one():
    async_to_sync(_test_snapshots_carry_the_current_seq_without_consuming_one)()


def test_periodic_snapshot_every_heartbeat_interval():
    async_to_sync(_test_periodic_snapshot_every_heartbeat_interval)()


def test_snapshot_action_and_bad_frames():
    async_to_sync(_test_snapshot_action_and_bad_frames)()


def test_route_is_served_by_the_asgi_application():
    async_to_sync(_test_route_is_served_by_the_asgi_application)()


async def group_size(group: str) -> int:
    """Members of a channel-layer group, on the in-memory layer or on Redis (channels-redis' sorted set)."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if hasattr(layer, "groups"):
        return len(layer.groups.get(group, {}))
    async with layer.connection(layer.consistent_hash(group)) as connection:
        return await connection.zcard(layer._group_key(group))


async def _test_many_sockets_in_one_process_are_one_group_member_and_all_get_each_update():
    sockets = [await connect() for _ in range(3)]
    for socket in sockets:
        await socket.receive_json_from()  # snapshot
    # One relay channel in the group, not one per socket: an event is one layer message per process.
    assert await group_size("cluster") == 1
    await register(9010)
    updates = [await socket.receive_json_from(timeout=5) for socket in sockets]
    assert {u["instances"][0]["port"] for u in updates} == {9010}
    assert len({u["seq"] for u in updates}) == 1  # the same frame, encoded once

    for socket in sockets[:2]:
        await socket.disconnect()
    assert await group_size("cluster") == 1  # the last socket still listens
    await register(9011)
    assert (await sockets[2].receive_json_from(timeout=5))["cluster_stats"]["total_instances"] == 2
    await sockets[2].disconnect()
    for _ in range(50):  # the relay leaves the group once the process has no socket left
        if not await group_size("cluster"):
            break
        await asyncio.sleep(0.02)
    assert await group_size("cluster") == 0


def test_many_sockets_in_one_process_are_one_group_member_and_all_get_each_update():
    async_to_sync(_test_many_sockets_in_one_process_are_one_group_member_and_all_get_each_update)()
