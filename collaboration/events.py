"""Real-time events of the collaboration bus, sent to the channel layer only after commit."""

import hashlib
import logging
from collections.abc import Callable, Iterable
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
logger = logging.getLogger(__name__)
# One event: the employee whose monitors get it, and how to build it (only called when someone watches).
Event = tuple[str, Callable[[], dict[str, Any]]]


def _redis_group_keys(layer: Any, groups: list[str]) -> dict[str, list[tuple[str, str]]] | None:
    """channels-redis: where each group's member set lives, as {shard address: [(group, key), ...]}."""
    try:
        shards: dict[str, list[tuple[str, str]]] = {}
        for group in groups:
            address = layer.hosts[layer.consistent_hash(group)]["address"]
            shards.setdefault(address, []).append((group, layer._group_key(group)))
    except (AttributeError, KeyError, IndexError, TypeError):
        return None
    return shards


def _watched(layer: Any, groups: list[str]) -> set[str]:
    """The groups that have a member, asked of the layer's own storage; all of them when we cannot tell.

    Most employees have no monitor open, and a send would otherwise build two stats snapshots for
    nobody: bench/README.md measured that as 70% of a send's time. On channels-redis this
    is one EXISTS per shard (one in practice) however many groups a write touches, unless some of them
    are watched and others not.
    """
    layer_groups = getattr(layer, "groups", None)
    if isinstance(layer_groups, dict):  # InMemoryChannelLayer
        return {group for group in groups if layer_groups.get(group)}
    shards = _redis_group_keys(layer, groups)
    if shards is None:
        return set(groups)
    import redis

    watched: set[str] = set()
    for address, keys in shards.items():
        client = _redis_clients.get(address)
        if client is None:
            client = _redis_clients[address] = redis.Redis.from_url(address, socket_timeout=5)
        try:
            # One EXISTS over every key answers the usual case (nobody, or everybody, watches); only a
            # mixed answer needs a second, per-key round trip.
            count = client.exists(*(key for _, key in keys))
            if count == 0:
                continue
            if count < len(keys):
                pipe = client.pipeline(transaction=False)
                for _, key in keys:
                    pipe.exists(key)
                keys = [pair for pair, exists in zip(keys, pipe.execute(), strict=True) if exists]
        except redis.RedisError:
            pass  # cannot tell: send to all of them
        watched.update(group for group, _ in keys)
    return watched


def _dispatch(events: list[Event]) -> None:
    """Build and send each event whose employee is watched, in order; who watches is asked once for all.

    A failing event is logged and does not keep the others from being sent (as separate robust
    on_commit callbacks behaved).
    """
    layer = get_channel_layer()
    if layer is None:
        return
    groups = {employee_id: employee_group(employee_id) for employee_id, _ in events}
    watched = _watched(layer, list(dict.fromkeys(groups.values())))
    if not watched:
        return
    frames = []
    for employee_id, build in events:
        group = groups[employee_id]
        if group not in watched:
            continue
        try:
            frames.append((group, {**build(), "seq": next_seq(employee_id)}))
        except Exception:
            logger.exception("Could not build the %s event for %r", group, employee_id)

    async def send_all() -> None:
        for group, frame in frames:
            try:
                await layer.group_send(group, frame)
            except Exception:
                logger.exception("Could not send the %s event to %s", frame.get("type"), group)

    if frames:
        async_to_sync(send_all)()


def _employee_update(employee_id: str) -> dict[str, Any]:
    from collaboration.selectors import employee_stats  # selectors import models; keep import order simple

    return {"type": "employee_update", "stats": employee_stats(employee_id=employee_id)}


def _update_event(employee_id: str) -> Event:
    return employee_id, lambda: _employee_update(employee_id)


def _message_event(message: Any) -> Event:
    from collaboration.serializers import message_data

    return message.receiver_id, lambda: {"type": "message", "message": message_data(message)}


def publish(*, messages: Iterable[Any] = (), updates: Iterable[str] = ()) -> None:
    """After commit: each new message to its receiver's monitors, then fresh stats to each updated employee's.

    One on_commit callback and one "who watches" query for the whole write (a send names its message,
    the receiver and the sender: one Redis round trip instead of three).
    """
    events = [_message_event(m) for m in messages] + [_update_event(e) for e in dict.fromkeys(updates)]
    if events:
        transaction.on_commit(lambda: _dispatch(events), robust=True)


def publish_employee_update(employee_id: str) -> None:
    """After commit, push the employee's fresh stats to its monitors."""
    publish(updates=[employee_id])


def publish_message(message: Any) -> None:
    """After commit, push a newly queued message to its receiver's monitors."""
    publish(messages=[message])
