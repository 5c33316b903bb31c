"""TTS voices of the synthetic corpus and the deterministic choice of voice, prosody and augmentation.

Three engines: espeak-ng (8 English accents × 26 variants, speed and pitch free), Debian's festival
(``kal_diphone``, ``ked_diphone``, ``cmu_us_slt_arctic_hts`` when installed) and flite (``kal``, ``kal16``, ``awb``,
``rms``, ``slt``; used only when a plan's ``flite_share`` is above 0). espeak (accent, variant) pairs
are split once and for all by a hash: about one in five pairs is *held out* and never used for training,
so a test set rendered with ``split="heldout"`` has voices the model never heard.
"""

from __future__ import annotations

import random
import shutil
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ESPEAK_ACCENTS = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)
ESPEAK_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
    "klatt4", "croak", "Annie", "Alex", "Andy", "adam", "belinda", "david", "linda", "max", "paul",
)
FESTIVAL_VOICES = {
    "kal_diphone": Path("/usr/share/festival/voices/english/kal_diphone"),
    "ked_diphone": Path("/usr/share/festival/voices/english/ked_diphone"),
    "cmu_us_slt_arctic_hts": Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"),
}
SPLITS = ("train", "heldout", "any")


def heldout_pair(accent: str, variant: str, *, every: int = 5) -> bool:
    """True for the espeak (accent, variant) pairs reserved for testing (stable across runs and machines)."""
    return zlib.crc32(f"{accent}+{variant}".encode()) % every == 0


def flite_voices() -> list[str]:
    """flite's built-in English voices (empty when flite is missing)."""
    from models.speech_corpus.render import FLITE_VOICES

    return list(FLITE_VOICES) if shutil.which("flite") is not None else []


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def festival_voices() -> list[str]:
    """Installed festival voices (empty when festival itself is missing)."""
    if shutil.which("festival") is None:
        return []
    return [name for name, path in FESTIVAL_VOICES.items() if path.is_dir()]


@dataclass(frozen=True)
class VoiceSpec:
    """How one utterance is spoken and degraded.

    ``speed`` is espeak words per minute (festival: duration stretch = 170 / speed); ``pitch`` 0–99 (espeak
    only); ``tempo`` is the speed perturbation factor applied to the audio afterwards (1.1 = 10 % faster, pitch
    shifts with it); ``snr_db`` the added noise level (``None``: clean); ``gain`` the peak level (≤ 0.9).
    """

    engine: str
    voice: str
    variant: str = ""
    speed: int = 170
    pitch: int = 50
    tempo: float = 1.0
    noise: str = "white"
    snr_db: float | None = None
    gain: float = 0.9
    lead_ms: int = 100
    trail_ms: int = 100

    @property
    def name(self) -> str:
        return f"{self.engine}:{self.voice}+{self.variant}" if self.variant else f"{self.engine}:{self.voice}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VoicePlan:
    """What to sample from: split, share of festival utterances, augmentation probabilities and ranges."""

    split: str = "train"
    festival_share: float = 0.15
    flite_share: float = 0.0
    speed_range: tuple[int, int] = (130, 210)
    pitch_range: tuple[int, int] = (25, 75)
    tempo_prob: float = 0.5
    tempo_range: tuple[float, float] = (0.9, 1.1)
    noise_prob: float = 0.5
    snr_range: tuple[float, float] = (10.0, 40.0)
    gain_range: tuple[float, float] = (0.3, 0.9)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {self.split!r}")

    @classmethod
    def clean(cls, split: str) -> VoicePlan:
        """No augmentation and no festival: plain espeak renderings (test sets)."""
        return cls(split=split, festival_share=0.0, tempo_prob=0.0, noise_prob=0.0, gain_range=(0.9, 0.9))


def espeak_pairs(split: str) -> list[tuple[str, str]]:
    pairs = [(a, v) for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS]
    if split == "train":
        return [p for p in pairs if not heldout_pair(*p)]
    if split == "heldout":
        return [p for p in pairs if heldout_pair(*p)]
    return pairs


def choose_voice(plan: VoicePlan, seed: int, index: int, *, festival: list[str] | None = None,
                 flite: list[str] | None = None) -> VoiceSpec:
    """The voice and augmentation of utterance ``index``: a pure function of (plan, seed, index)."""
    rng = random.Random(zlib.crc32(f"{seed}:{index}:{plan.split}".encode()))
    festival = [] if festival is None else festival
    speed = rng.randint(*plan.speed_range)
    tempo = round(rng.uniform(*plan.tempo_range), 3) if rng.random() < plan.tempo_prob else 1.0
    noisy = rng.random() < plan.noise_prob
    snr = round(rng.uniform(*plan.snr_range), 1) if noisy else None
    noise = rng.choice(("white", "pink", "brown"))
    gain = round(rng.uniform(*plan.gain_range), 3)
    lead, trail = rng.randint(50, 400), rng.randint(50, 400)
    if festival and plan.split != "heldout" and rng.random() < plan.festival_share:
        return VoiceSpec("festival", rng.choice(sorted(festival)), speed=speed, tempo=tempo, noise=noise,
                         snr_db=snr, gain=gain, lead_ms=lead, trail_ms=trail)
    if flite and plan.flite_share > 0 and plan.split != "heldout" and rng.random() < plan.flite_share:
        return VoiceSpec("flite", rng.choice(sorted(flite)), speed=speed, tempo=tempo, noise=noise,
                         snr_db=snr, gain=gain, lead_ms=lead, trail_ms=trail)
    accent, variant = rng.choice(espeak_pairs(plan.split))
    return VoiceSpec("espeak", accent, variant, speed=speed, pitch=rng.randint(*plan.pitch_range), tempo=tempo,
                     noise=noise, snr_db=snr, gain=gain, lead_ms=lead, trail_ms=trail)
