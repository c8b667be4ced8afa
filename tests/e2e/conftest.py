"""Fixtures that start real Seed clusters (see harness.py)."""

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import (
    FAST_TIMINGS,
    SeedProcess,
    manage,
    postgres_database,
    redis_url_for_servers,
    server_env,
)

E2E_ENROLLMENT_TOKEN = "e2e-enrollment-token"


class Cluster:
    """Seed servers that share one database (and Redis, when configured)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.servers: list[SeedProcess] = []

    def start(self, count: int = 1, *, port: int | None = None, args: tuple = ()) -> list[SeedProcess]:
        started = [SeedProcess(env=self.env, log_dir=self.log_dir, port=port, args=args).start() for _ in range(count)]
        self.servers.extend(started)
        for server in started:
            server.wait_ready()
        return started

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()

    def logs(self) -> str:
        return "\n\n".join(f"--- server {s.port} ---\n{s.log_tail()}" for s in self.servers)


@pytest.fixture
def embedded_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Servers on the embedded default: one SQLite file, no Redis."""
    clusters: list[Cluster] = []

    def make(**extra: str) -> Cluster:
        data_dir = tmp_path / f"data-{len(clusters)}"
        env = server_env(
            {"SEED_DATA_DIR": str(data_dir), "SEED_ENROLLMENT_TOKEN": E2E_ENROLLMENT_TOKEN, **FAST_TIMINGS, **extra}
        )
        manage(env, "migrate", "--noinput")
        cluster = Cluster(env, tmp_path)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.cleanup()


@pytest.fixture
def pg_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Servers on the real PostgreSQL + Redis (mark the test ``services``)."""
    clusters: list[Cluster] = []
    with postgres_database(os.environ["DATABASE_URL"]) as database_url:

        def make(**extra: str) -> Cluster:
            env = server_env(
                {
                    "DATABASE_URL": database_url,
                    "REDIS_URL": redis_url_for_servers(os.environ["REDIS_URL"]),
                    "SEED_REDIS_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}",
                    "DJANGO_SECRET_KEY": "e2e-only",
                    # These clusters test processes, not credentials: loopback clients stay anonymous-friendly
                    # unless a test turns it off (test_auth_e2e.py does).
                    "SEED_ALLOW_LOCAL_ANONYMOUS": "true",
                    "SEED_ENROLLMENT_TOKEN": E2E_ENROLLMENT_TOKEN,
                    "SEED_DATA_DIR": str(tmp_path / "data"),
                    **FAST_TIMINGS,
                    **extra,
                }
            )
            if not clusters:
                manage(env, "migrate", "--noinput")
            cluster = Cluster(env, tmp_path)
            clusters.append(cluster)
            return cluster

        try:
            yield make
        finally:
            for cluster in clusters:
                cluster.cleanup()
