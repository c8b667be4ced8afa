"""Queue semantics over the real services: order, bound, leases, redelivery, dead letters, TTL, idempotency."""

from datetime import timedelta

import pytest
from django.utils import timezone

from collaboration import services
from collaboration.message_queue import MessageQueue
from collaboration.models import Connection, Employee, Message
from seedproject.errors import NotConnected, QueueFull

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair():
    services.employee_register(employee_id="dev_001", role="developer")
    services.employee_register(employee_id="qa_001", role="qa_engineer")
    services.connection_create(employee_id="dev_001", target_employee_id="qa_001")
    return "dev_001", "qa_001"


def send(action="", priority=2, **fields):
    message, _ = services.message_send(
        sender_id="dev_001",
        receiver_id="qa_001",
        message_type="notification",
        action=action,
        priority=priority,
        **fields,
    )
    return message


def receive(limit=10):
    return services.messages_receive(employee_id="qa_001", limit=limit)


def run_out_leases():
    """Time travel: every lease ran out a second ago."""
    Message.objects.filter(status="leased").update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_priority_first_fifo_within_a_priority(pair):
    for action, priority in [("n1", 2), ("l1", 1), ("u1", 4), ("n2", 2), ("h1", 3), ("u2", 4), ("l2", 1)]:
        send(action, priority)
    assert [m.action for m in receive()] == ["u1", "u2", "h1", "n1", "n2", "l1", "l2"]


def test_fifo_follows_created_at(pair):
    late, early = send("late"), send("early")
    Message.objects.filter(pk=early.pk).update(created_at=late.created_at - timedelta(seconds=5))
    assert [m.action for m in receive()] == ["early", "late"]


def test_limit_leases_only_that_many(pair):
    for i in range(5):
        send(f"m{i}")
    assert len(receive(limit=2)) == 2
    assert Message.objects.filter(status="queued").count() == 3


def test_bound_counts_leased_messages_and_frees_on_ack(pair, settings):
    settings.SEED_MESSAGE_QUEUE_MAX_SIZE = 2
    send("a")
    send("b")
    leased = receive(limit=1)
    with pytest.raises(QueueFull):
        send("c")
    assert not Message.objects.filter(action="c").exists()
    services.message_ack(employee_id="qa_001", message_id=leased[0].pk)
    assert send("c").status == "queued"


def test_bound_ignores_expired_messages(pair, settings):
    settings.SEED_MESSAGE_QUEUE_MAX_SIZE = 1
    old = send("old")
    Message.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert send("new").action == "new"


def test_unacked_lease_is_redelivered_with_delivery_count(pair):
    message = send("retry")
    [first] = receive()
    assert first.delivery_count == 1 and receive() == []  # leased: nobody else gets it
    run_out_leases()
    [second] = receive()
    assert second.pk == message.pk and second.delivery_count == 2 and second.status == "leased"


def test_ack_after_lease_ran_out_but_before_redelivery_is_accepted(pair):
    send()
    [leased] = receive()
    run_out_leases()
    assert services.message_ack(employee_id="qa_001", message_id=leased.pk).status == "acked"
    assert receive() == []


def test_dead_after_max_deliveries_then_operator_requeue(pair, settings):
    settings.SEED_MAX_DELIVERIES = 2
    message = send("poison")
    for _ in range(2):
        assert [m.pk for m in receive()] == [message.pk]
        run_out_leases()
    assert receive() == []  # no poison loop
    message.refresh_from_db()
    assert message.status == "dead" and message.delivery_count == 2
    assert services.messages_requeue_dead(receiver_id="qa_001") == 1
    [again] = receive()
    assert again.pk == message.pk and again.delivery_count == 1


def test_expired_message_is_never_received(pair):
    message = send("stale")
    Message.objects.filter(pk=message.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert receive() == []
    message.refresh_from_db()
    assert message.status == "expired"  # kept, not deleted


def test_sweep_marks_expired_in_bulk_and_reclaims_leases(pair, settings):
    settings.SEED_MAX_DELIVERIES = 1
    for i in range(3):
        send(f"q{i}")
    leased = send("leased")
    dying = send("dying")
    Message.objects.filter(action__startswith="q").update(expires_at=timezone.now() - timedelta(seconds=1))
    receive()  # leases the two live ones (and expires the three stale ones for this receiver already)
    Message.objects.filter(pk=leased.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    Message.objects.filter(pk=dying.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    counts = services.messages_expire()
    assert counts == {"expired": 1, "requeued": 0, "dead": 1}
    statuses = dict(Message.objects.values_list("action", "status"))
    assert statuses == {"q0": "expired", "q1": "expired", "q2": "expired", "leased": "expired", "dying": "dead"}
    assert Message.objects.count() == 5  # nothing deleted


def test_sweep_marks_many_expired_with_one_update(pair, django_assert_max_num_queries):
    for i in range(20):
        send(f"m{i}")
    Message.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_assert_max_num_queries(6):
        counts = services.messages_expire()
    assert counts["expired"] == 20


def test_idempotent_send_returns_the_original(pair):
    first, created = services.message_send(
        sender_id="dev_001", receiver_id="qa_001", message_type="query", message_id="k1"
    )
    again, created_again = services.message_send(
        sender_id="dev_001", receiver_id="qa_001", message_type="query", message_id="k1"
    )
    assert created and not created_again and first.pk == again.pk
    assert Message.objects.count() == 1


def test_inbox_listing_never_leases(pair):
    from collaboration import selectors

    send()
    for _ in range(3):
        messages, count = selectors.message_list(employee_id="qa_001", limit=10, offset=0)
        assert count == 1 and messages[0].status == "queued" and messages[0].delivery_count == 0


def test_last_seen_is_refreshed_by_activity(pair):
    Employee.objects.update(last_seen=timezone.now() - timedelta(hours=1))
    send()
    receive()
    seen = dict(Employee.objects.values_list("employee_id", "last_seen"))
    assert all(timezone.now() - value < timedelta(minutes=1) for value in seen.values())


def test_prune_connections_of_silent_or_unregistered_employees(pair, settings):
    services.employee_register(employee_id="designer_001", role="designer")
    services.connection_create(employee_id="dev_001", target_employee_id="designer_001")
    assert services.connections_prune() == 0
    Employee.objects.filter(pk="designer_001").update(last_seen=timezone.now() - timedelta(days=2))
    assert services.connections_prune() == 1
    Employee.objects.filter(pk="qa_001").update(status="unregistered")
    assert services.connections_prune() == 1
    assert not Connection.objects.exists()


def test_unregister_drops_connections_so_sending_needs_reconnect(pair):
    services.employee_unregister(employee_id="qa_001")
    with pytest.raises(NotConnected):
        send()


def test_message_queue_facade(pair):
    mq = MessageQueue(max_size=2)
    first = mq.put(sender_id="dev_001", receiver_id="qa_001", message_type="task_request", action="a", priority=3)
    mq.put(sender_id="dev_001", receiver_id="qa_001", message_type="notification")
    assert mq.size("qa_001") == 2 and mq.is_full("qa_001")
    with pytest.raises(QueueFull):
        mq.put(sender_id="dev_001", receiver_id="qa_001", message_type="notification")
    [got] = mq.get("qa_001")
    assert got.pk == first.pk
    mq.ack("qa_001", got.pk)
    assert mq.size("qa_001") == 1 and not mq.is_full("qa_001")


def test_token_lookup_finds_registered_employees_only(pair):
    from collaboration import selectors
    from seedproject.security import token_hash

    token = services.employee_token_rotate(employee_id="qa_001")
    assert selectors.employee_id_for_token(token_hash=token_hash(token)) == "qa_001"
    assert selectors.employee_id_for_token(token_hash=token_hash(token + "x")) is None
    assert selectors.employee_id_for_token(token_hash="") is None
    services.employee_unregister(employee_id="qa_001")
    assert selectors.employee_id_for_token(token_hash=token_hash(token)) is None
    services.employee_register(employee_id="qa_001", role="qa_engineer")  # revived, same token
    assert selectors.employee_id_for_token(token_hash=token_hash(token)) == "qa_001"


def test_employee_get_loads_what_the_orm_loads(pair):
    from collaboration import selectors
    from seedproject.errors import NotFound

    loaded = selectors.employee_get(employee_id="qa_001")
    expected = Employee.objects.get(pk="qa_001")
    fields = [f.attname for f in Employee._meta.concrete_fields]
    assert [getattr(loaded, f) for f in fields] == [getattr(expected, f) for f in fields]
    assert loaded.last_seen.tzinfo is not None and not loaded._state.adding
    with pytest.raises(NotFound) as exc:
        selectors.employee_get(employee_id="ghost")
    assert exc.value.details == {"employee_id": "ghost"}


def _stats_by_orm(employee_id):
    """employee_stats's numbers as the ORM counts them (the definitions the plain SQL must keep)."""
    from django.db.models import Q

    from collaboration.models import ConversationParticipant

    now = timezone.now()
    inbox = Message.objects.filter(receiver_id=employee_id)
    waiting = inbox.filter(status="queued", expires_at__gt=now)
    return {
        "connections": Connection.objects.filter(Q(employee_a_id=employee_id) | Q(employee_b_id=employee_id)).count(),
        "conversations": ConversationParticipant.objects.filter(employee_id=employee_id).count(),
        "queue_depth": {str(p): waiting.filter(priority=p).count() for p in (1, 2, 3, 4)},
        "queue_size": inbox.filter(status__in=["queued", "leased"], expires_at__gt=now).count(),
        "message_stats": {
            "sent": Message.objects.filter(sender_id=employee_id).count(),
            "received": inbox.filter(delivery_count__gt=0).count(),
            "acked": inbox.filter(status="acked").count(),
            "queued": waiting.count(),
            "leased": inbox.filter(status="leased").count(),
            "expired": inbox.filter(status="expired").count(),
            "dead": inbox.filter(status="dead").count(),
            "total": inbox.count(),
        },
    }


def test_employee_stats_counts_what_the_definitions_say(pair, settings):
    from collaboration import selectors

    settings.SEED_MESSAGE_QUEUE_MAX_SIZE = 100
    services.employee_register(employee_id="ops_001", role="devops")
    services.connection_create(employee_id="qa_001", target_employee_id="ops_001")
    services.conversation_create(employee_id="dev_001", participants=["dev_001", "qa_001"], topic="t")
    for i in range(12):
        send(priority=1 + i % 4, action=f"m{i}")
    services.message_send(sender_id="qa_001", receiver_id="dev_001", message_type="query")
    leased = services.messages_receive(employee_id="qa_001", limit=5)
    services.messages_ack(employee_id="qa_001", ids=[m.pk for m in leased[:2]])
    Message.objects.filter(pk=leased[2].pk).update(status="dead")
    Message.objects.filter(action="m0").update(status="expired")
    Message.objects.filter(action="m10").update(expires_at=timezone.now() - timedelta(seconds=1))  # queued, past TTL
    for employee_id in ("qa_001", "dev_001", "ops_001"):
        stats = selectors.employee_stats(employee_id=employee_id)
        assert {k: stats[k] for k in _stats_by_orm(employee_id)} == _stats_by_orm(employee_id), employee_id
        assert stats["employee_id"] == employee_id and stats["queue_max_size"] == 100
    qa = selectors.employee_stats(employee_id="qa_001")
    assert qa["message_stats"]["total"] == 12 and qa["connections"] == 2 and qa["conversations"] == 1
    assert qa["queue_size"] == 7  # 12 - 2 acked - 1 dead - 1 expired - 1 queued past its TTL
