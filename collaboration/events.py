"""Real-time events of the collaboration bus, sent to the channel layer only after commit."""

import hashlib
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import transaction

from seedproject.counters import counter

GROUP_PREFIX = "employee."
_MAX_GROUP = 99  # channel layers refuse group names of 100 characters or more


def employee_group(employee_id: str) -> str:
    """The monitor group of an employee; very long ids are hashed to fit the channel layer's limit."""
    name = f"{GROUP_PREFIX}{employee_id}"
    if len(name) <= _MAX_GROUP:
        return name
    return f"{GROUP_PREFIX}{employee_id[:40]}.{hashlib.sha256(employee_id.encode()).hexdigest()[:32]}"


def next_seq(employee_id: str) -> int:
    """The next sequence number of an employee's event stream (shared by every server through the cache)."""
    return counter.incr(f"seq:{employee_group(employee_id)}")


def current_seq(employee_id: str) -> int:
    """The last sequence number handed out on the stream (0 before any event)."""
    return cache.get(f"seq:{employee_group(employee_id)}", 0)


_redis_clients: dict[str, Any] = {}


def _watched(layer: Any, group: str) -> bool:
    """Whether the group has any member, asked of the layer's own storage; True when we cannot tell.

    Most employees have no monitor open, and a send would otherwise build two stats snapshots (seven
    queries) for nobody: bench/README.md measured that as 70% of a send's time.
    """
    groups = getattr(layer, "groups", None)
    if isinstance(groups, dict):  # InMemoryChannelLayer
        return bool(groups.get(group))
    try:  # channels-redis: members are a sorted set at _group_key(group) on the group's shard
        host = layer.hosts[layer.consistent_hash(group)]
        address = host["address"]
        key = layer._group_key(group)
    except (AttributeError, KeyError, IndexError, TypeError):
        return True
    import redis

    client = _redis_clients.get(address)
    if client is None:
        client = _redis_clients[address] = redis.Redis.from_url(address, socket_timeout=5)
    try:
        return bool(client.exists(key))
    except redis.RedisError:
        return True


def _send(employee_id: str, build: Callable[[], dict[str, Any]]) -> None:
    """Build the event and send it, only if a monitor watches this employee (asked once)."""
    layer = get_channel_layer()
    group = employee_group(employee_id)
    if layer is None or not _watched(layer, group):
        return
    async_to_sync(layer.group_send)(group, {**build(), "seq": next_seq(employee_id)})


def _employee_update(employee_id: str) -> dict[str, Any]:
    from collaboration.selectors import employee_stats  # selectors import models; keep import order simple

    return {"type": "employee_update", "stats": employee_stats(employee_id=employee_id)}


def publish_employee_update(employee_id: str) -> None:
    """After commit, push the employee's fresh stats to its monitors."""
    transaction.on_commit(lambda: _send(employee_id, lambda: _employee_update(employee_id)), robust=True)


def publish_message(message: Any) -> None:
    """After commit, push a newly queued message to its receiver's monitors."""
    from collaboration.serializers import message_data

    def event() -> dict[str, Any]:
        return {"type": "message", "message": message_data(message)}

    transaction.on_commit(lambda: _send(message.receiver_id, event), robust=True)
