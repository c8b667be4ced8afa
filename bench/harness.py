"""Real servers for the benchmark: databases, the floor (gunicorn) and Seed (``manage.py runseed``).

Everything binds to loopback; every process starts in its own session so that teardown can always kill
its whole group; databases are created per run (``bench_seed_<random>``, ``bench_floor_<random>``) and
dropped at the end, also on Ctrl-C or an error.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil
import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
OUT_DIR = BASE_DIR / "var" / "bench"
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
REDIS_PREFIX = "bench"
CORES = os.cpu_count() or 1
SEED_EXTRA_ENV: dict[str, str] = {}  # --seed-env KEY=VALUE: try a setting without editing anything


def progress(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def db_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


class Database:
    """A fresh PostgreSQL database, dropped on close."""

    def __init__(self, prefix: str) -> None:
        self.name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.url = db_url(self.name)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def execute(self, sql: str, params: tuple | None = None) -> None:
        with self.connect() as conn:
            conn.execute(sql, params)

    def close(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def redis_clear() -> None:
    """Drop our own keys (prefix ``bench``) from our Redis database, nothing else."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for pattern in (f"{REDIS_PREFIX}:*", f"{REDIS_PREFIX}*"):
            batch = list(client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(batch), 500):
                client.delete(*batch[start : start + 500])
    finally:
        client.close()


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEED_", "DJANGO_", "PYTEST_")) and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update({"PYTHONUNBUFFERED": "1", **extra})
    return env


class Server:
    """One server process group on 127.0.0.1:<port>, logging to var/bench/logs."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.url = f"http://127.0.0.1:{port}"
        (OUT_DIR / "logs").mkdir(parents=True, exist_ok=True)
        self.log_path = OUT_DIR / "logs" / f"{name}-{port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, health_path: str, timeout: float = 90) -> "Server":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            try:
                if httpx.get(self.url + health_path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not answer {health_path} within {timeout} s; see {self.log_path}")

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_mb(self, match: str = "") -> float:
        """Resident memory of the group's processes whose command line contains ``match``, in MB."""
        total = 0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                if match in " ".join(proc.cmdline()):
                    total += proc.memory_info().rss
        return total / 1e6

    def rss_each_mb(self, match: str = "") -> list[int]:
        """Resident memory of each matching process, in MB."""
        out = []
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                if match in " ".join(proc.cmdline()):
                    out.append(round(proc.memory_info().rss / 1e6))
        return out

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def manage(env: dict[str, str], *args: str, settings_module: str | None = None) -> str:
    argv = [sys.executable, "-m", "django", *args] if settings_module else [sys.executable, "manage.py", *args]
    if settings_module:
        env = {**env, "DJANGO_SETTINGS_MODULE": settings_module}
    result = subprocess.run(argv, env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def start_floor(db: Database) -> Server:
    env = clean_env({"DATABASE_URL": db.url, "DJANGO_SETTINGS_MODULE": "bench.floor.settings"})
    manage(env, "migrate", "--noinput", "-v0", settings_module="bench.floor.settings")
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "bench.floor.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", str(CORES), "--worker-class", "sync", "--log-level", "warning", "--backlog", "2048"]
    return Server("floor", argv, env, port).start("/constant")


def seed_env(db: Database | None, data_dir: Path) -> dict[str, str]:
    extra = {
        "DJANGO_SETTINGS_MODULE": "seedproject.settings.base",
        "SEED_ALLOW_LOCAL_ANONYMOUS": "true",
        "SEED_LOG_LEVEL": "WARNING",
        # The TTL sweep is measured on its own (scenario ttl_sweep); beat must not run it behind our back.
        "SEED_EXPIRY_INTERVAL": "3600",
        # Instances registered by the bench never heartbeat (except in the heartbeat scenario): keep them active.
        "SEED_INSTANCE_TIMEOUT": "3600",
        # The courtesy throttle (default 6000/min per address) would cap one loopback client at 100/s. A huge
        # per-second rate keeps its code path (two cache calls per request) without ever tripping it.
        "SEED_THROTTLE_RATE": "1000000/s",
        "SEED_DATA_DIR": str(data_dir),
    }
    extra.update(SEED_EXTRA_ENV)
    if db is not None:
        extra.update({"DATABASE_URL": db.url, "REDIS_URL": REDIS_URL, "SEED_REDIS_PREFIX": REDIS_PREFIX})
        extra["DJANGO_SECRET_KEY"] = "bench-not-secret"
    return clean_env(extra)


def start_seed(env: dict[str, str]) -> Server:
    manage(env, "migrate", "--noinput", "-v0")
    port = free_port()
    argv = [sys.executable, "manage.py", "runseed", "--host", "127.0.0.1", "--port", str(port)]
    return Server("seed", argv, env, port).start("/health")


def run_load(spec: dict, timeout: float = 600) -> dict:
    """Run the load generator in its own process and return its JSON result."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.load"],
        input=json.dumps(spec) + "\n",
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"load generator failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
