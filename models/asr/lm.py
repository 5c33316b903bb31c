"""A token n-gram language model over the ASR vocabulary, for shallow fusion in decoding (no torch, no kenlm).

The parallel decoder scores every token position on its own and so has no notion of which words follow which; the
LM restores that (:mod:`models.asr.decoding`). It is interpolated Kneser–Ney, estimated here from tokenised text,
and stored ARPA-style: for each seen n-gram its interpolated log-probability, for each seen context its back-off
weight, so a lookup is at most ``order`` dictionary probes. ``lm.npz`` keeps every order's n-grams as rows of
token ids (uint16) with float32 values. ``config.yaml`` → ``simulsub.decoding.lm`` names the file. Build one
with ``python -m models.asr.lm``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
_CACHE_LIMIT = 5_000  # memoised back-off walks of contexts (about 5 MB); a server must not grow with what it hears


def _key(ids: Sequence[int], vocab: int) -> int:
    """One int per n-gram of a given order: the ids as digits in base ``vocab``."""
    k = 0
    for i in ids:
        k = k * vocab + i
    return k


class TokenNgramLM:
    """Interpolated Kneser–Ney n-gram over token ids; ``logp`` is the natural log-probability of a token."""

    def __init__(self, order: int, vocab_size: int, bos: int, eos: int,
                 logprob: list[dict[int, float]], backoff: list[dict[int, float]],
                 words: frozenset[str] = frozenset()) -> None:
        """``words``: the word types of the training text (a soft lexicon for decoding; may be empty)."""
        if order < 1:
            raise ValueError("an n-gram LM needs order ≥ 1")
        self.order, self.vocab_size, self.bos, self.eos = order, vocab_size, bos, eos
        self._logprob = logprob  # [n] → key of (ctx..., w) → log p(w | ctx), for n = 1..order (index n - 1)
        self._backoff = backoff  # [n] → key of a context of n tokens → log back-off weight, n = 1..order - 1
        self._unseen = math.log(1.0 / vocab_size)
        self._cache: dict[tuple[int, ...], list[tuple[dict[int, float], int, float]]] = {}  # back-off walks
        self.words = words

    # --- estimation --------------------------------------------------------------------------------------------
    @classmethod
    def estimate(cls, sequences: Iterable[Sequence[int]], *, order: int, vocab_size: int, bos: int, eos: int,
                 discount: float = 0.75) -> TokenNgramLM:
        """Interpolated Kneser–Ney (one ``discount`` per order) from token-id sequences (no ``<s>``/``</s>``).

        The highest order uses raw counts; lower orders use continuation counts (how many different tokens
        precede the n-gram), and the unigram level is interpolated with the uniform distribution."""
        if order < 1:
            raise ValueError("an n-gram LM needs order ≥ 1")
        if not 0 < discount < 1:
            raise ValueError(f"discount {discount} must be in (0, 1)")
        top: dict[tuple[int, ...], int] = defaultdict(int)
        for seq in sequences:
            s = [bos, *seq, eos]
            for i in range(1, len(s)):
                top[tuple(s[max(0, i - order + 1): i + 1])] += 1
        # the top order, and shorter n-grams that start at <s> (nothing can precede them), keep raw counts; the
        # other lower-order n-grams count their distinct left extensions (Kneser–Ney continuation counts)
        counts: list[dict[tuple[int, ...], int]] = [defaultdict(int) for _ in range(order)]
        for g, c in top.items():
            counts[len(g) - 1][g] += c
        for n in range(order - 1, 0, -1):
            for g in counts[n]:
                counts[n - 1][g[1:]] += 1
        logprob: list[dict[int, float]] = [{} for _ in range(order)]
        backoff: list[dict[int, float]] = [{} for _ in range(order - 1)]
        prob: list[dict[tuple[int, ...], float]] = [{} for _ in range(order)]
        unseen = 1.0 / vocab_size
        for n in range(order):
            total: dict[tuple[int, ...], int] = defaultdict(int)
            types: dict[tuple[int, ...], int] = defaultdict(int)
            for g, c in counts[n].items():
                total[g[:-1]] += c
                types[g[:-1]] += 1
            gamma = {ctx: discount * types[ctx] / total[ctx] for ctx in total}
            for g, c in counts[n].items():
                lower = prob[n - 1][g[1:]] if n else 1.0 / vocab_size
                p = max(c - discount, 0.0) / total[g[:-1]] + gamma[g[:-1]] * lower
                prob[n][g] = p
                logprob[n][_key(g, vocab_size)] = math.log(p)
            if n:
                for ctx, gm in gamma.items():
                    backoff[n - 1][_key(ctx, vocab_size)] = math.log(gm)
            else:
                unseen = gamma.get((), 1.0) / vocab_size  # the uniform share a never-seen token keeps
        logprob[0][-1] = math.log(unseen)  # key -1: the log-probability of a token never seen
        return cls(order, vocab_size, bos, eos, logprob, backoff)

    # --- queries -----------------------------------------------------------------------------------------------
    def logp(self, history: Sequence[int], token: int) -> float:
        """Natural log p(``token`` | ``history``); ``history`` starts with ``bos`` for a sentence start."""
        return self.logp_tokens(history, (token,))[0]

    def logp_tokens(self, history: Sequence[int], tokens: Sequence[int]) -> list[float]:
        """Natural log p(t | ``history``) for each t of ``tokens`` (one back-off walk of the history for all)."""
        ctx = tuple(history[len(history) - self.order + 1:]) if self.order > 1 else ()
        levels = self._cache.get(ctx)
        if levels is None:
            levels = self._levels(ctx)
            if len(self._cache) > _CACHE_LIMIT:
                self._cache.clear()
            self._cache[ctx] = levels
        out: list[float] = []
        for token in tokens:
            for table, base, back in levels:
                got = table.get(base + token)
                if got is not None:
                    out.append(back + got)
                    break
            else:  # no level has it: the whole back-off weight plus the unseen-token log-probability
                out.append(levels[-1][2] + self._logprob[0][-1])
        return out

    def _levels(self, ctx: tuple[int, ...]) -> list[tuple[dict[int, float], int, float]]:
        """The back-off walk of a context, longest suffix first: (n-gram table, key of ``(*suffix, 0)``, back-off
        weight summed before that level), then the unigram level; a token's key at a level is its base + id."""
        v = self.vocab_size
        back = 0.0
        levels: list[tuple[dict[int, float], int, float]] = []
        for start in range(len(ctx) + 1):
            c = ctx[start:]
            n = len(c)
            key = _key(c, v)
            levels.append((self._logprob[n], key * v, back))
            if n:
                back += self._backoff[n - 1].get(key, 0.0)
        return levels

    def sentence_logp(self, ids: Sequence[int]) -> float:
        """Log-probability of a whole token sequence, ``</s>`` included."""
        hist = [self.bos]
        total = 0.0
        for t in [*ids, self.eos]:
            total += self.logp(hist, t)
            hist.append(t)
        return total

    # --- files -------------------------------------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        arrays: dict[str, np.ndarray] = {
            "meta": np.array([FORMAT_VERSION, self.order, self.vocab_size, self.bos, self.eos], np.int64),
            "unseen": np.array([self._logprob[0][-1]], np.float32),
        }
        for n in range(1, self.order + 1):
            keys = [k for k in self._logprob[n - 1] if k >= 0]
            arrays[f"grams{n}"] = _unkey(keys, n, self.vocab_size)
            arrays[f"logp{n}"] = np.array([self._logprob[n - 1][k] for k in keys], np.float32)
            if n < self.order:
                bk = list(self._backoff[n - 1])
                arrays[f"ctx{n}"] = _unkey(bk, n, self.vocab_size)
                arrays[f"backoff{n}"] = np.array([self._backoff[n - 1][k] for k in bk], np.float32)
        arrays["words"] = np.array(sorted(self.words), dtype=np.str_)
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
        return path

    @classmethod
    def load(cls, path: Path) -> TokenNgramLM:
        try:
            z = np.load(path)
            version, order, vocab, bos, eos = (int(x) for x in z["meta"])
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{path} is not a token n-gram LM written by simulsub ({e})") from None
        if version != FORMAT_VERSION:
            raise ValueError(f"{path} has LM format {version}; this simulsub reads format {FORMAT_VERSION}")
        logprob: list[dict[int, float]] = []
        backoff: list[dict[int, float]] = []
        for n in range(1, order + 1):
            logprob.append(dict(zip(_rekey(z[f"grams{n}"], vocab), z[f"logp{n}"].tolist(), strict=True)))
            if n < order:
                backoff.append(dict(zip(_rekey(z[f"ctx{n}"], vocab), z[f"backoff{n}"].tolist(), strict=True)))
        logprob[0][-1] = float(z["unseen"][0])
        words = frozenset(z["words"].tolist()) if "words" in z.files else frozenset()
        return cls(order, vocab, bos, eos, logprob, backoff, words)


def _unkey(keys: list[int], n: int, vocab: int) -> np.ndarray:
    out = np.zeros((len(keys), n), np.uint16 if vocab <= 65536 else np.uint32)
    for row, k in enumerate(keys):
        for j in range(n - 1, -1, -1):
            k, out[row, j] = divmod(k, vocab)
    return out


def _rekey(grams: np.ndarray, vocab: int) -> list[int]:
    fits = grams.shape[1] * math.log2(max(vocab, 2)) < 62
    k = np.zeros(grams.shape[0], dtype=np.int64 if fits else object)
    for j in range(grams.shape[1]):
        k = k * vocab + grams[:, j].astype(np.int64)
    return k.tolist() if fits else [int(x) for x in k]



def build_for_model(text_file: Path, model_dir: Path, *, order: int = 6, out: Path | None = None) -> Path:
    """Estimate an LM over ``model_dir``'s SentencePiece tokens (``tokens.model``) from ``text_file`` (one
    sentence per line, normalised as the ASR's transcripts are) and write it to ``out`` (default
    ``model_dir/lm.npz``)."""
    import sentencepiece as spm
    from tqdm import tqdm

    from models.asr.paraformer.tokenizer import normalize_transcript
    from models.asr.tokens import TokenList

    spm_file = model_dir / "tokens.model"
    if not spm_file.is_file():
        raise FileNotFoundError(f"{model_dir} has no tokens.model: the LM must be built over the SentencePiece model "
                                "the ASR was trained with")
    tokens = TokenList.load(model_dir)
    if tokens.sos_id < 0 or tokens.eos_id < 0:
        raise ValueError(f"{model_dir}/tokens.json has no <s> / </s>")
    sp = spm.SentencePieceProcessor(model_file=str(spm_file))
    if sp.get_piece_size() != len(tokens):
        raise ValueError(f"{spm_file} has {sp.get_piece_size()} pieces but tokens.json {len(tokens)}")
    lines = [normalize_transcript(x) for x in text_file.read_text(encoding="utf-8").splitlines()]
    seqs = [sp.encode(x) for x in tqdm(lines, desc="tokenise", unit="line") if x]
    lm = TokenNgramLM.estimate(seqs, order=order, vocab_size=len(tokens), bos=tokens.sos_id, eos=tokens.eos_id)
    lm.words = frozenset(w for x in lines for w in x.split())
    return lm.save(out or model_dir / "lm.npz")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.asr.lm TEXT --model-dir DIR [--order 6]``: write ``DIR/lm.npz`` (see the module doc)."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m models.asr.lm", description=__doc__.splitlines()[0])
    p.add_argument("text", type=Path, help="UTF-8 training text, one sentence per line (e.g. train.en)")
    p.add_argument("--model-dir", type=Path, required=True, help="Paraformer directory with tokens.model")
    p.add_argument("--order", type=int, default=6, help="n-gram order in tokens (default 6)")
    p.add_argument("--out", type=Path, help="output file (default MODEL_DIR/lm.npz)")
    args = p.parse_args(argv)
    if not args.text.is_file():
        print(f"error: {args.text} does not exist", file=sys.stderr)
        return 2
    try:
        out = build_for_model(args.text, args.model_dir, order=args.order, out=args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = f"{out.stat().st_size / 1e6:.1f} MB"
    if out.parent.resolve() == args.model_dir.resolve() and enable_in_config(args.model_dir, out.name):
        print(f"wrote {out} ({size}); {args.model_dir}/config.yaml → simulsub.decoding.lm now names it")
    else:
        print(f"wrote {out} ({size}); to use it, copy it into the model directory and name it in config.yaml → "
              "simulsub.decoding.lm")
    return 0


def enable_in_config(model_dir: Path, lm_name: str) -> bool:
    """Name ``lm_name`` in ``model_dir/config.yaml`` → ``simulsub.decoding.lm``; False (file untouched) when the
    config is not plain YAML (FunASR's carry python tags, which a rewrite would lose)."""
    import yaml

    path = model_dir / "config.yaml"
    try:
        conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    if not isinstance(conf, dict):
        return False
    ours = conf.setdefault("simulsub", {})
    decoding = ours.setdefault("decoding", {})
    decoding["lm"] = lm_name
    path.write_text(yaml.safe_dump(conf, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return True


if __name__ == "__main__":
    raise SystemExit(main())
