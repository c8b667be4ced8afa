"""Competing senders and receivers on two real servers sharing PostgreSQL (SKIP LOCKED leasing)."""

import threading
import time
import uuid
from collections import Counter

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.services]

SENDERS = 8
MESSAGES_PER_SENDER = 100
RECEIVERS = 4


def test_every_accepted_message_is_received_and_acked_exactly_once(pg_cluster):
    server_a, server_b = pg_cluster().start(2)
    api = [f"{s.url}/api/v1/collaboration" for s in (server_a, server_b)]
    with httpx.Client(timeout=10) as client:
        assert client.post(f"{api[0]}/employees/register", json={"employee_id": "qa", "role": "qa_engineer"}).is_success
        for n in range(SENDERS):
            sender = f"dev_{n}"
            client.post(f"{api[n % 2]}/employees/register", json={"employee_id": sender, "role": "developer"})
            connected = client.post(f"{api[n % 2]}/employees/{sender}/connect", json={"target_employee_id": "qa"})
            assert connected.status_code in (200, 201), connected.text

    accepted: list[str] = []
    received: list[tuple[int, str]] = []
    errors: list[str] = []
    lock = threading.Lock()
    senders_done = threading.Event()

    def send(n: int) -> None:
        with httpx.Client(base_url=api[n % 2], timeout=30) as client:
            for i in range(MESSAGES_PER_SENDER):
                body = {
                    "receiver_id": "qa",
                    "message_type": "task_request",
                    "action": "test_code",
                    "data": {"n": n, "i": i},
                    "priority": 1 + (i % 4),
                    "message_id": f"dev_{n}-{i}-{uuid.uuid4().hex[:6]}",
                }
                response = client.post(f"/employees/dev_{n}/messages", json=body)
                if response.status_code != 201:
                    errors.append(f"send {n}/{i}: {response.status_code} {response.text}")
                    continue
                with lock:
                    accepted.append(response.json()["message"]["id"])

    def receive(r: int) -> None:
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=api[r % 2], timeout=30) as client:
            while time.monotonic() < deadline:
                response = client.post("/employees/qa/messages/receive", json={"limit": 10, "wait": 1})
                if response.status_code != 200:
                    errors.append(f"receive {r}: {response.status_code} {response.text}")
                    return
                batch = [m["id"] for m in response.json()["messages"]]
                if batch:
                    acked = client.post("/employees/qa/messages/ack", json={"ids": batch})
                    if acked.status_code != 200:
                        errors.append(f"ack {r}: {acked.status_code} {acked.text}")
                    with lock:
                        received.extend((r, message_id) for message_id in batch)
                elif senders_done.is_set():
                    with lock:
                        if len(received) >= len(accepted):
                            return

    receivers = [threading.Thread(target=receive, args=(r,)) for r in range(RECEIVERS)]
    senders = [threading.Thread(target=send, args=(n,)) for n in range(SENDERS)]
    for thread in receivers + senders:
        thread.start()
    for thread in senders:
        thread.join()
    senders_done.set()
    for thread in receivers:
        thread.join()

    assert not errors, errors[:5]
    assert len(accepted) == SENDERS * MESSAGES_PER_SENDER
    deliveries = Counter(message_id for _, message_id in received)
    assert [m for m, count in deliveries.items() if count > 1] == [], "a message was delivered twice"
    assert set(deliveries) == set(accepted)
    assert len({r for r, _ in received}) == RECEIVERS, "every receiver should have taken part"

    stats = httpx.get(f"{api[1]}/employees/qa/stats", timeout=10).json()["stats"]["message_stats"]
    assert stats["acked"] == len(accepted)
    assert stats["queued"] == 0
