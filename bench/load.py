"""The load generator: a separate process (``python -m bench.load``) that reads one JSON spec on stdin.

It is an asyncio + aiohttp client with keep-alive connections (one per simulated client). Each client
runs its own loop of one operation, back to back or paced; figures are counted only after the warm-up.
The result is one JSON line on stdout. For sockets (``mode: ws``) it prints ``{"ready": ...}`` once every socket has its
snapshot, waits for a line on stdin (the harness measures the server's memory meanwhile), triggers the
change itself and reports when each socket saw it.
"""

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp

CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=60)


class Stats:
    """What the clients saw inside the measurement window."""

    def __init__(self) -> None:
        self.units = 0
        self.requests = 0
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.started = 0.0
        self.measuring = False
        self.trace: list[tuple[float, float]] | None = None  # (when due or started, latency ms) per request

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def _request(session: aiohttp.ClientSession, method: str, url: str, body: Any, headers: dict) -> tuple[int, Any]:
    async with session.request(method, url, json=body, headers=headers) as response:
        raw = await response.read()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, None


async def _one(session, base: str, client: dict, stats: Stats) -> int:
    """One operation of one client; returns the units done (messages, heartbeats, picks, requests)."""
    op = client["op"]
    headers = client.get("headers", {})
    if op in {"get", "post"}:
        status, _ = await _request(session, op.upper(), base + client["path"], client.get("body"), headers)
        if status != client.get("expect", 200):
            stats.error(str(status))
            return 0
        return 1
    if op == "recv_ack":
        limit = client.get("limit", 10)
        status, body = await _request(session, "POST", base + client["recv"], {"limit": limit}, headers)
        if status != 200:
            stats.error(f"receive {status}")
            return 0
        ids = [m["id"] for m in body["messages"]]
        if not ids:
            stats.error("receive empty")
            return 0
        status, _ = await _request(session, "POST", base + client["ack"], {"ids": ids}, headers)
        if status != 200:
            stats.error(f"ack {status}")
            return 0
        return len(ids)
    raise ValueError(f"unknown op {op!r}")


async def _client(session, base: str, client: dict, stats: Stats, deadline: float) -> None:
    paths = client.get("paths")  # a list of paths: each is requested once, then the client stops
    # Paced ("interval": seconds between request starts) or, by default, one request after another.
    # Paced is open loop: a request's latency counts from when it was due, so a stall in the server
    # shows in full in every request it delayed (a closed loop would simply send fewer requests).
    interval = client.get("interval")
    due = time.perf_counter()
    index = 0
    while time.perf_counter() < deadline:
        if paths is not None:
            if index >= len(paths):
                return
            client = {**client, "path": paths[index]}
            index += 1
        if interval:
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            t0, due = due, due + interval
        else:
            t0 = time.perf_counter()
        try:
            units = await _one(session, base, client, stats)
        except (TimeoutError, aiohttp.ClientError) as exc:
            stats.error(type(exc).__name__)
            await asyncio.sleep(0.05)
            continue
        if stats.measuring and t0 >= stats.started:
            stats.requests += 1
            stats.units += units
            if units:
                stats.latencies.append((time.perf_counter() - t0) * 1000)
                if stats.trace is not None:
                    stats.trace.append((t0, stats.latencies[-1]))


async def run_http(spec: dict) -> dict:
    stats = Stats()
    if spec.get("trace"):  # every request's start (time.perf_counter: CLOCK_MONOTONIC, shared by processes)
        stats.trace = []
    clients = spec["clients"]
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=spec.get("request_timeout", 60))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        begin = time.perf_counter()
        warmup, duration = spec.get("warmup", 1.0), spec["duration"]
        deadline = begin + warmup + duration
        tasks = [asyncio.create_task(_client(session, spec["base"], c, stats, deadline)) for c in clients]
        await asyncio.sleep(warmup)
        stats.started, stats.measuring = time.perf_counter(), True
        done, pending = await asyncio.wait(tasks, timeout=warmup + duration + spec.get("request_timeout", 60))
        for task in pending:
            task.cancel()
        ended = min(time.perf_counter(), deadline)
        for task in done:
            if task.exception() is not None:
                stats.error(repr(task.exception())[:120])
    elapsed = max(ended - stats.started, 1e-6)
    return {
        "units": stats.units,
        "requests": stats.requests,
        "elapsed": elapsed,
        "rate": stats.units / elapsed,
        "latencies_ms": summarize(stats.latencies),
        "errors": stats.errors,
        **({"trace": stats.trace} if stats.trace is not None else {}),
    }


def summarize(latencies: list[float]) -> dict:
    if not latencies:
        return {"n": 0}
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {"n": len(ordered), "p50": pct(0.50), "p99": pct(0.99), "max": ordered[-1]}


async def run_ws(spec: dict) -> dict:
    """Open ``sockets`` monitor sockets, report ready, then PATCH one instance and time its arrival everywhere."""
    base, count, instance_id = spec["base"], spec["sockets"], spec["instance_id"]
    ws_url = base.replace("http://", "ws://") + spec["path"]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=CLIENT_TIMEOUT) as session:
        sockets = []
        failed = 0
        for start in range(0, count, 100):  # in waves: a SYN flood of 1,000 would overflow the accept backlog
            batch = [
                session.ws_connect(ws_url, headers={"Origin": base}, heartbeat=None)
                for _ in range(start, min(count, start + 100))
            ]
            for result in await asyncio.gather(*batch, return_exceptions=True):
                if isinstance(result, BaseException):
                    failed += 1
                else:
                    sockets.append(result)
        snapshots = await asyncio.gather(*(ws.receive(timeout=30) for ws in sockets), return_exceptions=True)
        with_snapshot = sum(1 for s in snapshots if not isinstance(s, BaseException))
        print(json.dumps({"ready": len(sockets), "failed": failed, "snapshots": with_snapshot}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        candidates: list[tuple[float, str]] = []  # (when it arrived, the frame) of each socket

        async def watch(ws) -> None:
            # Timed on arrival, checked afterwards: this one process stands in for 1,000 monitors, and
            # decoding 1,000 snapshots here one after another would add its own time to every later
            # socket (each real monitor decodes only its own). A frame that names the instance and the
            # status is taken; decoding later proves it (a frame that only seemed to is not counted).
            deadline = time.perf_counter() + spec.get("timeout", 10)
            needles = (instance_id, f'"{spec["status"]}"')
            while (left := deadline - time.perf_counter()) > 0:
                try:
                    msg = await ws.receive(timeout=left)
                except TimeoutError:
                    return
                arrived = time.perf_counter()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                if all(needle in msg.data for needle in needles):
                    candidates.append((arrived, msg.data))
                    return

        watchers = [asyncio.create_task(watch(ws)) for ws in sockets]
        t0 = time.perf_counter()
        status, _ = await _request(
            session, "PATCH", f"{base}/api/v1/multi-instance/instances/{instance_id}", {"status": spec["status"]}, {}
        )
        await asyncio.gather(*watchers)
        for ws in sockets:
            await ws.close()
    arrivals = [(arrived - t0) * 1000 for arrived, text in candidates if _shows(text, instance_id, spec["status"])]
    return {
        "opened": len(sockets),
        "failed": failed,
        "patch_status": status,
        "received": len(arrivals),
        "latencies_ms": summarize(arrivals),
    }


def _shows(text: str, instance_id: str, status: str) -> bool:
    """Whether the monitor frame ``text`` lists the instance with that status."""
    return any(i.get("id") == instance_id and i.get("status") == status for i in json.loads(text).get("instances", []))


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    runner = run_ws if spec.get("mode") == "ws" else run_http
    result = asyncio.run(runner(spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
