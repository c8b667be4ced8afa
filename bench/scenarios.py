"""The scenarios of issue 6: throughput against the floor, and growth curves (instances, backlog, sockets).

Every scenario returns result dicts (see ``report.py``); setup goes through the public API where a token
might be issued, and through bulk SQL where the issue asks for scale (10k instances, 1M messages).
"""

import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx

from bench import harness
from bench.harness import BASE_DIR, OUT_DIR, Database, Server, progress, run_load

COLLAB = "/api/v1/collaboration"
MULTI = "/api/v1/multi-instance"
CONCURRENCY = 32
STRATEGIES = ["round_robin", "least_connections", "random", "weighted"]


@dataclass
class Profile:
    """How long and how big: the full run, or QUICK."""

    quick: bool
    runs: int = 3

    @property
    def warmup(self) -> float:
        return 0.5 if self.quick else 1.5

    @property
    def duration(self) -> float:
        return 1.5 if self.quick else 6.0

    @property
    def scale_duration(self) -> float:
        return 1.5 if self.quick else 3.0

    @property
    def backlog_sizes(self) -> list[int]:
        return [1_000, 100_000] if self.quick else [1_000, 1_000_000]

    @property
    def instance_sizes(self) -> list[int]:
        return [10, 1_000, 10_000]

    @property
    def scale_strategies(self) -> list[str]:
        return ["round_robin"] if self.quick else STRATEGIES

    @property
    def ttl_rows(self) -> int:
        return 20_000 if self.quick else 100_000

    @property
    def sockets(self) -> int:
        return 1_000


@dataclass
class Target:
    """A Seed server under test and what we know about it."""

    label: str
    server: Server
    db: Database | None
    tokens: dict[str, str] = field(default_factory=dict)
    seq: int = 0

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=30)

    def headers(self, employee_id: str) -> dict[str, str]:
        token = self.tokens.get(employee_id)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def next_id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.seq}"


def seed_on_postgres(stack: contextlib.ExitStack, db_prefix: str = "bench_seed") -> tuple[Target, dict[str, str]]:
    """Seed (runseed) on a fresh PostgreSQL database and Redis db 7; everything is undone when ``stack`` closes."""
    progress("starting Seed (runseed) on PostgreSQL + Redis db 7")
    harness.redis_clear()
    stack.callback(harness.redis_clear)
    db = Database(db_prefix)
    stack.callback(db.close)
    data_dir = OUT_DIR / "data" / uuid.uuid4().hex[:8]
    stack.callback(shutil.rmtree, data_dir, True)
    env = harness.seed_env(db, data_dir)
    server = harness.start_seed(env)
    stack.callback(server.stop)
    return Target("seed-pg", server, db), env


def _token(body: dict) -> str | None:
    """The token a registration response carries, wherever it puts it (the security change adds one)."""
    return body.get("token") or (body.get("employee") or {}).get("token") or (body.get("instance") or {}).get("token")


def register_employee(target: Target, client: httpx.Client, employee_id: str) -> None:
    r = client.post(f"{COLLAB}/employees/register", json={"employee_id": employee_id, "role": "bench"})
    r.raise_for_status()
    if token := _token(r.json()):
        target.tokens[employee_id] = token


def connected_pairs(target: Target, count: int) -> list[tuple[str, str]]:
    pairs = []
    with target.api() as client:
        for _ in range(count):
            sender, receiver = target.next_id("s"), target.next_id("r")
            register_employee(target, client, sender)
            register_employee(target, client, receiver)
            r = client.post(
                f"{COLLAB}/employees/{sender}/connect",
                json={"target_employee_id": receiver},
                headers=target.headers(sender),
            )
            r.raise_for_status()
            pairs.append((sender, receiver))
    return pairs


def register_instances(target: Target, count: int, base_port: int) -> list[str]:
    ids = []
    with target.api() as client:
        for i in range(count):
            body = {"host": "127.0.0.1", "port": base_port + i, "weight": 1 + i % 3, "verify": False}
            r = client.post(f"{MULTI}/instances", json=body)
            r.raise_for_status()
            ids.append(r.json()["instance"]["id"])
    return ids


EMPTY_BY_TYPE = {"character varying": "''", "text": "''", "integer": "0", "smallint": "0", "bigint": "0"}
EMPTY_BY_TYPE |= {"boolean": "false", "jsonb": "'{}'", "double precision": "0"}


def insert_sql(db: Database, table: str, columns: str, select: str) -> str:
    """``INSERT INTO table (columns) SELECT …``, plus an empty value for any NOT NULL column the model
    grew since this was written (bulk SQL bypasses Django's defaults, e.g. a later ``token_hash``)."""
    given = {c.strip() for c in columns.split(",")}
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
            "AND is_nullable = 'NO' AND column_default IS NULL",
            (table,),
        ).fetchall()
    extra = [(name, EMPTY_BY_TYPE[kind]) for name, kind in rows if name not in given and kind in EMPTY_BY_TYPE]
    cols = ", ".join([columns, *(n for n, _ in extra)])
    select = select.replace("FROM", ", ".join(["", *(v for _, v in extra)]) + " FROM", 1) if extra else select
    return f"INSERT INTO {table} ({cols}) {select}"


def send_body(receiver: str) -> dict:
    return {"receiver_id": receiver, "message_type": "notification", "action": "bench", "data": {"n": 1}}


def send_clients(target: Target, pairs: list[tuple[str, str]], **extra) -> list[dict]:
    """One load-generator client per (sender, receiver) pair, each sending to its own receiver."""
    return [
        {
            "op": "post",
            "path": f"{COLLAB}/employees/{s}/messages",
            "body": send_body(r),
            "expect": 201,
            "headers": target.headers(s),
            **extra,
        }
        for s, r in pairs
    ]


# --- runner ----------------------------------------------------------------------------------------


def repeat(name: str, label: str, profile: Profile, spec_for, unit: str, **extra) -> dict:
    """Run one load spec ``profile.runs`` times; median/min/max of the rate, median p50/p99."""
    runs = []
    for index in range(profile.runs):
        spec = {"warmup": profile.warmup, "duration": profile.duration, **spec_for(index)}
        result = run_load(spec)
        runs.append(result)
        errors = f", errors {result['errors']}" if result["errors"] else ""
        lat = result["latencies_ms"]
        progress(
            f"  {name} [{label}] run {index + 1}/{profile.runs}: {result['rate']:.0f} {unit}"
            f" (p50 {lat.get('p50', 0):.1f} ms, p99 {lat.get('p99', 0):.1f} ms{errors})"
        )
    rates = [r["rate"] for r in runs]
    return {
        "scenario": name,
        "server": label,
        "unit": unit,
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "p50_ms": statistics.median(r["latencies_ms"].get("p50", 0) for r in runs),
        "p99_ms": statistics.median(r["latencies_ms"].get("p99", 0) for r in runs),
        "errors": sum(sum(r["errors"].values()) for r in runs),
        "runs": runs,
        **extra,
    }


# --- the floor -------------------------------------------------------------------------------------


def floor_scenarios(floor: Server, profile: Profile) -> list[dict]:
    progress("floor: constant view")
    const = repeat(
        "floor_constant",
        "floor",
        profile,
        lambda _: {"base": floor.url, "clients": [{"op": "get", "path": "/constant"}] * CONCURRENCY},
        "req/s",
    )
    progress("floor: one-row insert")
    insert = repeat(
        "floor_insert",
        "floor",
        profile,
        lambda _: {
            "base": floor.url,
            "clients": [{"op": "post", "path": "/insert", "body": {"n": 1}, "expect": 201}] * CONCURRENCY,
        },
        "req/s",
    )
    return [const, insert]


# --- throughput on Seed ----------------------------------------------------------------------------


def send_scenario(target: Target, profile: Profile) -> dict:
    progress(f"send [{target.label}]: {CONCURRENCY} clients, fresh connected pairs per run")

    def spec(_: int) -> dict:
        return {"base": target.server.url, "clients": send_clients(target, connected_pairs(target, CONCURRENCY))}

    return repeat("send", target.label, profile, spec, "msgs/s", floor="floor_insert", target_ratio=0.6)


def fill_queues(db: Database, receivers: list[str], sender: str, per_receiver: int) -> None:
    """Bulk-insert queued messages (the API would be the thing measured, not the setup)."""
    sql = insert_sql(
        db,
        "collaboration_message",
        "id, sender_id, receiver_id, message_type, action, data, priority, status, created_at, expires_at, "
        "delivery_count",
        """
        SELECT gen_random_uuid(), %s, r, 'notification', 'bench', '{"n": 1}', 2, 'queued',
            now() - make_interval(secs => 1000) + make_interval(secs => g / 1000.0), now() + interval '1 day', 0
        FROM unnest(%s::text[]) AS r, generate_series(1, %s::int) AS g
        """,
    )
    with db.connect() as conn:
        conn.execute(sql, (sender, receivers, per_receiver))
        conn.execute("ANALYZE collaboration_message")


def receive_scenario(target: Target, profile: Profile) -> dict:
    per_receiver = 600 if profile.quick else 2_000
    progress(f"receive+ack [{target.label}]: {CONCURRENCY} clients, batches of 10, {per_receiver} queued each")

    def spec(_: int) -> dict:
        pairs = connected_pairs(target, CONCURRENCY)
        fill_queues(target.db, [r for _, r in pairs], pairs[0][0], per_receiver)
        clients = [
            {
                "op": "recv_ack",
                "recv": f"{COLLAB}/employees/{r}/messages/receive",
                "ack": f"{COLLAB}/employees/{r}/messages/ack",
                "limit": 10,
                "headers": target.headers(r),
            }
            for _, r in pairs
        ]
        return {"base": target.server.url, "clients": clients}

    return repeat("receive_ack", target.label, profile, spec, "msgs/s", floor="floor_insert", target_ratio=1.0)


def heartbeat_scenario(target: Target, profile: Profile) -> dict:
    progress(f"heartbeat [{target.label}]: {CONCURRENCY} instances, one client each")
    ids = register_instances(target, CONCURRENCY, 30_000)
    body = {"cpu_usage": 12.5, "memory_usage": 40.0, "connections": 3}
    clients = [{"op": "post", "path": f"{MULTI}/instances/{i}/heartbeat", "body": body} for i in ids]
    return repeat(
        "heartbeat",
        target.label,
        profile,
        lambda _: {"base": target.server.url, "clients": clients},
        "hb/s",
        floor="floor_insert",
        target_ratio=0.7,
    )


def loadbalance_scenarios(target: Target, profile: Profile, strategies: list[str]) -> list[dict]:
    register_instances(target, 10, 31_000)
    out = []
    for strategy in strategies:
        progress(f"loadbalance {strategy} [{target.label}]")
        clients = [{"op": "get", "path": f"{MULTI}/instances/loadbalance?strategy={strategy}"}] * CONCURRENCY
        out.append(
            repeat(
                f"loadbalance_{strategy}",
                target.label,
                profile,
                lambda _, c=clients: {"base": target.server.url, "clients": c},
                "picks/s",
                floor="floor_constant",
                target_ratio=0.5,
            )
        )
    return out


# --- growth curves ---------------------------------------------------------------------------------


def _p50_runs(name: str, label: str, profile: Profile, spec_for) -> dict:
    scaled = Profile(quick=profile.quick, runs=profile.runs)
    runs = []
    for index in range(scaled.runs):
        spec = {"warmup": 0.3, "duration": profile.scale_duration, **spec_for(index)}
        runs.append(run_load(spec))
    # A run with no successful request has no p50: count it as infinitely slow, never as 0 ms.
    p50s = [r["latencies_ms"].get("p50", float("inf")) for r in runs]
    errors = sum(sum(r["errors"].values()) for r in runs)
    return {
        "scenario": name,
        "server": label,
        "p50_ms": statistics.median(p50s),
        "p50_min": min(p50s),
        "p50_max": max(p50s),
        "rate": statistics.median(r["rate"] for r in runs),
        "errors": errors,
        "runs": runs,
    }


def bulk_employees(db: Database, employees: list[str]) -> None:
    sql = insert_sql(
        db,
        "collaboration_employee",
        "employee_id, role, status, registered_at, last_seen",
        "SELECT e, 'bench', 'active', now(), now() FROM unnest(%s::text[]) AS e",
    )
    db.execute(sql + " ON CONFLICT DO NOTHING", (employees,))


def loadbalance_scale(target: Target, profile: Profile) -> list[dict]:
    """p50 of one pick with 10 / 1,000 / 10,000 active instances (rows made by SQL, not the API)."""
    db = target.db
    db.execute("UPDATE instances_instance SET status = 'disabled'")  # only our rows count
    have, out = 0, []
    for size in profile.instance_sizes:
        db.execute(
            insert_sql(
                db,
                "instances_instance",
                "id, host, port, weight, status, metadata, health_check_path, cpu_usage, memory_usage, connections, "
                "picks_since_heartbeat, registered_at, last_heartbeat",
                """
            SELECT gen_random_uuid(), '10.' || (g / 65000) || '.0.1', 1 + g %% 65000, 1 + g %% 5, 'active',
                '{"bench": "scale"}', '/health', 10, 20, g %% 50, 0, now(), now() + interval '1 day'
            FROM generate_series(%s::int, %s::int) AS g
            """,
            ),
            (have + 1, size),
        )
        db.execute("ANALYZE instances_instance")
        have = size
        for strategy in profile.scale_strategies:
            clients = [{"op": "get", "path": f"{MULTI}/instances/loadbalance?strategy={strategy}"}] * 4
            # A pick slower than 10 s counts as failed: the curve is already far past its target by then.
            spec = lambda _, c=clients: {"base": target.server.url, "clients": c, "request_timeout": 10}  # noqa: E731
            row = _p50_runs(f"lb_scale_{strategy}", target.label, profile, spec)
            row.update(size=size, strategy=strategy)
            progress(f"  loadbalance {strategy} with {size} instances: p50 {row['p50_ms']:.2f} ms")
            out.append(row)
    db.execute("DELETE FROM instances_instance WHERE metadata->>'bench' = 'scale'")
    db.execute("UPDATE instances_instance SET status = 'active'")
    return out


def receive_scale(target: Target, profile: Profile) -> list[dict]:
    """p50 of one receive with 1,000 vs 1,000,000 messages in the table, spread over 1,000 employees."""
    db = target.db
    employees = [f"scale-{i}" for i in range(1000)]
    bulk_employees(db, employees)
    out = []
    for size in profile.backlog_sizes:
        progress(f"receive scale: filling {size:,} messages over 1,000 employees")
        started = time.monotonic()
        db.execute("DELETE FROM collaboration_message WHERE receiver_id LIKE 'scale-%%'")
        fill_queues(db, employees, employees[0], size // len(employees))
        settle(db)  # the fill's own dirty pages are written out before, not during, the receives
        progress(f"  filled in {time.monotonic() - started:.1f} s")
        sample = employees[:250] if profile.quick else employees
        paths = [f"{COLLAB}/employees/{e}/messages/receive" for e in sample]
        clients = [{"op": "post", "paths": paths[i::4], "body": {"limit": 1}} for i in range(4)]

        def spec(_: int, c=clients) -> dict:
            # Every run leases one message per employee: put the leased ones back first.
            db.execute(
                "UPDATE collaboration_message SET status = 'queued', lease_expires_at = NULL, delivery_count = 0 "
                "WHERE status = 'leased'"
            )
            return {"base": target.server.url, "clients": c, "duration": 120}

        row = _p50_runs("receive_scale", target.label, profile, spec)
        row.update(size=size)
        progress(f"  receive with {size:,} messages in the table: p50 {row['p50_ms']:.2f} ms")
        out.append(row)
    db.execute("DELETE FROM collaboration_message WHERE receiver_id LIKE 'scale-%%'")
    settle(db)
    return out


def settle(db: Database) -> None:
    """Leave the database as the next scenario should find it: dead rows vacuumed, dirty pages written.

    A scenario that deletes or updates a million rows would otherwise hand its autovacuum and checkpoint
    to the next one, which then measures them (the TTL sweep ran next to autovacuum's pass over the
    receive scale's deleted million, the fan-out next to the sweep's; bench/README.md, item 12).
    """
    db.execute("VACUUM ANALYZE collaboration_message")
    db.execute("CHECKPOINT")


SWEEP_CODE = """
import json, time, django
django.setup()
from collaboration.services import messages_expire
t0 = time.perf_counter()
counts = messages_expire()
print(json.dumps({"seconds": time.perf_counter() - t0, "counts": counts}))
"""


# Sends during the measured sweep: 4 clients, paced to this many messages/s in all (about a third of what
# the server takes flat out), latency counted from when each send was due. The sweep's second pass runs
# under 4 clients sending flat out, for reference (see bench/README.md, item 12).
SWEEP_SEND_RATE = 200


def ttl_sweep(target: Target, profile: Profile, env: dict[str, str]) -> list[dict]:
    """Mark ``ttl_rows`` messages past their TTL as expired while 4 clients keep sending: paced, then flat out."""
    db, rows = target.db, profile.ttl_rows
    employees = [f"ttl-{i}" for i in range(1000)]
    bulk_employees(db, employees)
    fill_queues(db, employees, employees[0], rows // len(employees))
    pairs = connected_pairs(target, 4)
    out = []
    for paced in (True, False):
        load = f"4 clients sending {SWEEP_SEND_RATE} msgs/s in all" if paced else "4 clients sending flat out"
        progress(f"TTL sweep: {rows:,} messages past their TTL, {load} meanwhile")
        make_ttl_rows_due(db)
        pacing = {"interval": len(pairs) / SWEEP_SEND_RATE} if paced else {}
        row = _sweep_under_sends(target, env, send_clients(target, pairs, **pacing))
        progress(f"  swept {row['counts']} in {row['seconds']:.2f} s; send max {row['send_max_ms']:.0f} ms")
        row.update(rows=rows, paced=paced, send_rate=SWEEP_SEND_RATE if paced else None)
        out.append(row)
    db.execute("DELETE FROM collaboration_message WHERE receiver_id LIKE 'ttl-%%'")
    settle(db)
    return out


def make_ttl_rows_due(db: Database) -> None:
    """Every ``ttl-*`` message back in its queue and past its TTL, then settled, for the next measured sweep."""
    db.execute(
        "UPDATE collaboration_message SET status = 'queued', expires_at = now() - interval '1 second' "
        "WHERE receiver_id LIKE 'ttl-%%'"
    )
    settle(db)  # so no checkpoint of the fill's pages lands in the measured sweep


def _sweep_under_sends(target: Target, env: dict[str, str], clients: list[dict]) -> dict:
    """Run the sweep in its own process 2 s into a 6.5 s send load; its time, counts and the sends' latency."""
    sends: dict = {}
    load_spec = {"base": target.server.url, "clients": clients, "warmup": 0.5, "duration": 6}
    loader = threading.Thread(target=lambda: sends.update(run_load(load_spec)), daemon=True)
    loader.start()
    time.sleep(2.0)
    argv = [sys.executable, "-c", SWEEP_CODE]
    result = subprocess.run(argv, env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=300, check=False)
    loader.join(timeout=120)
    if result.returncode:
        raise RuntimeError(f"sweep failed: {result.stderr[-2000:]}")
    sweep = json.loads(result.stdout.strip().splitlines()[-1])
    lat = sends.get("latencies_ms", {})
    return {
        "scenario": "ttl_sweep",
        "server": target.label,
        "seconds": sweep["seconds"],
        "counts": sweep["counts"],
        "send_rate_seen": sends.get("rate", 0),
        "send_max_ms": lat.get("max", 0),
        "send_p99_ms": lat.get("p99", 0),
        "send_errors": sends.get("errors", {}),
    }


def monitor_fanout(target: Target, profile: Profile) -> dict:
    """1,000 monitor sockets on one server, one status change: when did each socket see it; server RSS."""
    count = profile.sockets
    progress(f"monitor fan-out: opening {count} monitor sockets")
    (instance_id,) = register_instances(target, 1, 32_000)
    spec = {
        "mode": "ws",
        "base": target.server.url,
        "path": f"{MULTI}/monitor",
        "sockets": count,
        "instance_id": instance_id,
        "status": "draining",
        "timeout": 15,
    }
    before = target.server.rss_mb("daphne")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.load"],
        cwd=BASE_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        proc.stdin.write(json.dumps(spec) + "\n")
        proc.stdin.flush()
        ready = json.loads(proc.stdout.readline() or "{}")
        time.sleep(1.0)
        rss = target.server.rss_mb("daphne")
        rss_each = target.server.rss_each_mb("daphne")
        rss_all = target.server.rss_mb()
        rss_http = target.server.rss_mb("gunicorn")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline() or "{}")
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lat = result.get("latencies_ms", {})
    progress(
        f"  {ready.get('ready')} sockets open; {result.get('received')} saw the change, p99 {lat.get('p99', 0):.0f} ms;"
        f" daphne RSS {rss:.0f} MB {rss_each} (idle {before:.0f} MB), gunicorn {rss_http:.0f} MB,"
        f" whole server {rss_all:.0f} MB"
    )
    return {
        "scenario": "monitor_fanout",
        "server": target.label,
        "sockets": count,
        "opened": ready.get("ready", 0),
        "received": result.get("received", 0),
        "p50_ms": lat.get("p50"),
        "p99_ms": lat.get("p99"),
        "max_ms": lat.get("max"),
        "rss_mb": rss,
        "rss_each_mb": rss_each,
        "rss_idle_mb": before,
        "rss_server_mb": rss_all,
        "rss_http_mb": rss_http,
    }
