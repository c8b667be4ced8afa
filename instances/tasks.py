"""Celery tasks of the instances app (beat runs check_instances every heartbeat_interval)."""

from celery import shared_task

from instances.services import instances_check_health


@shared_task(name="instances.tasks.check_instances")
def check_instances() -> dict:
    """One health pass over the cluster."""
    return instances_check_health()
