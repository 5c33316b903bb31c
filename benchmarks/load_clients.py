"""The load generator of :mod:`benchmarks.server_load`: many real-time WebSocket streams from few processes.

One process per stream (the first load generator) spent 27 % of the machine's CPU in the clients themselves at 32
streams on 2 cores (a Python interpreter, a sync WebSocket client and a receiving thread each), so the server was
measured with a quarter of the machine taken away. Here every client process runs its streams as asyncio tasks:
each stream connects, sends ``start``, then 100 ms PCM frames paced by the wall clock, and timestamps every caption
it receives. Stream ``i`` of ``K`` starts ``i · spread_s / K`` after the first, as independent users would, so the
streams' ASR chunks do not all fall due at the same instant. Every process reports its own CPU seconds, so each
benchmark row states what the load generator cost.

Caption delay = receive time − the wall time at which the audio the caption reflects (its ``end_ms``) was sent; a
busy client process only makes delays look worse (it reads captions late), never better.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
from dataclasses import dataclass, field
from typing import Any

FRAME_BYTES = 3200  # 100 ms of 16 kHz s16le
BYTES_PER_S = 32000.0


@dataclass
class StreamResult:
    """What one stream saw: caption delays (s), finals received, and the error that ended it early (if any)."""

    delays: list[float] = field(default_factory=list)
    finals: int = 0
    error: str | None = None


@dataclass
class LoadResult:
    """All streams of one load level, and the CPU seconds the client processes used (user + system)."""

    streams: list[StreamResult]
    client_cpu_s: float
    wall_s: float

    @property
    def ok(self) -> list[StreamResult]:
        return [s for s in self.streams if s.error is None]


async def one_stream(url: str, pcm: bytes, *, start_after_s: float, realtime: bool = True) -> StreamResult:
    """Stream ``pcm`` (16 kHz s16le) after ``start_after_s`` seconds; return what came back."""
    from websockets.asyncio.client import connect

    result = StreamResult()
    await asyncio.sleep(start_after_s)
    try:
        async with connect(url, max_size=1 << 22, ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
            t0 = time.monotonic()

            async def receive() -> None:
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg["type"] in ("partial", "final"):
                        sent_at = t0 + float(msg["end_ms"]) / 1000.0  # real time: audio t left at t0 + t
                        result.delays.append(time.monotonic() - sent_at)
                        result.finals += msg["type"] == "final"
                    elif msg["type"] == "summary":
                        return
                    elif msg["type"] == "error":
                        result.error = str(msg.get("message") or msg.get("code"))

            rx = asyncio.create_task(receive())
            for i in range(0, len(pcm), FRAME_BYTES):
                if realtime:
                    await asyncio.sleep(max(0.0, t0 + (i + FRAME_BYTES) / BYTES_PER_S - time.monotonic()))
                await ws.send(pcm[i : i + FRAME_BYTES])
            await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(rx, timeout=120)
    except Exception as e:  # a refused or dropped stream is a result of the load test, not a crash of it
        result.error = f"{type(e).__name__}: {e}"
    return result


async def _streams(url: str, pcm: bytes, offsets: list[float]) -> list[StreamResult]:
    return list(await asyncio.gather(*(one_stream(url, pcm, start_after_s=o) for o in offsets)))


def _client_process(url: str, pcm: bytes, offsets: list[float], out: Any) -> None:
    """One client process: its streams as asyncio tasks; puts (results, own CPU seconds) on ``out``."""
    results = asyncio.run(_streams(url, pcm, offsets))
    out.put(([r.__dict__ for r in results], time.process_time()))


def run_streams(url: str, pcm: bytes, k: int, *, procs: int = 1, spread_s: float = 1.0,
                on_wait: Any = None) -> LoadResult:
    """``k`` real-time streams of ``pcm`` spread over ``procs`` client processes (round robin), starting
    ``spread_s / k`` apart; ``on_wait()`` is called about twice a second while they run (to sample the server)."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = max(1, min(procs, k))
    offsets = [i * spread_s / k for i in range(k)]
    workers = [ctx.Process(target=_client_process, args=(url, pcm, offsets[p::procs], q)) for p in range(procs)]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    streams: list[StreamResult] = []
    cpu = 0.0
    done = 0
    while done < procs:
        if on_wait is not None:
            on_wait()
        try:
            rows, used = q.get(timeout=0.5)
        except Exception:
            if not any(w.is_alive() for w in workers) and q.empty():
                break
            continue
        streams += [StreamResult(**r) for r in rows]
        cpu += used
        done += 1
    for w in workers:
        w.join(timeout=30)
    return LoadResult(streams, cpu, time.monotonic() - t0)
