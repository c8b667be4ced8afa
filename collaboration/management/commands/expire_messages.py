"""Run the message expiry sweep once (what Celery beat runs every SEED_EXPIRY_INTERVAL)."""

from django.core.management.base import BaseCommand

from collaboration import services


class Command(BaseCommand):
    """manage.py expire_messages."""

    help = "Mark TTL-expired messages and reclaim run-out leases; print the counts."

    def handle(self, *args, **options):
        counts = services.messages_expire()
        self.stdout.write(f"expired={counts['expired']} requeued={counts['requeued']} dead={counts['dead']}")
