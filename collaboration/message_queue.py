"""The seed's ``MessageQueue(max_size=1000)``: a thin facade over the database-backed queue services."""

from typing import Any

from collaboration import selectors, services
from collaboration.models import Message


class MessageQueue:
    """A bounded, prioritised, persistent queue per receiver; state lives in the database, not in this object."""

    def __init__(self, max_size: int | None = None) -> None:
        self.max_size = max_size

    def put(self, *, sender_id: str, receiver_id: str, message_type: str, **fields: Any) -> Message:
        """Queue a message (raises QueueFull beyond max_size, NotConnected without a connection)."""
        message, _ = services.message_send(
            sender_id=sender_id, receiver_id=receiver_id, message_type=message_type, max_size=self.max_size, **fields
        )
        return message

    def get(self, receiver_id: str, *, limit: int = 1, wait: float = 0) -> list[Message]:
        """Lease the next messages for ``receiver_id`` (highest priority first)."""
        return services.messages_receive(employee_id=receiver_id, limit=limit, wait=wait)

    def ack(self, receiver_id: str, *message_ids: Any) -> list[Message]:
        """Acknowledge leased messages."""
        return services.messages_ack(employee_id=receiver_id, ids=list(message_ids))

    def size(self, receiver_id: str) -> int:
        """Queued + leased messages that still count against the bound."""
        return selectors.live_message_count(receiver_id=receiver_id)

    def is_full(self, receiver_id: str) -> bool:
        """Whether the next put for this receiver would be refused."""
        return self.size(receiver_id) >= (self.max_size or services.limits().max_size)
