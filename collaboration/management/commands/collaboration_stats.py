"""Print the bus's system stats as JSON."""

import json

from django.core.management.base import BaseCommand

from collaboration import selectors


class Command(BaseCommand):
    """manage.py collaboration_stats."""

    help = "Print totals across employees, messages, conversations and connections (JSON)."

    def handle(self, *args, **options):
        self.stdout.write(json.dumps(selectors.system_stats(), indent=2, sort_keys=True))
