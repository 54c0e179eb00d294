"""The protocol every method is judged by: divergence, best checkpoint, one test.

Xu et al. 2019 (Sec. 4) validate every few steps, keep the weights of the
lowest validation loss and test those once. The learned controller (the
environment, and the callback in a user's `fit`), step decay, every fixed and
adaptive peer and AutoLRS all follow this module, so a difference in a
results table belongs to the method, not to the harness.

The rule, stated once:

* Divergence. A run has diverged when a chunk's mean training loss is not
  finite or above `max_train_loss` (nats; default 1e3, where a uniform guess
  over 10 classes costs 2.3), or when a validation loss is not finite or above
  `max_val_loss_ratio` times the run's first validation loss (default 4; None
  drops this part). A diverged run stops: it takes no further step, its later
  losses are never looked at, and none of its weights from then on can become
  the best checkpoint. The first validation is of the initial weights: the
  environment and the callback validate before their first decision, and
  `trainee.run_training` before its first step.
* Best checkpoint. Every validation of a run that has not diverged offers
  its weights; the lowest finite validation loss is kept (the earliest of
  equal ones), the initial weights included.
* Test. At the end of the run (reached or diverged) the best checkpoint is
  restored and evaluated once on the test split (`finish`); a run without a
  finite checkpoint has no test result.

`DivergenceRule` holds the two bounds (defaults `MAX_TRAIN_LOSS` and
`MAX_VAL_LOSS_RATIO`, the one copy of them), `RunMonitor` applies the rule
and keeps the best checkpoint for one run, and `finish` restores and tests.
The library's trainees take their rule from the gin-configurable
`trainee.divergence_rule` (bind `divergence_rule.max_val_loss_ratio = 3.0`);
the Keras callback, which needs no gin, takes the same two bounds as
constructor arguments with these defaults. This module needs neither gin nor
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from lr_controller import checks
from lr_controller.errors import UserError

# A chunk's mean training loss above this (nats) is divergence.
MAX_TRAIN_LOSS = 1e3
# A validation loss above this multiple of the run's first one is divergence.
MAX_VAL_LOSS_RATIO = 4.0


def _finite_or_none(value: Any) -> Any:
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


@dataclasses.dataclass(frozen=True)
class DivergenceRule:
  """When a run has diverged (see the module docstring).

  Attributes:
    max_train_loss: a chunk's mean training loss above this (nats, > 0;
      inf: only a non-finite one) is divergence.
    max_val_loss_ratio: a validation loss above this multiple (> 1) of the
      run's first validation loss is divergence; None: only a non-finite one.

  Raises:
    UserError: for a bound that is not a number of the right range.
  """

  max_train_loss: float = MAX_TRAIN_LOSS
  max_val_loss_ratio: float | None = MAX_VAL_LOSS_RATIO

  def __post_init__(self):
    bound = self.max_train_loss
    if isinstance(bound, bool) or bound != math.inf:  # inf: only a non-finite loss.
      bound = checks.positive("max_train_loss", bound, "a number > 0 (or inf)")
    object.__setattr__(self, "max_train_loss", float(bound))
    ratio = self.max_val_loss_ratio
    if ratio is not None:
      ratio = checks.between(
        "max_val_loss_ratio", ratio, 1, math.inf, "a finite number above 1 or None"
      )
      object.__setattr__(self, "max_val_loss_ratio", ratio)

  def train_loss_diverged(self, train_loss: float) -> bool:
    """Whether a chunk's mean training loss (nats) means divergence."""
    return not math.isfinite(train_loss) or train_loss > self.max_train_loss

  def val_loss_diverged(self, val_loss: float, first_val_loss: float) -> bool:
    """Whether a validation loss (nats) means divergence, given the run's first."""
    if not math.isfinite(val_loss):
      return True
    ratio = self.max_val_loss_ratio
    return ratio is not None and val_loss > ratio * first_val_loss

  def describe(self) -> str:
    """The rule in one sentence (for reports)."""
    val = (
      "a validation loss is not finite"
      if self.max_val_loss_ratio is None
      else f"a validation loss is not finite or above {self.max_val_loss_ratio:g} "
      "x the run's first (that of its initial weights)"
    )
    return (
      "A run diverges, and stops, when a chunk's mean training loss is not "
      f"finite or above {self.max_train_loss:g} nats, or when {val}; its best "
      "checkpoint is the one kept before."
    )


class RunMonitor:
  """One run under the protocol: applies the rule, keeps the best checkpoint.

  Show it every chunk's training loss (`observe_training`) and every
  validation loss (`observe_validation`); it says when the run diverged and
  keeps the state of the lowest validation loss.

  Args:
    rule: the divergence rule.
    snapshot: returns a copy of the run's state (its weights); None keeps
      only the best loss and step, not the state.
    load: puts such a copy back.
  """

  def __init__(
    self,
    rule: DivergenceRule,
    snapshot: Callable[[], Any] | None = None,
    load: Callable[[Any], None] | None = None,
  ):
    if not isinstance(rule, DivergenceRule):
      raise UserError(f"expected a DivergenceRule, got {type(rule).__name__}")
    if (snapshot is None) != (load is None):
      raise ValueError("give both snapshot and load, or neither")
    self.rule = rule
    self._snapshot, self._load = snapshot, load
    self.start()

  def start(self) -> None:
    """Forgets everything: a new run."""
    self.diverged = False
    self.first_val_loss: float | None = None
    self.best_val_loss = math.inf
    self.best_step: int | None = None
    self._state = None

  def observe_training(self, train_loss: float | None) -> bool:
    """Applies the rule to a chunk's mean training loss (None: unknown).

    Returns:
      Whether the run has diverged (now or before).
    """
    if train_loss is not None and self.rule.train_loss_diverged(float(train_loss)):
      self.diverged = True
    return self.diverged

  def observe_validation(self, val_loss: float, step: int) -> bool:
    """Applies the rule to a validation loss and offers the checkpoint.

    The run's first validation loss becomes the reference of the ratio. A
    run that has not diverged, now or before, offers its current state as
    the best checkpoint if `val_loss` is the lowest so far.

    Args:
      val_loss: the validation loss (nats).
      step: the run's step.

    Returns:
      Whether the run has diverged (now or before).
    """
    if self.diverged:
      return True
    val_loss = float(val_loss)
    if self.first_val_loss is None:
      self.first_val_loss = val_loss
    if self.rule.val_loss_diverged(val_loss, self.first_val_loss):
      self.diverged = True
      return True
    if val_loss < self.best_val_loss:
      self.best_val_loss, self.best_step = val_loss, int(step)
      if self._snapshot is not None:
        self._state = self._snapshot()
    return False

  def restore_best(self) -> bool:
    """Loads the best state; False if there was none (or none was kept)."""
    if self._state is None:
      return False
    self._load(self._state)
    return True


class MonitoredRun:
  """The protocol's state of a run, read from its `monitor` (a `RunMonitor`).

  The one definition of `rule`, `diverged`, `first_val_loss`, `best_val_loss`
  and `best_step` for every trainee (`trainee.Trainee`,
  `toy_problems.NoisyQuadraticTrainee`, the tests' scripted trainees).
  """

  monitor: RunMonitor

  @property
  def rule(self) -> DivergenceRule:
    """The run's divergence rule."""
    return self.monitor.rule

  @property
  def diverged(self) -> bool:
    """Whether the run diverged (`protocol`); cleared by `reset`."""
    return self.monitor.diverged

  @diverged.setter
  def diverged(self, value: bool) -> None:
    # A restored snapshot (AutoLRS's trials) puts its flag back.
    self.monitor.diverged = bool(value)

  @property
  def first_val_loss(self) -> float | None:
    """The run's first validation loss, the rule's reference (None before any)."""
    return self.monitor.first_val_loss

  @property
  def best_val_loss(self) -> float:
    """Lowest validation loss of this run so far (inf before any)."""
    return self.monitor.best_val_loss

  @property
  def best_step(self) -> int | None:
    """Step of `best_val_loss` (None before any)."""
    return self.monitor.best_step


def finish(run: Any, evaluate_test: bool = True) -> dict:
  """Ends a run by the protocol: restores its best checkpoint and tests it once.

  Args:
    run: a `trainee.TraineeRun` (its `restore_best`, `evaluate`, `best_step`,
      `best_val_loss`, `diverged`, `global_step`).
    evaluate_test: restore and test the best checkpoint (a search skips
      both, and the run's weights stay as training left them).

  Returns:
    A JSON-ready dict: `test_loss` and `test_accuracy` (None if not asked or
    no finite checkpoint existed), `best_step`, `best_val_loss` (None before
    any), `diverged`, `steps_done`.
  """
  test_loss = test_accuracy = None
  if evaluate_test and run.restore_best():
    test = run.evaluate("test")
    test_loss, test_accuracy = test.loss, test.accuracy
  return {
    "test_loss": _finite_or_none(test_loss),
    "test_accuracy": _finite_or_none(test_accuracy),
    "best_step": run.best_step,
    "best_val_loss": _finite_or_none(run.best_val_loss),
    "diverged": bool(run.diverged),
    "steps_done": run.global_step,
  }
