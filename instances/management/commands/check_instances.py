"""manage.py check_instances: one health pass now."""

import json

from django.core.management.base import BaseCommand

from instances.services import instances_check_health


class Command(BaseCommand):
    """Probe every active/unhealthy instance and apply the health rules once; print the counts."""

    help = "Run one health pass now (probe, mark stale instances unhealthy, recover live ones)."

    def handle(self, *args, **options) -> None:
        self.stdout.write(json.dumps(instances_check_health(actor="command")))
