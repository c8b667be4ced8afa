"""Employees, their connections, the messages between them and their conversations."""

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from collaboration.choices import EmployeeStatus, MessagePriority, MessageStatus


class Employee(models.Model):
    """An AI employee: an agent with an id of its own choosing and a role."""

    employee_id = models.CharField(max_length=128, primary_key=True)
    role = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=EmployeeStatus.choices, default=EmployeeStatus.ACTIVE)
    registered_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    # SHA-256 of the employee's bearer token; the token itself is shown once, at registration/rotation.
    token_hash = models.CharField(max_length=64, blank=True, default="", db_index=True, editable=False)

    class Meta:
        ordering = ["employee_id"]
        indexes = [models.Index(fields=["status", "last_seen"], name="collab_emp_status_seen")]

    def __str__(self) -> str:
        return f"{self.employee_id} ({self.role})"


class Connection(models.Model):
    """A bidirectional link between two employees, stored once with the smaller id first."""

    employee_a = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="connections_as_a")
    employee_b = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="connections_as_b")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["employee_a", "employee_b"]
        constraints = [
            models.UniqueConstraint(fields=["employee_a", "employee_b"], name="collab_connection_unique_pair"),
            # One row per pair: (a, b) with a < b, so "is there a connection" is one indexed lookup.
            models.CheckConstraint(
                condition=Q(employee_a__lt=models.F("employee_b")), name="collab_connection_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.employee_a_id} <-> {self.employee_b_id}"

    def other(self, employee_id: str) -> str:
        """The id at the other end of this connection."""
        return self.employee_b_id if self.employee_a_id == employee_id else self.employee_a_id


class Conversation(models.Model):
    """A multi-party discussion; each post is queued to every other participant."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    topic = models.CharField(max_length=255, blank=True, default="")
    created_by = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="conversations_created")
    participants = models.ManyToManyField(Employee, through="ConversationParticipant", related_name="conversations")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.topic or str(self.id)


class ConversationParticipant(models.Model):
    """Membership of an employee in a conversation."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="memberships")
    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="memberships")
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["conversation", "id"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "employee"], name="collab_participant_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.employee_id} in {self.conversation_id}"


class ConversationPost(models.Model):
    """One post in a conversation's history (its deliveries are Message rows, one per other participant)."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="posts")
    sender = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="conversation_posts")
    action = models.CharField(max_length=128, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    priority = models.PositiveSmallIntegerField(choices=MessagePriority.choices, default=MessagePriority.NORMAL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # The auto id breaks ties between posts in the same microsecond: history is in posting order.
        ordering = ["conversation", "id"]

    def __str__(self) -> str:
        return f"post {self.pk} by {self.sender_id}"


class Message(models.Model):
    """One message in a receiver's queue; its status records where it is in its life."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No FK indexes of their own (every index costs each insert and each status change, which the TTL sweep
    # makes in bulk): collab_msg_sender starts with sender; conversation/post get partial indexes below.
    sender = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="sent_messages", db_index=False)
    # No separate FK index: the composite dequeue index below starts with receiver and serves it.
    receiver = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="received_messages", db_index=False)
    message_type = models.CharField(max_length=64)
    action = models.CharField(max_length=128, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    priority = models.PositiveSmallIntegerField(choices=MessagePriority.choices, default=MessagePriority.NORMAL)
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    delivery_count = models.PositiveIntegerField(default=0)
    # NULL = "not given" (distinct from ""), and the partial unique index on client ids relies on NULL.
    correlation_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    conversation = models.ForeignKey(
        Conversation, on_delete=models.PROTECT, null=True, blank=True, related_name="messages", db_index=False
    )
    post = models.ForeignKey(
        ConversationPost, on_delete=models.PROTECT, null=True, blank=True, related_name="deliveries", db_index=False
    )
    client_message_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001

    class Meta:
        ordering = ["-priority", "created_at"]
        indexes = [
            # Dequeue (WHERE receiver, status=queued ORDER BY priority DESC, created_at) and the depth count.
            models.Index("receiver", "status", models.F("priority").desc(), "created_at", name="collab_msg_dequeue"),
            # Live messages by receiver and TTL: the TTL sweep (status IN (queued, leased) AND expires_at <= now,
            # every receiver: the whole index is read, about 10 ns an entry), a receive's own expiry and a send's
            # room count (one receiver's range). Partial on the live statuses, so a message that is expired or
            # acked gets no entry: one index insert fewer per row for the sweep and for every ack. Led by the
            # receiver, so no plan can use it to count every receiver's live messages for one send (what a
            # partial index on expires_at alone drew the room count to on stale statistics; bench/README.md,
            # items 11 and 13).
            models.Index(
                fields=["receiver", "expires_at"],
                name="collab_msg_ttl_live",
                condition=Q(status__in=[MessageStatus.QUEUED, MessageStatus.LEASED]),
            ),
            # Lease reclaim (the sweep's, and a receive's of its own run-out leases): status = leased AND
            # lease_expires_at <= now. Partial: a message that leaves the leased status (acked, expired, dead,
            # back in the queue) gets no entry, so expiring or acking a message writes one index entry fewer.
            models.Index(
                fields=["lease_expires_at"], name="collab_msg_lease_live", condition=Q(status=MessageStatus.LEASED)
            ),
            models.Index(fields=["sender", "created_at"], name="collab_msg_sender"),
            # Only conversation deliveries carry these: partial, so direct messages never touch them.
            models.Index(
                fields=["conversation"], name="collab_msg_conversation", condition=Q(conversation__isnull=False)
            ),
            models.Index(fields=["post"], name="collab_msg_post", condition=Q(post__isnull=False)),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "client_message_id"],
                condition=Q(client_message_id__isnull=False),
                name="collab_msg_client_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_type} {self.sender_id} -> {self.receiver_id} [{self.status}]"
