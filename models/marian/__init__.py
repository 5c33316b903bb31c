"""Autoregressive Transformer (Marian layout): training in PyTorch, inference with CTranslate2."""
