"""Torch-free Paraformer inference: FunASR frontend, onnxruntime runtime, streaming recogniser."""

from models.asr.runtime import ModelDirError, ParaformerOnnx, Recognition
from models.asr.streaming import AsrUpdate, StreamingOptions, StreamingRecognizer, stream_audio

__all__ = [
    "AsrUpdate",
    "ModelDirError",
    "ParaformerOnnx",
    "Recognition",
    "StreamingOptions",
    "StreamingRecognizer",
    "stream_audio",
]
