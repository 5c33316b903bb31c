"""SRT/WebVTT formatting: timestamps, wrapping, cue splitting."""

from __future__ import annotations

import pytest

from streaming.subtitles import (
    VTT_HEADER,
    Cue,
    segment_cues,
    srt_block,
    srt_timestamp,
    vtt_block,
    vtt_timestamp,
    wrap_lines,
)


def test_timestamps() -> None:
    assert srt_timestamp(0) == "00:00:00,000"
    assert srt_timestamp(3_723_004.4) == "01:02:03,004"
    assert vtt_timestamp(61_500) == "00:01:01.500"
    assert srt_timestamp(-5) == "00:00:00,000"


def test_wrapping_and_cue_split() -> None:
    sentence = "Ein Mann in einem blauen Hemd fährt mit dem Fahrrad die Straße entlang"
    words = sentence.split(" ")
    lines = wrap_lines(words, 20)
    assert all(len(x) <= 20 for x in lines) and " ".join(lines).split() == words
    cues = segment_cues(" ".join(words), 1000.0, 5000.0, max_chars=20, max_lines=2)
    assert len(cues) == 2
    assert cues[0].start_ms == 1000.0 and cues[-1].end_ms == pytest.approx(5000.0)
    assert cues[0].end_ms == pytest.approx(cues[1].start_ms)
    assert all(c.text.count("\n") <= 1 for c in cues)
    assert segment_cues("   ", 0.0, 10.0) == []


def test_blocks() -> None:
    cue = Cue(1500.0, 3250.0, "Hallo\nWelt")
    assert srt_block(3, cue) == "3\n00:00:01,500 --> 00:00:03,250\nHallo\nWelt\n\n"
    assert vtt_block(cue) == "00:00:01.500 --> 00:00:03.250\nHallo\nWelt\n\n"
    assert VTT_HEADER.startswith("WEBVTT")
