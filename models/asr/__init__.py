"""The ASR family, in one package.

Inference (torch-free): the FunASR frontend (:mod:`.frontend`), CIF (:mod:`.cif`), the onnxruntime runtime
(:mod:`.runtime`), decoding with the optional n-gram LM (:mod:`.decoding`, :mod:`.lm`), tokens (:mod:`.tokens`),
audio loading (:mod:`.audio`) and the streaming recogniser (:mod:`.streaming`). Training and export (torch):
:mod:`.paraformer` (our Paraformer) and :mod:`.wparaformer` (the Whisper-encoder Paraformer and the Whisper AR
comparator). GPU lab tooling is outside the package, in ``tools/``.
"""

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
