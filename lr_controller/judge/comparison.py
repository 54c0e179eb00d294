"""Comparing methods: mean and spread per method, and t-tests against the baseline.

The paper's statistics (Table 1): over the N runs of each method, mean and
sample standard deviation (ddof=1) of test loss and accuracy, and Student's
two-sided, equal-variance t-test (`scipy.stats.ttest_ind`) against step
decay's runs; p < ALPHA is significant.

Beside it, a paired t-test (`scipy.stats.ttest_rel`): run i of every method
trains the trainee of seed i (the same initial weights and batch order), so
the difference per seed removes the seed's own share of the variance. Pairs
are matched by seed, over the seeds where both methods have a finite value.
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


def paired_t_test(
  runs: Sequence[dict], baseline_runs: Sequence[dict], metric: str
) -> dict:
  """Paired two-sided t-test of `metric`, method minus baseline, matched by seed.

  Args:
    runs: the method's run records (each with `seed` and `metric`).
    baseline_runs: the baseline's run records.
    metric: e.g. "test_loss".

  Returns:
    `t`, `p` (None with fewer than two pairs, or when every difference is the
    same), `significant` (p < ALPHA), `n_pairs`, and `mean_difference` (the
    mean of method - baseline over the pairs; None without pairs).
  """
  baseline = {
    r["seed"]: float(r[metric])
    for r in baseline_runs
    if r.get(metric) is not None and math.isfinite(r[metric])
  }
  pairs = [
    (float(r[metric]), baseline[r["seed"]])
    for r in runs
    if r.get(metric) is not None and math.isfinite(r[metric]) and r["seed"] in baseline
  ]
  out = {"t": None, "p": None, "significant": False}
  if len({a - b for a, b in pairs}) >= 2:  # Two pairs at least, not all equal.
    result = scipy.stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs])
    t, p = float(result.statistic), float(result.pvalue)
    if math.isfinite(t) and math.isfinite(p):
      out = {"t": t, "p": p, "significant": p < ALPHA}
  mean_difference = sum(a - b for a, b in pairs) / len(pairs) if pairs else None
  return {**out, "n_pairs": len(pairs), "mean_difference": mean_difference}


def compare(runs: Sequence[dict], baseline_runs: Sequence[dict], metric: str) -> dict:
  """Student's t-test of `metric` against the baseline, with the paired one under "paired"."""
  return {
    **t_test(finite_values(runs, metric), finite_values(baseline_runs, metric)),
    "paired": paired_t_test(runs, baseline_runs, metric),
  }


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

  Returns:
    The record; `vs_baseline[metric]` holds Student's test (`t`, `p`,
    `significant`, `n`, `n_baseline`) and the paired one under `paired`
    (see `paired_t_test`); None for the baseline itself.
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
    else {metric: compare(runs, baseline_runs, metric) for metric in METRICS}
  )
  record["runs"] = list(runs)
  return record
