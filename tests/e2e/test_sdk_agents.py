"""SDK agents (collaboration.client) against real `runseed` servers (issue 5's "must show")."""

import asyncio
import contextlib
import functools
from collections import Counter

import httpx
import pytest

from collaboration.client import Backoff, CollaborationProtocol, EmployeeRole, RequestTimeout
from tests.e2e.harness import wait_for

pytestmark = pytest.mark.e2e

API = "/api/v1/collaboration"
# Generous bounds: they only stop a broken test from hanging, they are not timing assertions.
PATIENCE = 30


def aio(test):
    """Run an async test on its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(test(*args, **kwargs))

    return run


def agent(employee_id: str, role: EmployeeRole, seed_urls: list[str], **options) -> CollaborationProtocol:
    defaults = {"poll_interval": 0.5, "long_poll_wait": 2, "backoff": Backoff(base=0.1, cap=1, attempts=8)}
    return CollaborationProtocol(employee_id, role, seed_urls=seed_urls, **{**defaults, **options})


async def until(predicate, what: str, timeout: float = PATIENCE) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def inbox(url: str, employee_id: str) -> list[dict]:
    response = httpx.get(f"{url}{API}/employees/{employee_id}/messages?limit=100", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


@aio
async def test_dispatch_by_action_ack_after_success_and_redelivery_after_a_handler_exception(embedded_cluster):
    cluster = embedded_cluster(SEED_LEASE_SECONDS="2")
    (server,) = cluster.start(1)
    calls: list[tuple[str, int]] = []
    dev = agent("dev_001", EmployeeRole.DEVELOPER, [server.url])
    qa = agent("qa_001", EmployeeRole.QA_ENGINEER, [server.url])

    @qa.handler("test_code")
    async def test_code(message):
        calls.append(("test_code", message.delivery_count))

    @qa.handler("review")
    async def review(message):
        calls.append(("review", message.delivery_count))
        if message.delivery_count == 1:
            raise RuntimeError("first attempt fails")

    async with qa, dev:
        await until(lambda: qa.socket_connected, "the monitor socket")
        await dev.connect("qa_001")
        sent_ok = await dev.send("qa_001", "test_code", {"file_path": "src/main.py"})
        sent_flaky = await dev.send("qa_001", "review", {"pr": 7})
        await until(lambda: ("review", 2) in calls, "the failed message to come back", timeout=PATIENCE)
        statuses = {}

        def all_acked() -> bool:
            statuses.update({m["id"]: m for m in inbox(server.url, "qa_001")})
            return all(m["status"] == "acked" for m in statuses.values()) and len(statuses) == 2

        await until(all_acked, "both messages acked")
    assert sorted(calls) == [("review", 1), ("review", 2), ("test_code", 1)]  # dispatched by action
    assert statuses[sent_ok.header.id]["delivery_count"] == 1  # acked after the first, successful run
    assert statuses[sent_flaky.header.id]["delivery_count"] == 2  # not acked after the exception: redelivered


@aio
async def test_request_reply_correlation_and_timeout(embedded_cluster):
    (server,) = embedded_cluster().start(1)
    dev = agent("dev_001", EmployeeRole.DEVELOPER, [server.url])
    qa = agent("qa_001", EmployeeRole.QA_ENGINEER, [server.url])

    @qa.handler("test_code")
    async def test_code(message):
        await qa.reply(message, {"file_path": message.payload.data["file_path"], "passed": True})

    @qa.handler("run_suite")
    async def run_suite(message):
        return {"suite": message.payload.data["suite"]}  # returned data is the reply

    @qa.handler("slow")
    async def slow(message):
        await asyncio.sleep(3)

    async with qa, dev:
        await dev.connect("qa_001")
        answers = await asyncio.gather(
            dev.request("qa_001", "test_code", {"file_path": "a.py"}, timeout=PATIENCE),
            dev.request("qa_001", "test_code", {"file_path": "b.py"}, timeout=PATIENCE),
            dev.request("qa_001", "run_suite", {"suite": "unit"}, timeout=PATIENCE),
        )
        with pytest.raises(RequestTimeout) as caught:
            await dev.request("qa_001", "slow", {}, timeout=1)
    assert [a.payload.data for a in answers] == [
        {"file_path": "a.py", "passed": True},
        {"file_path": "b.py", "passed": True},
        {"suite": "unit"},
    ]
    assert all(a.header.type == "task_response" and a.header.sender == "qa_001" for a in answers)
    assert len({a.header.correlation_id for a in answers}) == 3
    requests = {m["correlation_id"]: m for m in inbox(server.url, "qa_001")}
    assert all(requests[a.header.correlation_id]["data"] for a in answers)  # each answer matches its own request
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.correlation_id in requests


@aio
async def test_role_routing_spreads_requests_over_three_qa_agents_by_queue_depth(embedded_cluster):
    (server,) = embedded_cluster().start(1)
    dev = agent("dev_001", EmployeeRole.DEVELOPER, [server.url])
    qas = [agent(f"qa_{n}", EmployeeRole.QA_ENGINEER, [server.url]) for n in (1, 2, 3)]
    handled: Counter[str] = Counter()
    for qa in qas:
        qa.handler("test_code", lambda message, me=qa.employee_id: handled.update([me]) or {"by": me})
        await qa.register()
    async with dev:
        for qa in qas:
            await dev.connect(qa.employee_id)
        for _ in range(3):  # qa_1 has a backlog of three before any role send
            await dev.send("qa_1", "test_code", {})
        routed = [(await dev.send("role:qa_engineer", "test_code", {"n": n})).header.receiver for n in range(6)]
        assert Counter(routed) == Counter({"qa_2": 3, "qa_3": 3})  # the shorter queues filled first
        routed = [(await dev.send("role:qa_engineer", "test_code", {})).header.receiver for _ in range(3)]
        assert sorted(routed) == ["qa_1", "qa_2", "qa_3"]  # all at depth 3: one each

        async with contextlib.AsyncExitStack() as stack:
            for qa in qas:
                await stack.enter_async_context(qa)
            await until(lambda: sum(handled.values()) == 12, "every routed request handled")
            answers = await asyncio.gather(
                *(dev.request("role:qa_engineer", "test_code", {}, timeout=PATIENCE) for _ in range(6))
            )
    assert handled["qa_1"] >= 4 and handled["qa_2"] >= 4 and handled["qa_3"] >= 4
    assert {a.payload.data["by"] for a in answers} <= {"qa_1", "qa_2", "qa_3"}


async def _survives_server_death(cluster) -> None:
    (first,) = cluster.start(1)
    dev = agent("dev_001", EmployeeRole.DEVELOPER, [first.url], peer_refresh_seconds=0.5)
    qa = agent("qa_001", EmployeeRole.QA_ENGINEER, [first.url], peer_refresh_seconds=0.5)
    qa.handler("test_code", lambda message: {"served": True, "n": message.payload.data["n"]})
    async with qa, dev:
        await dev.connect("qa_001")
        before = await dev.request("qa_001", "test_code", {"n": 1}, timeout=PATIENCE)
        assert dev.transport.current_url == qa.transport.current_url == first.url

        (second,) = await asyncio.to_thread(cluster.start, 1)  # a new Seed server registers itself
        await until(lambda: second.url in dev.transport.peers and second.url in qa.transport.peers, "peers learnt")
        first.cleanup()  # SIGKILL the whole server: supervisor, daphne, worker
        after = [await dev.request("qa_001", "test_code", {"n": n}, timeout=PATIENCE) for n in (2, 3)]
        assert dev.transport.current_url == qa.transport.current_url == second.url
    assert before.payload.data == {"served": True, "n": 1}
    assert [a.payload.data["n"] for a in after] == [2, 3]
    wait_for(lambda: len(inbox(second.url, "qa_001")) == 3, timeout=10, what="three requests in the shared DB")


@aio
async def test_an_agent_keeps_working_when_its_seed_server_dies(embedded_cluster):
    await _survives_server_death(embedded_cluster())


@pytest.mark.services
@aio
async def test_an_agent_keeps_working_when_its_seed_server_dies_on_postgresql(pg_cluster):
    await _survives_server_death(pg_cluster())
