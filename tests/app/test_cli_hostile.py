"""Every CLI case of the hostile battery (issue 23): one line on stderr, a non-zero exit, no traceback, no hang,
no overwritten file."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from app.cli import main

pytest.importorskip("onnxruntime")
JFK = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech" / "jfk" / "jfk.16k.wav"


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0, err
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert "Traceback" not in err and lines, err
    assert "error" in lines[-1], err
    for needle in needles:
        assert needle in lines[-1], err


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audio")
    audio, sr = sf.read(JFK, dtype="float32")
    good, flac = d / "good.wav", d / "whole.flac"
    sf.write(good, audio[: 4 * sr], sr)
    sf.write(flac, audio, sr)
    cut = d / "cut.flac"
    cut.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])  # header intact, stream cut mid-frame
    return {"good": good, "cut": cut}


def test_translate_non_utf8_stdin(tiny_marian_dir: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"A man.\n\xff\xfe caf\xe9\n"), encoding="utf-8"))
    code, out, err = cli(["translate", "--model", str(tiny_marian_dir)], capsys)
    one_line_error(code, err, "UTF-8")
    assert out == ""


@pytest.mark.parametrize(("beam", "needle"), [("100000", "--beam"), ("0", "--beam")])
def test_translate_beam_is_bounded(tiny_marian_dir: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch, beam: str, needle: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("A man walks.\n"))
    code, _, err = cli(["translate", "--model", str(tiny_marian_dir), "--beam", beam], capsys)
    one_line_error(code, err, needle)


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
                                     b"[" * 100_000 + b"\n"])
def test_score_on_binary_or_hostile_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    log = tmp_path / "log.jsonl"
    log.write_bytes(content)
    code, _, err = cli(["score", str(log)], capsys)
    one_line_error(code, err, str(log))


def test_replay_truncated_flac(tiny_export: tuple[Path, Any], audio_files: dict[str, Path],
                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["replay", str(audio_files["cut"]), "--asr-model", str(tiny_export[0])], capsys)
    one_line_error(code, err, "cannot decode audio file", "cut.flac")


@pytest.mark.parametrize(("flag", "value"), [("--vad-threshold", "5"), ("--vad-threshold", "0"),
                                             ("--min-silence-ms", "-1"), ("--max-segment-ms", "0"),
                                             ("--chunk-ms", "-600"), ("--beam", "100000"), ("--threads", "0"),
                                             ("--lookahead-ms", "nan")])
def test_replay_rejects_out_of_range_options(tiny_export: tuple[Path, Any], audio_files: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str], flag: str, value: str) -> None:
    code, _, err = cli(["replay", str(audio_files["good"]), "--asr-model", str(tiny_export[0]), flag, value],
                       capsys)
    one_line_error(code, err, flag)


@pytest.mark.parametrize("option", ["--srt", "--vtt", "--log"])
def test_outputs_naming_a_directory_are_refused_before_any_work(tiny_export: tuple[Path, Any], tmp_path: Path,
                                                                audio_files: dict[str, Path],
                                                                capsys: pytest.CaptureFixture[str],
                                                                option: str) -> None:
    code, out, err = cli(["replay", str(audio_files["good"]), "--asr-model", str(tiny_export[0]), option,
                          str(tmp_path)], capsys)
    one_line_error(code, err, option, "directory")
    assert out == ""
    code, _, err = cli(["replay", str(audio_files["good"]), "--asr-model", str(tiny_export[0]), option,
                        str(tmp_path / "missing" / "out.x")], capsys)
    one_line_error(code, err, option)


def test_replay_good_then_corrupt_keeps_the_existing_log(tiny_export: tuple[Path, Any], tmp_path: Path,
                                                        audio_files: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    log, srt = tmp_path / "run.jsonl", tmp_path / "run.srt"
    log.write_text("yesterday's log\n")
    srt.write_text("yesterday's subtitles\n")
    code, _, err = cli(["replay", str(audio_files["good"]), str(audio_files["cut"]), "--asr-model",
                        str(tiny_export[0]), "--log", str(log), "--srt", str(srt)], capsys)
    one_line_error(code, err, "cut.flac")
    assert log.read_text() == "yesterday's log\n" and srt.read_text() == "yesterday's subtitles\n"
    partial = Path(f"{log}.partial")
    assert partial.is_file() and json.loads(partial.read_text().splitlines()[0])["index"] == 0  # the good file
    code, _, err = cli(["replay", str(audio_files["good"]), "--asr-model", str(tiny_export[0]), "--log", str(log),
                        "--srt", str(srt)], capsys)
    assert code == 0, err
    assert log.read_text().startswith("{") and srt.read_text().startswith("1\n")
    assert not partial.exists() and not Path(f"{srt}.partial").exists()


def test_replay_silence_is_cheap(tiny_export: tuple[Path, Any], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A minute of digital silence and of hiss: no segments, no translation, and it returns (the 5-minute timing
    is in benchmarks/server_reliability.py)."""
    rng = np.random.default_rng(0)
    silence, hiss = tmp_path / "silence.wav", tmp_path / "hiss.flac"
    sf.write(silence, np.zeros(60 * 16000, np.float32), 16000)
    sf.write(hiss, (0.003 * rng.standard_normal(60 * 48000)).astype(np.float32), 48000)
    for path in (silence, hiss):
        code, out, err = cli(["replay", str(path), "--asr-model", str(tiny_export[0]), "--json"], capsys)
        assert code == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result["audio_s"] == pytest.approx(60.0, abs=0.1)


def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.fixture()
def taken_port() -> Iterator[int]:
    yield from busy_port()


def test_serve_port_out_of_range_and_in_use(tiny_export: tuple[Path, Any], taken_port: int,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    for port in ("70000", "-1"):
        code, _, err = cli(["serve", "--port", port], capsys)
        one_line_error(code, err, "--port")
    code, out, err = cli(["serve", "--port", str(taken_port), "--asr-model", str(tiny_export[0])], capsys)
    one_line_error(code, err, "cannot listen", str(taken_port))
    assert "ws://" not in out  # nothing announced before the bind succeeded


def test_web_refuses_a_public_bind_without_auth(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIMULSUB_WEB_AUTH", raising=False)
    code, _, err = cli(["web", "--host", "0.0.0.0"], capsys)
    one_line_error(code, err, "--auth")
    code, _, err = cli(["web", "--host", "0.0.0.0", "--auth", "alice"], capsys)
    one_line_error(code, err, "USER:PASSWORD")
    code, _, err = cli(["web", "--port", "99999"], capsys)
    one_line_error(code, err, "--port")


class BadServer:
    """A TCP server on loopback that misbehaves in one of several ways on every connection."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> int:
        if self.how in ("close_1011", "cut"):
            from websockets.asyncio.server import serve

            async def handler(ws: Any) -> None:
                await ws.recv()
                if self.how == "cut":
                    ws.transport.abort()
                else:
                    await ws.close(1011, "model exploded")

            self.server: Any = await serve(handler, "127.0.0.1", 0)
            return int(self.server.sockets[0].getsockname()[1])

        async def raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            if self.how == "garbage":
                writer.write(b"\x00\xffnot http at all\r\n\r\n")
            elif self.how == "http500":
                writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(raw, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        async def stop_listening() -> None:  # on the server's own loop: asyncio servers are not thread-safe
            self.server.close()

        asyncio.run_coroutine_threadsafe(stop_listening(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.mark.parametrize("how", ["garbage", "http500", "hangup", "close_1011", "cut"])
def test_client_reports_a_bad_server_in_one_line(how: str, capsys: pytest.CaptureFixture[str]) -> None:
    bad = BadServer(how)
    try:
        code, _, err = cli(["client", "--url", f"ws://127.0.0.1:{bad.port}", "--file", str(JFK), "--fast"], capsys)
    finally:
        bad.close()
    assert code != 0 and "Traceback" not in err, err
    if how == "close_1011":
        assert "1011" in err and "model exploded" in err
    code, _, err = cli(["client", "--url", "ws://127.0.0.1:1", "--file", str(JFK)], capsys)
    one_line_error(code, err, "cannot connect")
