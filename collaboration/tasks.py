"""Periodic work of the bus (Celery beat); each task is one service call."""

from celery import shared_task

from collaboration import services


@shared_task(name="collaboration.tasks.expire_messages", ignore_result=True)
def expire_messages() -> dict[str, int]:
    """Mark TTL-expired messages and reclaim run-out leases."""
    return services.messages_expire()


@shared_task(name="collaboration.tasks.prune_connections", ignore_result=True)
def prune_connections() -> int:
    """Drop connections of employees that unregistered or went silent."""
    return services.connections_prune()
