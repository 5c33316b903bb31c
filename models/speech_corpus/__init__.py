"""Synthetic speech corpora: espeak-ng and festival renderings of text with many voices, plus degradation."""

from models.speech_corpus.corpus import CorpusOptions, Utterance, build_corpus, iter_corpus, load_corpus
from models.speech_corpus.voices import VoicePlan, VoiceSpec, choose_voice

__all__ = [
    "CorpusOptions",
    "Utterance",
    "VoicePlan",
    "VoiceSpec",
    "build_corpus",
    "choose_voice",
    "iter_corpus",
    "load_corpus",
]
