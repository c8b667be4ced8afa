"""`manage.py runseed` as an operator runs it: real processes, real signals."""

import socket

import httpx
import psutil
import pytest

from tests.e2e.harness import wait_for

pytestmark = pytest.mark.e2e

CLUSTERS = [
    pytest.param("embedded_cluster", id="embedded"),
    pytest.param("pg_cluster", id="postgres-redis", marks=pytest.mark.services),
]


def _port_refuses(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_server_answers_health_registers_itself_and_heartbeats_real_figures(embedded_cluster):
    (server,) = embedded_cluster().start(1)

    health = httpx.get(f"{server.url}/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["database"]["ok"] is True

    def heartbeat_with_figures():
        instance = server.own_instance()
        return instance if instance["cpu_usage"] is not None and instance["memory_usage"] is not None else None

    instance = wait_for(heartbeat_with_figures, timeout=15, what="a heartbeat carrying CPU and memory figures")
    assert instance["status"] == "active"
    assert instance["host"] == "127.0.0.1"
    assert instance["metadata"]["seed_server"] is True
    assert 0 <= instance["memory_usage"] <= 100
    assert instance["connections"] >= 0


def test_sigterm_stops_every_process_and_deregisters_the_server(embedded_cluster):
    cluster = embedded_cluster()
    leaving, staying = cluster.start(2)
    children = leaving.descendants()
    assert len(children) >= 3, f"expected daphne, worker and beat, got {children}"

    assert leaving.terminate() == 0, leaving.log_tail()

    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"processes left running after SIGTERM: {alive}"
    assert _port_refuses(leaving.port)
    ports = {i["port"] for i in httpx.get(f"{staying.url}/api/v1/multi-instance/instances").json()["instances"]}
    assert leaving.port not in ports
    assert staying.port in ports


def test_sigkill_of_the_supervisor_leaves_no_orphan_serving_traffic(embedded_cluster):
    (server,) = embedded_cluster().start(1)
    children = server.descendants()
    assert len(children) >= 3, f"expected daphne, worker and beat, got {children}"

    server.kill_supervisor()

    _gone, alive = psutil.wait_procs(children, timeout=45)  # a loaded machine may take a while to reap
    assert not alive, f"orphans after SIGKILL of the supervisor: {alive}"
    assert _port_refuses(server.port)


@pytest.mark.parametrize("cluster_fixture", CLUSTERS)
def test_exactly_one_beat_per_cluster_and_a_standby_takes_over(cluster_fixture, request):
    cluster = request.getfixturevalue(cluster_fixture)()
    first, second = cluster.start(2)

    def leaders():
        holding = [s for s in (first, second) if "beat lock acquired" in s.log_path.read_text(errors="replace")]
        return holding if len(holding) == 1 and "standing by" in cluster.logs() else None

    (leader,) = wait_for(leaders, timeout=20, what="one beat leader and one standby")
    standby = second if leader is first else first

    leader.terminate()
    wait_for(
        lambda: "beat lock acquired" in standby.log_path.read_text(errors="replace"),
        timeout=20,
        what="the standby to take the beat lock over",
    )


def test_an_oversized_websocket_message_is_refused_by_the_server(embedded_cluster):
    import asyncio

    import aiohttp

    (server,) = embedded_cluster(SEED_WS_MAX_MESSAGE_BYTES="4096").start(1)

    async def send_frame(size: int) -> aiohttp.WSMessage:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"ws://127.0.0.1:{server.port}/api/v1/multi-instance/monitor")
            await ws.receive(timeout=10)  # the snapshot
            await ws.send_str('{"action": "snapshot", "pad": "' + "x" * size + '"}')
            return await ws.receive(timeout=10)

    small = asyncio.run(send_frame(1_000))
    assert small.type == aiohttp.WSMsgType.TEXT  # answered with a snapshot
    big = asyncio.run(send_frame(10_000))
    # autobahn fails the connection (1009 "too big", or 1006 when it drops it without a close frame)
    assert big.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
