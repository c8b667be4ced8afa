"""The employee monitor socket, with Channels' WebsocketCommunicator (run through async_to_sync: no asyncio plugin)."""

import functools

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from collaboration import selectors, services
from collaboration.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)

application = URLRouter(websocket_urlpatterns)


def sync(test):
    """Run an async test body on an event loop (pytest has no asyncio plugin here)."""

    @functools.wraps(test)
    def runner():
        async_to_sync(test)()

    return runner


def monitor(employee_id: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/api/v1/collaboration/employees/{employee_id}/monitor")


@database_sync_to_async
def setup_pair() -> None:
    services.employee_register(employee_id="dev_001", role="developer")
    services.employee_register(employee_id="qa_001", role="qa_engineer")
    services.connection_create(employee_id="dev_001", target_employee_id="qa_001")


@database_sync_to_async
def send_task() -> str:
    message, _ = services.message_send(
        sender_id="dev_001", receiver_id="qa_001", message_type="task_request", action="test_code", priority=3
    )
    return str(message.pk)


@sync
async def test_snapshot_on_connect():
    await setup_pair()
    ws = monitor("qa_001")
    connected, _ = await ws.connect()
    assert connected
    frame = await ws.receive_json_from(timeout=5)
    assert frame["type"] == "employee_update"
    assert frame["stats"]["employee_id"] == "qa_001" and frame["stats"]["connections"] == 1
    assert set(frame["stats"]["message_stats"]) >= {"sent", "received", "acked", "queued", "expired", "dead"}
    await ws.disconnect()


@sync
async def test_message_frame_and_update_after_a_send():
    await setup_pair()
    ws = monitor("qa_001")
    await ws.connect()
    await ws.receive_json_from(timeout=5)  # snapshot
    message_id = await send_task()
    arrived = await ws.receive_json_from(timeout=5)
    assert arrived["type"] == "message"
    assert arrived["message"]["id"] == message_id and arrived["message"]["action"] == "test_code"
    update = await ws.receive_json_from(timeout=5)
    assert update["type"] == "employee_update"
    assert update["stats"]["message_stats"]["queued"] == 1 and update["stats"]["queue_depth"]["3"] == 1
    assert update["seq"] > arrived["seq"]
    await ws.disconnect()


@sync
async def test_sender_monitor_sees_its_sent_count():
    await setup_pair()
    ws = monitor("dev_001")
    await ws.connect()
    await ws.receive_json_from(timeout=5)
    await send_task()
    update = await ws.receive_json_from(timeout=5)
    assert update["type"] == "employee_update" and update["stats"]["message_stats"]["sent"] == 1
    await ws.disconnect()


@sync
async def test_unknown_employee_closes_with_4404():
    ws = monitor("ghost")
    connected, _ = await ws.connect()
    assert connected  # accepted first so that browsers see the close code
    closing = await ws.receive_output(timeout=5)
    assert closing == {"type": "websocket.close", "code": 4404}


@sync
async def test_bad_frames_get_an_error_and_the_socket_stays_open():
    await setup_pair()
    ws = monitor("qa_001")
    await ws.connect()
    await ws.receive_json_from(timeout=5)
    await ws.send_to(text_data="{not json")
    error = await ws.receive_json_from(timeout=5)
    assert error["type"] == "error"
    await ws.send_json_to({"action": "dance"})
    assert (await ws.receive_json_from(timeout=5))["type"] == "error"
    await ws.send_to(bytes_data=b"\x00")
    assert (await ws.receive_json_from(timeout=5))["type"] == "error"
    await ws.send_json_to({"action": "snapshot"})
    snapshot = await ws.receive_json_from(timeout=5)
    assert snapshot["type"] == "employee_update" and snapshot["stats"]["employee_id"] == "qa_001"
    await ws.disconnect()


async def _connected(employee_id: str) -> tuple[WebsocketCommunicator, dict]:
    ws = monitor(employee_id)
    connected, _ = await ws.connect()
    assert connected
    return ws, await ws.receive_json_from(timeout=5)


async def _next_of_type(ws: WebsocketCommunicator, frame_type: str) -> dict:
    """Skip the stats updates that every change also pushes."""
    for _ in range(10):
        frame = await ws.receive_json_from(timeout=5)
        if frame["type"] == frame_type:
            return frame
    raise AssertionError(f"no {frame_type} frame")


@sync
async def test_receive_and_ack_over_the_socket():
    await setup_pair()
    message_id = await send_task()
    ws, _ = await _connected("qa_001")

    await ws.send_json_to({"action": "receive", "limit": 5})
    leased = await _next_of_type(ws, "messages")
    assert [m["id"] for m in leased["messages"]] == [message_id]
    assert leased["messages"][0]["status"] == "leased"

    await ws.send_json_to({"action": "ack", "id": message_id})
    acked = await _next_of_type(ws, "acked")
    assert acked["ids"] == [message_id]
    stats = await database_sync_to_async(lambda: selectors.employee_stats(employee_id="qa_001"))()
    assert stats["message_stats"]["acked"] == 1

    await ws.send_json_to({"action": "receive", "limit": 0})
    error = await _next_of_type(ws, "error")
    assert error["code"] == "invalid" and "limit" in error["details"]
    await ws.send_json_to({"action": "ack", "id": "00000000-0000-0000-0000-000000000000"})
    assert (await _next_of_type(ws, "error"))["code"] == "not_found"
    await ws.send_json_to({"action": "snapshot"})  # still open after errors
    assert (await _next_of_type(ws, "employee_update"))["stats"]["employee_id"] == "qa_001"
    await ws.disconnect()


@sync
async def test_event_seq_grows_by_one_and_snapshots_do_not_consume_it():
    await setup_pair()
    ws, first = await _connected("qa_001")
    await send_task()
    seqs = [(await ws.receive_json_from(timeout=5))["seq"] for _ in range(2)]  # message + stats update
    assert seqs == [first["seq"] + 1, first["seq"] + 2]
    await ws.send_json_to({"action": "snapshot"})
    assert (await ws.receive_json_from(timeout=5))["seq"] == seqs[-1]
    await ws.disconnect()


@sync
async def test_periodic_snapshot_every_heartbeat_interval():
    from instances.services import cluster_config_update

    await setup_pair()
    await database_sync_to_async(cluster_config_update)(heartbeat_interval=1, instance_timeout=3)
    ws, first = await _connected("qa_001")
    periodic = await ws.receive_json_from(timeout=5)  # nothing changed: the periodic snapshot
    assert periodic["type"] == "employee_update"
    assert periodic["seq"] == first["seq"]
    await ws.disconnect()
