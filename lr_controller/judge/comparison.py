"""Comparing methods: mean and spread per method, and t-tests against the baseline.

The paper's statistics (Table 1): over the N runs of each method, mean and
sample standard deviation (ddof=1) of test loss and accuracy, and Student's
two-sided, equal-variance t-test (`scipy.stats.ttest_ind`) against step
decay's runs; p < ALPHA is significant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import scipy.stats

from lr_controller.judge import baseline_search

ALPHA = 0.05  # Significance level of the t-tests.
METRICS = ("test_loss", "test_accuracy")


def finite_values(runs: Sequence[dict], metric: str) -> list[float]:
  """`metric` of the runs that have a finite value (diverged-early runs have none)."""
  return [
    float(r[metric])
    for r in runs
    if r.get(metric) is not None and math.isfinite(r[metric])
  ]


def t_test(values: Sequence[float], baseline_values: Sequence[float]) -> dict:
  """Student's two-sample t-test (equal variances, two-sided) of values vs baseline.

  Returns:
    `t` and `p` (None with fewer than two values on a side, or when both sides
    are constant), `significant` (p < ALPHA), and the sample sizes.
  """
  out = {"t": None, "p": None, "significant": False}
  if len(values) >= 2 and len(baseline_values) >= 2:
    result = scipy.stats.ttest_ind(values, baseline_values, equal_var=True)
    t, p = float(result.statistic), float(result.pvalue)
    if math.isfinite(t) and math.isfinite(p):
      out = {"t": t, "p": p, "significant": p < ALPHA}
  return {**out, "n": len(values), "n_baseline": len(baseline_values)}


def summarize_method(
  name: str,
  kind: str,
  runs: Sequence[dict],
  baseline_runs: Sequence[dict] | None,
  **info: Any,
) -> dict:
  """A method's record: its runs, mean/std of each metric, its t-tests.

  Args:
    name: the method's name.
    kind: "baseline", "controller" or "peer".
    runs: its run records.
    baseline_runs: the baseline's runs (None for the baseline itself).
    **info: extra fields (e.g. `initial_learning_rate`).
  """
  record = {
    "name": name,
    "kind": kind,
    **info,
    "seeds": [r["seed"] for r in runs],
    "n": len(finite_values(runs, "test_loss")),
    **baseline_search.summarize(runs),
  }
  record["vs_baseline"] = (
    None
    if baseline_runs is None
    else {
      metric: t_test(finite_values(runs, metric), finite_values(baseline_runs, metric))
      for metric in METRICS
    }
  )
  record["runs"] = list(runs)
  return record
