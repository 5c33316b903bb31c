"""onnxruntime Paraformer: loads our export and FunASR's offline ONNX directories alike (no torch).

A model directory holds ``model.onnx`` (and optionally ``model_quant.onnx``), ``config.yaml`` (``frontend_conf``,
``model_conf.predictor_bias``), ``am.mvn`` and ``tokens.json``. The offline graph maps ``speech`` float32
``[B, T, 560]`` (LFR + CMVN features, one row per 60 ms) and ``speech_lengths`` int32 ``[B]`` to ``logits``
``[B, N, V]`` (log-probabilities) and ``token_num`` int32 ``[B]``; with ``predictor_bias: 1`` the last of the
``token_num`` positions is the end-of-sentence slot and is dropped.

Our exports also carry the two halves used for streaming (``config.yaml`` → ``simulsub.streaming``):
an encoder ``speech, speech_lengths → enc, enc_len, alphas`` and a decoder
``enc, enc_len, acoustic_embeds, acoustic_embeds_len → logits``; CIF runs between them in numpy
(:mod:`models.asr.cif`), so its state can be carried from one chunk to the next.

Every graph's signature is checked when it is loaded (names only, no inference): a graph whose required inputs
the runtime cannot feed is refused with a :class:`ModelDirError`. FunASR's *online* (streaming) export — an encoder
``model.onnx`` (``speech, speech_lengths → enc, enc_len, alphas``, fed pre-scaled, position-encoded features) beside
a ``decoder.onnx`` that carries its FSMN memory in ``in_cache_*`` inputs — is named as such and refused: this
runtime streams offline exports itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from models.asr.cif import DEFAULT_TAIL, DEFAULT_THRESHOLD
from models.asr.decoding import DecodeOptions, Lexicon, decode
from models.asr.frontend import Cmvn, Frontend, FrontendOptions, read_am_mvn
from models.asr.lm import TokenNgramLM
from models.asr.tokens import TokenList
from models.onnx_session import open_session
from streaming.errors import ModelDirError, ModelRunError

logger = logging.getLogger(__name__)


CTC_OUTPUT = "ctc_logprobs"  # optional extra output of our graphs: the CTC head's log-softmax per encoder frame
ENCODER_INPUTS = ("speech", "speech_lengths")  # what :meth:`ParaformerOnnx.encode` feeds, by name
ENCODER_OUTPUTS = ("enc", "enc_len", "alphas")
DECODER_INPUTS = ("enc", "enc_len", "acoustic_embeds", "acoustic_embeds_len")  # what decode_embeddings feeds
ONLINE_DECODERS = ("decoder.onnx", "decoder_quant.onnx")  # FunASR's online export: the cached decoder graphs
CACHE_PREFIX = "in_cache_"  # FunASR's online decoder: one FSMN memory input per decoder block
REEXPORT = ("funasr-export ++model=<offline model> ++type=onnx) or use a directory written by simulsub export")
ONLINE_ADVICE = ("simulsub runs offline Paraformer exports and streams them itself: export the offline (non-online) "
                 "model instead (" + REEXPORT)


class AsrRunError(ModelRunError):
    """onnxruntime refused an input of a loaded ASR graph (the message names the graph and the input size)."""


@dataclass(frozen=True)
class StreamingParts:
    """File names of the streaming encoder and decoder graphs inside a model directory."""

    encoder: str
    decoder: str
    encoder_quant: str | None = None
    decoder_quant: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    """What the runtime needs from ``config.yaml``."""

    frontend: FrontendOptions
    predictor_bias: int = 1
    threshold: float = DEFAULT_THRESHOLD
    tail: float = DEFAULT_TAIL
    streaming: StreamingParts | None = None
    decoding: DecodeOptions = field(default_factory=DecodeOptions)
    lm_file: str | None = None

    @classmethod
    def from_yaml(cls, data: dict[str, Any]) -> ModelConfig:
        model_conf = data.get("model_conf") or {}
        pred = data.get("predictor_conf") or {}
        ours = data.get("simulsub") or {}
        own = ours.get("streaming")
        raw_dec = ours.get("decoding")
        dec: dict[str, Any] = raw_dec if isinstance(raw_dec, dict) else {}
        parts = None
        if isinstance(own, dict) and own.get("encoder") and own.get("decoder"):
            parts = StreamingParts(
                encoder=str(own["encoder"]), decoder=str(own["decoder"]),
                encoder_quant=own.get("encoder_quant"), decoder_quant=own.get("decoder_quant"),
            )
        return cls(
            frontend=FrontendOptions.from_config(data.get("frontend_conf")),
            predictor_bias=int(model_conf.get("predictor_bias", 0)),
            threshold=float(pred.get("threshold", DEFAULT_THRESHOLD)),
            tail=float(pred.get("tail_threshold", DEFAULT_TAIL)),
            streaming=parts,
            decoding=DecodeOptions.from_config(dec),
            lm_file=str(dec["lm"]) if dec.get("lm") else None,
        )


class _LenientLoader(yaml.SafeLoader):
    """SafeLoader that reads unknown tags (``!!python/tuple``, ``!new:...``) as plain YAML values."""


def _construct_unknown(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_LenientLoader.add_multi_constructor("", _construct_unknown)


def read_config(model_dir: Path) -> dict[str, Any]:
    """``config.yaml`` of a model directory as a mapping (FunASR's python tags tolerated)."""
    path = model_dir / "config.yaml"
    if not path.is_file():
        raise ModelDirError(f"{model_dir} has no config.yaml: is it a Paraformer ONNX directory?")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LenientLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ModelDirError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ModelDirError(f"{path} is not a YAML mapping")
    return data


def _io_names(session: Any) -> tuple[list[str], list[str]]:
    """Names of a session's required inputs (overridable initializers left out) and of its outputs, in order."""
    return [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]


def _names(names: list[str]) -> str:
    """Graph input/output names for a one-line message (a long run, such as the caches, shortened to its ends)."""
    return ", ".join(names) if len(names) <= 6 else f"{names[0]}, {names[1]}, … {names[-1]} ({len(names)} inputs)"


def online_export_error(model_dir: Path, why: str) -> ModelDirError:
    """The one-line refusal of a FunASR online (streaming) export; ``why`` names the evidence."""
    return ModelDirError(f"{model_dir} is a FunASR online (streaming) Paraformer export ({why}); {ONLINE_ADVICE}")


def online_decoder(model_dir: Path, names: tuple[str, ...] = ONLINE_DECODERS) -> tuple[str, list[str]] | None:
    """(file name, ``in_cache_*`` inputs) of the first of ``names`` in ``model_dir`` that is a FunASR online decoder
    graph; None when none is. Opens the graphs with onnxruntime to read their input names (no inference)."""
    for name in names:
        path = model_dir / name
        if path.is_file():
            try:
                inputs, _ = _io_names(open_session(path, device="cpu"))  # names only: no GPU
            except ModelDirError:  # unreadable: no evidence either way
                continue
            caches = [n for n in inputs if n.startswith(CACHE_PREFIX)]
            if caches:
                return name, caches
    return None


def config_online_hint(config: dict[str, Any]) -> str | None:
    """Why ``config.yaml`` describes FunASR's streaming Paraformer (``model: ParaformerStreaming``, a chunked
    encoder, the online frontend), or None."""
    model = str(config.get("model") or "")
    if "streaming" in model.lower() or "online" in model.lower():
        return f"config.yaml: model: {model}"
    enc = config.get("encoder_conf")
    if isinstance(enc, dict) and "chunk_size" in enc:
        return f"config.yaml: encoder_conf.chunk_size {enc['chunk_size']}"
    frontend = str(config.get("frontend") or "")
    if frontend.lower().endswith("online"):
        return f"config.yaml: frontend: {frontend}"
    return None


def _online_evidence(path: Path, inputs: list[str], outputs: list[str], config: dict[str, Any]) -> str | None:
    """Why the graph ``path`` (required ``inputs``, ``outputs``) belongs to a FunASR online export, or None: its own
    cache inputs, an online decoder beside it, or (for an encoder-shaped graph) what config.yaml says."""
    caches = [n for n in inputs if n.startswith(CACHE_PREFIX)]
    if caches:
        return f"{path.name} takes {_names(caches)} inputs"
    found = online_decoder(path.parent, ONLINE_DECODERS[::-1] if "quant" in path.name else ONLINE_DECODERS)
    if found is not None:
        return f"{found[0]} takes {_names(found[1])} inputs; {path.name} is its encoder"
    hint = config_online_hint(config)
    if hint is not None and set(ENCODER_OUTPUTS) <= set(outputs):
        return f"{hint}; {path.name} outputs {', '.join(outputs)}"
    return None


def check_offline_graph(path: Path, session: Any, config: dict[str, Any]) -> None:
    """Refuse an offline graph unless it takes exactly two inputs (features, lengths) and gives ``logits`` and
    ``token_num`` (an encoder half, e.g. FunASR's online ``model.onnx``, gives ``enc, enc_len, alphas``)."""
    inputs, outputs = _io_names(session)
    encoder_half = set(ENCODER_OUTPUTS) <= set(outputs) and "token_num" not in outputs
    if len(inputs) == 2 and len(outputs) >= 2 and not encoder_half:
        return
    why = _online_evidence(path, inputs, outputs, config)
    if why is not None:
        raise online_export_error(path.parent, why)
    if len(inputs) != 2:
        raise ModelDirError(f"{path} needs the inputs {_names(inputs)}; simulsub feeds an offline Paraformer graph "
                            "exactly two (features float32 [B, T, 560], lengths int32 [B]): export a plain offline "
                            "Paraformer (" + REEXPORT)
    if encoder_half:
        raise ModelDirError(f"{path} is a Paraformer encoder half (outputs {', '.join(outputs)}), not an offline "
                            "graph (speech, speech_lengths → logits, token_num); " + ONLINE_ADVICE)
    raise ModelDirError(f"{path} has outputs {outputs}; expected logits and token_num")


def check_half(path: Path, session: Any, fed: tuple[str, ...], needed_outputs: tuple[str, ...]) -> None:
    """Refuse a streaming half whose required inputs are not exactly ``fed`` or that lacks ``needed_outputs``."""
    inputs, outputs = _io_names(session)
    caches = [n for n in inputs if n.startswith(CACHE_PREFIX)]
    if caches:
        raise online_export_error(path.parent, f"{path.name} takes {_names(caches)} inputs")
    if set(inputs) != set(fed):
        extra, missing = [n for n in inputs if n not in fed], [n for n in fed if n not in inputs]
        raise ModelDirError(
            f"{path} takes the inputs {_names(inputs)} but simulsub feeds a streaming "
            f"{'encoder' if fed == ENCODER_INPUTS else 'decoder'} exactly {', '.join(fed)}"
            + (f" ({_names(extra)} cannot be fed)" if extra else f" ({', '.join(missing)} missing)")
            + "; re-export the directory with simulsub export")
    if any(n not in outputs for n in needed_outputs):
        raise ModelDirError(f"{path} has outputs {', '.join(outputs)}; expected {', '.join(needed_outputs)}")


def _output_index(session: Any, name: str) -> int | None:
    """Position of the output ``name`` among a session's outputs, None when the graph lacks it."""
    names = [o.name for o in session.get_outputs()]
    return names.index(name) if name in names else None


@dataclass(frozen=True)
class Recognition:
    """One decoded utterance: token ids (specials included, end slot removed), text and decoder score."""

    ids: tuple[int, ...]
    text: str
    score: float


class ParaformerOnnx:
    """A Paraformer ONNX directory: features, offline decoding and (for our exports) the streaming halves."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        quantized: bool = False,
        threads: int = 1,
        providers: list[str] | None = None,
        decoding: DecodeOptions | None = None,
    ) -> None:
        """``decoding`` overrides the directory's ``simulsub.decoding`` settings (``DecodeOptions.greedy()``:
        argmax, no LM or CTC). ``providers``: onnxruntime execution providers in order; None =
        :mod:`models.onnx_session`'s rule (CUDA first when available, then CPU)."""
        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise ModelDirError(f"ASR model directory {self.model_dir} does not exist")
        raw = read_config(self.model_dir)
        try:
            self.config = ModelConfig.from_yaml(raw)
        except (TypeError, ValueError) as e:
            raise ModelDirError(f"{self.model_dir}/config.yaml: {e}") from None
        self.decoding = decoding or self.config.decoding
        self.lm: TokenNgramLM | None = None
        if self.config.lm_file and self.decoding.lm_weight > 0:
            lm_path = self.model_dir / self.config.lm_file
            if not lm_path.is_file():
                raise ModelDirError(f"{self.model_dir}/config.yaml names the LM {self.config.lm_file}, which is "
                                    "missing")
            try:
                self.lm = TokenNgramLM.load(lm_path)
            except ValueError as e:
                raise ModelDirError(str(e)) from None
        try:
            self.tokens = TokenList.load(self.model_dir, raw)
        except (FileNotFoundError, ValueError) as e:
            raise ModelDirError(str(e)) from None
        self.lexicon: Lexicon | None = None
        if self.lm is not None and self.lm.words and any(t.startswith("▁") for t in self.tokens.tokens):
            special = {i for i in range(len(self.tokens)) if self.tokens.is_special(i)}
            self.lexicon = Lexicon(self.lm.words, self.tokens.tokens, special)
        mvn = self.model_dir / "am.mvn"
        cmvn: Cmvn | None = None
        if mvn.is_file():
            try:
                cmvn = read_am_mvn(mvn)
            except (ValueError, UnicodeDecodeError) as e:
                raise ModelDirError(f"cannot read {mvn}: {e}") from None
        elif not self.external_features:
            logger.warning("%s has no am.mvn: features are used without CMVN", self.model_dir)
        self.frontend = Frontend(self.config.frontend, cmvn)
        self.cmvn = cmvn
        self.threads = threads
        self._providers = providers
        self._quantized = quantized
        self._enc: Any = None
        self._dec: Any = None
        self._enc_ctc: int | None = None
        wanted, other = ("model_quant.onnx", "model.onnx") if quantized else ("model.onnx", "model_quant.onnx")
        path = self.model_dir / wanted
        self.session: Any = None
        fallback = not path.is_file() and (self.model_dir / other).is_file()
        if fallback:
            path = self.model_dir / other
        if path.is_file():
            self.session = open_session(path, threads=threads, providers=providers)
            check_offline_graph(path, self.session, raw)  # refuses a FunASR online export: no warning before that
            if fallback:
                logger.warning("%s has no %s; using %s", self.model_dir, wanted, other)
            self._offline_ctc = _output_index(self.session, CTC_OUTPUT)
            if self.config.streaming is not None and self._streaming_files(missing_ok=True) is not None:
                self._streaming_sessions()  # their signatures are checked now, not at the first streamed chunk
        elif self.config.streaming is not None:
            # no offline graph shipped: offline decoding runs the streaming halves over the whole utterance
            self._streaming_sessions()
            self._offline_ctc = self._enc_ctc
        else:
            raise ModelDirError(f"{self.model_dir} has neither model.onnx nor model_quant.onnx")

    @property
    def external_features(self) -> bool:
        """True for directories whose graphs read another encoder's frames (``simulsub.input`` in config.yaml),
        not the fbank/LFR/CMVN frontend."""
        return False

    @property
    def sample_rate(self) -> int:
        return self.config.frontend.fs

    @property
    def decoding_summary(self) -> str:
        """How tokens are chosen, in words: ``greedy`` or the beam with its LM / CTC weights."""
        d = self.decoding
        parts = []
        if self.lm is not None and d.lm_weight > 0:
            parts.append(f"LM {d.lm_weight:g} ({self.config.lm_file})")
        if self._offline_ctc is not None and d.ctc_weight > 0:
            parts.append(f"CTC {d.ctc_weight:g}" + (f", skip {d.skip_penalty:g}" if d.skip_penalty > 0 else ""))
        if self.lexicon is not None and d.oov_penalty > 0:
            parts.append(f"unknown word {d.oov_penalty:g}")
        return f"beam {d.beam}: " + ", ".join(parts) if parts else "greedy"

    @property
    def has_streaming(self) -> bool:
        """True when the directory holds our split encoder/decoder graphs (CIF state carried across chunks)."""
        return self.config.streaming is not None

    def features(self, audio: np.ndarray) -> np.ndarray:
        """LFR + CMVN features ``[frames, 560]`` of 16 kHz float audio."""
        return self.frontend(audio)

    def recognize_features(self, feats: np.ndarray, *, partial: bool = False) -> Recognition:
        """Offline decoding of one utterance's features ``[T, D]`` (``partial``: with the narrower partial beam)."""
        if feats.shape[0] == 0:
            return Recognition(ids=(), text="", score=0.0)
        if self.session is None:
            return self._recognize_with_halves(feats, partial=partial)
        inputs = self.session.get_inputs()
        feed = {
            inputs[0].name: feats[None].astype(np.float32),
            inputs[1].name: np.array([feats.shape[0]], dtype=np.int32),
        }
        try:
            outs = self.session.run(None, feed)
        except Exception as e:  # onnxruntime's own exception types (InvalidArgument, Fail, …)
            raise AsrRunError(f"{self.model_dir}: the offline graph failed on {feats.shape[0]} feature frames "
                              f"({str(e).splitlines()[0][:300]})") from None
        logits, token_num = outs[:2]
        ctc = np.asarray(outs[self._offline_ctc])[0] if self._offline_ctc is not None else None
        n = int(np.asarray(token_num).reshape(-1)[0])
        return self.decode_logits(np.asarray(logits)[0, :n], drop_end_slot=True, ctc=ctc, partial=partial)

    def _recognize_with_halves(self, feats: np.ndarray, *, partial: bool) -> Recognition:
        """Offline decoding through the streaming encoder (one window), numpy CIF with the tail, and the decoder."""
        from models.asr.cif import cif_offline

        enc, alphas, ctc = self.encode(feats)
        fired = cif_offline(alphas, enc, tail=self.config.tail, threshold=self.config.threshold)
        if len(fired) == 0:
            return Recognition(ids=(), text="", score=0.0)
        logits = self.decode_embeddings(enc, fired.embeddings)
        return self.decode_logits(logits, drop_end_slot=True, ctc=ctc, partial=partial)

    def decode_logits(self, logits: np.ndarray, *, drop_end_slot: bool, ctc: np.ndarray | None = None,
                      partial: bool = False) -> Recognition:
        """Tokens of decoder log-probs ``logits`` ``[N, V]``: argmax, or the LM/CTC beam of
        :mod:`models.asr.decoding` as the directory (or ``decoding``) sets it; ``ctc`` ``[T, V]`` are the CTC
        log-probs of the utterance's encoder frames; ``drop_end_slot`` removes the predictor-bias slot; ``partial``
        (a streaming partial) narrows the beam to ``partial_beam``."""
        if drop_end_slot and self.config.predictor_bias > 0:
            logits = logits[: max(0, logits.shape[0] - self.config.predictor_bias)]
        if logits.shape[0] == 0:
            return Recognition(ids=(), text="", score=0.0)
        opts = replace(self.decoding, beam=self.decoding.partial_beam) if partial else self.decoding
        got = decode(logits, opts, lm=self.lm, ctc_logprobs=ctc, blank=max(self.tokens.blank_id, 0),
                     lexicon=self.lexicon)
        return Recognition(ids=got.ids, text=self.tokens.to_text(got.ids), score=got.score)

    def transcribe(self, audio: np.ndarray) -> str:
        """Text of one 16 kHz float utterance (offline: the whole audio at once)."""
        return self.recognize_features(self.features(audio)).text

    # --- streaming halves (our exports only) -------------------------------------------------------------
    def _streaming_files(self, *, missing_ok: bool = False) -> tuple[str, str] | None:
        """File names of the streaming (encoder, decoder) to load; a missing one raises (None with ``missing_ok``)."""
        parts = self.config.streaming
        if parts is None:
            raise ModelDirError(f"{self.model_dir} has no streaming encoder/decoder graphs")
        enc = parts.encoder_quant if self._quantized and parts.encoder_quant else parts.encoder
        dec = parts.decoder_quant if self._quantized and parts.decoder_quant else parts.decoder
        # a directory shipped int8 only (as the bundled one is) still runs where float graphs were asked for
        if not self._quantized and parts.encoder_quant and parts.decoder_quant and not (
                (self.model_dir / enc).is_file() and (self.model_dir / dec).is_file()):
            if not missing_ok:
                logger.warning("%s has no float streaming graphs; using the int8 ones", self.model_dir)
            enc, dec = parts.encoder_quant, parts.decoder_quant
        for name in (enc, dec):
            if not (self.model_dir / name).is_file():
                if missing_ok:
                    return None
                raise ModelDirError(f"{self.model_dir} lists {name} in config.yaml but the file is missing")
        return enc, dec

    def _streaming_sessions(self) -> tuple[Any, Any]:
        if self._enc is None:
            files = self._streaming_files()
            assert files is not None
            enc_path, dec_path = self.model_dir / files[0], self.model_dir / files[1]
            enc = open_session(enc_path, threads=self.threads, providers=self._providers)
            check_half(enc_path, enc, ENCODER_INPUTS, ENCODER_OUTPUTS)
            dec = open_session(dec_path, threads=self.threads, providers=self._providers)
            check_half(dec_path, dec, DECODER_INPUTS, ("logits",))
            self._enc, self._dec = enc, dec
            self._enc_ctc = _output_index(self._enc, CTC_OUTPUT)
        return self._enc, self._dec

    def encode(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Streaming encoder on a window of features ``[T, D]`` → encoder output ``[T, H]``, alphas ``[T]`` and,
        when the graph has a CTC head, its log-probs ``[T, V]`` (else None)."""
        enc_s, _ = self._streaming_sessions()
        try:
            outs = enc_s.run(None, {"speech": feats[None].astype(np.float32),
                                    "speech_lengths": np.array([feats.shape[0]], np.int32)})
        except Exception as e:  # onnxruntime's own exception types (InvalidArgument, Fail, …)
            raise AsrRunError(f"{self.model_dir}: the streaming encoder failed on {feats.shape[0]} feature frames "
                              f"({str(e).splitlines()[0][:300]})") from None
        ctc = np.asarray(outs[self._enc_ctc])[0] if self._enc_ctc is not None else None
        return np.asarray(outs[0])[0], np.asarray(outs[2])[0], ctc

    def decode_embeddings(self, enc: np.ndarray, embeds: np.ndarray) -> np.ndarray:
        """Parallel decoder: encoder memory ``[T, H]`` and CIF embeddings ``[N, H]`` → log-probs ``[N, V]``."""
        _, dec_s = self._streaming_sessions()
        try:
            (logits,) = dec_s.run(
                ["logits"],
                {
                    "enc": enc[None].astype(np.float32),
                    "enc_len": np.array([enc.shape[0]], np.int32),
                    "acoustic_embeds": embeds[None].astype(np.float32),
                    "acoustic_embeds_len": np.array([embeds.shape[0]], np.int32),
                },
            )
        except Exception as e:  # onnxruntime's own exception types (InvalidArgument, Fail, …)
            raise AsrRunError(f"{self.model_dir}: the streaming decoder failed on {enc.shape[0]} encoder frames and "
                              f"{embeds.shape[0]} tokens ({str(e).splitlines()[0][:300]})") from None
        return np.asarray(logits)[0]
