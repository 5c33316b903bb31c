"""CTranslate2 inference for Marian-style models (ours, or a user's converted OPUS-MT): no torch needed.

A model directory holds the CTranslate2 files (``model.bin``, ``config.json``, vocabulary) and the
SentencePiece models ``source.spm`` and ``target.spm`` (one joint model may be copied to both names).

Multilingual M2M100/NLLB conversions are recognised by the language tokens in their vocabulary
(``__de__`` or ``deu_Latn``): the source is then ``[source token] + pieces + </s>`` and every decode
starts from the forced target-language token, which is removed again from the output.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import ctranslate2
import sentencepiece as spm

from streaming.errors import LanguageError, ModelDirError, SourceTooLongError

logger = logging.getLogger(__name__)

EOS = "</s>"
WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁"
DEFAULT_MAX_SOURCE_TOKENS = 512
DEFAULT_SOURCE_LANG = "en"  # used for a multilingual model when neither the caller nor simulsub.json names one
DEFAULT_TARGET_LANG = "de"

M2M100_TOKEN = re.compile(r"^__([a-z]{2,3}(?:_[A-Za-z]+)?)__$")
NLLB_TOKEN = re.compile(r"^([a-z]{3})_([A-Z][a-z]{3})$")
# ISO 639-1 → NLLB (FLORES-200) code, for the common languages; other languages by their NLLB code or 3-letter prefix.
ISO_TO_NLLB = {
    "ar": "arb_Arab", "bg": "bul_Cyrl", "ca": "cat_Latn", "cs": "ces_Latn", "da": "dan_Latn", "de": "deu_Latn",
    "el": "ell_Grek", "en": "eng_Latn", "es": "spa_Latn", "et": "est_Latn", "fa": "pes_Arab", "fi": "fin_Latn",
    "fr": "fra_Latn", "he": "heb_Hebr", "hi": "hin_Deva", "hr": "hrv_Latn", "hu": "hun_Latn", "id": "ind_Latn",
    "it": "ita_Latn", "ja": "jpn_Jpan", "ko": "kor_Hang", "lt": "lit_Latn", "lv": "lvs_Latn", "nl": "nld_Latn",
    "no": "nob_Latn", "pl": "pol_Latn", "pt": "por_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "sk": "slk_Latn",
    "sl": "slv_Latn", "sr": "srp_Cyrl", "sv": "swe_Latn", "th": "tha_Thai", "tr": "tur_Latn", "uk": "ukr_Cyrl",
    "vi": "vie_Latn", "zh": "zho_Hans",
}
NLLB_TO_ISO = {code.split("_")[0]: iso for iso, code in ISO_TO_NLLB.items()}


@dataclass(frozen=True)
class DecodeOptions:
    """Search settings for one translate call.

    ``prefix_bias_beta`` > 0 biases the search towards ``target_prefix`` instead of forcing it (CTranslate2).
    """

    beam_size: int = 4
    max_decoding_length: int = 256
    length_penalty: float = 1.0
    prefix_bias_beta: float = 0.0


@dataclass(frozen=True)
class LanguageTokens:
    """The language tokens of a multilingual vocabulary: ``style`` is ``"m2m100"`` (``__de__``) or ``"nllb"``."""

    style: str
    tokens: frozenset[str]

    def resolve(self, lang: str) -> str:
        """The model's token for ``lang``: an ISO 639-1 code (``de``), a 3-letter code (``deu``) or a token."""
        want = lang.strip()
        if want in self.tokens:
            return want
        m2m, nllb = M2M100_TOKEN.match(want), NLLB_TOKEN.match(want)
        code = (m2m.group(1) if m2m else nllb.group(1) if nllb else re.split(r"[-_]", want)[0]).lower()
        iso = NLLB_TO_ISO.get(code, code)
        if self.style == "m2m100":
            candidates = [f"__{code}__", f"__{iso}__"]
        else:
            default = ISO_TO_NLLB.get(iso, "")
            three = default.split("_")[0] if default else code
            scripts = sorted(t for t in self.tokens if t.startswith(three + "_"))
            if default not in self.tokens and len(scripts) > 1:
                raise LanguageError(f"language {lang!r} is ambiguous in this NLLB model: pass one of {scripts}")
            candidates = [default, *scripts]
        for token in candidates:
            if token in self.tokens:
                return token
        some = sorted(self.tokens)
        shown = ", ".join(some[:24]) + (f", ... ({len(some)} in all)" if len(some) > 24 else "")
        raise LanguageError(
            f"language {lang!r} is not in this {self.style.upper()} model's vocabulary; available: {shown} "
            "(ISO codes such as 'en' or 'de' are accepted too)"
        )


def read_vocabulary(model_dir: Path, side: str) -> list[str]:
    """Tokens of a CTranslate2 directory's ``side`` (``source``/``target``) vocabulary; [] when it has none.

    Reads ``shared_vocabulary.{json,txt}``, else ``{side}_vocabulary.{json,txt}``.
    """
    for stem in ("shared_vocabulary", f"{side}_vocabulary"):
        js, txt = model_dir / f"{stem}.json", model_dir / f"{stem}.txt"
        if js.is_file():
            tokens = json.loads(js.read_text(encoding="utf-8"))
            return [str(t) for t in tokens]
        if txt.is_file():
            return txt.read_text(encoding="utf-8").split("\n")
    return []


def detect_language_tokens(tokens: list[str]) -> LanguageTokens | None:
    """The M2M100 or NLLB language tokens among ``tokens``; None for a bilingual vocabulary (fewer than 2)."""
    m2m = frozenset(t for t in tokens if M2M100_TOKEN.match(t))
    nllb = frozenset(t for t in tokens if NLLB_TOKEN.match(t))
    if len(m2m) < 2 and len(nllb) < 2:
        return None
    return LanguageTokens("m2m100", m2m) if len(m2m) >= len(nllb) else LanguageTokens("nllb", nllb)


def decode_pieces(sp: spm.SentencePieceProcessor, pieces: list[str]) -> str:
    """``sp.decode_pieces(pieces)``, except that pieces unknown to ``sp`` decode the SentencePiece way (▁ = space).

    OPUS-MT models share one vocabulary between both sides, so the model can emit a piece that only
    ``source.spm`` knows; ``decode_pieces`` would keep its ``▁`` literally (``Ein▁cow▁cow Hund``). When every
    piece is known the result is exactly ``sp.decode_pieces(pieces)``.
    """
    unk_id = sp.unk_id()
    unk_piece = sp.id_to_piece(unk_id)
    known = [p == unk_piece or sp.piece_to_id(p) != unk_id for p in pieces]
    if all(known):
        text: str = sp.decode_pieces(pieces)
        return text
    parts: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            decoded: str = sp.decode_pieces(run)
            if any(parts) and run[0].startswith(WORD_BOUNDARY) and not decoded.startswith(" "):
                decoded = " " + decoded  # decode_pieces drops a leading boundary; keep it mid-sentence
            parts.append(decoded)
            run.clear()

    for piece, is_known in zip(pieces, known, strict=True):
        if is_known:
            run.append(piece)
            continue
        flush()
        word = piece.replace(WORD_BOUNDARY, " ")
        parts.append(word if any(parts) else word.lstrip(" "))  # like SentencePiece: no space at the very start
    flush()
    return "".join(parts)


class CT2Translator:
    """Sentence-in, sentence-out translator over a CTranslate2 model directory.

    ``source_lang``/``target_lang`` (else ``simulsub.json``'s ``source_lang``/``target_lang``, else en→de) pick
    the languages of a multilingual M2M100/NLLB model; a bilingual model has no language tokens and ignores them.
    """

    def __init__(
        self,
        model_dir: Path | str,
        *,
        device: str = "cpu",
        compute_type: str = "default",
        intra_threads: int = 1,
        inter_threads: int = 1,
        source_lang: str | None = None,
        target_lang: str | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        missing = [n for n in ("model.bin", "source.spm", "target.spm") if not (self.model_dir / n).is_file()]
        if missing:
            raise ModelDirError(
                f"{self.model_dir} is not a CTranslate2 model directory with its SentencePiece models "
                f"(missing: {', '.join(missing)}); convert with ct2-transformers-converter "
                "and copy source.spm/target.spm beside model.bin"
            )
        self.source_sp = spm.SentencePieceProcessor(model_file=str(self.model_dir / "source.spm"))
        self.target_sp = spm.SentencePieceProcessor(model_file=str(self.model_dir / "target.spm"))
        meta_path = self.model_dir / "simulsub.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        self.max_source_tokens: int = int(meta.get("max_source_tokens", DEFAULT_MAX_SOURCE_TOKENS))
        self._init_languages(meta, source_lang, target_lang)
        self.translator = ctranslate2.Translator(
            str(self.model_dir),
            device=device,
            compute_type=compute_type,
            intra_threads=intra_threads,
            inter_threads=inter_threads,
        )

    def _init_languages(self, meta: dict[str, object], source_lang: str | None, target_lang: str | None) -> None:
        """Set ``source_lang_token``/``target_lang_token`` (None for a bilingual model)."""
        self.source_lang_token: str | None = None
        self.target_lang_token: str | None = None
        self.language_tokens: frozenset[str] = frozenset()
        src_langs = self._detect_languages("source", self.source_sp)
        shared = any((self.model_dir / f"shared_vocabulary.{ext}").is_file() for ext in ("json", "txt"))
        tgt_langs = src_langs if shared else self._detect_languages("target", self.target_sp)
        if src_langs is None or tgt_langs is None:
            if source_lang or target_lang:
                logger.warning("%s has no language tokens (not an M2M100/NLLB model): source_lang/target_lang "
                               "ignored", self.model_dir)
            return
        src = source_lang or str(meta.get("source_lang") or meta.get("src_lang") or DEFAULT_SOURCE_LANG)
        tgt = target_lang or str(meta.get("target_lang") or meta.get("tgt_lang") or DEFAULT_TARGET_LANG)
        self.source_lang_token = src_langs.resolve(src)
        self.target_lang_token = tgt_langs.resolve(tgt)
        self.language_tokens = src_langs.tokens | tgt_langs.tokens
        logger.info("%s: multilingual %s model, %s -> %s", self.model_dir, tgt_langs.style,
                    self.source_lang_token, self.target_lang_token)

    def _detect_languages(self, side: str, sp: spm.SentencePieceProcessor) -> LanguageTokens | None:
        """Language tokens of one side, from the CTranslate2 vocabulary (else from the SentencePiece model)."""
        tokens = read_vocabulary(self.model_dir, side)
        if not tokens:
            tokens = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        return detect_language_tokens(tokens)

    @property
    def multilingual(self) -> bool:
        """Whether the model is an M2M100/NLLB model steered by language tokens."""
        return self.target_lang_token is not None

    # -- tokenisation -------------------------------------------------------------------------
    def encode_source(self, text: str) -> list[str]:
        """SentencePiece pieces of ``text`` followed by ``</s>`` (CTranslate2 does not add it).

        A multilingual model's pieces are preceded by the source-language token.
        """
        pieces: list[str] = self.source_sp.encode(text, out_type=str)
        if self.source_lang_token is not None:
            pieces = [self.source_lang_token, *pieces]
        if len(pieces) + 1 > self.max_source_tokens:
            raise SourceTooLongError(
                f"sentence has {len(pieces) + 1} tokens, over the model's limit of {self.max_source_tokens}: "
                f"split it into shorter sentences"
            )
        return [*pieces, EOS]

    def encode_target(self, text: str) -> list[str]:
        """SentencePiece pieces of target text (no language token, no ``</s>``)."""
        pieces: list[str] = self.target_sp.encode(text, out_type=str)
        return pieces

    def decode_target(self, pieces: list[str]) -> str:
        """Detokenise target pieces (language tokens dropped); see :func:`decode_pieces`."""
        if self.language_tokens:
            pieces = [p for p in pieces if p not in self.language_tokens]
        return decode_pieces(self.target_sp, pieces)

    def _lang_prefix(self, prefix: list[str] | None = None) -> list[str]:
        """``prefix`` preceded by the target-language token of a multilingual model."""
        head = [self.target_lang_token] if self.target_lang_token is not None else []
        return [*head, *(prefix or [])]

    def _strip_lang(self, pieces: list[str]) -> list[str]:
        """``pieces`` without the leading target-language token."""
        if self.target_lang_token is not None and pieces[:1] == [self.target_lang_token]:
            return pieces[1:]
        return pieces

    # -- translation --------------------------------------------------------------------------
    def translate_pieces(
        self,
        sources: list[list[str]],
        options: DecodeOptions = DecodeOptions(),
        target_prefixes: list[list[str]] | None = None,
        *,
        keep_language_token: bool = False,
    ) -> list[list[str]]:
        """Translate pre-tokenised sources (from :meth:`encode_source`) to target pieces.

        ``target_prefixes`` are target pieces without the language token: forced, or favoured when
        ``options.prefix_bias_beta`` > 0. A multilingual model's output starts with the forced target-language
        token, removed unless ``keep_language_token``.
        """
        if not sources:
            return []
        n_lang = 1 if self.multilingual else 0
        kwargs: dict[str, object] = {}
        biased = False
        if target_prefixes is not None and any(target_prefixes):
            kwargs["target_prefix"] = [self._lang_prefix(p) for p in target_prefixes]
            if options.prefix_bias_beta > 0:
                kwargs["prefix_bias_beta"] = options.prefix_bias_beta
                biased = True
        elif self.multilingual:
            kwargs["target_prefix"] = [self._lang_prefix() for _ in sources]
        max_len = min(options.max_decoding_length + n_lang, self.max_source_tokens - 1)
        results = self.translator.translate_batch(
            sources,
            beam_size=options.beam_size,
            max_decoding_length=max_len,
            length_penalty=options.length_penalty,
            max_batch_size=64,
            **kwargs,
        )
        hyps = [list(r.hypotheses[0]) for r in results]
        if biased and self.multilingual:
            hyps = self._force_language(sources, hyps, options, max_len)
        return hyps if keep_language_token else [self._strip_lang(h) for h in hyps]

    def _force_language(
        self, sources: list[list[str]], hyps: list[list[str]], options: DecodeOptions, max_len: int
    ) -> list[list[str]]:
        """Redo, forcing only the language token, the biased hypotheses that left the target language.

        CTranslate2 biases the whole prefix, language token included, when ``prefix_bias_beta`` > 0.
        """
        redo = [i for i, h in enumerate(hyps) if h[:1] != [self.target_lang_token]]
        if not redo:
            return hyps
        results = self.translator.translate_batch(
            [sources[i] for i in redo], target_prefix=[self._lang_prefix() for _ in redo],
            beam_size=options.beam_size, max_decoding_length=max_len, length_penalty=options.length_penalty,
            max_batch_size=64,
        )
        out = list(hyps)
        for i, r in zip(redo, results, strict=True):
            out[i] = list(r.hypotheses[0])
        return out

    def translate(self, texts: list[str], options: DecodeOptions = DecodeOptions(),
                  target_prefixes: list[str] | None = None) -> list[str]:
        """Translate detokenised sentences in one batch; an empty sentence translates to an empty string.
        ``target_prefixes``: one detokenised target prefix per sentence (see :meth:`translate_pieces`), or None."""
        idx = [i for i, t in enumerate(texts) if t.strip()]
        out = [""] * len(texts)
        prefixes = [self.encode_target(target_prefixes[i]) for i in idx] if target_prefixes else None
        hyps = self.translate_pieces([self.encode_source(texts[i]) for i in idx], options, prefixes)
        for i, h in zip(idx, hyps, strict=True):
            out[i] = self.decode_target(h)
        return out

    def translate_sentence(
        self, source: str, *, beam_size: int = 4, target_prefix: str = "", prefix_bias_beta: float = 0.0
    ) -> str:
        """One sentence (possibly a prefix of one) to detokenised text; implements ``SentenceTranslator``."""
        return self.translate_sentences([source], beam_size=beam_size,
                                        target_prefixes=[target_prefix] if target_prefix else None,
                                        prefix_bias_beta=prefix_bias_beta)[0]

    def translate_sentences(
        self, sources: list[str], *, beam_size: int = 4, target_prefixes: list[str] | None = None,
        prefix_bias_beta: float = 0.0,
    ) -> list[str]:
        """:meth:`translate_sentence` for several sentences in one CTranslate2 batch (the same results as one call
        each); ``target_prefixes``: one detokenised prefix per source, or None."""
        return self.translate(sources, DecodeOptions(beam_size=beam_size, prefix_bias_beta=prefix_bias_beta),
                              target_prefixes)

    def continue_prefix(
        self, source: str, target_prefix: str, *, beam_size: int = 1, max_new_tokens: int = 8
    ) -> tuple[str, bool]:
        """Extend ``target_prefix`` by at most ``max_new_tokens`` pieces; implements ``PrefixContinuer``."""
        prefix = self._lang_prefix(self.encode_target(target_prefix) if target_prefix else [])
        budget = min(len(prefix) + max_new_tokens, self.max_source_tokens - 1)
        result = self.translator.translate_batch(
            [self.encode_source(source)], target_prefix=[prefix] if prefix else None, beam_size=beam_size,
            max_decoding_length=budget,
        )[0]
        pieces = list(result.hypotheses[0])
        return self.decode_target(self._strip_lang(pieces)), len(pieces) < budget
