"""Real-time events of the instances app: the only place that talks to the channel layer."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import transaction

from instances import selectors
from seedproject.counters import counter

logger = logging.getLogger(__name__)

CLUSTER_GROUP = "cluster"
SEQ_KEY = "seq:cluster"


def cluster_payload() -> dict:
    """One monitor frame: the snapshot plus the stream's next sequence number."""
    payload = selectors.cluster_snapshot()
    payload["seq"] = counter.incr(SEQ_KEY)
    return payload


def cluster_frame() -> dict:
    """A snapshot for one socket: it carries the stream's current ``seq`` and consumes none."""
    payload = selectors.cluster_snapshot()
    payload["seq"] = cache.get(SEQ_KEY, 0)
    return payload


def _send_cluster_update() -> None:
    try:
        payload = cluster_payload()
        async_to_sync(get_channel_layer().group_send)(CLUSTER_GROUP, {"type": "cluster.update", "payload": payload})
    except Exception:
        # The change is committed; a monitor outage (e.g. Redis down) must not fail the request.
        logger.exception("could not publish the cluster update")


def publish_cluster_update() -> None:
    """After the current transaction commits, push one cluster snapshot to every monitor."""
    transaction.on_commit(_send_cluster_update)
