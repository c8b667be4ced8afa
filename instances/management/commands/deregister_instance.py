"""manage.py deregister_instance <id or host:port>."""

from django.core.management.base import BaseCommand, CommandError

from instances.selectors import instance_get, instance_get_by_address
from instances.services import instance_deregister
from seedproject.errors import DomainError


class Command(BaseCommand):
    """Remove an instance, named by its id or by host:port."""

    help = "Deregister an instance by id or host:port."

    def add_arguments(self, parser) -> None:
        parser.add_argument("instance", help="the instance id (UUID) or host:port")

    def handle(self, *args, **options) -> None:
        target = options["instance"]
        host, _, port = target.rpartition(":")
        try:
            if host and port.isdigit():
                instance = instance_get_by_address(host=host.strip("[]"), port=int(port))
            else:
                instance = instance_get(instance_id=target)
            instance_deregister(instance_id=instance.pk, actor="command")
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Deregistered {instance.address} ({instance.pk}).")
