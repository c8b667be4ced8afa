"""manage.py cluster_stats: the seed's cluster statistics as JSON."""

import json

from django.core.management.base import BaseCommand

from instances.selectors import cluster_stats


class Command(BaseCommand):
    """Print the cluster statistics as JSON."""

    help = "Print the cluster statistics (the cluster/stats route) as JSON."

    def handle(self, *args, **options) -> None:
        self.stdout.write(json.dumps(cluster_stats(), indent=2))
