"""Tokenisation for the interleaved LLM: the two control tokens, segment encoding, the latency prompt.

Any Hugging Face tokenizer works as long as it knows ``<|end-of-read|>`` and ``<|end-of-write|>`` (added as
special tokens by :func:`add_control_tokens`). Text is always encoded segment by segment — the prompt, each
source word (``" word"`` after the first, as EAST does), each target chunk — exactly the same way in training
and at inference, so what the model sees while reading word by word is what it was trained on.

Our default model uses the AR model's SentencePiece vocabulary through a ``tokenizers`` Unigram model built
from the ``.spm`` file (:func:`tokenizer_from_spm`): same pieces, same ids, so the AR embeddings initialise it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.llm.interleave import instruction
from streaming.errors import ModelDirError
from streaming.policies.llm import ControlIds

EOR = "<|end-of-read|>"
EOW = "<|end-of-write|>"
PAD = "<pad>"


class TokenizerError(ModelDirError):
    """A tokenizer lacks the control tokens or cannot be built."""


def tokenizer_from_spm(spm_file: Path) -> Any:
    """A ``PreTrainedTokenizerFast`` with the pieces and ids of a SentencePiece unigram model, plus the control
    tokens and a pad token (ids ``n``, ``n + 1``, ``n + 2`` for an ``n``-piece model)."""
    import sentencepiece as spm
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    sp = spm.SentencePieceProcessor(model_file=str(spm_file))
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = Tokenizer(models.Unigram(vocab, unk_id=sp.unk_id(), byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " "),
                                           normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    eos = sp.id_to_piece(sp.eos_id()) if sp.eos_id() >= 0 else "</s>"
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=sp.id_to_piece(sp.unk_id()), eos_token=eos)
    add_control_tokens(fast)
    fast.add_special_tokens({"pad_token": PAD})
    return fast


def add_control_tokens(tokenizer: Any) -> int:
    """Add ``<|end-of-read|>`` / ``<|end-of-write|>`` as special tokens where missing; returns how many were
    added (resize the model's embeddings by that many)."""
    from tokenizers import AddedToken

    missing = [t for t in (EOR, EOW) if t not in tokenizer.get_vocab()]
    if not missing:
        return 0
    return int(tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing],
                                    special_tokens=True))


def control_ids(tokenizer: Any) -> ControlIds:
    """The control token ids of ``tokenizer``; TokenizerError when it does not have both."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in (EOR, EOW) if t not in vocab]
    if missing:
        raise TokenizerError(f"the tokenizer has no {' / '.join(missing)} token: this is not an interleaved "
                             "simultaneous-translation model (train one with `simulsub train llm-simt`)")
    eos = tokenizer.eos_token_id
    extra = {i for i in (eos, tokenizer.bos_token_id, tokenizer.pad_token_id) if i is not None}
    eor, eow = int(vocab[EOR]), int(vocab[EOW])
    return ControlIds(eor=eor, eow=eow, eos=None if eos is None else int(eos),
                      suppress_read=tuple(sorted(extra | {eow})), suppress_write=tuple(sorted(extra - {eos} | {eor})))


def encode_segment(tokenizer: Any, text: str, *, first: bool) -> list[int]:
    """Token ids of one segment (a source word, a target chunk); later segments get a leading space."""
    return list(tokenizer(text if first else " " + text, add_special_tokens=False)["input_ids"])


def prompt_ids(tokenizer: Any, level: str) -> list[int]:
    """The latency prompt: the instruction through the tokenizer's chat template when it has one (as EAST
    does with chat models), else the plain instruction followed by ``<|end-of-write|>`` as a separator."""
    text = instruction(level)
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                            tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return [int(i) for i in ids]
    return [*encode_segment(tokenizer, text, first=True), int(tokenizer.get_vocab()[EOW])]


def decode_words(tokenizer: Any, ids: list[int]) -> list[str]:
    """Words of generated target ids (control tokens dropped)."""
    return str(tokenizer.decode(ids, skip_special_tokens=True)).split()
