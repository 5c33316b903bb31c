"""The CLI's own exception, :class:`UserError`, and the option checks that raise it.

:class:`UserError` is the :class:`streaming.errors.SimulsubError` that ``app`` raises for bad input or configuration;
the CLI turns it, like every other ``SimulsubError``, into one ``error:`` line on stderr and exit code 2.
"""

from __future__ import annotations

from streaming.errors import SimulsubError


class UserError(SimulsubError):
    """Bad input or configuration the user can fix; the message says what to do."""

    exit_code = 2


def check_range(option: str, value: float, lo: float, hi: float, *, lo_open: bool = False) -> None:
    """A numeric CLI option within ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); :class:`UserError` otherwise."""
    if value != value or value > hi or value < lo or (lo_open and value == lo):  # NaN fails too
        low = f"> {lo:g}" if lo_open else f"≥ {lo:g}"
        raise UserError(f"{option} must be {low} and ≤ {hi:g} (got {value:g})")
