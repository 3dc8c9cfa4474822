"""Search diagnostics from ``trials.csv``: did each method's hyperparameter search converge?

Per (dataset, method), over its finished search trials (COMPLETE or PRUNED, in trial order; the
budget is their number):

* the trial at which the best validation score was found, and its position in the budget;
* a warning when that position lies in the last fifth of the budget (the search was still
  improving when it stopped: more trials might find better settings);
* a warning for every best parameter within 5% of an end of its range in the method's search
  space (measured in log space for log-scaled parameters): the optimum may lie outside the range.

The search spaces come from the method registry (:func:`benchmark.methods.get_method`); a method
the registry does not know (a run folder of other code) gets no edge check, and says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.methods.search_space import Categorical, Float, Int, Param

#: Share of the budget whose trials count as "late": the last fifth.
LATE_FRACTION = 0.2
#: Distance to an end of a range, as a share of the range, that counts as "at the edge".
EDGE_FRACTION = 0.05
#: Columns of :func:`search_diagnostics`' frame.
DIAGNOSTIC_COLUMNS = ("dataset", "method", "budget", "best_trial", "best_position", "best_value",
                      "late_best", "edge_parameters", "warnings")
_FINISHED = {"COMPLETE", "PRUNED"}


def range_position(param: Param, value: Any) -> float:
    """Where ``value`` sits in ``param``'s range, 0 (low end) to 1 (high end); log space for
    log-scaled parameters; NaN for categorical parameters or non-numeric values."""
    if isinstance(param, Categorical) or not isinstance(param, (Float, Int)):
        return math.nan
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    lo, hi = float(param.low), float(param.high)
    if param.log and lo > 0 and v > 0:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return (v - lo) / (hi - lo)


def edge_parameters(params: Mapping[str, Any], space: Mapping[str, Param], *,
                    fraction: float = EDGE_FRACTION) -> list[str]:
    """``"name=value (low|high end of <range>)"`` for every parameter of ``params`` within
    ``fraction`` of an end of its range in ``space``."""
    out = []
    for name, value in params.items():
        param = space.get(name)
        if param is None:
            continue
        pos = range_position(param, value)
        if math.isnan(pos):
            continue
        end = "low" if pos <= fraction else "high" if pos >= 1.0 - fraction else None
        if end:
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            out.append(f"{name}={shown} ({end} end of {param.describe()})")
    return out


def _registry_space(method: str, dataset: str) -> Mapping[str, Param] | None:
    """The method's search space on ``dataset`` (its per-dataset ranges: ``MethodSpec.search_space_for``;
    ``dataset`` is the results' dataset column, i.e. the entry's label when it has one)."""
    from benchmark.methods import get_method

    try:
        return get_method(method).search_space_for(dataset)
    except (BenchmarkError, KeyError):
        return None


def best_so_far(values: pd.Series) -> pd.Series:
    """The running maximum of ``values`` (NaN, e.g. a pruned trial, keeps the previous best)."""
    return values.astype(float).cummax().ffill()


def search_diagnostics(trials: pd.DataFrame, *,
                       space_of: Callable[[str, str], Mapping[str, Param] | None] = _registry_space,
                       late_fraction: float = LATE_FRACTION,
                       edge_fraction: float = EDGE_FRACTION) -> pd.DataFrame:
    """One row per (dataset, method) of ``trials`` (``trials.csv``'s columns), in their order.

    ``best_position`` is 1-based within the budget; ``late_best`` says the best came in the last
    ``late_fraction`` of it (never with a budget of one trial: no search). ``warnings`` joins the
    row's warnings with "; " (empty when there are none).
    """
    df = trials.copy()
    df["trial"] = pd.to_numeric(df["trial"], errors="coerce")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    state = df["state"].astype(str).str.upper().str.replace("TRIALSTATE.", "", regex=False)
    df = df[state.isin(_FINISHED)].dropna(subset=["trial"])
    rows = []
    for (dataset, method), grp in df.groupby(["dataset", "method"], sort=False):
        grp = grp.sort_values("trial").reset_index(drop=True)
        budget = len(grp)
        scored = grp["value"].notna()
        row = {"dataset": dataset, "method": method, "budget": budget, "best_trial": math.nan,
               "best_position": math.nan, "best_value": math.nan, "late_best": False,
               "edge_parameters": "", "warnings": ""}
        warnings: list[str] = []
        if scored.any():
            pos = int(np.nanargmax(grp["value"].to_numpy(dtype=float)))
            best = grp.iloc[pos]
            row.update(best_trial=int(best["trial"]), best_position=pos + 1,
                       best_value=float(best["value"]))
            if budget > 1 and pos + 1 > (1.0 - late_fraction) * budget:
                row["late_best"] = True
                warnings.append(f"best found at trial {pos + 1} of {budget}, in the last "
                                f"{late_fraction:.0%} of the budget: the search may not have "
                                "converged")
            try:
                params = json.loads(best["params"]) if isinstance(best["params"], str) else {}
            except json.JSONDecodeError:
                params = {}
            space = space_of(str(method), str(dataset))
            if space is None:
                warnings.append("search space unknown to this code: edges not checked")
            else:
                edges = edge_parameters(params, space, fraction=edge_fraction)
                row["edge_parameters"] = "; ".join(edges)
                warnings += [f"best {e}" for e in edges]
        else:
            warnings.append("no finished trial with a value")
        row["warnings"] = "; ".join(warnings)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(DIAGNOSTIC_COLUMNS))
