"""Reliability of ``simulsub serve`` under load and hostile input (issue 23), on the bundled default models.

    .venv/bin/python -m benchmarks.server_reliability [--runs 10] [--hostile-inputs 2000]
        [--out benchmarks/results/server_reliability]

1. Load: 3 flooding clients (``simulsub client --fast`` on ``talk2.flac``, restarted as soon as they finish) and
   8 idle abusers (connect, never start, an invalid message every 3 s, reconnect when closed) run throughout,
   while a real-time reference ``simulsub client --file recordings/longform/talk1.flac`` runs ``--runs`` times.
   A run passes when the client exits 0 with a summary, every final the summary counts was received, and the
   finals equal those of an unloaded run of the same client.
2. Telephone audio: talk1 at 8000 and 8001 Hz: the client gets every final the server persisted.
3. A wave of 8 clients cut by TCP reset while the server pushes back on them, then 8 new clients: how long
   until all 8 are served.
4. Text: one 300-word message without a full stop, and a text flood at 10× the rate limit.
5. Hostile: ≥ ``--hostile-inputs`` generated WebSocket inputs (``benchmarks/hostile_inputs.py``) and raw HTTP
   requests; every answer checked; the server's log searched for tracebacks.
6. CLI: every CLI case of issue 23 as a subprocess: exit code, one-line error, no traceback, no hang.
7. Silence: 5 minutes of digital silence and of hiss (48 kHz) through ``simulsub replay``.

Writes ``OUT.json``, ``OUT.md`` and ``OUT.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.hostile_inputs import FAMILIES, RawClient, generate, http_cases, problems, run_attack, run_http

REPO = Path(__file__).resolve().parents[1]
TALK1 = REPO / "recordings" / "longform" / "talk1.flac"
TALK2 = REPO / "recordings" / "longform" / "talk2.flac"
SIMULSUB = str(Path(sys.executable).with_name("simulsub"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pcm16(path: Path, rate: int) -> bytes:
    import soundfile as sf
    import soxr

    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if sr != rate:
        mono = soxr.resample(mono, sr, rate)
    return (np.clip(mono, -1, 1) * 32767).astype("<i2").tobytes()


class Server:
    """``simulsub serve`` in a subprocess, its stderr kept for the traceback count."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.sessions = workdir / "sessions"
        self.log = workdir / "server.log"
        self._log = open(self.log, "ab")  # noqa: SIM115 (held for the server's lifetime, closed in stop())
        self.proc = subprocess.Popen([SIMULSUB, "serve", "--port", str(self.port), "--sessions-dir",
                                      str(self.sessions), *extra], stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        raise RuntimeError("the server did not start within 180 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()

    def tracebacks(self) -> dict[str, int]:
        text = self.log.read_text(errors="replace")
        return {"Traceback": text.count("Traceback"), "ERROR": sum(ln.startswith("ERROR") for ln in text.splitlines()),
                "Task was destroyed": text.count("Task was destroyed")}


def client(url: str, path: Path, *, fast: bool, timeout_s: float = 900.0) -> dict[str, Any]:
    """One ``simulsub client --file`` run: exit code, finals, the summary, wall seconds, the last stderr line."""
    t0 = time.monotonic()
    cmd = [SIMULSUB, "client", "--url", url, "--file", str(path), "--json", *(["--fast"] if fast else [])]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    msgs = []
    for line in p.stdout.splitlines():
        with contextlib.suppress(ValueError):
            msgs.append(json.loads(line))
    summary = next((m for m in msgs if m.get("type") == "summary"), None)
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    return {"rc": p.returncode, "finals": [m["target"] for m in msgs if m.get("type") == "final"],
            "summary": summary, "wall_s": time.monotonic() - t0, "stderr": err[-1] if err else "",
            "errors": [m.get("code") for m in msgs if m.get("type") == "error"]}


@dataclass
class Background:
    """Flooders and idle abusers running until :meth:`stop`."""

    url: str
    flooders: int = 3
    abusers: int = 8
    flood_runs: list[dict[str, Any]] = field(default_factory=list)
    abuser_closes: list[int | None] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._flood, daemon=True) for _ in range(self.flooders)]
        self._threads.append(threading.Thread(target=lambda: asyncio.run(self._abuse_all()), daemon=True))
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)

    def _flood(self) -> None:
        while not self._stop.is_set():
            cmd = [SIMULSUB, "client", "--url", self.url, "--file", str(TALK2), "--fast", "--json"]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            while p.poll() is None and not self._stop.is_set():
                time.sleep(0.2)
            if p.poll() is None:  # stopped mid-run: not counted
                p.kill()
                p.communicate()
                return
            out, err = p.communicate()
            self.flood_runs.append({"rc": p.returncode, "summary": '"type": "summary"' in out,
                                    "stderr": err.strip().splitlines()[-1] if err.strip() else ""})

    async def _abuse_all(self) -> None:
        await asyncio.gather(*(self._abuse(i) for i in range(self.abusers)))

    async def _abuse(self, i: int) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        while not self._stop.is_set():
            try:
                async with connect(self.url, open_timeout=30) as ws:
                    while not self._stop.is_set():
                        await ws.send('{"type": "nope"}')
                        await asyncio.sleep(3.0)
            except ConnectionClosed as e:
                self.abuser_closes.append(e.rcvd.code if e.rcvd is not None else None)
            except (OSError, InvalidHandshake, TimeoutError):
                await asyncio.sleep(1.0)


def load_runs(url: str, runs: int) -> dict[str, Any]:
    baseline = client(url, TALK1, fast=False)
    print(f"unloaded reference: rc {baseline['rc']}, {len(baseline['finals'])} finals, "
          f"{baseline['wall_s']:.1f} s", flush=True)
    bg = Background(url)
    bg.start()
    time.sleep(5.0)
    rows = []
    for i in range(runs):
        r = client(url, TALK1, fast=False)
        s = r["summary"] or {}
        ok = (r["rc"] == 0 and r["summary"] is not None and s.get("segments") == len(r["finals"])
              and r["finals"] == baseline["finals"])
        rows.append({"run": i + 1, "ok": ok, "rc": r["rc"], "finals": len(r["finals"]),
                     "summary_segments": s.get("segments"),
                     "same_finals_as_unloaded": r["finals"] == baseline["finals"], "wall_s": round(r["wall_s"], 2),
                     "mean_latency_ms": s.get("mean_latency_ms"), "stderr": r["stderr"] if r["rc"] else ""})
        print(json.dumps(rows[-1]), flush=True)
    bg.stop()
    closes: dict[str, int] = {}
    for c in bg.abuser_closes:
        closes[str(c)] = closes.get(str(c), 0) + 1
    bs = baseline["summary"] or {}
    return {"baseline": {"rc": baseline["rc"], "finals": len(baseline["finals"]),
                         "wall_s": round(baseline["wall_s"], 2), "mean_latency_ms": bs.get("mean_latency_ms")},
            "runs": rows, "passed": sum(r["ok"] for r in rows), "flood_runs": len(bg.flood_runs),
            "flood_runs_ok": sum(f["rc"] == 0 and f["summary"] for f in bg.flood_runs),
            "flood_failures": [f["stderr"] for f in bg.flood_runs if f["rc"] != 0][:5],
            "abuser_closes": closes}


def telephone(url: str, sessions: Path) -> list[dict[str, Any]]:
    from websockets.sync.client import connect

    rows = []
    for rate in (8000, 8001):
        pcm = pcm16(TALK1, rate)
        step = rate // 10 * 2
        msgs = []
        with connect(url, max_size=None) as ws:
            ws.send(json.dumps({"type": "start", "sample_rate": rate}))
            for i in range(0, len(pcm), step):
                ws.send(pcm[i : i + step])
            ws.send(json.dumps({"type": "stop"}))
            for raw in ws:
                msgs.append(json.loads(raw))
                if msgs[-1]["type"] == "summary":
                    break
        summary = msgs[-1]
        finals = [m["target"] for m in msgs if m["type"] == "final"]
        saved_path = sessions / f"{summary['session']}.jsonl"
        saved = ([json.loads(x)["target"] for x in saved_path.read_text().splitlines()]
                 if saved_path.is_file() else [])
        rows.append({"rate": rate, "finals_received": len(finals), "summary_segments": summary.get("segments"),
                     "persisted": len(saved), "last_final_delivered": bool(saved) and finals == saved})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _raw_flood_then_reset(port: int, pcm: bytes) -> None:
    """Start a session, send audio until the server pushes back, then abort with a TCP RST."""
    raw = RawClient(port)
    raw.send(json.dumps({"type": "start", "sample_rate": 16000}))
    raw.send_until_pushed_back(pcm)
    raw.reset()


def wave(port: int, url: str, max_sessions: int) -> dict[str, Any]:
    from websockets.sync.client import connect

    pcm = pcm16(TALK2, 16000)
    threads = [threading.Thread(target=_raw_flood_then_reset, args=(port, pcm)) for _ in range(max_sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_cut = time.monotonic()
    served_after: list[float] = []
    refusals = 0
    for _ in range(max_sessions):
        while time.monotonic() - t_cut < 60:
            with connect(url) as ws:
                ws.send(json.dumps({"type": "start", "sample_rate": 16000, "input": "text"}))
                ws.send(json.dumps({"type": "text", "text": "A man walks ."}))
                ws.send(json.dumps({"type": "stop"}))
                kinds = []
                try:
                    for raw in ws:
                        m = json.loads(raw)
                        kinds.append(m.get("code") or m["type"])
                        if m["type"] == "summary":
                            break
                except Exception:
                    pass
            if "summary" in kinds and "too_many_sessions" not in kinds:
                served_after.append(time.monotonic() - t_cut)
                break
            refusals += 1
            time.sleep(0.1)
    row = {"cut_clients": max_sessions, "new_clients_served": len(served_after), "refusals_before_served": refusals,
           "last_served_after_s": round(max(served_after), 2) if served_after else None}
    print(json.dumps(row), flush=True)
    return row


def text_cases(url: str) -> dict[str, Any]:
    from websockets.sync.client import connect

    def session(messages: list[str], pause_s: float = 0.0) -> tuple[list[dict[str, Any]], float]:
        t0 = time.monotonic()
        msgs = []
        with connect(url, max_size=None) as ws:
            ws.send(json.dumps({"type": "start", "sample_rate": 16000, "input": "text"}))
            for m in messages:
                ws.send(json.dumps({"type": "text", "text": m}))
                time.sleep(pause_s)
            ws.send(json.dumps({"type": "stop"}))
            for raw in ws:
                msgs.append(json.loads(raw))
                if msgs[-1]["type"] == "summary":
                    break
        return msgs, time.monotonic() - t0

    rng = random.Random(0)
    vocab = ["a", "man", "woman", "dog", "walks", "runs", "down", "the", "street", "with", "red", "ball", "in",
             "park", "near", "big", "old", "house"]
    long_msgs, long_s = session([" ".join(rng.choice(vocab) for _ in range(300))])
    flood_msgs, flood_s = session([" ".join(rng.choice(vocab) for _ in range(100))] * 60, pause_s=0.2)
    out = {"words_300": {"finals": sum(m["type"] == "final" for m in long_msgs),
                         "summary": long_msgs[-1]["type"] == "summary", "wall_s": round(long_s, 2)},
           "flood_10x_rate": {"messages": 60,
                              "rate_limited": sum(m.get("code") == "rate_limited" for m in flood_msgs),
                              "finals": sum(m["type"] == "final" for m in flood_msgs),
                              "summary": flood_msgs[-1]["type"] == "summary", "wall_s": round(flood_s, 2)}}
    print(json.dumps(out), flush=True)
    return out


def hostile(server: Server, inputs: int) -> dict[str, Any]:
    per_family: dict[str, dict[str, int]] = {f: {"inputs": 0, "problems": 0} for f in FAMILIES}
    found: list[str] = []
    total, n = 0, 0
    seed = 0
    while total < inputs:
        for a in generate(100, seed=seed, max_message_bytes=1 << 20):
            bad = problems(run_attack(server.url, a, timeout_s=60))
            per_family[a.family]["inputs"] += a.inputs
            per_family[a.family]["problems"] += len(bad)
            found += [f"{a.family}: {b}" for b in bad]
            total += a.inputs
            n += 1
        seed += 1
    statuses: dict[str, int] = {}
    for req in http_cases(300, seed=1):
        status = run_http("127.0.0.1", server.port, req)
        key = status.split()[1] if status else "closed"
        statuses[key] = statuses.get(key, 0) + 1
    out = {"attacks": n, "inputs": total, "http_requests": 300, "http_statuses": statuses,
           "problems": len(found), "examples": found[:10], "per_family": per_family}
    print(json.dumps({k: v for k, v in out.items() if k != "per_family"}), flush=True)
    return out


def cli_cases(workdir: Path) -> list[dict[str, Any]]:
    import soundfile as sf

    d = workdir / "cli"
    d.mkdir(exist_ok=True)
    audio, sr = sf.read(TALK1, dtype="float32", always_2d=True)
    sf.write(d / "good.wav", audio[: 5 * sr, 0], sr)
    sf.write(d / "whole.flac", audio[:, 0], sr)
    (d / "cut.flac").write_bytes((d / "whole.flac").read_bytes()[: (d / "whole.flac").stat().st_size // 2])
    (d / "binary.jsonl").write_bytes(bytes(range(256)) * 8)
    (d / "old.jsonl").write_text("yesterday's log\n")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    good, cut = str(d / "good.wav"), str(d / "cut.flac")
    cases: list[tuple[str, list[str], bytes | None]] = [
        ("translate: non-UTF-8 stdin", ["translate"], b"A man.\n\xff\xfe caf\xe9\n"),
        ("translate --beam 100000", ["translate", "--beam", "100000"], b"A man walks.\n"),
        ("score: binary file", ["score", str(d / "binary.jsonl")], None),
        ("replay: truncated FLAC", ["replay", cut], None),
        ("replay --vad-threshold 5", ["replay", good, "--vad-threshold", "5"], None),
        ("replay --min-silence-ms -1", ["replay", good, "--min-silence-ms", "-1"], None),
        ("replay --srt DIRECTORY", ["replay", good, "--srt", str(d)], None),
        ("serve --port 70000", ["serve", "--port", "70000"], None),
        ("serve: port in use", ["serve", "--port", str(busy.getsockname()[1])], None),
        ("client: connection refused", ["client", "--url", "ws://127.0.0.1:1", "--file", good], None),
        ("replay good then corrupt, existing --log", ["replay", good, cut, "--log", str(d / "old.jsonl")], None),
        ("web --host 0.0.0.0 without --auth", ["web", "--host", "0.0.0.0"], None),
    ]
    rows = []
    env = {k: v for k, v in os.environ.items() if k != "SIMULSUB_WEB_AUTH"}
    for name, argv, stdin in cases:
        t0 = time.monotonic()
        try:
            p = subprocess.run([SIMULSUB, *argv], input=stdin if stdin is not None else b"", capture_output=True,
                               timeout=300, env=env)
            rc, err = p.returncode, p.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired:
            rc, err = None, "hang: no exit within 300 s"
        lines = [ln for ln in err.splitlines() if ln.strip()]
        traceback = "Traceback" in err
        ok = bool(rc) and not traceback and bool(lines) and "error" in lines[-1]
        if name.startswith("replay good then corrupt"):
            ok = ok and (d / "old.jsonl").read_text() == "yesterday's log\n"
        row = {"case": name, "rc": rc, "traceback": traceback, "wall_s": round(time.monotonic() - t0, 1),
               "error": lines[-1] if lines else "", "ok": ok}
        print(json.dumps(row), flush=True)
        rows.append(row)
    busy.close()
    return rows


def silence(workdir: Path) -> list[dict[str, Any]]:
    import soundfile as sf

    rng = np.random.default_rng(0)
    files = {"digital silence, 16 kHz": (np.zeros(300 * 16000, np.float32), 16000),
             "hiss (-50 dBFS), 48 kHz": ((0.003 * rng.standard_normal(300 * 48000)).astype(np.float32), 48000)}
    rows = []
    for name, (x, rate) in files.items():
        path = workdir / f"silence-{rate}.flac"
        sf.write(path, x, rate)
        t0 = time.monotonic()
        p = subprocess.run([SIMULSUB, "replay", str(path), "--json"], capture_output=True, text=True, timeout=600)
        wall = time.monotonic() - t0
        result = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {}
        rows.append({"audio": name, "audio_s": result.get("audio_s"), "rc": p.returncode, "wall_s": round(wall, 2),
                     "speed_x": round(300.0 / wall, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def write_report(result: dict[str, Any], out: Path) -> None:
    load, tel, wav, txt, hos, cli, sil = (result[k] for k in ("load", "telephone", "wave", "text", "hostile", "cli",
                                                              "silence"))
    tb = result["server_log"]
    lines = [
        "# Server reliability under load and hostile input", "",
        f"`python -m benchmarks.server_reliability` on {result['date']} ({result['minutes']:.1f} min, "
        f"{result['machine']['cores']} cores, default models, `simulsub serve` defaults).", "",
        f"## Real-time reference client under 3 flooders + 8 idle abusers: {load['passed']} of {len(load['runs'])} "
        "runs complete", "",
        f"`simulsub client --file recordings/longform/talk1.flac` (real time); unloaded: {load['baseline']['finals']} "
        f"finals in {load['baseline']['wall_s']} s, mean latency {load['baseline']['mean_latency_ms']} ms.", "",
        "| run | exit | finals | summary segments | finals = unloaded | wall s | mean latency ms |",
        "|---:|---:|---:|---:|---|---:|---:|",
        *[f"| {r['run']} | {r['rc']} | {r['finals']} | {r['summary_segments']} | {r['same_finals_as_unloaded']} | "
          f"{r['wall_s']} | {r['mean_latency_ms']} |" for r in load["runs"]], "",
        f"Flooders: {load['flood_runs_ok']} of {load['flood_runs']} `--fast` runs of talk2.flac completed with a "
        f"summary (slowed by backpressure, never dropped). Abusers' connections closed by the server: "
        f"{load['abuser_closes']} (1008: no valid start within 10 s; invalid messages do not extend it).", "",
        "## Telephone audio", "",
        "| rate Hz | finals received | summary segments | persisted | last final delivered |",
        "|---:|---:|---:|---:|---|",
        *[f"| {r['rate']} | {r['finals_received']} | {r['summary_segments']} | {r['persisted']} | "
          f"{r['last_final_delivered']} |" for r in tel], "",
        "## A wave of cut clients", "",
        f"{wav['cut_clients']} clients flooded audio and were cut by TCP reset while the server pushed back on them; "
        f"then {wav['cut_clients']} new clients: {wav['new_clients_served']} served, "
        f"{wav['refusals_before_served']} refusals before that, the last one served "
        f"{wav['last_served_after_s']} s after the cut.", "",
        "## Text input", "",
        f"- one 300-word message without a full stop: {txt['words_300']['finals']} bounded segments, summary "
        f"{txt['words_300']['summary']}, {txt['words_300']['wall_s']} s;",
        f"- 60 messages of 100 words at 5 msg/s (10× the 50 words/s limit): {txt['flood_10x_rate']['rate_limited']} "
        f"refused with `rate_limited`, {txt['flood_10x_rate']['finals']} finals, summary "
        f"{txt['flood_10x_rate']['summary']}, {txt['flood_10x_rate']['wall_s']} s.", "",
        f"## Hostile input: {hos['inputs']} generated WebSocket inputs in {hos['attacks']} connections + "
        f"{hos['http_requests']} raw HTTP requests", "",
        f"Answers that were not a protocol message, an error with a known code, or a close with a JSON reason: "
        f"**{hos['problems']}**. HTTP statuses: {hos['http_statuses']}. Server log over the whole benchmark: "
        f"**{tb['Traceback']} tracebacks**, {tb['ERROR']} ERROR lines, {tb['Task was destroyed']} destroyed tasks.",
        "", "| family | inputs | problems |", "|---|---:|---:|",
        *[f"| {f} | {v['inputs']} | {v['problems']} |" for f, v in hos["per_family"].items()], "",
        f"## CLI cases: {sum(r['ok'] for r in cli)} of {len(cli)} answer with one line and a non-zero exit", "",
        "| case | exit | traceback | s | stderr |", "|---|---:|---|---:|---|",
        *[f"| {r['case']} | {r['rc']} | {r['traceback']} | {r['wall_s']} | {r['error'][:110]} |" for r in cli], "",
        "## Silence through `simulsub replay` (5 minutes)", "",
        "| audio | exit | wall s (incl. model load) | × real time |", "|---|---:|---:|---:|",
        *[f"| {r['audio']} | {r['rc']} | {r['wall_s']} | {r['speed_x']} |" for r in sil], "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    load, hos = result["load"], result["hostile"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2))
    runs = load["runs"]
    x = [r["run"] for r in runs]
    a.bar(x, [r["mean_latency_ms"] or 0 for r in runs], color=["tab:green" if r["ok"] else "tab:red" for r in runs],
          label="under load (green: every final + the summary)")
    a.axhline(load["baseline"]["mean_latency_ms"] or 0, color="k", ls="--", label="unloaded")
    a.set_xlabel("reference run: talk1.flac in real time beside 3 flooders + 8 idle abusers")
    a.set_ylabel("mean caption latency, ms (server summary)")
    a.legend(loc="lower right", fontsize=8)
    fams = list(hos["per_family"])
    b.barh(fams, [hos["per_family"][f]["inputs"] for f in fams], color="tab:blue", label="inputs")
    b.barh(fams, [hos["per_family"][f]["problems"] for f in fams], color="tab:red", label="bad answers")
    b.set_xscale("log")
    b.set_xlabel(f"hostile inputs ({hos['inputs']} in all; {result['server_log']['Traceback']} tracebacks)")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--hostile-inputs", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "server_reliability")
    ap.add_argument("--from-json", action="store_true", help="only re-render OUT.md and OUT.png from OUT.json")
    args = ap.parse_args()
    if args.from_json:
        saved = json.loads(args.out.with_suffix(".json").read_text(encoding="utf-8"))
        write_report(saved, args.out)
        plot(saved, args.out)
        return
    t0 = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="simulsub-reliability-"))
    server = Server(workdir)
    try:
        result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"),
                                  "machine": {"cores": os.cpu_count(), "python": platform.python_version()}}
        result["load"] = load_runs(server.url, args.runs)
        result["telephone"] = telephone(server.url, server.sessions)
        result["wave"] = wave(server.port, server.url, 8)
        result["text"] = text_cases(server.url)
        result["hostile"] = hostile(server, args.hostile_inputs)
    finally:
        server.stop()
    result["server_log"] = server.tracebacks()
    result["cli"] = cli_cases(workdir)
    result["silence"] = silence(workdir)
    result["minutes"] = (time.time() - t0) / 60
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    write_report(result, args.out)
    plot(result, args.out)
    shutil.rmtree(workdir, ignore_errors=True)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
