"""PyTorch implementation of ``streaming.policies.waitk.IncrementalModel`` (validation during training, tests)."""

from __future__ import annotations

import numpy as np
import sentencepiece as spm
import torch

from models.waitk.model import EOS_ID, WaitkModel
from models.waitk.runtime import sentence_end_mask


class TorchIncremental:
    """The cached encoder/decoder steps of a :class:`WaitkModel`, run by PyTorch (batch 1)."""

    def __init__(self, model: WaitkModel, sp: spm.SentencePieceProcessor) -> None:
        self.model = model.eval()
        self.sp = sp
        cfg = model.cfg
        self.start_id = self.pad_id = cfg.pad_id
        self.eos_id = EOS_ID
        self.max_positions = cfg.max_positions
        pieces = [sp.id_to_piece(i) for i in range(cfg.vocab_size - 1)]
        self.word_start = np.array([p.startswith("\u2581") for p in pieces] + [False], dtype=bool)
        self.sentence_end = sentence_end_mask(pieces)
        self.reset()

    def reset(self) -> None:
        self._enc = self.model.empty_cache(self.model.cfg.encoder_layers)
        self._cross = self.model.empty_cache(self.model.cfg.decoder_layers)
        self._dec = self.model.empty_cache(self.model.cfg.decoder_layers)
        self._proposed: torch.Tensor | None = None
        self.source_tokens = 0
        self.target_tokens = 0

    def word_ids(self, word: str) -> list[int]:
        return [int(i) for i in self.sp.encode(word, out_type=int)]

    @torch.no_grad()
    def read(self, ids: list[int]) -> None:
        if not ids:
            return
        self._enc, cross_new = self.model.encoder_step(torch.tensor([ids]), self._enc)
        self._cross = torch.cat([self._cross, cross_new], dim=4)
        self.source_tokens += len(ids)

    @torch.no_grad()
    def propose(self, token: int) -> np.ndarray:
        logits, self._proposed = self.model.decoder_step(torch.tensor([[token]]), self._dec, self._cross)
        return logits[0].float().numpy()

    def commit(self) -> None:
        if self._proposed is None:
            raise RuntimeError("commit() without propose()")
        self._dec, self._proposed = self._proposed, None
        self.target_tokens += 1

    def decode(self, ids: list[int]) -> str:
        return str(self.sp.decode(ids))
