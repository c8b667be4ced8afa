"""The agent-side SDK of the Seed bus (no Django needed): ``CollaborationProtocol`` and friends.

from collaboration.client import CollaborationProtocol, EmployeeRole
"""

from collaboration.client.agent import ANY_ACTION, CollaborationProtocol, ReceivedMessage
from collaboration.client.buffer import InboxBuffer
from collaboration.client.errors import RequestTimeout, SeedAPIError, SeedClientError, SeedUnavailable
from collaboration.client.transport import Backoff, SeedTransport
from collaboration.protocol import EmployeeRole, MessagePriority, MessageType, ProtocolMessage, register_message_types

__all__ = [
    "ANY_ACTION",
    "Backoff",
    "CollaborationProtocol",
    "EmployeeRole",
    "InboxBuffer",
    "MessagePriority",
    "MessageType",
    "ProtocolMessage",
    "ReceivedMessage",
    "RequestTimeout",
    "SeedAPIError",
    "SeedClientError",
    "SeedTransport",
    "SeedUnavailable",
    "register_message_types",
]
