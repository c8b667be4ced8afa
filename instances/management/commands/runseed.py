from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from instances.server import SeedServer, ServerOptions


class Command(BaseCommand):
    help = (
        "Start one Seed server: HTTP + WebSockets on one port (gunicorn + daphne with Redis, daphne alone on "
        "the embedded default), a Celery worker, and Celery beat if no other "
        "server of this cluster runs one. It registers itself and heartbeats; SIGTERM stops everything."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface ('localhost' binds 127.0.0.1 and ::1).")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--advertise-host", default="", help="Host that clients use to reach this server.")
        parser.add_argument("--weight", type=int, default=1, help="Weight of this server in the registry.")
        parser.add_argument("--no-worker", action="store_true", help="Do not start a Celery worker.")
        parser.add_argument("--no-beat", action="store_true", help="Never run Celery beat on this server.")
        parser.add_argument("--no-register", action="store_true", help="Do not register this server in the registry.")

    def handle(self, *args, **opts) -> None:
        options = ServerOptions(
            host=opts["host"],
            port=opts["port"],
            advertise_host=opts["advertise_host"],
            weight=opts["weight"],
            worker=not opts["no_worker"],
            beat=not opts["no_beat"],
            register=not opts["no_register"],
        )
        try:
            server = SeedServer(options)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        raise SystemExit(server.run())
