"""Output sinks: SRT/VTT/JSONL files (atomic for the CLI, appended for server sessions) and the terminal view."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Literal

import pytest

from app.errors import UserError
from app.sinks import CaptionView, JsonlLog, PipelineOutputs, SrtFile, SubtitleFiles, VttFile
from streaming.events import CaptionEvent, SegmentResult
from streaming.instance import InstanceRecord
from streaming.subtitles import segment_cues, srt_block, vtt_block

LONG = "Ein Mann mit einem schwarzen Hut schießt im Freien ein Gewehr, während zwei Kinder am Strand spielen."


def test_srt_file_is_atomic_and_numbers_its_cues(tmp_path: Path) -> None:
    path = tmp_path / "out.srt"
    path.write_text("old\n", encoding="utf-8")
    srt = SrtFile.open(path)
    srt.add(LONG, 0.0, 4000.0)
    srt.add("", 4000.0, 5000.0)  # nothing to show: no cue
    srt.add("Zwei Hunde.", 5000.0, 6000.0)
    assert path.read_text(encoding="utf-8") == "old\n"  # untouched until commit
    partial = tmp_path / "out.srt.partial"
    cues = segment_cues(LONG, 0.0, 4000.0)
    assert len(cues) == 2
    expected = "".join(srt_block(i, c) for i, c in enumerate(cues, 1)) + srt_block(3, segment_cues(
        "Zwei Hunde.", 5000.0, 6000.0)[0])
    assert partial.read_text(encoding="utf-8") == expected  # flushed segment by segment
    srt.commit()
    srt.commit()  # idempotent
    assert path.read_text(encoding="utf-8") == expected and not partial.exists()
    assert expected.startswith("1\n00:00:00,000 --> 00:00:0")


def test_aborted_outputs_leave_the_old_file_and_keep_the_partial(tmp_path: Path) -> None:
    srt, vtt = tmp_path / "a.srt", tmp_path / "a.vtt"
    srt.write_text("good\n", encoding="utf-8")
    subs = SubtitleFiles.open(srt, vtt)
    subs.add("Ein Satz.", 0.0, 1000.0)
    kept = subs.abort()
    assert sorted(p.name for p in kept) == ["a.srt.partial", "a.vtt.partial"]
    assert srt.read_text(encoding="utf-8") == "good\n" and not vtt.exists()
    empty = SrtFile.open(tmp_path / "b.srt")
    assert empty.abort() is None and not (tmp_path / "b.srt.partial").exists()  # nothing written: nothing kept
    with pytest.raises(UserError, match="is a directory"):
        SrtFile.open(tmp_path)


def test_vtt_file_has_one_header(tmp_path: Path) -> None:
    path = tmp_path / "out.vtt"
    vtt = VttFile.open(path)
    vtt.add("Hallo Welt.", 1000.0, 2500.0)
    vtt.commit()
    assert path.read_text(encoding="utf-8") == "WEBVTT\n\n" + vtt_block(segment_cues("Hallo Welt.", 1000.0, 2500.0)[0])
    appended = VttFile.open(path, append=True)  # an existing file keeps its header, cues are added
    appended.add("Noch einer.", 3000.0, 4000.0)
    appended.commit()
    text = path.read_text(encoding="utf-8")
    assert text.count("WEBVTT") == 1 and text.endswith("Noch einer.\n\n")
    fresh = VttFile.open(tmp_path / "new" / "s.vtt", append=True)
    fresh.commit()
    assert (tmp_path / "new" / "s.vtt").read_text(encoding="utf-8") == "WEBVTT\n\n"


def test_append_mode_writes_through_and_keeps_what_was_there(tmp_path: Path) -> None:
    log_path, srt_path = tmp_path / "sessions" / "s1.jsonl", tmp_path / "sessions" / "s1.srt"
    log = JsonlLog.open(log_path, append=True)  # the folder is created
    srt = SrtFile.open(srt_path, append=True)
    log.write({"type": "final", "target": "Grüße"})
    srt.add("Grüße.", 0.0, 900.0)
    # flushed per final: readable before close, as a crashed server leaves it
    assert json.loads(log_path.read_text(encoding="utf-8")) == {"type": "final", "target": "Grüße"}
    assert "Grüße" in log_path.read_text(encoding="utf-8")  # UTF-8 kept as is, not \\u escapes
    assert srt_path.read_text(encoding="utf-8").startswith("1\n00:00:00,000 --> 00:00:00,900\nGrüße.\n\n")
    assert log.abort() is None  # append mode: nothing kept aside, the lines stay
    srt.commit()
    again = JsonlLog.open(log_path, append=True)
    again.write({"n": 2})
    again.commit()
    assert [json.loads(x) for x in log_path.read_text(encoding="utf-8").splitlines()] == [
        {"type": "final", "target": "Grüße"}, {"n": 2}]


def test_server_session_files_use_the_append_sinks(tmp_path: Path) -> None:
    from app.server.session import SessionFiles

    files = SessionFiles(tmp_path / "sessions", "abc")
    files.final({"type": "final", "target": "Ein Hund.", "start_ms": 100.0, "end_ms": 1200.0})
    files.final({"type": "final", "target": "Zwei Katzen.", "start_ms": 1500.0, "end_ms": 2500.0})
    files.close()
    files.close()
    lines = (tmp_path / "sessions" / "abc.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["target"] for x in lines] == ["Ein Hund.", "Zwei Katzen."]
    srt = (tmp_path / "sessions" / "abc.srt").read_text(encoding="utf-8")
    assert srt.startswith("1\n00:00:00,100 --> 00:00:01,200\nEin Hund.\n\n2\n00:00:01,500 --> ")
    SessionFiles(None, "x").final({"target": "ignored"})  # no directory: nothing written, no error


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def event(kind: Literal["partial", "final"], target: str, stable: int, start: float = 1000.0,
          end: float = 2500.0) -> CaptionEvent:
    return CaptionEvent(kind, 0, 1, stable, "src", target, start, end, 10.0)


def test_caption_view_on_a_terminal_and_in_a_pipe() -> None:
    tty = FakeTerminal(True)
    view = CaptionView(tty)
    view.show(event("partial", "ein Mann geht", 1))
    view.show(event("final", "Ein Mann geht.", 3))
    assert tty.getvalue() == ("\r\x1b[2Kein \x1b[2mMann geht\x1b[0m"
                              "\r\x1b[2K[   1.00s →    2.50s] Ein Mann geht.\n")
    pipe = FakeTerminal(False)
    view = CaptionView(pipe)
    view.show(event("partial", "ein Mann", 1))  # no live line off a terminal
    view.show_message({"type": "final", "target": "Ein Mann.", "start_ms": 0, "end_ms": 61234.5})
    view.show_message({"type": "summary", "segments": 1})  # not a caption
    assert pipe.getvalue() == "[   0.00s →   61.23s] Ein Mann.\n"
    tty = FakeTerminal(True)
    CaptionView(tty).show_message({"type": "partial", "target": "a b c", "stable": 2})
    assert tty.getvalue() == "\r\x1b[2Ka b \x1b[2mc\x1b[0m"


class FakePipeline:
    """Emits one partial per feed and closes a segment every second feed (a speech pipeline's shape)."""

    def __init__(self) -> None:
        self.segments: list[SegmentResult] = []
        self.audio_ms = 0.0
        self.fed = 0

    def _close(self) -> list[CaptionEvent]:
        n = len(self.segments)
        rec = InstanceRecord(index=n, prediction=f"Satz {n}.", delays=[0.0, 1.0], source_length=1.0)
        self.segments.append(SegmentResult(n, n * 1000.0, n * 1000.0 + 800.0, rec, f"sentence {n}"))
        return [event("final", rec.prediction, 2, n * 1000.0, n * 1000.0 + 800.0)]

    def feed(self, samples: Any) -> list[CaptionEvent]:
        self.fed += 1
        out = [event("partial", "Satz", 0)]
        return out + self._close() if self.fed % 2 == 0 else out

    def finish(self) -> list[CaptionEvent]:
        return self._close()


def test_pipeline_outputs_route_events_and_each_segment_once(tmp_path: Path) -> None:
    pipe = FakePipeline()
    term = FakeTerminal(False)
    subs = SubtitleFiles.open(tmp_path / "o.srt", None)
    outputs = PipelineOutputs(pipe, view=CaptionView(term), subtitles=subs)  # type: ignore[arg-type]
    for _ in range(3):
        outputs.feed(None)
    outputs.finish()
    subs.commit()
    assert term.getvalue().splitlines() == ["[   0.00s →    0.80s] Satz 0.", "[   1.00s →    1.80s] Satz 1."]
    srt = (tmp_path / "o.srt").read_text(encoding="utf-8")
    assert srt.count("Satz 0.") == 1 and srt.count("Satz 1.") == 1 and srt.startswith("1\n") and "\n2\n" in srt


def test_client_printer_shows_captions_and_writes_the_srt_atomically(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from app.commands.client import CaptionPrinter

    path = tmp_path / "c.srt"
    printer = CaptionPrinter(SrtFile.open(path), as_json=False)
    printer.handle({"type": "partial", "target": "Ein", "stable": 0})
    printer.handle({"type": "final", "target": "Ein Hund.", "start_ms": 0.0, "end_ms": 1500.0})
    printer.handle({"type": "error", "code": "bad", "message": "nope"})
    printer.handle({"type": "summary", "segments": 1})
    assert not path.exists()  # in PATH.partial until the stream ends
    printer.close()
    out, err = capsys.readouterr()
    assert out == "[   0.00s →    1.50s] Ein Hund.\n" and "server error [bad]: nope" in err
    assert path.read_text(encoding="utf-8").startswith("1\n00:00:00,000 --> 00:00:01,500\nEin Hund.\n")
    assert printer.summary == {"type": "summary", "segments": 1} and len(printer.errors) == 1
    failed = CaptionPrinter(SrtFile.open(path), as_json=True)
    failed.handle({"type": "final", "target": "Neu.", "start_ms": 0.0, "end_ms": 900.0})
    assert failed.abort() == tmp_path / "c.srt.partial"  # a failed stream leaves the good file as it was
    assert "Ein Hund." in path.read_text(encoding="utf-8")
    assert json.loads(capsys.readouterr().out)["target"] == "Neu."
