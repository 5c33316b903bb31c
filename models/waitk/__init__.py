"""wait-k model: unidirectional encoder, wait-k masks, incremental ONNX steps with explicit caches."""
