"""One Seed server: daphne (HTTP + WebSockets), a Celery worker and a beat candidate, supervised.

The supervisor binds the port itself and hands the listening socket to ``SEED_HTTP_PROCESSES`` daphne
processes (one per core by default when Redis is configured), which adopt it with ``-e fd:fileno=N``.

The supervisor (``manage.py runseed``) owns the server's identity in the registry: once daphne answers
``/health`` it registers its advertised host:port, heartbeats its real CPU %, memory % and open
connections every ``heartbeat_interval``, and deregisters on SIGTERM. Children are started with
``PR_SET_PDEATHSIG`` so that a SIGKILL of the supervisor takes them down too: no orphan keeps serving.
"""

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import httpx
import psutil
from django.conf import settings
from django.db import close_old_connections

from seedproject.errors import NotFound

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

    def start(self) -> None:
        # Spawned from the main thread only: PDEATHSIG follows the thread that forked.
        self.process = subprocess.Popen(self.argv, preexec_fn=_die_with_parent, pass_fds=self.pass_fds)  # noqa: S603
        logger.info("started %s (pid %s)", self.name, self.process.pid)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()


def _hosts(host: str) -> list[str]:
    """ "localhost" binds both loopback families, as clients may try ::1 first."""
    return ["127.0.0.1", "::1"] if host == "localhost" and socket.has_ipv6 else [host]


def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """The server's IPv4 listening sockets, made once by the supervisor and shared by every daphne process.

    The kernel spreads accepted connections over the processes that wait on one socket, so N daphne
    processes serve one port without a proxy; a restarted daphne adopts the same socket.
    """
    sockets = []
    for h in _hosts(host):
        if ":" in h:
            continue  # see ipv6_endpoints
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


def http_processes() -> int:
    """How many daphne processes serve the port: ``SEED_HTTP_PROCESSES``, or one per core with Redis.

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
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        self.sockets = listening_sockets(options.host, options.port)
        shared = fd_endpoints(self.sockets)
        fds = tuple(s.fileno() for s in self.sockets)
        count = http_processes() if self.sockets else 1
        self.daphnes = []
        # A monitor client only sends small control frames; anything bigger is refused by daphne itself.
        limit = str(settings.SEED_WS_MAX_MESSAGE_BYTES)
        ws_limits = ["--websocket-max-message-size", limit, "--websocket-max-frame-size", limit]
        for i in range(count):
            endpoints = shared + (ipv6_endpoints(options.host, options.port) if i == 0 else [])
            argv = [python, "-m", "daphne", *(a for e in endpoints for a in ("-e", e)), *ws_limits]
            argv.append("seedproject.asgi:application")
            self.daphnes.append(Child(f"daphne-{i + 1}" if count > 1 else "daphne", argv, pass_fds=fds))
        self.children = list(self.daphnes)
        if options.worker:
            node = f"seed-{options.port}@{socket.gethostname()}"
            worker = [python, "-m", "celery", "-A", "seedproject", "worker", "-P", "threads", "-c", "4"]
            worker += ["-n", node, "-l", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"]
            self.children.append(Child("celery-worker", worker))
        if options.beat:
            self.children.append(Child("beat", [python, manage, "runbeat"]))

    # --- lifecycle -------------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        psutil.cpu_percent(interval=None)  # primes the counter: the first reading is meaningless
        for child in self.children:
            child.start()
        try:
            if not self._wait_until_serving(timeout=60):
                logger.error("daphne did not answer /health on port %s within 60 s", self.options.port)
                return 1
            logger.info("Seed server listening on http://%s:%s", self.options.advertised, self.options.port)
            return self._supervise()
        finally:
            self._shutdown()

    def _request_stop(self, signum: int, _frame: object) -> None:
        logger.info("received %s: stopping", signal.Signals(signum).name)
        self.stopping = True

    def _wait_until_serving(self, timeout: float) -> bool:
        url = f"http://{self.options.advertised}:{self.options.port}/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            if all(d.exited() is not None for d in self.daphnes):
                return False
            try:
                if httpx.get(url, timeout=1).status_code == 200:
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

    # --- registry --------------------------------------------------------------------------------
    def _figures(self) -> dict:
        connections = 0
        for daphne in self.daphnes:
            try:
                for conn in psutil.Process(daphne.process.pid).net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_ESTABLISHED and conn.laddr and conn.laddr.port == self.options.port:
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
