"""Run profiles (``--profile NAME``): an ASR, a policy and models chosen together, and the language options.

A profile is a set of command-line options put in front of the user's own, so any option given explicitly
still wins (``--profile large --beam 2``). Models named by a profile are installed models (``simulsub models
pull NAME``) or bundled ones.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RunProfile:
    """``options``: flag → value, applied where the command has the flag."""

    name: str
    description: str
    options: tuple[tuple[str, str], ...]


PROFILES: dict[str, RunProfile] = {p.name: p for p in (
    RunProfile("demo", "the bundled models: edge Paraformer ASR, ReTA over the bundled en→de Marian (make demo)",
               (("--asr-profile", "edge"), ("--policy", "reta"))),
    RunProfile("large", "Whisper-base ASR (hears people) + ReTA over OPUS-MT en→de (simulsub models pull "
               "opus-mt-en-de)", (("--asr-profile", "whisper"), ("--policy", "reta"), ("--model", "opus-mt-en-de"))),
    RunProfile("multilingual", "Whisper-base ASR + ReTA over NLLB-200 (simulsub models pull nllb-200-distilled-600M);"
               " pick languages with --source-lang/--target-lang",
               (("--asr-profile", "whisper"), ("--policy", "reta"), ("--model", "nllb-200-distilled-600M"),
                ("--source-lang", "en"), ("--target-lang", "de"))),
)}


def add_profile_arguments(p: argparse.ArgumentParser) -> None:
    """``--profile`` and the multilingual models' ``--source-lang`` / ``--target-lang``."""
    p.add_argument("--profile", choices=sorted(PROFILES),
                   help="; ".join(f"{x.name}: {x.description}" for x in PROFILES.values())
                   + " (options given explicitly win)")
    p.add_argument("--source-lang", metavar="LANG",
                   help="multilingual translation models (M2M100, NLLB): the source language, e.g. en")
    p.add_argument("--target-lang", metavar="LANG",
                   help="multilingual translation models: the target language, e.g. de or fr")


def _profile_name(argv: Sequence[str]) -> tuple[str | None, int]:
    for i, arg in enumerate(argv):
        if arg == "--profile" and i + 1 < len(argv):
            return argv[i + 1], i
        if arg.startswith("--profile="):
            return arg.split("=", 1)[1], i
    return None, -1


def expand_profile(argv: Sequence[str], command_flags: dict[str, set[str]]) -> list[str]:
    """``argv`` with the named profile's options put right after the command (``command_flags``: the option
    strings each command accepts; a profile option the command lacks is left out). Unknown profile names are left
    for argparse to refuse."""
    name, _ = _profile_name(argv)
    profile = PROFILES.get(name or "")
    command_at = next((i for i, a in enumerate(argv) if a in command_flags), None)
    if profile is None or command_at is None:
        return list(argv)
    flags = command_flags[argv[command_at]]
    inserted = [x for flag, value in profile.options if flag in flags for x in (flag, value)]
    return [*argv[: command_at + 1], *inserted, *argv[command_at + 1 :]]
