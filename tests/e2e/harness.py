"""Real Seed servers for end-to-end tests: `manage.py runseed` processes on loopback ports.

Nothing here is mocked: each server is the supervisor with its daphne, Celery worker and beat
candidate, talking to the real database (SQLite file or PostgreSQL) and, when configured, Redis.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx
import psutil

BASE_DIR = Path(__file__).resolve().parents[2]

# Fast health timings so failover is observable within seconds.
FAST_TIMINGS = {"SEED_HEARTBEAT_INTERVAL": "1", "SEED_INSTANCE_TIMEOUT": "3", "SEED_EXPIRY_INTERVAL": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a child server: ours minus test/service settings, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SEED_", "DJANGO_", "PYTEST_")) and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update({"DJANGO_SETTINGS_MODULE": "seedproject.settings.base", "PYTHONUNBUFFERED": "1", **extra})
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def wait_for(predicate: Callable[[], object], *, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll until ``predicate`` returns something truthy; return it, or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, OSError, KeyError, ValueError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_error})")


class SeedProcess:
    """One `runseed` server on 127.0.0.1:<port>."""

    def __init__(self, *, env: dict[str, str], log_dir: Path, port: int | None = None, args: tuple = ()) -> None:
        self.env = env
        self.port = port or free_port()
        self.args = args
        self.log_path = log_dir / f"seed-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "SeedProcess":
        log = self.log_path.open("ab")
        argv = [sys.executable, str(BASE_DIR / "manage.py"), "runseed", "--host", "127.0.0.1", "--port", str(self.port)]
        # Own process group, so teardown can always reap everything, whatever a test did to the parent.
        self.process = subprocess.Popen(
            [*argv, *self.args],
            env=self.env,
            cwd=BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 60) -> "SeedProcess":
        """Until /health answers 200 and the server has registered itself."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"server on {self.port} exited early:\n{self.log_tail()}")
            if httpx.get(f"{self.url}/health", timeout=2).status_code != 200:
                return False
            return self.own_instance() is not None

        wait_for(ready, timeout=timeout, what=f"server on port {self.port} to serve and register")
        return self

    @property
    def enrollment_headers(self) -> dict[str, str]:
        """What the harness itself presents: the cluster's enrollment token, when it has one."""
        token = self.env.get("SEED_ENROLLMENT_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def own_instance(self) -> dict | None:
        response = httpx.get(f"{self.url}/api/v1/multi-instance/instances", headers=self.enrollment_headers, timeout=5)
        body = response.json()
        return next((i for i in body["instances"] if i["port"] == self.port), None)

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill_supervisor(self) -> None:
        """SIGKILL the supervisor alone, as a crash would: its children must follow by themselves."""
        self.process.kill()
        self.process.wait(timeout=10)

    def cleanup(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@contextlib.contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one group of servers; dropped afterwards."""
    import psycopg

    name = f"seed_e2e_{uuid.uuid4().hex[:10]}"
    parsed = urlparse(base_url)
    admin_url = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(parsed._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_url_for_servers(base_url: str) -> str:
    """Servers use their own Redis database number, away from the test process's cache (db 1)."""
    parsed = urlparse(base_url)
    return urlunparse(parsed._replace(path="/5"))


class _HealthHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def fake_instance() -> Iterator[ThreadingHTTPServer]:
    """A loopback HTTP server that answers /health: an instance to register, and then to kill."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
