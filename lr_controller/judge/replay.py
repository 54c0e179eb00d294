"""Is it a controller or a schedule? The controller's own mean rate path, open-loop.

A learned controller reacts to what it observes, but it may also act almost
the same in every run: then it is a schedule found by search, not a feedback
controller. Two measurements tell which:

* `rate_path_spread`: how much the controller's rate paths differ across the
  evaluation's runs (the standard deviation over runs of log(rate) at each
  decision, averaged over decisions). 0 means one fixed schedule.
* The replay peer: the geometric mean over runs of the controller's rate at
  each decision (`mean_rate_path`), played back as a fixed schedule
  (`ReplaySchedule`) on the same trainee seeds, with no feedback. Where the
  controller beats its own replay, its reactions to the run help; where it
  does not, the mean path carries what it learned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

# The method name of the replay in results and reports.
REPLAY = "controller_replay"


def _log_rates(runs: Sequence[dict]) -> list[np.ndarray]:
  """Per run, float64 [decisions it made] log learning rates (None and <= 0 dropped at the end)."""
  paths = []
  for run in runs:
    rates = []
    for rate in run["learning_rates"]:
      if rate is None or not math.isfinite(rate) or rate <= 0:
        break  # A diverged run's path ends here.
      rates.append(math.log(rate))
    paths.append(np.asarray(rates, np.float64))
  return paths


def mean_rate_path(runs: Sequence[dict], num_decisions: int) -> np.ndarray:
  """The geometric mean over runs of the rate of each decision.

  Args:
    runs: the controller's run records; `learning_rates[j]` is the rate of
      every step of decision j's chunk.
    num_decisions: length of the path (decisions of a full run).

  Returns:
    float64 [num_decisions] learning rates. Decision j averages the runs
    that reached it; after the last decision any run reached, the last rate
    is held.

  Raises:
    ValueError: if no run made a decision.
  """
  paths = _log_rates(runs)
  if not any(len(p) for p in paths):
    raise ValueError("no controller run made a decision: nothing to replay")
  path = []
  for j in range(num_decisions):
    values = [p[j] for p in paths if len(p) > j]
    path.append(float(np.mean(values)) if values else path[-1])
  return np.exp(np.asarray(path))


def rate_path_spread(runs: Sequence[dict]) -> dict:
  """How much the controller's rate paths differ across runs.

  Args:
    runs: the controller's run records.

  Returns:
    `log_rate_std_mean` and `log_rate_std_max`: the standard deviation
    (ddof=1) over runs of log(rate) at each decision that at least two runs
    reached, averaged and maximised over those decisions (None if none);
    `relative_spread_mean` = exp(log_rate_std_mean) - 1 (0.2: rates differ
    by about 20% between runs); `decisions` compared.
  """
  paths = _log_rates(runs)
  stds = []
  for j in range(max((len(p) for p in paths), default=0)):
    values = [p[j] for p in paths if len(p) > j]
    if len(values) >= 2:
      stds.append(float(np.std(values, ddof=1)))
  if not stds:
    return {
      "log_rate_std_mean": None,
      "log_rate_std_max": None,
      "relative_spread_mean": None,
      "decisions": 0,
    }
  mean = float(np.mean(stds))
  return {
    "log_rate_std_mean": mean,
    "log_rate_std_max": float(np.max(stds)),
    "relative_spread_mean": math.exp(mean) - 1.0,
    "decisions": len(stds),
  }


class ReplaySchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
  """A fixed path of rates, one per chunk of `interval` steps.

  Step s uses `rates[min(s // interval, len(rates) - 1)]`. Vectorised: a
  vector of steps gives a vector of rates.

  Args:
    rates: the rate of each chunk (> 0), e.g. `mean_rate_path`.
    interval: steps per chunk (the controller's decision interval).
  """

  def __init__(self, rates: Sequence[float], interval: int):
    super().__init__()
    self.rates = [float(r) for r in rates]
    self.interval = int(interval)
    assert self.rates and all(r > 0 for r in self.rates), "rates must be positive"
    assert self.interval > 0, f"interval must be positive, got {interval}"

  def __call__(self, step):
    step = tf.cast(step, tf.int64)
    index = tf.minimum(step // self.interval, len(self.rates) - 1)
    return tf.gather(tf.constant(self.rates, tf.float32), index)

  def get_config(self) -> dict:
    return {"rates": list(self.rates), "interval": self.interval}
