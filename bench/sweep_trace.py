"""``python -m bench.sweep_trace``: what happens to sends while the TTL sweep runs, 100 ms at a time.

The TTL sweep scenario reports two numbers (the sweep's time, the longest send). This puts them on one
clock: Seed on PostgreSQL + Redis, 100,000 messages past their TTL, 4 clients sending 200 msgs/s (paced,
as in the scenario), and the sweep (``messages_expire()``) in its own process 2 s in. Per pass it prints
the sweep's batches, the WAL it wrote (bytes, full-page images), and for every 100 ms from just before the
sweep to just after: the longest send that was due then and the CPU each kind of process used (from
/proc, every 50 ms). A send that is late because the machine's cores are busy shows beside the CPU that
took them; one that waits on a lock or the disk shows beside idle cores. bench/README.md, item 13.

Options: ``--passes N`` (default 3), ``--rows N`` (default 100,000), ``--seed-env KEY=VALUE`` (e.g.
``SEED_EXPIRY_WORKERS=2``).
"""

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict

from bench import harness, scenarios
from bench.harness import BASE_DIR, Database, progress, run_load

SWEEP_CODE = """
import json, time, django
django.setup()
from collaboration import services
batches, send_batch = [], services.fetch_not_durable
def timed(sql, params):
    started = time.monotonic()
    rows = send_batch(sql, params)
    batches.append((started, time.monotonic(), sum(row[-1] for row in rows)))
    return rows
services.fetch_not_durable = timed
started = time.monotonic()
counts = services.messages_expire()
print(json.dumps({"started": started, "ended": time.monotonic(), "counts": counts, "batches": batches}))
"""


def process_kind(cmdline: str) -> str:
    """What a process is, by its command line; "other" (kernel threads, this tool, the machine's other
    services) is not sampled."""
    if cmdline.startswith("postgres"):
        return "postgres"
    for kind in ("gunicorn", "bench.load", "seedproject.wsserver", "celery", "runbeat", "redis-server"):
        if kind in cmdline:
            return kind
    return "sweep" if "messages_expire" in cmdline or "django.setup" in cmdline else "other"


def sample_cpu(stop: threading.Event, samples: list) -> None:
    """Every 50 ms: (time, {pid: (cpu seconds so far, kind)}) for the processes that take part.

    The process list is read again once a second (the sweep's own process and connections come and go);
    reading /proc for every process every 50 ms would itself take a good part of a core.
    """
    tick = os.sysconf("SC_CLK_TCK")
    watched: dict[str, str] = {}
    listed = 0.0
    while not stop.is_set():
        now, snapshot = time.monotonic(), {}
        if now - listed > 1.0:
            listed = now
            for pid in os.listdir("/proc"):
                if pid.isdigit() and pid not in watched:
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                            watched[pid] = process_kind(cmd.read().replace(b"\0", b" ").decode(errors="replace"))
                    except OSError:
                        continue
        for pid, kind in list(watched.items()):
            if kind == "other":
                continue
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                del watched[pid]  # the process ended
                continue
            snapshot[pid] = ((int(fields[11]) + int(fields[12])) / tick, kind)
        samples.append((now, snapshot))
        time.sleep(0.05)


def cpu_per_bucket(samples: list, start: float) -> dict[int, dict[str, float]]:
    """Cores used by each kind of process in each 100 ms bucket after ``start`` (averaged over its samples)."""
    used: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    spans: dict[int, float] = defaultdict(float)
    for (t0, before), (t1, after) in itertools.pairwise(samples):
        bucket = int((t1 - start) * 10 // 1)
        spans[bucket] += t1 - t0
        for pid, (cpu, kind) in after.items():
            if pid in before:
                used[bucket][kind] += cpu - before[pid][0]
    return {b: {k: v / spans[b] for k, v in kinds.items()} for b, kinds in used.items()}


def wal_position(db: Database) -> tuple[int, int]:
    with db.connect() as conn:
        lsn = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()[0]
        (fpi,) = conn.execute("SELECT wal_fpi FROM pg_stat_wal").fetchone()
    return int(lsn), int(fpi)


def one_pass(target: scenarios.Target, env: dict[str, str], clients: list[dict]) -> None:
    sends: dict = {}
    spec = {"base": target.server.url, "clients": clients, "warmup": 0.5, "duration": 6, "trace": True}
    loader = threading.Thread(target=lambda: sends.update(run_load(spec)), daemon=True)
    samples: list = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_cpu, args=(stop, samples), daemon=True)
    wal_before, fpi_before = wal_position(target.db)
    loader.start()
    sampler.start()
    time.sleep(2.0)
    argv = [sys.executable, "-c", SWEEP_CODE]
    result = subprocess.run(argv, env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=300, check=False)
    loader.join(timeout=120)
    stop.set()
    sampler.join()
    if result.returncode:
        raise RuntimeError(f"sweep failed: {result.stderr[-2000:]}")
    sweep = json.loads(result.stdout.strip().splitlines()[-1])
    wal_after, fpi_after = wal_position(target.db)
    start = sweep["started"]
    latencies = sends.get("latencies_ms", {})
    print(
        f"sweep {sweep['ended'] - start:.2f} s {sweep['counts']}; WAL {(wal_after - wal_before) / 1e6:.1f} MB, "
        f"{fpi_after - fpi_before} full-page images; sends {sends.get('rate', 0):.0f}/s, "
        f"max {latencies.get('max', 0):.0f} ms, p99 {latencies.get('p99', 0):.0f} ms, errors {sends.get('errors')}"
    )
    batches = " ".join(f"{a - start:.2f}-{b - start:.2f}:{n}" for a, b, n in sweep["batches"])
    print(f"batches (s from the sweep's start, rows): {batches}")
    late: dict[int, float] = defaultdict(float)
    for due, ms in sends.get("trace", []):
        late[int((due - start) * 10 // 1)] = max(late[int((due - start) * 10 // 1)], ms)
    cpu = cpu_per_bucket(samples, start)
    last = int((sweep["ended"] - start) * 10) + 3
    print("   t (s)  longest send due then   cores used by")
    for bucket in range(-3, last + 1):
        kinds = sorted(cpu.get(bucket, {}).items(), key=lambda kv: -kv[1])
        shown = " ".join(f"{kind} {cores:.2f}" for kind, cores in kinds if cores >= 0.05)
        print(f"  {bucket / 10:+5.1f}  {late.get(bucket, 0):6.0f} ms            {shown}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep_trace", description=__doc__)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed-env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    for item in args.seed_env:
        key, _, value = item.partition("=")
        harness.SEED_EXTRA_ENV[key] = value
    with contextlib.ExitStack() as stack:
        target, env = scenarios.seed_on_postgres(stack, "bench_trace")
        db = target.db
        employees = [f"ttl-{i}" for i in range(1000)]
        scenarios.bulk_employees(db, employees)
        scenarios.fill_queues(db, employees, employees[0], args.rows // len(employees))
        pairs = scenarios.connected_pairs(target, 4)
        clients = scenarios.send_clients(target, pairs, interval=len(pairs) / scenarios.SWEEP_SEND_RATE)
        for index in range(args.passes):
            progress(f"pass {index + 1}/{args.passes}: {args.rows:,} messages past their TTL")
            scenarios.make_ttl_rows_due(db)
            one_pass(target, env, clients)
            # The pairs' receivers are never read from: empty their queues before they fill up (429).
            db.execute("DELETE FROM collaboration_message WHERE receiver_id NOT LIKE 'ttl-%%'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
