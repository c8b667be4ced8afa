"""manage.py register_instance --host H --port P [--weight W] [--metadata JSON] [--no-verify]."""

import json

from django.core.management.base import BaseCommand, CommandError

from instances.selectors import instance_to_dict
from instances.services import instance_register
from seedproject.errors import DomainError


class Command(BaseCommand):
    """Register (or re-register) an instance, probing its health endpoint first unless --no-verify."""

    help = "Register an instance in the cluster (probes http://host:port/health first unless --no-verify)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", required=True)
        parser.add_argument("--port", required=True, type=int)
        parser.add_argument("--weight", type=int, default=1)
        parser.add_argument("--metadata", default="{}", help="a JSON object")
        parser.add_argument("--health-check-path", default="/health")
        parser.add_argument("--no-verify", action="store_true", help="register without probing first")

    def handle(self, *args, **options) -> None:
        try:
            metadata = json.loads(options["metadata"])
            instance, created = instance_register(
                host=options["host"],
                port=options["port"],
                weight=options["weight"],
                metadata=metadata,
                health_check_path=options["health_check_path"],
                verify=not options["no_verify"],
                actor="command",
            )
        except json.JSONDecodeError as exc:
            raise CommandError(f"--metadata is not valid JSON: {exc}") from exc
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps({"created": created, "instance": instance_to_dict(instance)}, ensure_ascii=False))
