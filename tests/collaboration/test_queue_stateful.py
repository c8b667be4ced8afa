"""A Hypothesis state machine over the real queue services: the queue's invariants hold for any sequence."""

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from collaboration import selectors, services
from collaboration.models import Connection, Conversation, Employee, Message
from seedproject.errors import QueueFull

BOUND = 3
MAX_DELIVERIES = 2
RECEIVERS = ("r1", "r2")


class QueueMachine(RuleBasedStateMachine):
    """Senders, receivers, time travel and the sweep, interleaved at random."""

    def __init__(self) -> None:
        super().__init__()
        Message.objects.all().delete()
        Conversation.objects.all().delete()
        Connection.objects.all().delete()
        Employee.objects.all().delete()
        services.employee_register(employee_id="dev", role="developer")
        for receiver in RECEIVERS:
            services.employee_register(employee_id=receiver, role="qa_engineer")
            services.connection_create(employee_id="dev", target_employee_id=receiver)
        # Insertion-ordered (dicts), never sorted by the random UUIDs: Hypothesis must replay a run's
        # choices onto the same messages, or its data generation looks flaky.
        self.sent: dict = {}
        self.acked: set = set()
        self.held: dict = {}  # leased to a receiver in this run -> receiver

    @rule(receiver=st.sampled_from(RECEIVERS), priority=st.integers(1, 4))
    def send(self, receiver, priority):
        before = selectors.live_message_count(receiver_id=receiver)
        try:
            message, _ = services.message_send(
                sender_id="dev", receiver_id=receiver, message_type="notification", priority=priority
            )
        except QueueFull:
            assert before >= BOUND
            assert selectors.live_message_count(receiver_id=receiver) == before  # nothing stored
        else:
            assert before < BOUND
            self.sent[message.pk] = None

    @rule(receiver=st.sampled_from(RECEIVERS), limit=st.integers(1, 4))
    def receive(self, receiver, limit):
        now = timezone.now()
        before = {m.pk: m for m in Message.objects.filter(receiver_id=receiver)}
        got = services.messages_receive(employee_id=receiver, limit=limit)
        assert len(got) <= limit
        priorities = [m.priority for m in got]
        assert priorities == sorted(priorities, reverse=True)
        for message in got:
            assert message.pk in self.sent  # only what was sent
            old = before[message.pk]
            assert old.status in ("queued", "leased"), old.status  # never expired, dead or acked
            assert old.expires_at > now
            if old.status == "leased":  # a redelivery: its lease had run out and it was not dead yet
                assert old.lease_expires_at <= now and old.delivery_count < MAX_DELIVERIES
            self.held[message.pk] = receiver

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def ack(self, data):
        pk = data.draw(st.sampled_from(list(self.held)))
        receiver = self.held[pk]
        status = Message.objects.get(pk=pk).status
        if status in ("leased", "acked"):
            services.message_ack(employee_id=receiver, message_id=pk)
            self.acked.add(pk)
        del self.held[pk]

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def time_travel_past_ttl(self, data):
        pk = data.draw(st.sampled_from(list(self.sent)))
        Message.objects.filter(pk=pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    @rule()
    def leases_run_out(self):
        Message.objects.filter(status="leased").update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    @rule()
    def sweep(self):
        services.messages_expire()

    @invariant()
    def depth_within_bound(self):
        for receiver in RECEIVERS:
            assert selectors.live_message_count(receiver_id=receiver) <= BOUND

    @invariant()
    def acked_stay_acked(self):
        assert set(Message.objects.filter(pk__in=self.acked).values_list("status", flat=True)) <= {"acked"}

    @invariant()
    def deliveries_bounded(self):
        assert not Message.objects.filter(delivery_count__gt=MAX_DELIVERIES).exists()
        assert not Message.objects.filter(status="dead", delivery_count__lt=MAX_DELIVERIES).exists()


@pytest.mark.django_db
def test_queue_invariants(settings):
    settings.SEED_MESSAGE_QUEUE_MAX_SIZE = BOUND
    settings.SEED_MAX_DELIVERIES = MAX_DELIVERIES
    run_state_machine_as_test(
        QueueMachine,
        settings=hsettings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
