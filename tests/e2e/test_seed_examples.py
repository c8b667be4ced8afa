"""The seed's own client examples and curl commands, run unchanged against `make run`-style servers.

The example files under examples/seed/ are the customer's code, verbatim. Only the ports are
substituted here, because a test cannot assume 8000 and 8001 are free on the machine.
"""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import BASE_DIR

pytestmark = pytest.mark.e2e

EXAMPLES = BASE_DIR / "examples" / "seed"
CLUSTER_STATS_KEYS = {
    "total_instances",
    "healthy_instances",
    "unhealthy_instances",
    "total_connections",
    "avg_cpu_usage",
    "avg_memory_usage",
    "load_balance_strategy",
}


def run_example(name: str, ports: dict[int, int], tmp_path: Path) -> str:
    source = (EXAMPLES / name).read_text()
    for seed_port, real_port in ports.items():
        source = source.replace(f"localhost:{seed_port}", f"localhost:{real_port}")
        source = source.replace(f'"port": {seed_port}', f'"port": {real_port}')
    script = tmp_path / name
    script.write_text(source)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def make_run(embedded_cluster):
    """`make run` (runseed on localhost) plus a second server, as the seed's examples expect."""
    main, second = embedded_cluster().start(2, args=("--host", "localhost"))
    return main, second


def test_multi_instance_examples_and_the_cluster_stats_curl(make_run, tmp_path):
    main, second = make_run
    out = run_example("multi_instance.py", {8000: main.port, 8001: second.port}, tmp_path)

    assert "实例注册结果" in out and "'success': True" in out
    assert "推荐实例: http://localhost:" in out

    stats = httpx.get(f"http://localhost:{main.port}/api/v1/multi-instance/cluster/stats", timeout=5).json()
    assert stats["success"] is True
    assert set(stats["cluster_stats"]) >= CLUSTER_STATS_KEYS
    # The example re-registered the running server on localhost:<second>: updated, not duplicated.
    assert stats["cluster_stats"]["total_instances"] == 2
    registered = httpx.get(f"{main.url}/api/v1/multi-instance/instances", timeout=5).json()["instances"]
    assert {i["port"]: i["weight"] for i in registered}[second.port] == 2  # the example's weight


def test_collaboration_examples_and_the_stats_curls(make_run, tmp_path):
    main, _ = make_run
    out = run_example("collaboration.py", {8000: main.port}, tmp_path)
    assert "协作环境设置完成" in out
    assert "任务请求发送结果" in out and "'success': True" in out

    base = f"http://localhost:{main.port}/api/v1/collaboration"
    employee = httpx.get(f"{base}/employees/dev_001/stats", timeout=5).json()
    assert employee["success"] is True
    assert employee["stats"]["message_stats"]["sent"] == 1
    inbox = httpx.get(f"{base}/employees/qa_001/messages", timeout=5).json()["messages"]
    assert [(m["sender_id"], m["action"], m["priority"]) for m in inbox] == [("dev_001", "test_code", 3)]
    system = httpx.get(f"{base}/system/stats", timeout=5).json()
    assert system["success"] is True
    assert system["stats"]["employees"]["total"] == 2
    assert system["stats"]["connections"] == 1
