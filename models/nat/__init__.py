"""Non-autoregressive (CTC) translation model for FReTNA re-translation.

``model`` and ``export`` need torch (training / export only); ``runtime`` needs only onnxruntime + SentencePiece.
"""
