"""The table (markdown, printed and saved), the JSON file and the growth-curve plot under var/bench/."""

import json
import platform
import time
from pathlib import Path

import psutil


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    memory = psutil.virtual_memory().total / 2**30
    return f"{psutil.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Linux {platform.release()}"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**NOT met**")


def throughput_rows(results: list[dict]) -> list[str]:
    floors = {r["scenario"]: r for r in results if r.get("server") == "floor"}
    lines = [
        "| scenario | server | median | min – max | p50 ms | p99 ms | errors | ratio to floor | target | |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "median" not in r:
            continue
        floor = floors.get(r.get("floor", ""))
        ratio = r["median"] / floor["median"] if floor else None
        target = r.get("target_ratio")
        r["ratio"], r["met"] = ratio, (ratio >= target if ratio is not None and target else None)
        ratio_text = f"{ratio:.2f} × {r['floor'].removeprefix('floor_')}" if ratio is not None else "—"
        target_text = f"≥ {target} ×" if target else "(floor)"
        lines.append(
            f"| {r['scenario']} | {r['server']} | {r['median']:,.0f} {r['unit']} | {r['min']:,.0f} – {r['max']:,.0f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {ratio_text} | {target_text} "
            f"| {_met(r['met']) if target else ''} |"
        )
    return lines


def growth_rows(results: list[dict]) -> list[str]:
    lines = ["| growth | smallest | largest | ratio | target | |", "|---|---|---|---|---|---|"]
    for name, limit in (("lb_scale", 2.0), ("receive_scale", 1.5)):
        rows = [r for r in results if r["scenario"].startswith(name)]
        for key in sorted({r.get("strategy", "") for r in rows}):
            series = sorted((r for r in rows if r.get("strategy", "") == key), key=lambda r: r["size"])
            if len(series) < 2:
                continue
            small, large = series[0], series[-1]
            ratio = large["p50_ms"] / small["p50_ms"] if small["p50_ms"] else float("inf")
            label = f"loadbalance {key}" if name == "lb_scale" else "receive"
            if errors := sum(r["errors"] for r in series):
                label += f" ({errors} failed requests!)"
            mid = "".join(f", {r['size']:,}: {r['p50_ms']:.2f} ms" for r in series[1:-1])
            first = f"{small['size']:,}: {small['p50_ms']:.2f} ms ({small['p50_min']:.2f}–{small['p50_max']:.2f})"
            last = f"{large['size']:,}: {large['p50_ms']:.2f} ms ({large['p50_min']:.2f}–{large['p50_max']:.2f})"
            lines.append(
                f"| {label} p50 | {first}{mid} | {last} | {ratio:.2f} × | ≤ {limit} × | {_met(ratio <= limit)} |"
            )
    for r in results:
        if r["scenario"] == "ttl_sweep":
            ok = r["seconds"] <= 2.0 and r["send_max_ms"] <= 100
            if r.get("paced", True):
                load, verdict = f"{r.get('send_rate') or '?'} sends/s (paced)", _met(ok)
            else:
                load, verdict = "sends flat out", f"(reference: {'within' if ok else 'outside'} the bounds)"
            lines.append(
                f"| TTL sweep, {r['rows']:,} past TTL, {load} | swept in {r['seconds']:.2f} s | longest send "
                f"meanwhile {r['send_max_ms']:.0f} ms | — | ≤ 2 s, sends ≤ 100 ms | {verdict} |"
            )
        if r["scenario"] == "monitor_fanout":
            p99 = r["p99_ms"] if r["p99_ms"] is not None else float("inf")
            ok = r["received"] == r["sockets"] and p99 <= 500
            lines.append(
                f"| monitor fan-out, {r['sockets']:,} sockets | {r['received']:,}/{r['opened']:,} got it | "
                f"p50 {r['p50_ms'] or 0:.0f} ms, p99 {p99:.0f} ms | — | all, p99 ≤ 500 ms | {_met(ok)} |"
            )
            lines.append(
                f"| memory, {r['opened']:,} open monitor sockets | idle {r['rss_idle_mb']:.0f} MB | daphne RSS "
                f"{r['rss_mb']:.0f} MB in all, per process {r.get('rss_each_mb')}; HTTP workers (gunicorn) "
                f"{r.get('rss_http_mb', 0):.0f} MB; whole server incl. worker+beat {r['rss_server_mb']:.0f} MB "
                f"| — | ≤ 300 MB | {_met(r['rss_mb'] <= 300)} (daphne) |"
            )
    return lines


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    lb = [r for r in results if r["scenario"].startswith("lb_scale")]
    for strategy in sorted({r["strategy"] for r in lb}):
        series = sorted((r for r in lb if r["strategy"] == strategy), key=lambda r: r["size"])
        left.plot([r["size"] for r in series], [r["p50_ms"] for r in series], marker="o", label=strategy)
    left.set(xscale="log", xlabel="registered active instances", ylabel="loadbalance p50 (ms)", title="loadbalance")
    left.legend()
    rx = sorted((r for r in results if r["scenario"] == "receive_scale"), key=lambda r: r["size"])
    right.plot([r["size"] for r in rx], [r["p50_ms"] for r in rx], marker="o", color="C3")
    right.set(xscale="log", xlabel="messages in the table", ylabel="receive p50 (ms)", title="receive")
    for ax in (left, right):
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: list[dict], out_dir: Path, *, quick: bool, started: float, notes: list[str]) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    header = [
        f"Run {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}{' (QUICK)' if quick else ''} on {machine()};"
        f" {time.time() - started:.0f} s in all. Median of 3 runs (min – max).",
        "",
    ]
    table = [*header, *throughput_rows(results), "", *growth_rows(results)]
    if notes:
        table += ["", *[f"- {n}" for n in notes]]
    text = "\n".join(table) + "\n"
    (out_dir / f"table-{stamp}.md").write_text(text)
    (out_dir / "table.md").write_text(text)
    payload = {"started": started, "quick": quick, "machine": machine(), "notes": notes, "results": results}
    for name in (f"bench-{stamp}.json", "latest.json"):
        (out_dir / name).write_text(json.dumps(payload, indent=1, default=str))
    if any(r["scenario"] in {"receive_scale"} or r["scenario"].startswith("lb_scale") for r in results):
        plot(results, out_dir / f"growth-{stamp}.png")
        plot(results, out_dir / "growth.png")
    return text
