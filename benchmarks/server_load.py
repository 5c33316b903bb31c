"""Load test of ``simulsub serve``: concurrent real-time streams from separate processes over loopback.

    .venv/bin/python -m benchmarks.server_load [--policy reta] [--max-k 16] [--seconds 40]
        [--soak-minutes 30] [--out benchmarks/results/server_load]

1. Capacity: for K = 1, 2, 4, … client processes, each streams a recording in real time (100 ms PCM frames,
   paced by the wall clock) and timestamps every caption it receives. Caption delay = receive time − the wall
   time at which the audio the caption reflects (its ``end_ms``) was sent. The largest K whose p95 delay stays
   ≤ 1.0 s is the server's real-time capacity on this machine; the server's resident memory is sampled
   throughout (memory per session = growth over the idle server / K).
2. Soak: one accelerated stream (as fast as the server takes it) of ``--soak-minutes`` of audio (the
   recordings looped); the server's RSS is sampled every 10 s of audio to show it stays flat.

Writes ``OUT.json``, ``OUT.md`` and ``OUT.png`` (delay percentiles per K, RSS over the soak).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from streaming.pcm import encode_pcm16

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its threads (Linux /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


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


def stream_client(url: str, pcm: bytes, realtime: bool, out: Any) -> None:
    """One client process: stream ``pcm`` (16 kHz s16le) and report caption delays (s) through ``out``."""
    import threading

    from websockets.sync.client import connect

    frame = 3200  # 100 ms
    delays: list[float] = []
    finals = 0
    with connect(url, max_size=1 << 22) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        t0 = time.monotonic()

        def receive() -> None:
            nonlocal finals
            for raw in ws:
                msg = json.loads(raw)
                if msg["type"] in ("partial", "final"):
                    sent_at = t0 + float(msg["end_ms"]) / 1000.0  # real time: audio t left at t0 + t
                    delays.append(time.monotonic() - sent_at)
                    finals += msg["type"] == "final"
                elif msg["type"] == "summary":
                    return

        rx = threading.Thread(target=receive)
        rx.start()
        for i in range(0, len(pcm), frame):
            if realtime:
                due = t0 + (i + frame) / 32000.0
                time.sleep(max(0.0, due - time.monotonic()))
            ws.send(pcm[i : i + frame])
        ws.send(json.dumps({"type": "stop"}))
        rx.join(timeout=120)
    out.put({"delays": delays, "finals": finals})


def start_server(port: int, policy: str, workers: int, asr_profile: str = "default") -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("simulsub")
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port), "--policy", policy, "--max-sessions", "64",
                             "--workers", str(workers), "--sessions-dir", "", "--asr-profile", asr_profile],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}") from None
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start in 120 s")


def capacity(url: str, pid: int, pcm: bytes, ks: list[int], *, limit_s: float = 1.0) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    rows = []
    for k in ks:
        q = ctx.Queue()
        base = rss_mb(pid)
        procs = [ctx.Process(target=stream_client, args=(url, pcm, True, q)) for _ in range(k)]
        for p in procs:
            p.start()
        peak = base
        results: list[dict[str, Any]] = []
        while len(results) < k:
            peak = max(peak, rss_mb(pid))
            try:
                results.append(q.get(timeout=0.5))
            except Exception:
                if not any(p.is_alive() for p in procs) and q.empty():
                    break
        for p in procs:
            p.join(timeout=30)
        delays = np.array([d for r in results for d in r["delays"]]) if results else np.zeros(0)
        row = {"K": k, "clients_ok": len(results), "events": int(delays.size),
               "p50_s": float(np.percentile(delays, 50)) if delays.size else None,
               "p95_s": float(np.percentile(delays, 95)) if delays.size else None,
               "max_s": float(delays.max()) if delays.size else None,
               "rss_idle_mb": round(base, 1), "rss_peak_mb": round(peak, 1),
               "mb_per_session": round((peak - base) / k, 1)}
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="reta")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-k", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=40.0, help="audio per client in the capacity test")
    ap.add_argument("--soak-minutes", type=float, default=30.0)
    ap.add_argument("--asr-profile", default="default", help="the server's ASR profile (default, edge, whisper)")
    ap.add_argument("--delay-limit", type=float, default=1.0,
                    help="p95 caption delay (s) that counts as real time; K grows until it is passed (default 1.0)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/server_load"))
    args = ap.parse_args()
    files = sorted((RECORDINGS / "longform").glob("*.flac")) + sorted((RECORDINGS / "sentences").glob("*.flac"))
    pcm_all = load_pcm(files)
    pcm = pcm_all[: int(args.seconds * 32000) // 2 * 2]
    port = free_port()
    server = start_server(port, args.policy, args.workers, args.asr_profile)
    url = f"ws://127.0.0.1:{port}"
    try:
        ks = [k for k in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32) if k <= args.max_k]
        rows = capacity(url, server.pid, pcm, ks, limit_s=args.delay_limit)
        soak_rss = soak(url, server.pid, pcm_all, args.soak_minutes) if args.soak_minutes > 0 else []
    finally:
        server.terminate()
        server.wait(timeout=30)
    ok = [r["K"] for r in rows if r["p95_s"] is not None and r["p95_s"] <= args.delay_limit]
    command = " ".join(["python -m benchmarks.server_load", *sys.argv[1:]])
    meta = {"policy": args.policy, "asr_profile": args.asr_profile, "workers": args.workers,
            "seconds_per_client": args.seconds, "delay_limit_s": args.delay_limit,
            "cpus": os.cpu_count(), "machine": f"{platform.machine()} {platform.processor()}".strip(),
            "command": command}
    result: dict[str, Any] = {"meta": meta,
              "capacity": rows, "max_realtime_sessions": max(ok) if ok else 0,
              "soak_rss_mb": soak_rss}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [f"# simulsub serve under load ({args.policy}, ASR profile {args.asr_profile}, {args.workers} model "
             f"threads, {os.cpu_count()} CPUs)", "",
             f"Command: `{command}`", "",
             "| K streams | p50 delay s | p95 delay s | max s | RSS idle MiB | RSS peak MiB | MiB/session |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        f = (lambda v: "–" if v is None else f"{v:.2f}")  # noqa: E731
        lines.append(f"| {r['K']} | {f(r['p50_s'])} | {f(r['p95_s'])} | {f(r['max_s'])} | {r['rss_idle_mb']} | "
                     f"{r['rss_peak_mb']} | {r['mb_per_session']} |")
    lines += ["", f"Largest K with p95 caption delay ≤ {args.delay_limit:g} s: **{result['max_realtime_sessions']}**."]
    if soak_rss:
        rss = [m for _, m in soak_rss]
        lines += ["", f"Soak: {args.soak_minutes:.0f} min of audio in one accelerated session; server RSS "
                  f"{rss[0]:.0f} → {rss[-1]:.0f} MiB (min {min(rss):.0f}, max {max(rss):.0f})."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot([r["K"] for r in rows], [r["p95_s"] for r in rows], "o-", label="p95")
    axes[0].plot([r["K"] for r in rows], [r["p50_s"] for r in rows], "s--", label="p50")
    axes[0].axhline(args.delay_limit, color="grey", lw=0.8)
    axes[0].set_xlabel("concurrent real-time streams")
    axes[0].set_ylabel("caption delay (s)")
    axes[0].legend()
    if soak_rss:
        axes[1].plot([m for m, _ in soak_rss], [r for _, r in soak_rss])
        axes[1].set_xlabel("audio streamed (min)")
        axes[1].set_ylabel("server RSS (MiB)")
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
