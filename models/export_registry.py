"""Model-family exporters by name, all with one signature: ``export(output_dir, *, quantization, force) -> Path``.

A family's exporter is a class in its ``models/<family>/export.py`` built from an in-memory source (the torch
model and the files beside it) whose :meth:`ModelExporter.export` writes one runtime directory that ``--model`` /
``--asr-model`` / ``--llm-model`` loads. ``simulsub export`` goes through this registry too: a family's ``check``
loads its source from the training work directories, exports every variant and checks each against the source
(:mod:`models.exports`).

This module imports nothing heavy (the exporters need torch): classes and checks are named ``"module:attribute"``
and imported on use. Adding a family is one :func:`register_exporter` call (beside the built-in ones at the end
of this module, or in a plugin)::

    register_exporter(ExporterSpec(
        family="conformer",
        description="Conformer-CTC ASR → ONNX fp32 + int8",
        exporter="models.conformer.export:ConformerExporter",  # export(output_dir, *, quantization, force)
        check="models.exports:check_conformer",  # optional: (ExportOptions) -> list[ExportCheck]
    ))
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from streaming.errors import ModelBuildError, SimulsubError

if TYPE_CHECKING:
    from models.exports import ExportCheck, ExportOptions


class UnknownFamilyError(SimulsubError, KeyError):
    """No exporter is registered under a family name; the message lists the registered ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class NoCheckedExportError(ModelBuildError):
    """The family has an exporter but no checked export that ``simulsub export`` can run."""


@runtime_checkable
class ModelExporter(Protocol):
    """One model family's exporter, its source bound at construction.

    ``quantizations``: the values :meth:`export` accepts (``None``: no quantised weights).
    """

    family: ClassVar[str]
    quantizations: ClassVar[tuple[str | None, ...]]

    def export(self, output_dir: Path | str, *, quantization: str | None = "int8", force: bool = False) -> Path:
        """Write the runtime directory ``output_dir`` and return it.

        ``quantization``: the weights written (each family's docstring says which files each value adds);
        ``force``: overwrite a directory that already holds an export (else :class:`FileExistsError`).
        """
        ...


def check_quantization(exporter: ModelExporter, quantization: str | None) -> None:
    """:class:`ValueError` naming the allowed values when ``exporter`` does not write ``quantization``."""
    if quantization not in exporter.quantizations:
        allowed = ", ".join("None" if q is None else repr(q) for q in exporter.quantizations)
        raise ValueError(f"{exporter.family} export: quantization must be one of {allowed}, not {quantization!r}")


def refuse_overwrite(marker: Path, force: bool) -> None:
    """:class:`FileExistsError` when ``marker`` (a file every export of the family writes) exists and not ``force``."""
    if marker.exists() and not force:
        raise FileExistsError(f"{marker} exists; pass force=True to overwrite")


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class ExporterSpec:
    """One registered family.

    - ``family``: its name (``simulsub export --families``).
    - ``description``: what it writes, one line.
    - ``exporter``: ``"module:Class"`` of its :class:`ModelExporter`.
    - ``check``: ``"module:function"`` taking :class:`models.exports.ExportOptions` and returning the checks of
      every exported variant (what ``simulsub export`` runs); None when the family has no checked export.
    """

    family: str
    description: str
    exporter: str
    check: str | None = None

    def exporter_class(self) -> type[ModelExporter]:
        """The exporter class (imports its module, hence torch)."""
        cls: type[ModelExporter] = _resolve(self.exporter)
        return cls

    def run_check(self, opts: ExportOptions) -> list[ExportCheck]:
        """Export the family's source from ``opts.work_root`` in every variant and check each; FileNotFoundError
        when the source is missing, :class:`NoCheckedExportError` when the family has no check."""
        if self.check is None:
            raise NoCheckedExportError(f"{self.family} has no checked export ({self.description})")
        run: Callable[[ExportOptions], list[ExportCheck]] = _resolve(self.check)
        return run(opts)


_REGISTRY: dict[str, ExporterSpec] = {}
_LOCK = threading.Lock()


def register_exporter(spec: ExporterSpec, *, replace_existing: bool = False) -> ExporterSpec:
    """Add ``spec`` (after the families registered so far); :class:`ValueError` when the family is taken."""
    with _LOCK:
        if spec.family in _REGISTRY and not replace_existing:
            raise ValueError(f"exporter family {spec.family!r} is already registered "
                             f"(registered: {', '.join(_REGISTRY)})")
        _REGISTRY[spec.family] = spec
    return spec


def unregister_exporter(family: str) -> None:
    """Remove a registered family (:class:`UnknownFamilyError` when there is none)."""
    get_exporter(family)
    with _LOCK:
        del _REGISTRY[family]


def get_exporter(family: str) -> ExporterSpec:
    """The family registered as ``family``; :class:`UnknownFamilyError` listing the registered ones."""
    spec = _REGISTRY.get(family)
    if spec is None:
        raise UnknownFamilyError(f"unknown model family {family!r}; choose from {', '.join(_REGISTRY)}")
    return spec


def exporter_families() -> tuple[str, ...]:
    """Every registered family, in registration order."""
    return tuple(_REGISTRY)


def checked_families() -> tuple[str, ...]:
    """The families ``simulsub export`` can export and check (those with a ``check``), in registration order."""
    return tuple(f for f, s in _REGISTRY.items() if s.check is not None)


# -- the built-in families ----------------------------------------------------------------------------------
for _spec in (
    ExporterSpec("marian", "AR Marian → CTranslate2 (int8, float16, …)", "models.marian.export:MarianExporter",
                 "models.exports:check_marian"),
    ExporterSpec("nat", "NAT (CTC) → ONNX fp32 (+ int8)", "models.nat.export:NatExporter",
                 "models.exports:check_nat"),
    ExporterSpec("waitk", "wait-k → ONNX encoder/decoder step graphs fp32 (+ int8)",
                 "models.waitk.export:WaitkExporter", "models.exports:check_waitk"),
    ExporterSpec("paraformer", "Paraformer ASR → FunASR ONNX directory fp32 (+ int8) with streaming halves",
                 "models.asr.paraformer.export:ParaformerExporter", "models.exports:check_paraformer"),
    ExporterSpec("llm", "decoder-only Marian LM → ONNX cached-step graph int8 (+ fp32)",
                 "models.llm.onnx_export:LlmExporter", "models.exports:check_llm"),
    ExporterSpec("wparaformer", "Whisper-Paraformer head → ONNX streaming halves int8 (+ fp32); "
                 "simulsub train whisper-paraformer --export writes it",
                 "models.asr.wparaformer.export:WParaformerExporter"),
):
    register_exporter(_spec)
