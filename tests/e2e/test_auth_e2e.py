"""Credentials as a deployment uses them: no anonymous access, tokens valid on every server of the cluster."""

import asyncio
import json

import aiohttp
import httpx
import pytest

from tests.e2e.conftest import E2E_ENROLLMENT_TOKEN

pytestmark = [pytest.mark.e2e, pytest.mark.services]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_issued_by_one_server_work_on_another_and_only_for_their_owner(pg_cluster):
    server_a, server_b = pg_cluster(SEED_ALLOW_LOCAL_ANONYMOUS="false").start(2)
    a, b = f"{server_a.url}/api/v1/collaboration", f"{server_b.url}/api/v1/collaboration"

    assert httpx.get(f"{a}/employees").status_code == 401  # loopback, but no local anonymous mode here
    anonymous = httpx.post(f"{a}/employees/register", json={"employee_id": "dev", "role": "developer"})
    assert anonymous.status_code == 401

    tokens = {}
    for employee_id, role in (("dev", "developer"), ("qa", "qa_engineer")):
        response = httpx.post(
            f"{a}/employees/register",
            json={"employee_id": employee_id, "role": role},
            headers=bearer(E2E_ENROLLMENT_TOKEN),
        )
        assert response.status_code == 201, response.text
        tokens[employee_id] = response.json()["token"]

    connected = httpx.post(
        f"{b}/employees/dev/connect", json={"target_employee_id": "qa"}, headers=bearer(tokens["dev"])
    )
    assert connected.status_code == 201, connected.text
    sent = httpx.post(
        f"{b}/employees/dev/messages",
        json={"receiver_id": "qa", "message_type": "task_request", "action": "test_code"},
        headers=bearer(tokens["dev"]),
    )
    assert sent.status_code == 201, sent.text
    snooping = httpx.get(f"{b}/employees/qa/messages", headers=bearer(tokens["dev"]))
    assert (snooping.status_code, snooping.json()["code"]) == (403, "forbidden")
    received = httpx.post(f"{a}/employees/qa/messages/receive", json={"limit": 5}, headers=bearer(tokens["qa"]))
    assert [m["action"] for m in received.json()["messages"]] == ["test_code"]

    async def sockets() -> None:
        async with aiohttp.ClientSession() as session:
            own = await session.ws_connect(
                f"ws://127.0.0.1:{server_b.port}/api/v1/collaboration/employees/qa/monitor?token={tokens['qa']}"
            )
            frame = json.loads((await own.receive(timeout=10)).data)
            assert frame["type"] == "employee_update" and frame["stats"]["employee_id"] == "qa"
            await own.close()
            other = await session.ws_connect(
                f"ws://127.0.0.1:{server_b.port}/api/v1/collaboration/employees/qa/monitor?token={tokens['dev']}"
            )
            closed = await other.receive(timeout=10)
            assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4403

    asyncio.run(sockets())
