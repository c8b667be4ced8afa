"""The bus's hot paths stay cheap: pinned statement counts for send, receive and ack; the batched TTL sweep.

The counts include the SAVEPOINT/RELEASE pair of the service's atomic block (tests run inside a
transaction), i.e. the step-by-step path. Outside a transaction on PostgreSQL a send, a receive and an
ack are one round trip each: test_round_trips.py pins that.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from collaboration import services
from collaboration.models import Employee, Message
from seedproject.errors import Conflict, NotConnected, NotFound, QueueFull

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair():
    services.employee_register(employee_id="dev_001", role="developer")
    services.employee_register(employee_id="qa_001", role="qa_engineer")
    services.connection_create(employee_id="dev_001", target_employee_id="qa_001")
    return "dev_001", "qa_001"


def send(action="", **fields):
    message, _ = services.message_send(
        sender_id="dev_001", receiver_id="qa_001", message_type="notification", action=action, **fields
    )
    return message


def past(seconds=1):
    return timezone.now() - timedelta(seconds=seconds)


# --- send ----------------------------------------------------------------------------------------


def test_send_is_one_lock_query_and_one_insert_that_counts(pair, django_assert_max_num_queries):
    send("warm")
    # SAVEPOINT, SELECT receiver FOR UPDATE (+ sender, connection), INSERT … WHERE room, RELEASE (was 9, then 5).
    with django_assert_max_num_queries(4):
        send("hot")


def test_send_stores_exactly_the_message_it_returns(pair):
    from collaboration.serializers import message_data

    plain = send("plain")
    full = send(
        "full",
        data={"text": "你好", "nested": {"n": [1, 2.5, None, True]}},
        priority=4,
        ttl_seconds=30,
        correlation_id="corr-1",
        message_id="client-1",
    )
    for message in (plain, full):
        assert not message._state.adding
        assert message_data(message) == message_data(Message.objects.get(pk=message.pk))
    again, created = services.message_send(
        sender_id="dev_001", receiver_id="qa_001", message_type="notification", message_id="client-1"
    )
    assert (again.pk, created) == (full.pk, False)


def test_send_into_a_full_queue_stores_nothing(pair, settings):
    settings.SEED_MESSAGE_QUEUE_MAX_SIZE = 2
    first, second = send("a"), send("b")
    with pytest.raises(QueueFull) as exc:
        send("c")
    assert exc.value.details == {"receiver_ids": ["qa_001"], "max_size": 2}
    assert set(Message.objects.values_list("pk", flat=True)) == {first.pk, second.pk}
    Message.objects.filter(pk=first.pk).update(expires_at=past())  # past its TTL: no longer counts
    assert send("d").action == "d"
    Message.objects.filter(pk=second.pk).update(status="acked")
    assert send("e").action == "e"
    with pytest.raises(QueueFull):
        send("f")


def test_send_does_not_read_back_or_touch_a_fresh_sender(pair):
    with CaptureQueriesContext(connection) as captured:
        send("hot")
    sql = [q["sql"] for q in captured.captured_queries]
    assert not any(s.startswith("UPDATE") for s in sql), sql
    assert sum(s.startswith("INSERT") for s in sql) == 1


def test_send_touches_a_stale_sender_after_commit(pair):
    Employee.objects.filter(pk="dev_001").update(last_seen=past(3600))
    send("hello")
    assert Employee.objects.get(pk="dev_001").last_seen > past(60)


def test_send_errors_name_the_missing_party_first_the_sender(pair):
    with pytest.raises(NotFound) as exc:
        services.message_send(sender_id="ghost", receiver_id="nobody", message_type="notification")
    assert exc.value.details == {"employee_id": "ghost"}
    with pytest.raises(NotFound) as exc:
        services.message_send(sender_id="dev_001", receiver_id="nobody", message_type="notification")
    assert exc.value.details == {"employee_id": "nobody"}
    services.employee_register(employee_id="ops_001", role="devops")
    with pytest.raises(NotConnected):
        services.message_send(sender_id="dev_001", receiver_id="ops_001", message_type="notification")
    with pytest.raises(NotConnected):
        services.message_send(sender_id="dev_001", receiver_id="dev_001", message_type="notification")
    assert Message.objects.count() == 0


# --- receive and ack -----------------------------------------------------------------------------


def test_receive_does_not_reclaim_when_nothing_is_due(pair, django_assert_max_num_queries):
    for i in range(5):
        send(f"m{i}")
    # employee, SAVEPOINT, EXISTS (anything to reclaim?), SELECT … FOR UPDATE, UPDATE, RELEASE (was 11).
    with django_assert_max_num_queries(6):
        got = services.messages_receive(employee_id="qa_001", limit=10)
    assert len(got) == 5
    assert all(m.status == "leased" and m.delivery_count == 1 and m.lease_expires_at for m in got)
    stored = {m.pk: m for m in Message.objects.all()}
    for m in got:  # what the service returned is what the UPDATE stored
        assert (m.status, m.lease_expires_at, m.delivery_count) == (
            stored[m.pk].status,
            stored[m.pk].lease_expires_at,
            stored[m.pk].delivery_count,
        )


def test_receive_still_reclaims_inline_when_something_is_due(pair, settings):
    settings.SEED_MAX_DELIVERIES = 2
    stale, poison, fresh = send("stale"), send("poison"), send("fresh")
    Message.objects.filter(pk=stale.pk).update(expires_at=past())
    Message.objects.filter(pk=poison.pk).update(status="leased", delivery_count=2, lease_expires_at=past())
    Message.objects.filter(pk=fresh.pk).update(status="leased", delivery_count=1, lease_expires_at=past())
    got = services.messages_receive(employee_id="qa_001")
    assert [m.pk for m in got] == [fresh.pk] and got[0].delivery_count == 2
    statuses = dict(Message.objects.values_list("action", "status"))
    assert statuses == {"stale": "expired", "poison": "dead", "fresh": "leased"}


def test_batch_ack_is_one_update_and_one_read(pair, django_assert_max_num_queries):
    for i in range(5):
        send(f"m{i}")
    got = services.messages_receive(employee_id="qa_001", limit=10)
    # SAVEPOINT, UPDATE, SELECT, RELEASE (was 7).
    with django_assert_max_num_queries(4):
        acked = services.messages_ack(employee_id="qa_001", ids=[m.pk for m in got])
    assert [m.pk for m in acked] == [m.pk for m in got]
    assert set(Message.objects.values_list("status", flat=True)) == {"acked"}


def test_ack_refuses_all_or_nothing(pair):
    a, b = send("a"), send("b")
    [first] = services.messages_receive(employee_id="qa_001", limit=1)
    assert first.pk == a.pk
    with pytest.raises(Conflict) as exc:
        services.messages_ack(employee_id="qa_001", ids=[a.pk, b.pk])  # b is still queued
    assert exc.value.details == {"statuses": {str(b.pk): "queued"}}
    assert Message.objects.get(pk=a.pk).status == "leased"  # nothing acked
    with pytest.raises(NotFound):
        services.messages_ack(employee_id="dev_001", ids=[a.pk])  # another receiver's message
    with pytest.raises(NotFound) as exc:
        services.messages_ack(employee_id="ghost", ids=[a.pk])
    assert exc.value.details == {"employee_id": "ghost"}
    assert services.messages_ack(employee_id="qa_001", ids=[a.pk])[0].status == "acked"
    assert services.messages_ack(employee_id="qa_001", ids=[a.pk])[0].status == "acked"  # idempotent
    assert services.messages_ack(employee_id="qa_001", ids=[]) == []


def test_ack_touches_a_stale_receiver(pair):
    send("a")
    [got] = services.messages_receive(employee_id="qa_001")
    Employee.objects.filter(pk="qa_001").update(last_seen=past(3600))
    services.messages_ack(employee_id="qa_001", ids=[got.pk])
    assert Employee.objects.get(pk="qa_001").last_seen > past(60)


# --- the TTL sweep -------------------------------------------------------------------------------


def test_sweep_in_batches_smaller_than_the_backlog(pair, settings):
    settings.SEED_MAX_DELIVERIES = 2
    settings.SEED_MESSAGE_QUEUE_MAX_SIZE = 100
    expired = [send(f"e{i}") for i in range(11)]
    dead = [send(f"d{i}") for i in range(4)]
    back = [send(f"b{i}") for i in range(3)]
    both = send("both")  # its lease ran out and so did its TTL: TTL wins
    keep = [send(f"k{i}") for i in range(2)]
    Message.objects.filter(pk__in=[m.pk for m in expired]).update(expires_at=past())
    Message.objects.filter(pk__in=[m.pk for m in dead]).update(
        status="leased", delivery_count=2, lease_expires_at=past()
    )
    Message.objects.filter(pk__in=[m.pk for m in back]).update(
        status="leased", delivery_count=1, lease_expires_at=past()
    )
    Message.objects.filter(pk=both.pk).update(
        status="leased", delivery_count=1, lease_expires_at=past(), expires_at=past()
    )
    with CaptureQueriesContext(connection) as captured:
        counts = services.messages_expire(batch_size=4)
    assert counts == {"expired": 12, "dead": 4, "requeued": 3}
    statuses = dict(Message.objects.values_list("action", "status"))
    assert {statuses[m.action] for m in expired} == {"expired"}
    assert {statuses[m.action] for m in dead} == {"dead"}
    assert {statuses[m.action] for m in back} == {"queued"}
    assert statuses["both"] == "expired"
    assert {statuses[m.action] for m in keep} == {"queued"}
    assert Message.objects.count() == 21  # nothing deleted
    # 12 expired rows in batches of 4 (4, 4, 4, then one that finds nothing), 7 run-out leases (4, 3, none):
    # seven UPDATEs, each its own transaction outside a test.
    assert [q["sql"].split()[0] for q in captured.captured_queries] == ["UPDATE"] * 7
    assert services.messages_expire(batch_size=4) == {"expired": 0, "requeued": 0, "dead": 0}


def test_sweep_default_batch_is_bounded(pair):
    assert 0 < services.EXPIRE_BATCH_SIZE <= 10_000


def test_sweep_drains_a_backlog_larger_than_the_default_batch(pair):
    now = timezone.now()
    backlog = services.EXPIRE_BATCH_SIZE + 3
    Message.objects.bulk_create(
        Message(
            sender_id="dev_001",
            receiver_id="qa_001",
            message_type="notification",
            created_at=now,
            expires_at=now - timedelta(seconds=1),
        )
        for _ in range(backlog)
    )
    assert services.messages_expire() == {"expired": backlog, "requeued": 0, "dead": 0}
    assert Message.objects.filter(status="expired").count() == backlog
