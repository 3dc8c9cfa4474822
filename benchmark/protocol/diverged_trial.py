"""The search value of a trial in which a fold diverged (``protocol.diverged_trial``).

* ``best``: the mean of the folds' best validation MAP@R, a diverged fold counting with its best
  validation before it diverged (0 if none), as if it had stopped early. The default: a configuration
  that trains well for a while is not thrown away.
* ``zero``: the trial scores 0, as the reality-check code scored a run whose loss became NaN, so the
  search steers away from configurations that diverge.

Only the finished trial's value is affected; pruners see the running mean of the folds' best values.
"""

from __future__ import annotations

from typing import Sequence

from benchmark.training.trainer import DIVERGED

#: ``protocol.diverged_trial`` names.
DIVERGED_TRIAL_RULES = ("best", "zero")


def trial_value(mean_of_folds: float, fold_statuses: Sequence[str], rule: str) -> float:
    """The value a search trial reports: ``mean_of_folds``, or 0.0 under ``zero`` when a fold diverged."""
    if rule == "zero" and DIVERGED in fold_statuses:
        return 0.0
    return mean_of_folds
