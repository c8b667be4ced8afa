"""Outside any transaction a send, a receive and an ack are one round trip each to PostgreSQL.

They give the step-by-step path's answers (which the rest of the suite pins inside test transactions).

Marker ``services``: needs the real PostgreSQL (the batch path is PostgreSQL-only); transactional tests,
because the batch brings its own BEGIN/COMMIT and is used only in autocommit.
"""

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext
from psycopg.pq import TransactionStatus

from collaboration import services
from collaboration.models import Employee, Message
from collaboration.serializers import message_data
from seedproject.errors import Conflict, NotConnected, NotFound, QueueFull

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pair():
    services.employee_register(employee_id="dev_001", role="developer")
    services.employee_register(employee_id="qa_001", role="qa_engineer")
    services.connection_create(employee_id="dev_001", target_employee_id="qa_001")


def send(sender="dev_001", receiver="qa_001", **fields):
    return services.message_send(sender_id=sender, receiver_id=receiver, message_type="notification", **fields)


def idle() -> bool:
    return connection.connection.info.transaction_status == TransactionStatus.IDLE


def test_a_send_is_one_statement_batch_and_commits(pair):
    send(action="warm")
    with CaptureQueriesContext(connection) as captured:
        message, created = send(action="hot", data={"text": "你好; COMMIT"}, priority=3, message_id="m-1")
    assert created
    [batch] = [q["sql"] for q in captured.captured_queries]
    assert batch.startswith("BEGIN;") and batch.endswith("COMMIT")
    assert idle()
    assert message_data(message) == message_data(Message.objects.get(pk=message.pk))


def test_refusals_name_the_same_party_and_store_nothing(pair, settings):
    services.employee_register(employee_id="ops_001", role="devops")
    with pytest.raises(NotFound) as exc:
        send(sender="ghost", receiver="nobody")
    assert exc.value.details == {"employee_id": "ghost"}
    with pytest.raises(NotFound) as exc:
        send(receiver="nobody")
    assert exc.value.details == {"employee_id": "nobody"}
    with pytest.raises(NotConnected):
        send(receiver="ops_001")
    settings.SEED_MESSAGE_QUEUE_MAX_SIZE = 1
    send(action="fills", message_id="m-1")
    with pytest.raises(QueueFull) as exc:
        send(action="overflows")
    assert exc.value.details == {"receiver_ids": ["qa_001"], "max_size": 1}
    assert list(Message.objects.values_list("action", flat=True)) == ["fills"]
    assert idle()


def test_a_retried_message_id_returns_the_original_even_when_the_queue_is_full(pair, settings):
    settings.SEED_MESSAGE_QUEUE_MAX_SIZE = 1
    first, created = send(action="once", message_id="m-1")
    again, created_again = send(action="twice", message_id="m-1")
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and again.action == "once"
    assert Message.objects.count() == 1


def test_a_stale_sender_is_touched_after_the_send(pair):
    from datetime import timedelta

    from django.utils import timezone

    Employee.objects.filter(pk="dev_001").update(last_seen=timezone.now() - timedelta(hours=1))
    send()
    assert Employee.objects.get(pk="dev_001").last_seen > timezone.now() - timedelta(minutes=1)


def test_a_statement_failing_inside_the_batch_leaves_no_open_transaction(pair):
    with pytest.raises(DataError):
        send(data={"text": "NUL \x00 is not allowed in jsonb"})
    assert idle()
    assert not Message.objects.exists()
    message, created = send(action="after")
    assert created and Message.objects.get().pk == message.pk


def test_inside_a_callers_transaction_the_send_takes_the_step_by_step_path(pair):
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        send(action="nested")
    statements = [q["sql"] for q in captured.captured_queries]
    assert not any(s.startswith("BEGIN;") for s in statements), statements
    assert Message.objects.get().action == "nested"


# --- receive -------------------------------------------------------------------------------------


def past(seconds=1):
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(seconds=seconds)


def test_a_receive_is_one_statement_batch_and_returns_what_it_stored(pair):
    sent = [send(action=f"m{i}", priority=1 + i % 4, data={"i": i, "text": "你好"})[0] for i in range(6)]
    with CaptureQueriesContext(connection) as captured:
        got = services.messages_receive(employee_id="qa_001", limit=4)
    batches = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("BEGIN;")]
    assert len(batches) == 1
    assert idle()
    assert [m.action for m in got] == ["m3", "m2", "m1", "m5"]  # priority 4, 3, then 2 in sending order
    assert [m.data for m in got] == [{"i": i, "text": "你好"} for i in (3, 2, 1, 5)]
    stored = {m.pk: m for m in Message.objects.all()}
    for m in got:
        assert m.status == "leased" and m.delivery_count == 1 and m.lease_expires_at
        assert message_data(m) == message_data(stored[m.pk])
    assert {stored[m.pk].status for m in sent if m.pk not in {g.pk for g in got}} == {"queued"}


def test_a_receive_reclaims_first_then_leases_in_the_same_batch(pair, settings):
    settings.SEED_MAX_DELIVERIES = 2
    stale, poison, fresh = (send(action=a)[0] for a in ("stale", "poison", "fresh"))
    Message.objects.filter(pk=stale.pk).update(expires_at=past())
    Message.objects.filter(pk=poison.pk).update(status="leased", delivery_count=2, lease_expires_at=past())
    Message.objects.filter(pk=fresh.pk).update(status="leased", delivery_count=1, lease_expires_at=past())
    got = services.messages_receive(employee_id="qa_001")
    assert [m.pk for m in got] == [fresh.pk] and got[0].delivery_count == 2
    statuses = dict(Message.objects.values_list("action", "status"))
    assert statuses == {"stale": "expired", "poison": "dead", "fresh": "leased"}
    assert services.messages_receive(employee_id="qa_001") == []
    with pytest.raises(NotFound):
        services.messages_receive(employee_id="ghost")
    assert idle()


# --- ack -----------------------------------------------------------------------------------------


def test_a_batch_ack_is_one_statement(pair):
    for i in range(5):
        send(action=f"m{i}")
    got = services.messages_receive(employee_id="qa_001", limit=10)
    with CaptureQueriesContext(connection) as captured:
        acked = services.messages_ack(employee_id="qa_001", ids=[m.pk for m in reversed(got)])
    assert len(captured.captured_queries) == 1
    assert idle()
    assert [m.pk for m in acked] == [m.pk for m in got]  # dequeue order
    stored = {m.pk: m for m in Message.objects.all()}
    assert all(m.status == "acked" and m.lease_expires_at is None for m in acked)
    assert [message_data(m) for m in acked] == [message_data(stored[m.pk]) for m in acked]
    again = services.messages_ack(employee_id="qa_001", ids=[got[0].pk])  # idempotent
    assert [m.status for m in again] == ["acked"]


def test_an_ack_refuses_all_or_nothing_naming_what_is_stuck(pair):
    a, b, c = (send(action=x)[0] for x in "abc")
    first, second = services.messages_receive(employee_id="qa_001", limit=2)
    assert (first.pk, second.pk) == (a.pk, b.pk)
    with pytest.raises(Conflict) as exc:
        services.messages_ack(employee_id="qa_001", ids=[a.pk, b.pk, c.pk])  # c is still queued
    assert exc.value.details == {"statuses": {str(c.pk): "queued"}}
    assert set(Message.objects.filter(pk__in=[a.pk, b.pk]).values_list("status", flat=True)) == {"leased"}
    with pytest.raises(NotFound) as exc:
        services.messages_ack(employee_id="qa_001", ids=[a.pk, "00000000-0000-0000-0000-000000000000"])
    assert exc.value.details == {"ids": ["00000000-0000-0000-0000-000000000000"]}
    with pytest.raises(NotFound):
        services.messages_ack(employee_id="dev_001", ids=[a.pk])  # another receiver's message
    with pytest.raises(NotFound) as exc:
        services.messages_ack(employee_id="ghost", ids=[a.pk])
    assert exc.value.details == {"employee_id": "ghost"}
    assert Message.objects.get(pk=a.pk).status == "leased"
    assert idle()


def test_an_ack_touches_a_stale_receiver(pair):
    from datetime import timedelta

    from django.utils import timezone

    send()
    [got] = services.messages_receive(employee_id="qa_001")
    Employee.objects.filter(pk="qa_001").update(last_seen=timezone.now() - timedelta(hours=1))
    services.messages_ack(employee_id="qa_001", ids=[got.pk])
    assert Employee.objects.get(pk="qa_001").last_seen > timezone.now() - timedelta(minutes=1)


def test_sweep_batches_commit_without_waiting_for_the_disk_and_each_on_its_own(pair, settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.SEED_EXPIRY_WORKERS = 1  # every batch on this thread's connection, where they are captured

    sent = [send(action=f"m{i}")[0] for i in range(5)]
    Message.objects.filter(pk__in=[m.pk for m in sent]).update(expires_at=timezone.now() - timedelta(seconds=1))
    with CaptureQueriesContext(connection) as captured:
        counts = services.messages_expire(batch_size=2)
    assert counts == {"expired": 5, "requeued": 0, "dead": 0}
    batches = [q["sql"] for q in captured.captured_queries]
    # 2 + 2 + 1 expired, one empty expiry batch, one empty lease batch: each its own non-durable transaction
    assert len(batches) == 5
    # each batch counts what it changed per receiver in the statement itself (WITH changed AS (UPDATE …))
    assert all(b.startswith("BEGIN; SET LOCAL synchronous_commit TO OFF; WITH changed AS (UPDATE") for b in batches)
    assert all(b.endswith("; COMMIT") for b in batches)
    assert idle()
    assert set(Message.objects.values_list("status", flat=True)) == {"expired"}


def test_a_sweep_with_two_workers_splits_the_receivers_and_gets_every_message(settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.SEED_EXPIRY_WORKERS = 2
    receivers = [f"r{i:02d}" for i in range(40)]
    services.employee_register(employee_id="boss", role="manager")
    for receiver in receivers:
        services.employee_register(employee_id=receiver, role="developer")
    now = timezone.now()
    Message.objects.bulk_create(
        Message(
            sender_id="boss",
            receiver_id=receiver,
            message_type="notification",
            action=f"{receiver}-{n}",
            created_at=now,
            expires_at=now - timedelta(seconds=1) if n < 5 else now + timedelta(hours=1),
        )
        for receiver in receivers
        for n in range(6)
    )
    Message.objects.filter(action__endswith="-4").update(status="leased", lease_expires_at=now - timedelta(seconds=1))
    Message.objects.filter(action__endswith="-5").update(status="leased", lease_expires_at=now - timedelta(seconds=1))
    with CaptureQueriesContext(connection) as captured:
        counts = services.messages_expire(batch_size=7)
    # TTL first: 5 per receiver expired (one of them leased); the sixth's lease ran out within its TTL.
    assert counts == {"expired": 200, "requeued": 40, "dead": 0}
    statuses = Message.objects.values_list("action", "status")
    assert {action: status for action, status in statuses if not action.endswith("-5")} == {
        f"{r}-{n}": "expired" for r in receivers for n in range(5)
    }
    assert {status for action, status in statuses if action.endswith("-5")} == {"queued"}
    assert captured.captured_queries == []  # the workers ran on connections of their own
    assert idle()
    # Each worker gives its connection back: more sweeps than the pool has connections all run.
    for _ in range(settings.SEED_DB_POOL_SIZE + 1):
        assert services.messages_expire() == {"expired": 0, "requeued": 0, "dead": 0}
    # Both shares had receivers (so both workers swept), and they split the receivers between them.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (hashtext(employee_id) & 2147483647) % 2, COUNT(*) FROM collaboration_employee "
            "WHERE employee_id LIKE 'r%' GROUP BY 1 ORDER BY 1"
        )
        assert [share for share, _ in cursor.fetchall()] == [0, 1]
