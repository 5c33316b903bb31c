"""Paraformer training side (torch): model, SentencePiece tokens, data, training loop, ONNX export.

Imported only for training and export; inference lives in :mod:`models.asr` (onnxruntime, no torch).
"""
