"""One Seed server: HTTP and WebSockets on one port, a Celery worker and a beat candidate, supervised.

The supervisor binds the port itself and hands the listening sockets to the processes that serve it.
With Redis configured (``SEED_HTTP_SERVER=gunicorn``, the default there) gunicorn serves HTTP with
``SEED_HTTP_PROCESSES`` threaded workers through Django's WSGI handler, and hands each WebSocket upgrade
over to one of ``SEED_WS_PROCESSES`` daphne processes (``seedproject.handoff``, ``seedproject.wsserver``);
Django's ASGI path costs several times more per request (ARCHITECTURE.md, "Serving HTTP"). On the
embedded default one daphne serves both (``SEED_HTTP_SERVER=daphne``): its in-memory channel layer must
live in the process that serves the requests whose events the sockets show.

The supervisor (``manage.py runseed``) owns the server's identity in the registry: once the port
answers ``/health`` it registers its advertised host:port, heartbeats its real CPU %, memory % and open
connections every ``heartbeat_interval``, and deregisters on SIGTERM. Children are started with
``PR_SET_PDEATHSIG`` so that a SIGKILL of the supervisor takes them down too: no orphan keeps serving.
"""

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field

import httpx
import psutil
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections

from seedproject.errors import NotFound
from seedproject.handoff import HANDOFF_ENV

logger = logging.getLogger("seed.server")

PR_SET_PDEATHSIG = 1
RESTARTS_ALLOWED = 5  # per RESTART_WINDOW seconds, per child; past that the server gives up
RESTART_WINDOW = 60.0
LISTEN_BACKLOG = 2048


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask the kernel for SIGTERM when the parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    advertise_host: str = ""
    worker: bool = True
    beat: bool = True
    register: bool = True
    weight: int = 1

    @property
    def advertised(self) -> str:
        if self.advertise_host:
            return self.advertise_host
        return "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host  # noqa: S104


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    restarts: deque = field(default_factory=deque)
    pass_fds: tuple[int, ...] = ()
    env: dict[str, str] | None = None

    def start(self) -> None:
        # Spawned from the main thread only: PDEATHSIG follows the thread that forked.
        self.process = subprocess.Popen(  # noqa: S603
            self.argv, preexec_fn=_die_with_parent, pass_fds=self.pass_fds, env=self.env
        )
        logger.info("started %s (pid %s)", self.name, self.process.pid)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()


def _hosts(host: str) -> list[str]:
    """ "localhost" binds both loopback families, as clients may try ::1 first."""
    return ["127.0.0.1", "::1"] if host == "localhost" and socket.has_ipv6 else [host]


def listening_sockets(host: str, port: int, *, ipv6: bool = True) -> list[socket.socket]:
    """The server's listening sockets, made once by the supervisor and shared by every serving process.

    The kernel spreads accepted connections over the processes that wait on one socket, so N processes
    serve one port without a proxy, and a restarted one adopts the same socket. ``ipv6=False`` leaves
    IPv6 addresses out, for daphne to bind itself (Twisted's ``fd:`` endpoint adopts IPv4 sockets only).
    """
    sockets = []
    for h in _hosts(host):
        family = socket.AF_INET6 if ":" in h else socket.AF_INET
        if family == socket.AF_INET6 and not ipv6:
            continue
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((h, port))
        sock.listen(LISTEN_BACKLOG)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


def ipv6_endpoints(host: str, port: int) -> list[str]:
    """IPv6 addresses are bound by the first daphne itself: Twisted's ``fd:`` endpoint adopts IPv4 sockets only."""
    return [f"tcp:port={port}:interface={h.replace(':', chr(92) + ':')}" for h in _hosts(host) if ":" in h]


def fd_endpoints(sockets: list[socket.socket]) -> list[str]:
    """Twisted endpoint strings that adopt already-listening IPv4 sockets (``fd:fileno=N``)."""
    return [f"fd:fileno={s.fileno()}" for s in sockets]


def http_server() -> str:
    """``gunicorn`` or ``daphne``: which server serves HTTP on the port (see the module docstring)."""
    configured = settings.SEED_HTTP_SERVER
    if configured not in {"", "gunicorn", "daphne"}:
        raise ImproperlyConfigured(f"SEED_HTTP_SERVER must be 'gunicorn' or 'daphne', not {configured!r}.")
    if not settings.REDIS_URL:
        if configured == "gunicorn":
            raise ImproperlyConfigured(
                "SEED_HTTP_SERVER=gunicorn needs Redis (REDIS_URL): the in-memory channel layer cannot carry "
                "events from gunicorn's processes to daphne's sockets."
            )
        return "daphne"
    return configured or "gunicorn"


def http_processes() -> int:
    """How many processes serve HTTP on the port: ``SEED_HTTP_PROCESSES``, or one per core with Redis.

    Several processes need the shared channel layer and cache (Redis): the embedded default's in-memory
    layer lives in one process, so it always runs a single daphne.
    """
    if not settings.REDIS_URL:
        return 1
    configured = settings.SEED_HTTP_PROCESSES
    return configured if configured > 0 else os.cpu_count() or 1


class SeedServer:
    """Supervises the processes of one Seed server and keeps its registry entry alive."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.stopping = False
        self.instance_id = None
        self.mode = http_server()
        self.runtime_dir = None
        self.handoff_paths: list[str] = []
        if self.mode == "gunicorn":
            self.sockets = listening_sockets(options.host, options.port)
            self.servers = self._gunicorn_children() + self._handoff_daphnes()
        else:
            self.sockets = listening_sockets(options.host, options.port, ipv6=False)
            self.servers = self._daphne_children()
        self.children = list(self.servers)
        python = sys.executable
        if options.worker:
            node = f"seed-{options.port}@{socket.gethostname()}"
            worker = [python, "-m", "celery", "-A", "seedproject", "worker", "-P", "threads", "-c", "4"]
            worker += ["-n", node, "-l", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"]
            self.children.append(Child("celery-worker", worker))
        if options.beat:
            self.children.append(Child("beat", [python, str(settings.BASE_DIR / "manage.py"), "runbeat"]))

    def _ws_limits(self) -> list[str]:
        # A monitor client only sends small control frames; anything bigger is refused by daphne itself.
        return ["--websocket-max-message-size", str(settings.SEED_WS_MAX_MESSAGE_BYTES)]

    def _daphne_children(self) -> list[Child]:
        """daphne processes serving HTTP and WebSockets on the shared sockets (the embedded default: one)."""
        shared = fd_endpoints(self.sockets)
        fds = tuple(s.fileno() for s in self.sockets)
        count = http_processes() if self.sockets else 1
        limits = self._ws_limits()
        limits += ["--websocket-max-frame-size", str(settings.SEED_WS_MAX_MESSAGE_BYTES)]
        children = []
        for i in range(count):
            endpoints = shared + (ipv6_endpoints(self.options.host, self.options.port) if i == 0 else [])
            argv = [sys.executable, "-m", "daphne", *(a for e in endpoints for a in ("-e", e)), *limits]
            argv.append("seedproject.asgi:application")
            children.append(Child(f"daphne-{i + 1}" if count > 1 else "daphne", argv, pass_fds=fds))
        return children

    def _gunicorn_children(self) -> list[Child]:
        """gunicorn (its master supervises its workers) on the shared sockets; upgrades go to daphne."""
        self.runtime_dir = tempfile.mkdtemp(prefix=f"seed-{self.options.port}-")  # 0700: see seedproject.handoff
        count = max(1, settings.SEED_WS_PROCESSES)
        self.handoff_paths = [os.path.join(self.runtime_dir, f"daphne-{i + 1}.handoff") for i in range(count)]
        argv = [sys.executable, "-m", "gunicorn", "seedproject.wsgi:application"]
        for sock in self.sockets:
            argv += ["--bind", f"fd://{sock.fileno()}"]
        argv += ["--worker-class", "seedproject.gworker.KeepAliveThreadWorker", "--workers", str(http_processes())]
        argv += ["--threads", str(settings.SEED_HTTP_THREADS), "--backlog", str(LISTEN_BACKLOG)]
        argv += ["--keep-alive", "5", "--graceful-timeout", "10", "--no-control-socket"]
        argv += ["--log-level", "warning", "--worker-tmp-dir", self.runtime_dir]
        env = {**os.environ, HANDOFF_ENV: os.pathsep.join(self.handoff_paths)}
        return [Child("gunicorn", argv, pass_fds=tuple(s.fileno() for s in self.sockets), env=env)]

    def _handoff_daphnes(self) -> list[Child]:
        children = []
        for i, path in enumerate(self.handoff_paths):
            argv = [sys.executable, "-m", "seedproject.wsserver", "--handoff", path, *self._ws_limits()]
            children.append(Child(f"daphne-{i + 1}" if len(self.handoff_paths) > 1 else "daphne", argv))
        return children

    # --- lifecycle -------------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        psutil.cpu_percent(interval=None)  # primes the counter: the first reading is meaningless
        for child in self.children:
            child.start()
        try:
            if not self._wait_until_serving(timeout=60):
                logger.error("the server did not answer /health on port %s within 60 s", self.options.port)
                return 1
            logger.info("Seed server listening on http://%s:%s", self.options.advertised, self.options.port)
            return self._supervise()
        finally:
            self._shutdown()

    def _request_stop(self, signum: int, _frame: object) -> None:
        logger.info("received %s: stopping", signal.Signals(signum).name)
        self.stopping = True

    def _wait_until_serving(self, timeout: float) -> bool:
        """The port answers /health and every daphne that takes handoffs is listening for them."""
        url = f"http://{self.options.advertised}:{self.options.port}/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            if all(server.exited() is not None for server in self.servers):
                return False
            try:
                if all(map(os.path.exists, self.handoff_paths)) and httpx.get(url, timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return False

    def _supervise(self) -> int:
        next_heartbeat = 0.0
        while not self.stopping:
            for child in self.children:
                code = child.exited()
                if code is not None and not self.stopping and not self._restart(child, code):
                    return 1
            if self.options.register and time.monotonic() >= next_heartbeat:
                interval = self._heartbeat()
                next_heartbeat = time.monotonic() + interval
            time.sleep(0.2)
        return 0

    def _restart(self, child: Child, code: int) -> bool:
        now = time.monotonic()
        while child.restarts and now - child.restarts[0] > RESTART_WINDOW:
            child.restarts.popleft()
        if len(child.restarts) >= RESTARTS_ALLOWED:
            logger.error("%s keeps exiting (code %s); giving up", child.name, code)
            return False
        logger.warning("%s exited with code %s; restarting", child.name, code)
        child.restarts.append(now)
        child.start()
        return True

    def _shutdown(self) -> None:
        if self.options.register and self.instance_id is not None:
            self._deregister()
        for child in self.children:
            if child.exited() is None:
                child.process.terminate()
        deadline = time.monotonic() + 15
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in time; killing it", child.name)
                child.process.kill()
                child.process.wait()
        for sock in self.sockets:
            sock.close()
        if self.runtime_dir:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    # --- registry --------------------------------------------------------------------------------
    def _figures(self) -> dict:
        connections = 0
        for server in self.servers:
            try:
                process = psutil.Process(server.process.pid)
                for member in (process, *process.children(recursive=True)):  # gunicorn's workers
                    for conn in member.net_connections(kind="tcp"):
                        if (
                            conn.status == psutil.CONN_ESTABLISHED
                            and conn.laddr
                            and conn.laddr.port == self.options.port
                        ):
                            connections += 1
            except (psutil.Error, AttributeError):
                pass
        return {
            "cpu_usage": psutil.cpu_percent(interval=None),
            "memory_usage": psutil.virtual_memory().percent,
            "connections": connections,
        }

    def _register(self) -> None:
        from instances.services import instance_register

        metadata = {"seed_server": True, "hostname": socket.gethostname(), "pid": os.getpid()}
        instance, _ = instance_register(
            host=self.options.advertised,
            port=self.options.port,
            weight=self.options.weight,
            metadata=metadata,
            verify=False,  # we just saw /health answer
            actor="server",
        )
        self.instance_id = instance.id
        logger.info("registered as instance %s", instance.id)

    def _heartbeat(self) -> float:
        """Register if needed, send one heartbeat; returns seconds until the next one."""
        from instances.selectors import heartbeat_interval_seconds
        from instances.services import instance_heartbeat

        close_old_connections()
        try:
            if self.instance_id is None:
                self._register()
            try:
                instance_heartbeat(instance_id=self.instance_id, **self._figures())
            except NotFound:  # an operator deregistered us: come back, as Consul agents do
                self.instance_id = None
                self._register()
            return heartbeat_interval_seconds()
        except Exception:
            logger.exception("heartbeat failed; retrying in 2 s")
            return 2.0
        finally:
            close_old_connections()

    def _deregister(self) -> None:
        from instances.services import instance_deregister

        close_old_connections()
        try:
            instance_deregister(instance_id=self.instance_id, actor="server")
            logger.info("deregistered instance %s", self.instance_id)
        except NotFound:
            pass
        except Exception:
            logger.exception("could not deregister")
