from django.core.management.base import BaseCommand

from seedproject.leader import run_beat_when_leader


class Command(BaseCommand):
    help = "Run Celery beat once this process holds the cluster's beat lock; stand by until then."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--retry-interval", type=float, default=2.0, help="Seconds between lock attempts.")

    def handle(self, *args, retry_interval: float, **options) -> None:
        run_beat_when_leader(retry_interval=retry_interval)
