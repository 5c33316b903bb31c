"""FReTNA: re-translate the whole source prefix on every update with a non-autoregressive model.

The policy is ReTA's (same display mask-k, same partial-output punctuation rule); what changes is the
translator: one parallel NAT pass per update instead of autoregressive beam search. A one-pass NAT has no
beam and cannot be forced to a prefix, so those ReTA options do not apply.
"""

from __future__ import annotations

from streaming.policies.reta import RetaOptions, RetaPolicy
from streaming.translator import SentenceTranslator


class FretnaPolicy(RetaPolicy):
    """Re-translation with a one-pass NAT :class:`SentenceTranslator` (ONNX Runtime in practice)."""

    name = "fretna"

    def __init__(self, translator: SentenceTranslator, *, mask_k: int = 0, strip_partial_eos: bool = True) -> None:
        super().__init__(translator, RetaOptions(beam_size=1, prefix="off", mask_k=mask_k,
                                                 strip_partial_eos=strip_partial_eos))
