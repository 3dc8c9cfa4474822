"""Declarative hyperparameter search spaces, and the one function that turns them into Optuna suggestions.

A method's search space is data (a mapping from parameter name to a ``Float``, ``Int`` or
``Categorical``), so it can be listed, validated and tested without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

import optuna

from benchmark.errors import ConfigError


@dataclass(frozen=True)
class Float:
    """A real-valued parameter in ``[low, high]``, sampled on a log scale when ``log``."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ConfigError(f"Float range needs low < high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ConfigError(f"log-scale Float range needs low > 0, got {self.low}")

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and self.low <= float(value) <= self.high

    def describe(self) -> str:
        return f"[{self.low:g}, {self.high:g}]" + (" (log)" if self.log else "")


@dataclass(frozen=True)
class Int:
    """An integer parameter in ``[low, high]`` (inclusive)."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ConfigError(f"Int range needs low < high, got [{self.low}, {self.high}]")

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high

    def describe(self) -> str:
        return f"integer [{self.low}, {self.high}]" + (" (log)" if self.log else "")


@dataclass(frozen=True)
class Categorical:
    """A parameter taking one of ``choices``."""

    choices: tuple

    def __init__(self, choices: Sequence[Any]) -> None:
        if len(choices) < 1:
            raise ConfigError("Categorical needs at least one choice")
        object.__setattr__(self, "choices", tuple(choices))

    def contains(self, value: Any) -> bool:
        return value in self.choices

    def describe(self) -> str:
        return "{" + ", ".join(map(str, self.choices)) + "}"


Param = Union[Float, Int, Categorical]
SearchSpace = Mapping[str, Param]


def suggest(trial: optuna.trial.BaseTrial, space: SearchSpace) -> dict[str, Any]:
    """Ask ``trial`` for one value of every parameter of ``space``; return them by name."""
    values: dict[str, Any] = {}
    for name, param in space.items():
        if isinstance(param, Float):
            values[name] = trial.suggest_float(name, param.low, param.high, log=param.log)
        elif isinstance(param, Int):
            values[name] = trial.suggest_int(name, param.low, param.high, log=param.log)
        elif isinstance(param, Categorical):
            values[name] = trial.suggest_categorical(name, list(param.choices))
        else:  # pragma: no cover - guarded by the registry's validation
            raise ConfigError(f"search space entry {name!r} has unknown type {type(param).__name__}")
    return values


def validate_values(space: SearchSpace, values: Mapping[str, Any], *, where: str) -> None:
    """Raise ``ConfigError`` if ``values`` names a parameter outside ``space`` or a value out of range."""
    for name, value in values.items():
        if name not in space:
            known = ", ".join(sorted(space)) or "none"
            raise ConfigError(f"{where}: unknown hyperparameter {name!r} (known: {known})")
        if not space[name].contains(value):
            raise ConfigError(f"{where}: {name}={value!r} is outside {space[name].describe()}")
