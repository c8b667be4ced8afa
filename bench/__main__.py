"""``python -m bench [--quick] [--only NAME ...]``: start the servers, run the scenarios, print the table.

Scenarios: floor, send, receive, heartbeat, loadbalance, lb_scale, receive_scale, ttl_sweep, fanout,
embedded. Without ``--only`` all of them run. The floor always runs (every figure is a ratio to it).
"""

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import time

from bench import harness, report, scenarios
from bench.harness import OUT_DIR, Database, progress

ALL = ["send", "receive", "heartbeat", "loadbalance", "lb_scale", "receive_scale", "ttl_sweep", "fanout", "embedded"]


def _interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs and smaller tables (< 3 min)")
    parser.add_argument("--only", nargs="*", choices=[*ALL, "floor"], default=None, help="run only these")
    parser.add_argument("--seed-env", action="append", default=[], metavar="KEY=VALUE", help="extra server setting")
    args = parser.parse_args(argv)
    for item in args.seed_env:
        key, _, value = item.partition("=")
        harness.SEED_EXTRA_ENV[key] = value
    wanted = set(args.only) if args.only else set(ALL)
    profile = scenarios.Profile(quick=args.quick)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.time()
    results: list[dict] = []
    notes = [
        f"Load generator: bench/load.py (asyncio + aiohttp, keep-alive, {scenarios.CONCURRENCY} clients) in its own "
        "process on the same cores as the servers.",
        f"Floor: gunicorn, {harness.CORES} sync workers, Django + DRF, CONN_MAX_AGE=600 on PostgreSQL.",
    ]
    if harness.SEED_EXTRA_ENV:
        notes.append(f"Seed settings given on the command line: {harness.SEED_EXTRA_ENV}")
    if args.quick:
        notes.append("QUICK: 2 s runs, 100k instead of 1M backlog rows, 20k instead of 100k TTL rows.")
    with contextlib.ExitStack() as stack:
        try:
            progress("starting the floor (gunicorn) on a fresh PostgreSQL database")
            floor_db = Database("bench_floor")
            stack.callback(floor_db.close)
            floor = harness.start_floor(floor_db)
            stack.callback(floor.stop)
            results += scenarios.floor_scenarios(floor, profile)
            floor.stop()

            if wanted - {"embedded"}:
                results += run_seed_pg(stack, profile, wanted)
            if "embedded" in wanted:
                results += run_seed_embedded(stack, profile)
        except KeyboardInterrupt:
            progress("interrupted: stopping everything")
            return 130
        finally:
            progress("stopping servers, dropping databases")
    text = report.write(results, OUT_DIR, quick=args.quick, started=started, notes=notes)
    print()
    print(text)
    progress(f"JSON, table and plot in {OUT_DIR}")
    return 0


def run_seed_pg(stack: contextlib.ExitStack, profile: scenarios.Profile, wanted: set[str]) -> list[dict]:
    target, env = scenarios.seed_on_postgres(stack)
    server = target.server
    out: list[dict] = []
    # Growth curves first: the instance table then holds only the rows they make.
    if "lb_scale" in wanted:
        out += scenarios.loadbalance_scale(target, profile)
    if "send" in wanted:
        out.append(scenarios.send_scenario(target, profile))
    if "receive" in wanted:
        out.append(scenarios.receive_scenario(target, profile))
    if "heartbeat" in wanted:
        out.append(scenarios.heartbeat_scenario(target, profile))
    if "loadbalance" in wanted:
        out += scenarios.loadbalance_scenarios(target, profile, scenarios.STRATEGIES)
    if "receive_scale" in wanted:
        out += scenarios.receive_scale(target, profile)
    if "ttl_sweep" in wanted:
        out += scenarios.ttl_sweep(target, profile, env)
    if "fanout" in wanted:
        out.append(scenarios.monitor_fanout(target, profile))
    server.stop()
    return out


def run_seed_embedded(stack: contextlib.ExitStack, profile: scenarios.Profile) -> list[dict]:
    progress("starting Seed on the embedded default (SQLite, in-memory layer, no servers)")
    data_dir = tempfile.mkdtemp(prefix="seed-embedded-", dir=OUT_DIR)
    stack.callback(shutil.rmtree, data_dir, True)
    env = harness.seed_env(None, harness.Path(data_dir))
    server = harness.start_seed(env)
    stack.callback(server.stop)
    target = scenarios.Target("seed-embedded", server, None)
    out = [scenarios.send_scenario(target, profile)]
    if not profile.quick:
        out.append(scenarios.heartbeat_scenario(target, profile))
    out += scenarios.loadbalance_scenarios(target, profile, ["round_robin"])
    server.stop()
    return out


if __name__ == "__main__":
    sys.exit(main())
