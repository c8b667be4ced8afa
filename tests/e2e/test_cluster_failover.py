"""Three Seed servers sharing PostgreSQL + Redis behave as one registry (issue: multi-instance)."""

from collections import Counter

import httpx
import pytest

from tests.e2e.harness import SeedProcess, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.services]

HEARTBEAT_INTERVAL = 1  # FAST_TIMINGS in harness.py
INSTANCE_TIMEOUT = 3
# Beat fires the check at most every heartbeat_interval; a standby beat needs up to ~2 s to take over
# when the killed server held the lock; the machine is noisy. The behaviour, not the stopwatch, is tested.
FAILOVER_SLACK = 12


def _pick(server: SeedProcess, strategy: str = "round_robin") -> dict:
    response = httpx.get(f"{server.url}/api/v1/multi-instance/instances/loadbalance?strategy={strategy}", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def _status(server: SeedProcess, instance_id: str) -> str:
    return httpx.get(f"{server.url}/api/v1/multi-instance/instances/{instance_id}", timeout=5).json()["instance"][
        "status"
    ]


def test_three_servers_rotate_as_one_fail_over_a_killed_server_and_take_it_back(pg_cluster):
    cluster = pg_cluster()
    servers = cluster.start(3)
    ids = {s.port: s.own_instance()["id"] for s in servers}
    wait_for(
        lambda: all(_status(servers[0], i) == "active" for i in ids.values()),
        timeout=15,
        what="all three servers active",
    )

    # 30 round-robin picks made through alternating servers: the position is shared, so 10 each.
    picks = Counter(_pick(servers[n % 3])["instance"]["id"] for n in range(30))
    assert picks == Counter({i: 10 for i in ids.values()}), cluster.logs()

    # One server crashes (SIGKILL of its supervisor): the others stop handing it out.
    victim, survivors = servers[2], servers[:2]
    victim_id = ids[victim.port]
    victim.kill_supervisor()
    wait_for(
        lambda: _status(survivors[0], victim_id) == "unhealthy",
        timeout=INSTANCE_TIMEOUT + HEARTBEAT_INTERVAL + FAILOVER_SLACK,
        what="the killed server to be marked unhealthy",
    )
    after_failover = Counter(_pick(survivors[n % 2])["instance"]["id"] for n in range(20))
    assert victim_id not in after_failover
    assert set(after_failover) == {ids[s.port] for s in survivors}

    # It restarts on the same port: same registry entry, active again, handed out again.
    (restarted,) = cluster.start(1, port=victim.port)
    assert restarted.own_instance()["id"] == victim_id
    wait_for(lambda: _status(survivors[0], victim_id) == "active", timeout=15, what="the restarted server active")
    assert victim_id in {_pick(survivors[0])["instance"]["id"] for _ in range(6)}
