"""PCM conversions: bytes split anywhere decode like one buffer; encode is the exact inverse; arrays → mono."""

from __future__ import annotations

import numpy as np
import pytest

from streaming.pcm import Pcm16Decoder, encode_pcm16, to_float32_mono


def test_decoder_scales_int16_to_minus_one_one() -> None:
    pcm = np.array([-32768, -16384, 0, 1, 16384, 32767], dtype="<i2").tobytes()
    out = Pcm16Decoder().decode(pcm)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [-1.0, -0.5, 0.0, 1 / 32768, 0.5, 32767 / 32768])
    assert out.max() < 1.0


@pytest.mark.parametrize("piece", [1, 3, 7, 3201])
def test_decoder_carries_an_odd_byte_across_calls(piece: int) -> None:
    samples = (np.sin(np.arange(4000) / 7) * 30000).astype("<i2")
    data = samples.tobytes()
    dec = Pcm16Decoder()
    parts = [dec.decode(data[i : i + piece]) for i in range(0, len(data), piece)]
    assert dec.pending == 0
    np.testing.assert_array_equal(np.concatenate(parts), samples.astype(np.float32) / 32768.0)


def test_decoder_pending_byte_and_reset() -> None:
    dec = Pcm16Decoder()
    assert dec.decode(b"\x01").size == 0 and dec.pending == 1
    np.testing.assert_array_equal(dec.decode(b"\x02"), [0x0201 / 32768.0])  # little-endian: low byte first
    dec.decode(b"\xff")
    dec.reset()
    assert dec.pending == 0 and dec.decode(b"\x00\x40")[0] == 0.5


def test_encode_is_the_inverse_of_decode_and_clips() -> None:
    samples = np.arange(-32768, 32768, 97, dtype=np.int16)
    floats = Pcm16Decoder().decode(samples.astype("<i2").tobytes())
    assert encode_pcm16(floats) == samples.astype("<i2").tobytes()  # bit-exact round trip
    clipped = np.frombuffer(encode_pcm16(np.array([-2.0, 1.0, 2.0], dtype=np.float32)), dtype="<i2")
    np.testing.assert_array_equal(clipped, [-32768, 32767, 32767])


def test_arrays_to_float32_mono() -> None:
    stereo = np.array([[16384, -16384], [32767, 32767]], dtype=np.int16)
    np.testing.assert_array_equal(to_float32_mono(stereo), [0.0, 32767 / 32768])
    assert to_float32_mono(np.array([0, 128, 255], dtype=np.uint8)).tolist() == [-1.0, 0.0, 127 / 128]
    as_int32 = to_float32_mono(np.array([1 << 30], dtype=np.int32))
    assert as_int32.dtype == np.float32 and as_int32[0] == 0.5
    floats = to_float32_mono(np.array([0.25, -0.5], dtype=np.float64))
    assert floats.dtype == np.float32 and floats.tolist() == [0.25, -0.5]
