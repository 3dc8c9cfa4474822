"""Argument checks shared by the layers: a bad value raises a one-line ``ConfigError`` naming it."""

from __future__ import annotations

import numbers

from benchmark.errors import ConfigError


def check_int(name: str, value: object, lo: int, hi: int) -> int:
    """``value`` as an ``int`` when it is an integer (Python or numpy, not a bool) in ``[lo, hi]``.

    Otherwise raises ``ConfigError("<name> must be an integer in [lo, hi], got <value>")``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= int(value) <= hi:
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)
