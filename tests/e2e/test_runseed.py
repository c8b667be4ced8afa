"""`manage.py runseed` as an operator runs it: real processes, real signals."""

import http.client
import re
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


@pytest.mark.parametrize("cluster_fixture", CLUSTERS)
def test_sigterm_stops_every_process_and_deregisters_the_server(cluster_fixture, request):
    cluster = request.getfixturevalue(cluster_fixture)()
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


@pytest.mark.parametrize("cluster_fixture", CLUSTERS)
def test_sigkill_of_the_supervisor_leaves_no_orphan_serving_traffic(cluster_fixture, request):
    (server,) = request.getfixturevalue(cluster_fixture)().start(1)
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


@pytest.mark.parametrize("cluster_fixture", CLUSTERS)
def test_an_oversized_websocket_message_is_refused_by_the_server(cluster_fixture, request):
    import asyncio

    import aiohttp

    (server,) = request.getfixturevalue(cluster_fixture)(SEED_WS_MAX_MESSAGE_BYTES="4096").start(1)

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


def _commands(server) -> list[str]:
    return [" ".join(p.cmdline()) for p in server.descendants() if p.is_running()]


def _monitor_snapshot(port: int, host: str = "127.0.0.1") -> dict:
    import asyncio
    import json

    import aiohttp

    async def snapshot() -> dict:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"ws://{host}:{port}/api/v1/multi-instance/monitor")
            message = await ws.receive(timeout=10)
            await ws.close()
            return json.loads(message.data)

    return asyncio.run(snapshot())


@pytest.mark.services
def test_with_redis_gunicorn_serves_http_and_hands_websockets_to_daphne_on_the_same_port(pg_cluster):
    (server,) = pg_cluster().start(1)
    commands = _commands(server)
    assert any("gunicorn seedproject.wsgi:application" in c for c in commands), commands
    assert any("seedproject.wsserver --handoff" in c for c in commands), commands
    assert not any("-m daphne" in c for c in commands), commands

    assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
    snapshot = _monitor_snapshot(server.port)
    assert snapshot["type"] == "cluster_update"
    assert server.port in {i["port"] for i in snapshot["instances"]}
    # daphne serves the socket with the client's own connection: its access log names the client's port.
    line = re.compile(r"127\.0\.0\.1:\d+ .*WSCONNECT /api/v1/multi-instance/monitor")
    wait_for(
        lambda: line.search(server.log_path.read_text(errors="replace")),
        timeout=5,
        what="daphne's access log line for the socket",
    )


@pytest.mark.services
def test_a_killed_websocket_daphne_is_restarted_and_sockets_work_again(pg_cluster):
    import aiohttp

    (server,) = pg_cluster().start(1)
    (daphne,) = [p for p in server.descendants() if "seedproject.wsserver" in " ".join(p.cmdline())]
    daphne.kill()
    daphne.wait(timeout=10)

    # Until it is back an upgrade gets a clear 503 from gunicorn (never a hang); then sockets work again.
    def upgraded() -> dict | None:
        try:
            return _monitor_snapshot(server.port)
        except (aiohttp.ClientError, TimeoutError):
            return None

    snapshot = wait_for(upgraded, timeout=30, what="a WebSocket through the restarted daphne")
    assert snapshot["type"] == "cluster_update"
    assert "daphne exited" in server.log_path.read_text(errors="replace")
    assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200


def _get_health(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/health")
    response = conn.getresponse()
    response.read()
    return response.status


@pytest.mark.services
def test_kept_alive_connections_lingering_in_threads_never_starve_new_requests(pg_cluster):
    """A thread waits on its kept-alive connection for the next request only while threads are plentiful.

    Two request threads and a 30 s linger: the first idle connection keeps its thread; the second
    thread must go back to serving everyone else (without the reserve, the third connection would wait
    out the linger and time out here).
    """
    cluster = pg_cluster(SEED_HTTP_PROCESSES="1", SEED_HTTP_THREADS="2", SEED_HTTP_KEEPALIVE_LINGER="30")
    (server,) = cluster.start(1)
    lingering = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    assert _get_health(lingering) == 200  # its thread now waits on it (30 s)

    others = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=10) for _ in range(4)]
    for _ in range(3):
        assert [_get_health(conn) for conn in others] == [200] * 4

    # The lingering connection is served again, twice in a row, and two pipelined requests in one write.
    assert [_get_health(lingering), _get_health(lingering)] == [200, 200]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 2)
        received = b""
        while received.count(b"HTTP/1.1 200") < 2 or not received.endswith(b"}"):
            chunk = raw.recv(65536)
            assert chunk, f"connection closed after {received!r}"
            received += chunk
    for conn in [lingering, *others]:
        conn.close()


@pytest.mark.services
def test_kept_alive_connections_are_shared_out_evenly_between_http_workers(pg_cluster):
    """Six clients that each keep one connection open, on two gunicorn workers: three each.

    The kernel wakes whichever worker it likes for a new connection; left to it, a few kept-alive clients
    often all land in one worker, which then serves them on one core while the other idles.
    """
    (server,) = pg_cluster(SEED_HTTP_PROCESSES="2").start(1)
    workers = {
        p.pid
        for p in server.descendants()
        if "gunicorn" in " ".join(p.cmdline()) and p.parent() and "gunicorn" in " ".join(p.parent().cmdline())
    }
    assert len(workers) == 2, _commands(server)

    clients = []
    for _ in range(6):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        assert _get_health(conn) == 200  # accepted, served, kept open
        clients.append(conn)

    def connections_per_worker() -> list[int]:
        ours = {c.sock.getsockname()[1] for c in clients}
        held = {pid: 0 for pid in workers}
        for pid in workers:
            for c in psutil.Process(pid).net_connections(kind="tcp"):
                if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port in ours:
                    held[pid] += 1
        return sorted(held.values())

    assert connections_per_worker() == [3, 3]
    for conn in clients:
        assert _get_health(conn) == 200
        conn.close()
