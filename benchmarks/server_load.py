"""Load test of ``simulsub serve``: concurrent real-time streams over loopback (:mod:`benchmarks.load_clients`).

    .venv/bin/python -m benchmarks.server_load [--policy reta] [--max-k 16] [--seconds 40]
        [--soak-minutes 30] [--out benchmarks/results/server_load]
    .venv/bin/python -m benchmarks.server_load --modes unbatched,batched,batched-2procs \
        --ks 8,16,24,32,40,48,56,64 --soak-minutes 0 --out benchmarks/results/server_batching
    .venv/bin/python -m benchmarks.server_load --modes unbatched,batched,batched-2procs,ray \
        --ks 16,24,32,40,48 --soak-minutes 0 --out benchmarks/results/server_ray
    .venv/bin/python -m benchmarks.server_load --combine RUN1.json,RUN2.json,RUN3.json \
        --out benchmarks/results/server_procs_runs

``--modes`` runs the capacity test once per server configuration, one after the other, on the same audio and
models: ``unbatched`` (``serve --batching off``: every session calls the models alone), ``batched`` (``--batching
on``: VAD frames and translations of all sessions in shared batches), and the same two with ``--procs 2`` (two
server processes on one port), and ``ray`` (``serve --ray`` on a private one-machine Ray cluster: two ingress
replicas and one batching translation replica).

1. Capacity: for K = 1, 2, 4, … streams (asyncio tasks in ``--client-procs`` load-generator processes, starting
   evenly over ``--spread-s``), each streams a recording in real time (100 ms PCM frames, paced by the wall clock)
   and timestamps every caption it receives. Caption delay = receive time − the wall
   time at which the audio the caption reflects (its ``end_ms``) was sent. The largest K whose p95 delay stays
   ≤ 1.0 s is the server's real-time capacity on this machine; the server's resident memory is sampled
   throughout (memory per session = growth over the idle server / K), and every row gives the CPU seconds of the
   server and of the load generator during that step (they share the machine's cores). A K where any stream is
   refused or dropped has no p95 and ends the ladder.
2. Soak: one accelerated stream (as fast as the server takes it) of ``--soak-minutes`` of audio (the
   recordings looped); the server's RSS is sampled every 10 s of audio to show it stays flat.

Writes ``OUT.json``, ``OUT.md`` and ``OUT.png`` (delay percentiles per K, RSS over the soak).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from benchmarks.load_clients import run_streams
from streaming.pcm import encode_pcm16

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _own_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:  # the process ended while being read
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    out: list[int] = []
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of a process, its threads and its child processes (``serve --procs``), MiB (Linux /proc)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += _own_rss_mb(p)
        todo += _children(p)
    return total


def load_pcm(files: list[Path]) -> bytes:
    import soundfile as sf
    import soxr

    parts = []
    for f in files:
        audio, sr = sf.read(f, dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        if sr != 16000:
            mono = soxr.resample(mono, sr, 16000)
        parts.append(mono)
        parts.append(np.zeros(8000, dtype=np.float32))
    return encode_pcm16(np.concatenate(parts))


def start_server(port: int, policy: str, workers: int, asr_profile: str = "default", *,
                 batching: str = "on", extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("simulsub")
    procs = int(extra[extra.index("--procs") + 1]) if "--procs" in extra else 1
    on_ray = "--ray" in extra
    # 64 sessions per process: the kernel spreads connections unevenly, no stream may be refused for a full process
    # (with --ray, --max-sessions is per ingress replica already)
    err = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the server)
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port), "--policy", policy,
                             "--max-sessions", str(64 if on_ray else 64 * procs),
                             "--workers", str(workers), "--sessions-dir", "", "--asr-profile", asr_profile,
                             "--batching", batching, *extra],
                            stdout=subprocess.PIPE, stderr=err)
    _STDERR[proc.pid] = err
    deadline = time.time() + 240
    if procs > 1 or on_ray:  # every process must be listening, or the first would get all the early connections
        ready, needed, marker = 0, (1 if on_ray else procs), ("Ray Serve app" if on_ray else "listening on")
        assert proc.stdout is not None
        while ready < needed and time.time() < deadline:
            line = proc.stdout.readline().decode()
            if not line and proc.poll() is not None:
                raise RuntimeError(f"server exited: {_stderr(proc)}")
            ready += line.count(marker)  # two processes may write at once
    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {_stderr(proc)}") from None
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start in 240 s")


_STDERR: dict[int, IO[bytes]] = {}
"""Each started server's stderr file by pid (``Popen.stderr`` is None when stderr is a file, not a pipe)."""


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    """The last 4000 characters a server wrote to stderr (a file, so a chatty server never blocks on a full pipe)."""
    err = _STDERR.get(proc.pid)
    if err is None:
        return ""
    err.seek(0)
    return err.read().decode(errors="replace")[-4000:]


def _drain(stream: Any) -> None:
    """Read a child's pipe to the end so it never blocks on a full pipe."""
    for _ in iter(stream.readline, b""):
        pass


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its child processes, as the kernel counts them (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):  # the process ended while being read
            pass
        todo += _children(p)
    return total


def capacity(url: str, pid: int, pcm: bytes, ks: list[int], *, limit_s: float = 1.0, client_procs: int = 1,
             spread_s: float = 1.0) -> list[dict[str, Any]]:
    """Raise K until p95 caption delay passes ``limit_s``; one row per K with delays, memory and the CPU seconds
    of server and load generator in that step."""
    rows = []
    for k in ks:
        base = rss_mb(pid)
        peak = [base]
        cpu0 = cpu_s(pid)

        def sample(peak: list[float] = peak) -> None:
            peak[0] = max(peak[0], rss_mb(pid))

        load = run_streams(url, pcm, k, procs=client_procs, spread_s=spread_s, on_wait=sample)
        server_cpu = cpu_s(pid) - cpu0
        ok = load.ok
        delays = np.array([d for r in ok for d in r.delays]) if ok else np.zeros(0)
        errors = sorted({r.error for r in load.streams if r.error is not None})
        row: dict[str, Any] = {"K": k, "clients_ok": len(ok), "events": int(delays.size),
               "p50_s": float(np.percentile(delays, 50)) if delays.size else None,
               "p95_s": float(np.percentile(delays, 95)) if delays.size and len(ok) == k else None,
               "max_s": float(delays.max()) if delays.size else None,
               "rss_idle_mb": round(base, 1), "rss_peak_mb": round(peak[0], 1),
               "mb_per_session": round((peak[0] - base) / k, 1),
               "wall_s": round(load.wall_s, 1), "server_cpu_s": round(server_cpu, 1),
               "client_cpu_s": round(load.client_cpu_s, 1),
               "client_cpu_share": round(load.client_cpu_s / max(1e-9, load.client_cpu_s + server_cpu), 3)}
        if errors:
            row["errors"] = errors[:5]
        print(json.dumps(row), flush=True)
        rows.append(row)
        if row["p95_s"] is None or row["p95_s"] > limit_s:
            break
    return rows


LEAD_MS = 20_000.0


def soak(url: str, pid: int, pcm: bytes, minutes: float) -> list[tuple[float, float]]:
    """Accelerated stream of ``minutes`` of audio; (audio minutes sent, server RSS MiB) every 10 s of audio."""
    from websockets.sync.client import connect

    total = int(minutes * 60 * 32000)
    samples: list[tuple[float, float]] = [(0.0, rss_mb(pid))]
    with connect(url, max_size=1 << 22) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        sent = 0
        next_mark = 10 * 32000
        heard_ms = 0.0  # the server's progress: end_ms of the newest caption event
        while sent < total:
            chunk = pcm[sent % len(pcm) : sent % len(pcm) + 3200] or pcm[:3200]
            ws.send(chunk)
            sent += len(chunk)
            # drain replies so the socket never backs up; stay at most LEAD_MS of audio ahead of the server, as a
            # flood would queue the client's keepalive pongs behind megabytes of audio
            while True:
                ahead = sent / 32.0 - heard_ms > LEAD_MS
                try:
                    event = json.loads(ws.recv(timeout=5.0 if ahead else 0))
                except TimeoutError:
                    if ahead:
                        heard_ms = sent / 32.0 - LEAD_MS  # a long silence: no event to wait for
                    break
                heard_ms = max(heard_ms, float(event.get("end_ms") or 0.0))
            if sent >= next_mark:
                samples.append((sent / 32000 / 60, rss_mb(pid)))
                next_mark += 10 * 32000
        ws.send(json.dumps({"type": "stop"}))
        for raw in ws:
            if json.loads(raw)["type"] == "summary":
                break
    return samples


MODES: dict[str, tuple[str, tuple[str, ...]]] = {
    # name → (--batching, further serve options)
    "unbatched": ("off", ()),
    "batched": ("on", ()),
    "batched-2procs": ("on", ("--procs", "2")),
    "unbatched-2procs": ("off", ("--procs", "2")),
    # Ray Serve on this machine (a private cluster): two ingress replicas (the sessions), one batching translation
    # replica shared by both
    "ray": ("on", ("--ray", "--ray-address", "local", "--replicas", "2", "--translation-replicas", "1")),
}
"""Server configurations ``--modes`` can compare, all on the same audio and models."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="reta")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--modes", default="batched",
                    help=f"comma-separated server configurations, run one after the other ({', '.join(MODES)}; "
                         "default batched)")
    ap.add_argument("--max-k", type=int, default=16)
    ap.add_argument("--ks", help="comma-separated stream counts to try (default 1, 2, 3, 4, 6, 8, 12, … ≤ --max-k)")
    ap.add_argument("--seconds", type=float, default=40.0, help="audio per client in the capacity test")
    ap.add_argument("--soak-minutes", type=float, default=30.0, help="soak of the first mode (0: none)")
    ap.add_argument("--client-procs", type=int, default=1,
                    help="load-generator processes; each runs its share of the streams as asyncio tasks (default 1)")
    ap.add_argument("--spread-s", type=float, default=1.0,
                    help="the K streams start evenly over this many seconds, as independent users would (default 1)")
    ap.add_argument("--asr-profile", default="default", help="the server's ASR profile (default, edge, whisper)")
    ap.add_argument("--delay-limit", type=float, default=1.0,
                    help="p95 caption delay (s) that counts as real time; K grows until it is passed (default 1.0)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/server_load"))
    ap.add_argument("--render", type=Path, metavar="OUT.json",
                    help="only rewrite OUT.md and OUT.png from an earlier run's OUT.json")
    ap.add_argument("--combine", metavar="A.json,B.json,...",
                    help="only summarise repeated runs (their OUT.json files) as --out .md/.json/.png: the capacity "
                         "of every mode in every run and its spread")
    args = ap.parse_args()
    if args.combine:
        results = [json.loads(Path(f).read_text(encoding="utf-8")) for f in args.combine.split(",") if f]
        command = " ".join(["python -m benchmarks.server_load", *sys.argv[1:]])
        combined = {"command": command, "runs": results}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(combined, indent=2) + "\n", encoding="utf-8")
        lines = render_spread(combined)
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        plot_spread(combined, args.out.with_suffix(".png"))
        print("\n".join(lines))
        return
    if args.render is not None:
        done = json.loads(args.render.read_text(encoding="utf-8"))
        args.render.with_suffix(".md").write_text(
            "\n".join(render_markdown(done, soak_minutes=args.soak_minutes)) + "\n", encoding="utf-8")
        plot(done, args.render.with_suffix(".png"))
        return
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        ap.error(f"--modes: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(MODES)}")
    files = sorted((RECORDINGS / "longform").glob("*.flac")) + sorted((RECORDINGS / "sentences").glob("*.flac"))
    pcm_all = load_pcm(files)
    pcm = pcm_all[: int(args.seconds * 32000) // 2 * 2]
    ladder = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 40, 48, 56, 64)
    ks = [int(k) for k in args.ks.split(",")] if args.ks else [k for k in ladder if k <= args.max_k]
    runs: dict[str, dict[str, Any]] = {}
    soak_rss: list[tuple[float, float]] = []
    for n, mode in enumerate(modes):
        batching, extra = MODES[mode]
        port = free_port()
        server = start_server(port, args.policy, args.workers, args.asr_profile, batching=batching, extra=extra)
        url = f"ws://127.0.0.1:{port}"
        print(f"# {mode}", flush=True)
        try:
            rows = capacity(url, server.pid, pcm, ks, limit_s=args.delay_limit, client_procs=args.client_procs,
                            spread_s=args.spread_s)
            if n == 0 and args.soak_minutes > 0:
                soak_rss = soak(url, server.pid, pcm_all, args.soak_minutes)
        finally:
            server.terminate()
            server.wait(timeout=90)
        ok = [r["K"] for r in rows if r["p95_s"] is not None and r["p95_s"] <= args.delay_limit]
        runs[mode] = {"batching": batching, "serve_options": list(extra), "capacity": rows,
                      "max_realtime_sessions": max(ok) if ok else 0}
    command = " ".join(["python -m benchmarks.server_load", *sys.argv[1:]])
    meta = {"policy": args.policy, "asr_profile": args.asr_profile, "workers": args.workers,
            "seconds_per_client": args.seconds, "delay_limit_s": args.delay_limit,
            "client_procs": args.client_procs, "spread_s": args.spread_s,
            "cpus": os.cpu_count(), "machine": f"{platform.machine()} {platform.processor()}".strip(),
            "command": command}
    result: dict[str, Any] = {"meta": meta, "modes": runs, "soak_rss_mb": soak_rss}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = render_markdown(result, soak_minutes=args.soak_minutes)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(result, args.out.with_suffix(".png"))
    print("\n".join(lines))


def render_markdown(result: dict[str, Any], *, soak_minutes: float) -> list[str]:
    """The report: one table per mode, the capacity of each, the soak."""
    meta = result["meta"]
    limit = meta["delay_limit_s"]
    modes = f": {', '.join(result['modes'])}" if len(result["modes"]) > 1 else ""
    lines = [f"# simulsub serve under load{modes} ({meta['policy']}, ASR profile {meta['asr_profile']}, "
             f"{meta['workers']} model threads, {meta['cpus']} CPUs)", "",
             f"Command: `{meta['command']}`", ""]
    f = (lambda v: "–" if v is None else f"{v:.2f}")  # noqa: E731
    if len(result["modes"]) > 1:
        lines += ["| configuration | serve options | largest K with p95 ≤ "
                  f"{limit:g} s |", "|---|---|---:|"]
        for mode, run in result["modes"].items():
            lines.append(f"| {mode} | `--batching {run['batching']}{''.join(' ' + o for o in run['serve_options'])}` "
                         f"| **{_capacity_cell(run)}** |")
        lines.append("")
    for mode, run in result["modes"].items():
        lines += [f"## {mode} (`--batching {run['batching']}`{''.join(' ' + o for o in run['serve_options'])})", "",
                  "| K streams | p50 delay s | p95 delay s | max s | RSS idle MiB | RSS peak MiB | MiB/session "
                  "| server CPU s | load-generator CPU s |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in run["capacity"]:
            cpu = (f"{r['server_cpu_s']} | {r['client_cpu_s']} ({100 * r['client_cpu_share']:.0f} %)"
                   if "server_cpu_s" in r else "– | –")
            lines.append(f"| {r['K']} | {f(r['p50_s'])} | {f(r['p95_s'])} | {f(r['max_s'])} | {r['rss_idle_mb']} | "
                         f"{r['rss_peak_mb']} | {r['mb_per_session']} | {cpu} |")
        lines += ["", f"Largest K with p95 caption delay ≤ {limit:g} s: **{_capacity_cell(run)}**.", ""]
    rss = [m for _, m in result["soak_rss_mb"]]
    if rss:
        first = next(iter(result["modes"]))
        lines += [f"Soak ({first}): {soak_minutes:.0f} min of audio in one accelerated session; server RSS "
                  f"{rss[0]:.0f} → {rss[-1]:.0f} MiB (min {min(rss):.0f}, max {max(rss):.0f})."]
    return lines


def _capacity_cell(run: dict[str, Any]) -> str:
    """A mode's capacity for a table: the largest K that kept the limit, or "< K" when even the first K tried
    missed it (0 would read as "no stream at all")."""
    if run["max_realtime_sessions"] or not run["capacity"]:
        return str(run["max_realtime_sessions"])
    return f"< {min(row['K'] for row in run['capacity'])}"


def render_spread(combined: dict[str, Any]) -> list[str]:
    """Repeated runs of the same modes: each run's capacity per mode, the spread, and p95 per K and run."""
    runs = combined["runs"]
    meta = runs[0]["meta"]
    limit = meta["delay_limit_s"]
    modes = list(runs[0]["modes"])
    lines = [f"# simulsub serve capacity over {len(runs)} runs ({meta['policy']}, ASR profile {meta['asr_profile']}, "
             f"{meta['workers']} model threads, {meta['cpus']} CPUs, {meta['seconds_per_client']:g} s per stream)", "",
             f"Each run: `{meta['command']}`; summarised with `{combined['command']}`.", "",
             f"Largest K with p95 caption delay ≤ {limit:g} s, run by run (modes one after the other in each run, on "
             "the same audio and models):", "",
             "| configuration | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | min–max |",
             "|---|" + "---:|" * (len(runs) + 1)]
    for mode in modes:
        caps = [r["modes"][mode]["max_realtime_sessions"] for r in runs if mode in r["modes"]]
        lines.append(f"| {mode} | " + " | ".join(f"**{c}**" for c in caps) + f" | {min(caps)}–{max(caps)} |")
    for mode in modes:
        ks = sorted({row["K"] for r in runs for row in r["modes"][mode]["capacity"]})
        lines += ["", f"p95 caption delay (s) of {mode}:", "",
                  "| K streams | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |",
                  "|---:|" + "---:|" * len(runs)]
        for k in ks:
            cells = []
            for r in runs:
                row = next((x for x in r["modes"][mode]["capacity"] if x["K"] == k), None)
                cells.append("–" if row is None or row["p95_s"] is None else f"{row['p95_s']:.2f}")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += ["", "A run stops raising K for a mode at the first K past the limit (–: not reached)."]
    return lines


def plot_spread(combined: dict[str, Any], path: Path) -> None:
    """p95 caption delay against concurrent streams: one colour per mode, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = combined["runs"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for m, mode in enumerate(runs[0]["modes"]):
        for i, r in enumerate(runs):
            rows = [x for x in r["modes"][mode]["capacity"] if x["p95_s"] is not None]
            ax.plot([x["K"] for x in rows], [x["p95_s"] for x in rows], "o-", color=f"C{m}", alpha=0.8,
                    label=mode if i == 0 else None)
    ax.axhline(runs[0]["meta"]["delay_limit_s"], color="grey", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("concurrent real-time streams")
    ax.set_ylabel("p95 caption delay (s)")
    ax.set_title(f"{len(runs)} runs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot(result: dict[str, Any], path: Path) -> None:
    """p95 caption delay against concurrent streams, one line per mode; RSS over the soak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limit = result["meta"]["delay_limit_s"]
    soak_rss = result["soak_rss_mb"]
    fig, axes = plt.subplots(1, 2 if soak_rss else 1, figsize=(11 if soak_rss else 6, 4), squeeze=False)
    ax = axes[0][0]
    for mode, run in result["modes"].items():
        rows = [r for r in run["capacity"] if r["p95_s"] is not None]
        ax.plot([r["K"] for r in rows], [r["p95_s"] for r in rows], "o-", label=f"{mode} p95")
    ax.axhline(limit, color="grey", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("concurrent real-time streams")
    ax.set_ylabel("p95 caption delay (s)")
    ax.legend()
    if soak_rss:
        axes[0][1].plot([m for m, _ in soak_rss], [r for _, r in soak_rss])
        axes[0][1].set_xlabel("audio streamed (min)")
        axes[0][1].set_ylabel("server RSS (MiB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
