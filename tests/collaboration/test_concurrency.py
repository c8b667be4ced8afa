"""Concurrent senders and receivers against the real PostgreSQL (marker ``services``)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from collaboration import selectors, services
from seedproject.errors import QueueFull

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def in_thread(fn):
    """Run fn on a worker thread with its own database connection, closed afterwards."""

    def wrapper(*args):
        try:
            return fn(*args)
        finally:
            connection.close()

    return wrapper


@pytest.fixture
def senders():
    services.employee_register(employee_id="qa_001", role="qa_engineer")
    ids = [f"dev_{i:03d}" for i in range(8)]
    for sender in ids:
        services.employee_register(employee_id=sender, role="developer")
        services.connection_create(employee_id=sender, target_employee_id="qa_001")
    return ids


def test_bound_holds_under_concurrent_senders(senders, settings):
    settings.SEED_MESSAGE_QUEUE_MAX_SIZE = 10
    start = threading.Barrier(len(senders))

    @in_thread
    def burst(sender):
        start.wait()
        stored = 0
        for _ in range(4):
            try:
                services.message_send(sender_id=sender, receiver_id="qa_001", message_type="notification")
                stored += 1
            except QueueFull:
                pass
        return stored

    with ThreadPoolExecutor(len(senders)) as pool:
        stored = sum(pool.map(burst, senders))
    assert stored == 10
    assert selectors.live_message_count(receiver_id="qa_001") == 10


def test_concurrent_receivers_never_get_the_same_message(senders):
    for i in range(40):
        services.message_send(sender_id=senders[i % len(senders)], receiver_id="qa_001", message_type="query")
    start = threading.Barrier(6)

    @in_thread
    def drain(_):
        start.wait()
        got = []
        while batch := services.messages_receive(employee_id="qa_001", limit=3):
            got.extend(m.pk for m in batch)
        return got

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(drain, range(6)))
    every = [pk for result in results for pk in result]
    assert len(every) == 40 and len(set(every)) == 40


def test_long_poll_returns_a_message_sent_while_waiting(senders):
    started = threading.Event()

    @in_thread
    def wait_for_one():
        started.set()
        return services.messages_receive(employee_id="qa_001", limit=1, wait=20)

    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(wait_for_one)
        started.wait()
        message, _ = services.message_send(sender_id=senders[0], receiver_id="qa_001", message_type="query")
        got = waiting.result(timeout=30)
    assert [m.pk for m in got] == [message.pk]


def test_long_polls_do_not_hold_pooled_connections_other_requests_need(senders):
    """As many waiting receivers as the pool has connections, and another request still gets one."""
    pool_size = connection.settings_dict["OPTIONS"]["pool"]["max_size"]
    receivers = [f"rx_{i:03d}" for i in range(pool_size)]
    for receiver in receivers:
        services.employee_register(employee_id=receiver, role="qa_engineer")
        services.connection_create(employee_id=senders[0], target_employee_id=receiver)
    polling = threading.Barrier(pool_size + 1)

    @in_thread
    def long_poll(receiver):
        polling.wait()
        return services.messages_receive(employee_id=receiver, limit=1, wait=30)

    connection.close()  # this thread's connection goes back to the pool: the check below must borrow one
    with ThreadPoolExecutor(pool_size) as pool:
        waiting = [pool.submit(long_poll, receiver) for receiver in receivers]
        polling.wait()
        threading.Event().wait(0.5)  # every poll has run its first lease and sleeps
        # Were the polls holding their connections, this would wait for one and fail with PoolTimeout.
        assert selectors.employee_get(employee_id="qa_001").employee_id == "qa_001"
        sent = [services.message_send(sender_id=senders[0], receiver_id=r, message_type="query")[0] for r in receivers]
        got = [future.result(timeout=30) for future in waiting]
    assert [[m.pk for m in batch] for batch in got] == [[m.pk] for m in sent]
