"""The agent SDK (collaboration.client) against a fake Seed server behind httpx.MockTransport: no Django."""

import asyncio
import functools
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from collaboration.client import (
    Backoff,
    CollaborationProtocol,
    EmployeeRole,
    InboxBuffer,
    RequestTimeout,
    SeedAPIError,
    SeedTransport,
    SeedUnavailable,
)

FAST = Backoff(base=0.001, cap=0.01, attempts=4)
A, B = "http://seed-a:8000", "http://seed-b:8000"
ID_A, ID_B = str(uuid.uuid4()), str(uuid.uuid4())


def _message(**fields):
    base = {
        "id": str(uuid.uuid4()),
        "sender_id": "dev_001",
        "receiver_id": "qa_001",
        "message_type": "task_request",
        "action": "test_code",
        "data": {},
        "priority": 2,
        "status": "leased",
        "created_at": "2026-01-01T00:00:00Z",
        "expires_at": "2026-01-01T00:05:00Z",
        "delivery_count": 1,
        "correlation_id": None,
        "conversation_id": None,
    }
    return {**base, **fields}


class FakeSeed:
    """Just enough of the collaboration API: register, send (with message ids), receive, ack; records calls."""

    def __init__(self, *, down: set[str] = frozenset(), fail_first: list[tuple[int, str]] = ()) -> None:
        self.down = set(down)
        self.fail_first = list(fail_first)
        self.calls: list[httpx.Request] = []
        self.inboxes: dict[str, list[dict]] = {}
        self.acked: list[str] = []
        self.sent: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        origin = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        if origin in self.down:
            raise httpx.ConnectError("Connection refused", request=request)
        path = request.url.path
        body = json.loads(request.content) if request.content else {}
        if path.endswith("/instances/loadbalance"):
            excluded = request.url.params.get("exclude", "").split(",")
            pick = (B, ID_B) if ID_A in excluded else (A, ID_A)
            return httpx.Response(200, json={"success": True, "instance": {"id": pick[1]}, "url": pick[0]})
        if path.endswith("/instances"):
            return httpx.Response(200, json={"success": True, "instances": [{"id": ID_A, "url": A}]})
        if self.fail_first:
            status, code = self.fail_first.pop(0)
            return httpx.Response(status, json={"success": False, "error": "nope", "code": code, "details": {}})
        employee = path.split("/employees/")[-1].split("/")[0]
        if path.endswith("/employees/register"):
            return httpx.Response(201, json={"success": True, "employee": body, "token": f"emp_{body['employee_id']}"})
        if path.endswith("/messages/receive"):
            inbox = self.inboxes.setdefault(employee, [])
            leased, self.inboxes[employee] = inbox[: body["limit"]], inbox[body["limit"] :]
            return httpx.Response(200, json={"success": True, "messages": leased})
        if path.endswith("/messages/ack"):
            self.acked.extend(body["ids"])
            return httpx.Response(200, json={"success": True, "messages": [], "count": len(body["ids"])})
        if path.endswith("/messages"):
            self.sent.append(body)
            receiver = body["receiver_id"].removeprefix("role:qa_engineer") or "qa_001"
            stored = _message(
                sender_id=employee,
                receiver_id=receiver,
                message_type=body["message_type"],
                action=body["action"],
                data=body["data"],
                correlation_id=body.get("correlation_id"),
                status="queued",
            )
            self.inboxes.setdefault(receiver, []).append(stored)
            return httpx.Response(201, json={"success": True, "message": stored})
        return httpx.Response(404, json={"success": False, "error": "not found", "code": "not_found", "details": {}})


def aio(test):
    """Run an async test on its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(test(*args, **kwargs))

    return run


def _agent(fake: FakeSeed, employee_id: str = "qa_001", **kwargs) -> CollaborationProtocol:
    options = {"seed_urls": [A], "use_socket": False, "poll_interval": 0.01, "long_poll_wait": 0, "backoff": FAST}
    return CollaborationProtocol(
        employee_id, EmployeeRole.QA_ENGINEER, http_transport=httpx.MockTransport(fake), **{**options, **kwargs}
    )


async def _until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def test_the_sdk_imports_without_django_settings():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    code = (
        "import sys, collaboration.client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'rest_framework'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"


@aio
async def test_register_keeps_the_token_and_sends_it_on_employee_routes():
    fake = FakeSeed()
    agent = _agent(fake, enrollment_token="enroll_x")
    await agent.register()
    await agent.send("dev_001", "note", {"x": 1})
    await agent.transport.aclose()
    register, send = [c for c in fake.calls if "/collaboration/" in c.url.path]
    assert register.headers["Authorization"] == "Bearer enroll_x"
    assert agent.token == "emp_qa_001"
    assert send.headers["Authorization"] == "Bearer emp_qa_001"
    assert agent._monitor_url(A).endswith("/employees/qa_001/monitor?token=emp_qa_001")
    assert agent._monitor_url(A).startswith("ws://seed-a:8000/")


@aio
async def test_send_retries_queue_full_and_5xx_under_one_message_id_then_gives_up():
    fake = FakeSeed(fail_first=[(429, "queue_full"), (503, "server_error")])
    agent = _agent(fake)
    message = await agent.send("dev_001", "note", {"n": 1}, priority=3)
    assert message.payload.data == {"n": 1}
    ids = {s["message_id"] for s in fake.sent}
    sends = [c for c in fake.calls if c.url.path.endswith("/messages")]
    assert len(sends) == 3 and len(ids) == 1  # two retries, one idempotency key
    assert {json.loads(c.content)["message_id"] for c in sends} == ids

    fake.fail_first = [(429, "queue_full")] * 10
    with pytest.raises(SeedAPIError) as caught:
        await agent.send("dev_001", "note")
    assert caught.value.code == "queue_full"
    assert len(fake.fail_first) == 10 - FAST.attempts  # bounded attempts
    await agent.transport.aclose()


@aio
async def test_client_errors_are_not_retried():
    fake = FakeSeed(fail_first=[(409, "not_connected"), (409, "not_connected")])
    agent = _agent(fake)
    with pytest.raises(SeedAPIError) as caught:
        await agent.send("stranger", "note")
    assert (caught.value.status, caught.value.code) == (409, "not_connected")
    assert len(fake.fail_first) == 1
    await agent.transport.aclose()


@aio
async def test_a_dead_instance_is_excluded_and_the_next_one_from_loadbalance_is_used():
    fake = FakeSeed()
    transport = SeedTransport([A, B], backoff=FAST, http_transport=httpx.MockTransport(fake))
    assert await transport.base_url() == A
    fake.down.add(A)
    body = await transport.request(
        "POST", "/api/v1/collaboration/employees/register", json={"employee_id": "x", "role": "qa_engineer"}
    )
    assert body["success"] is True
    assert transport.current_url == B
    asks = [c for c in fake.calls if c.url.path.endswith("/loadbalance")]
    assert asks[-1].url.params["exclude"] == ID_A  # asked B's registry for anyone but A
    fake.down.add(B)
    with pytest.raises(SeedUnavailable):
        await transport.request("GET", "/api/v1/collaboration/employees")
    await transport.aclose()


@aio
async def test_handlers_are_dispatched_by_action_acked_after_success_not_after_an_exception():
    fake = FakeSeed()
    agent = _agent(fake)
    seen = []

    @agent.handler("test_code")
    async def test_code(message):
        seen.append(("test_code", message.payload.data))

    @agent.handler("deploy")
    async def deploy(message):
        seen.append(("deploy", message.payload.data))
        raise RuntimeError("deploy failed")

    ok, bad = _message(data={"f": 1}, message_type="notification"), _message(action="deploy", data={"f": 2})
    fake.inboxes["qa_001"] = [ok, bad]
    async with agent:
        await _until(lambda: len(seen) == 2)
        await asyncio.sleep(0.05)
    assert sorted(seen) == [("deploy", {"f": 2}), ("test_code", {"f": 1})]
    assert fake.acked == [ok["id"]]  # the failed one is left to its lease


@aio
async def test_a_task_request_handler_return_value_is_the_reply_with_the_correlation_id():
    fake = FakeSeed()
    agent = _agent(fake)
    agent.handler("test_code", lambda message: {"passed": True})  # plain functions work too
    request = _message(correlation_id="c-1", data={"file_path": "a.py"})
    fake.inboxes["qa_001"] = [request]
    async with agent:
        await _until(lambda: fake.acked)
    (reply,) = fake.sent
    assert reply["receiver_id"] == "dev_001"
    assert (reply["message_type"], reply["action"], reply["correlation_id"]) == ("task_response", "test_code", "c-1")
    assert reply["data"] == {"passed": True}
    assert reply["message_id"] == str(uuid.uuid5(uuid.UUID("5b0c7a52-4f0e-4d55-9b8e-2f1d2a7c9e10"), request["id"]))


@aio
async def test_request_gets_the_response_with_its_correlation_id_or_times_out():
    fake = FakeSeed()
    dev = _agent(fake, "dev_001")
    qa = _agent(fake, "qa_001")

    @qa.handler("test_code")
    async def test_code(message):
        await qa.reply(message, {"file": message.payload.data["file"], "passed": True})

    async with dev, qa:
        # a stray response with another correlation id must not satisfy the request
        fake.inboxes["dev_001"] = [
            _message(message_type="task_response", correlation_id="other", receiver_id="dev_001")
        ]
        answer = await dev.request("role:qa_engineer", "test_code", {"file": "a.py"}, timeout=5)
        assert answer.payload.data == {"file": "a.py", "passed": True}
        assert answer.header.correlation_id == fake.sent[0]["correlation_id"]
        assert answer.header.type == "task_response"
        await qa.close()
        with pytest.raises(RequestTimeout) as caught:
            await dev.request("qa_001", "test_code", {"file": "b.py"}, timeout=0.2)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.correlation_id == fake.sent[-1]["correlation_id"]


@aio
async def test_inbox_buffer_is_bounded():
    buffer = InboxBuffer(max_size=2)
    buffer.put_nowait(1)
    buffer.put_nowait(2)
    assert (len(buffer), buffer.free) == (2, 0)
    with pytest.raises(asyncio.QueueFull):
        buffer.put_nowait(3)
    assert await buffer.get() == 1
    assert buffer.free == 1
    with pytest.raises(ValueError):
        InboxBuffer(max_size=0)
