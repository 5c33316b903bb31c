"""Voice activity detection: silero-vad's ONNX model run by onnxruntime (no torch)."""
