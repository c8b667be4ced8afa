"""Put dead messages back in their queues."""

import uuid

from django.core.management.base import BaseCommand, CommandError

from collaboration import services


class Command(BaseCommand):
    """manage.py requeue_dead [--receiver ID] [MESSAGE_ID ...]."""

    help = "Requeue dead messages: all of them, one receiver's (--receiver), or the given message ids."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", help="message ids (UUIDs); default: every dead message")
        parser.add_argument("--receiver", help="only this receiver's dead messages")

    def handle(self, *args, ids, receiver, **options):
        try:
            parsed = [uuid.UUID(i) for i in ids] or None
        except ValueError as exc:
            raise CommandError(f"Not a message id: {exc}") from exc
        count = services.messages_requeue_dead(ids=parsed, receiver_id=receiver)
        self.stdout.write(f"requeued={count}")
