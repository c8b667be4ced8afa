"""``python -m bench.profile SCENARIO``: where a Seed server spends its time under one scenario's load.

Starts Seed on PostgreSQL + Redis, runs the scenario's load for a while and samples every serving process
with py-spy (``py-spy record --format raw``); prints the functions with the most inclusive and self
samples, and keeps the collapsed stacks under var/bench/profiles/ (feed them to any flame-graph tool).
"""

import argparse
import collections
import contextlib
import shutil
import subprocess
import sys
import threading
import time

from bench import harness, scenarios
from bench.harness import OUT_DIR, progress

SCENARIOS = ["send", "heartbeat", "loadbalance", "receive"]


def load_spec(target: scenarios.Target, name: str, duration: float) -> dict:
    if name == "send":
        pairs = scenarios.connected_pairs(target, scenarios.CONCURRENCY)
        clients = [
            {"op": "post", "path": f"{scenarios.COLLAB}/employees/{s}/messages", "body": scenarios.send_body(r)}
            | {"expect": 201}
            for s, r in pairs
        ]
    elif name == "heartbeat":
        ids = scenarios.register_instances(target, scenarios.CONCURRENCY, 30_000)
        body = {"cpu_usage": 1.0, "memory_usage": 2.0, "connections": 3}
        clients = [{"op": "post", "path": f"{scenarios.MULTI}/instances/{i}/heartbeat", "body": body} for i in ids]
    elif name == "receive":
        pairs = scenarios.connected_pairs(target, scenarios.CONCURRENCY)
        scenarios.fill_queues(target.db, [r for _, r in pairs], pairs[0][0], 3000)
        clients = [
            {
                "op": "recv_ack",
                "recv": f"{scenarios.COLLAB}/employees/{r}/messages/receive",
                "ack": f"{scenarios.COLLAB}/employees/{r}/messages/ack",
            }
            for _, r in pairs
        ]
    else:
        scenarios.register_instances(target, 10, 31_000)
        path = f"{scenarios.MULTI}/instances/loadbalance?strategy=round_robin"
        clients = [{"op": "get", "path": path}] * scenarios.CONCURRENCY
    return {"base": target.server.url, "clients": clients, "warmup": 1.0, "duration": duration}


def _frame(raw: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``."""
    name, _, where = raw.partition(" (")
    return f"{name} ({where.split(':')[0].split('/')[-1]})"


def summarize(raw_files: list, top: int) -> str:
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for path in raw_files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = [_frame(f) for f in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] += n
            own[frames[-1]] += n
    lines = [f"{total} samples (active threads only)", "", "inclusive %  function", "---"]
    lines += [f"{100 * n / total:10.1f}  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self %  function", "---"]
    lines += [f"{100 * n / total:6.1f}  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(harness.Path(sys.executable).parent / "py-spy")
    out_dir = OUT_DIR / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        target, _ = scenarios.seed_on_postgres(stack)
        server = target.server
        spec = load_spec(target, args.scenario, args.seconds + 4)
        result: dict = {}
        loader = threading.Thread(target=lambda: result.update(harness.run_load(spec)), daemon=True)
        loader.start()
        time.sleep(2.0)
        # The processes that serve requests: gunicorn's workers and daphne (HTTP on the embedded default).
        serving = [p for p in server.tree()[1:] if any(k in " ".join(p.cmdline()) for k in ("gunicorn", "daphne"))]
        raws = []
        procs = []
        for proc in serving:
            raw = out_dir / f"{args.scenario}-{proc.pid}.txt"
            raws.append(raw)
            argv = [spy, "record", "-p", str(proc.pid), "-d", str(int(args.seconds)), "-f", "raw", "-o", str(raw)]
            procs.append(subprocess.Popen([*argv, "-r", "200", "--nonblocking"], stdout=subprocess.DEVNULL))
        progress(f"sampling {len(serving)} serving processes for {args.seconds:.0f} s under {args.scenario} load")
        for proc in procs:
            proc.wait(timeout=args.seconds + 60)
        loader.join(timeout=120)
        progress(f"load: {result.get('rate', 0):.0f}/s, errors {result.get('errors')}")
        text = summarize([r for r in raws if r.exists()], args.top)
        (out_dir / f"{args.scenario}-summary.txt").write_text(text + "\n")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
