"""Hand-designed learning-rate schedules: the baselines for the learned controller.

Every schedule is a `tf.keras.optimizers.schedules.LearningRateSchedule`: call it
on a step (a Python number or an int/float tensor, also inside a `tf.function`,
e.g. `optimizer.iterations`) and it returns the learning rate as a float32
tensor of the same shape. Keras' `ExponentialDecay` is reused for the
exponential schedules, subclassed thinly to add argument checks and
consistent argument names; the budgeted decays (cosine, linear, REX, UBA) are
one shape with four closed forms (`_ShapedSchedule`), tested against Keras'
`CosineDecay` and `PolynomialDecay` where those exist.

Schedules, with t the step and T = `total_steps`:

* step decay, the baseline of Xu et al. 2019, "Learning an Adaptive Learning
  Rate Schedule" (arXiv:1909.09712): lr0 * factor ** floor(t / discount_step).
* cosine decay (Loshchilov & Hutter 2017, "SGDR"), optional linear warm-up.
* linear decay to zero, the schedule recommended by Defazio et al. 2023,
  "When, Why and How Much? Adaptive Learning Rate Scheduling by Refinement"
  (arXiv:2310.07831): lr0 * (1 - t / T), optional linear warm-up.
* REX, Chen et al. 2021, "REX: Revisiting Budgeted Training with an Improved
  Schedule" (arXiv:2107.04197).
* UBA, Tang et al. 2025, "Stepsize anything: A unified learning rate schedule
  for budgeted-iteration training" (Unified Budget-Aware, arXiv:2505.24452).
* OneCycle, Smith & Topin 2019, "Super-Convergence" (arXiv:1708.07120), with
  the step boundaries of PyTorch's `torch.optim.lr_scheduler.OneCycleLR`.
* continuous exponential decay, inverse square root (Vaswani et al. 2017,
  "Attention Is All You Need"; Raffel et al. 2020, T5) and a constant rate.

Budgeted schedules (cosine, linear, REX, UBA, OneCycle) clamp the step to
[0, T] (OneCycle to [0, T - 1], see `OneCycleSchedule`) and so stay at their
final value after the budget; the others only clamp negative steps to 0.

`build_schedule` is the factory the library calls with every argument (the
step-decay grid, the peers, the untuned schedules); `make_schedule` is the same
factory configured by gin, for the schedule a user picks (`bin/train_trainee`),
so its bindings reach that run alone. `schedule_values` tabulates a schedule
for plots and reports.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import gin
import numpy as np
import tensorflow as tf

from lr_controller import checks
from lr_controller.errors import UserError

LearningRateSchedule = tf.keras.optimizers.schedules.LearningRateSchedule

_serializable = tf.keras.utils.register_keras_serializable(package="lr_controller")

# ---------------------------------------------------------------------------
# Argument checks. Each raises a one-line UserError naming the bad value.


def _learning_rate(name: str, value: Any) -> float:
  """A positive finite learning rate."""
  return checks.positive(name, value, "a positive finite learning rate")


def _non_negative_learning_rate(name: str, value: Any) -> float:
  return checks.non_negative(name, value, "a non-negative finite learning rate")


def _positive(name: str, value: Any) -> float:
  return checks.positive(name, value, "positive")


def _positive_steps(name: str, value: Any) -> float:
  """A positive (possibly fractional) number of steps."""
  return checks.positive(name, value, "a positive number of steps")


def _int_steps(name: str, value: Any, minimum: int) -> int:
  """An integer number of steps >= minimum (integral floats are accepted)."""
  what = "a positive" if minimum == 1 else "a non-negative"
  return checks.integer(name, value, minimum, f"{what} integer number of steps")


def _warmup_steps(value: Any, total_steps: int) -> int:
  warmup = _int_steps("warmup_steps", value, minimum=0)
  if warmup >= total_steps:
    raise UserError(
      f"warmup_steps must be less than total_steps={total_steps}, got {warmup}"
    )
  return warmup


def _as_step(step: Any, upper: float | None = None) -> tf.Tensor:
  """The step as float64, clamped to [0, upper] (or [0, inf))."""
  t = tf.maximum(tf.cast(step, tf.float64), tf.constant(0.0, tf.float64))
  if upper is not None:
    t = tf.minimum(t, tf.constant(upper, tf.float64))
  return t


def _f32(value: tf.Tensor) -> tf.Tensor:
  return tf.cast(value, tf.float32)


# ---------------------------------------------------------------------------
# Schedules without a budget.


@_serializable
class StepDecaySchedule(tf.keras.optimizers.schedules.ExponentialDecay):
  """Step decay, the baseline of Xu et al. 2019.

  lr(t) = initial_learning_rate * factor ** floor(t / discount_step), i.e.
  Keras `ExponentialDecay` with `staircase=True`. Negative steps count as 0.
  Computed in float32 (exact boundaries for t < 2**24 steps).
  """

  def __init__(
    self,
    initial_learning_rate: float,
    discount_step: float,
    factor: float,
    name: str | None = None,
  ):
    """Initializes the schedule.

    Args:
      initial_learning_rate: learning rate for steps [0, discount_step).
      discount_step: steps between two decays (> 0).
      factor: multiplier applied at every decay (> 0, usually < 1).
      name: optional name scope.

    Raises:
      UserError: for a non-positive or non-finite argument.
    """
    super().__init__(
      initial_learning_rate=_learning_rate(
        "initial_learning_rate", initial_learning_rate
      ),
      decay_steps=_positive_steps("discount_step", discount_step),
      decay_rate=_positive("factor", factor),
      staircase=True,
      name=name,
    )

  @property
  def discount_step(self) -> float:
    return self.decay_steps

  @property
  def factor(self) -> float:
    return self.decay_rate

  def __call__(self, step: Any) -> tf.Tensor:
    return _f32(super().__call__(_as_step(step)))

  def get_config(self) -> dict[str, Any]:
    return {
      "initial_learning_rate": self.initial_learning_rate,
      "discount_step": self.decay_steps,
      "factor": self.decay_rate,
      "name": self.name,
    }


@_serializable
class ExponentialSchedule(tf.keras.optimizers.schedules.ExponentialDecay):
  """Continuous exponential decay (Keras `ExponentialDecay`, no staircase).

  lr(t) = initial_learning_rate * decay_rate ** (t / decay_steps); negative
  steps count as 0.
  """

  def __init__(
    self,
    initial_learning_rate: float,
    decay_steps: float,
    decay_rate: float,
    name: str | None = None,
  ):
    """Initializes the schedule.

    Args:
      initial_learning_rate: learning rate at step 0.
      decay_steps: steps over which the rate is multiplied by `decay_rate` (> 0).
      decay_rate: multiplier per `decay_steps` steps (> 0).
      name: optional name scope.

    Raises:
      UserError: for a non-positive or non-finite argument.
    """
    super().__init__(
      initial_learning_rate=_learning_rate(
        "initial_learning_rate", initial_learning_rate
      ),
      decay_steps=_positive_steps("decay_steps", decay_steps),
      decay_rate=_positive("decay_rate", decay_rate),
      staircase=False,
      name=name,
    )

  def __call__(self, step: Any) -> tf.Tensor:
    return _f32(super().__call__(_as_step(step)))

  def get_config(self) -> dict[str, Any]:
    return {
      "initial_learning_rate": self.initial_learning_rate,
      "decay_steps": self.decay_steps,
      "decay_rate": self.decay_rate,
      "name": self.name,
    }


@_serializable
class InverseSqrtSchedule(LearningRateSchedule):
  """Inverse square-root decay (Vaswani et al. 2017; T5's "rsqrt").

  With w = warmup_steps:
    lr(t) = initial_learning_rate * sqrt(w) / sqrt(max(t, w)),
  so the rate is `initial_learning_rate` up to step w and decays as 1/sqrt(t)
  after. With `linear_warmup`, steps t < w instead ramp linearly:
    lr(t) = warmup_start_learning_rate
            + (initial_learning_rate - warmup_start_learning_rate) * t / w.
  Negative steps count as 0.
  """

  def __init__(
    self,
    initial_learning_rate: float,
    warmup_steps: float,
    linear_warmup: bool = False,
    warmup_start_learning_rate: float = 0.0,
    name: str | None = None,
  ):
    """Initializes the schedule.

    Args:
      initial_learning_rate: peak learning rate, reached at step w.
      warmup_steps: w, steps before the 1/sqrt(t) decay starts (> 0).
      linear_warmup: ramp linearly up to the peak over the first w steps.
      warmup_start_learning_rate: learning rate at step 0 with `linear_warmup`.
      name: optional name scope.

    Raises:
      UserError: for a bad argument.
    """
    super().__init__()
    self.initial_learning_rate = _learning_rate(
      "initial_learning_rate", initial_learning_rate
    )
    self.warmup_steps = _positive_steps("warmup_steps", warmup_steps)
    self.linear_warmup = checks.boolean("linear_warmup", linear_warmup)
    self.warmup_start_learning_rate = _non_negative_learning_rate(
      "warmup_start_learning_rate", warmup_start_learning_rate
    )
    self.name = name

  def __call__(self, step: Any) -> tf.Tensor:
    with tf.name_scope(self.name or "InverseSqrtSchedule"):
      t = _as_step(step)
      w = self.warmup_steps
      lr0 = self.initial_learning_rate
      decayed = lr0 * math.sqrt(w) / tf.sqrt(tf.maximum(t, w))
      if self.linear_warmup:
        start = self.warmup_start_learning_rate
        warm = start + (lr0 - start) * t / w
        decayed = tf.where(t < w, warm, decayed)
      return _f32(decayed)

  def get_config(self) -> dict[str, Any]:
    return {
      "initial_learning_rate": self.initial_learning_rate,
      "warmup_steps": self.warmup_steps,
      "linear_warmup": self.linear_warmup,
      "warmup_start_learning_rate": self.warmup_start_learning_rate,
      "name": self.name,
    }


@_serializable
class ConstantSchedule(LearningRateSchedule):
  """A constant learning rate: lr(t) = initial_learning_rate."""

  def __init__(self, initial_learning_rate: float, name: str | None = None):
    """Initializes the schedule.

    Args:
      initial_learning_rate: the learning rate at every step.
      name: optional name scope.

    Raises:
      UserError: for a non-positive or non-finite learning rate.
    """
    super().__init__()
    self.initial_learning_rate = _learning_rate(
      "initial_learning_rate", initial_learning_rate
    )
    self.name = name

  def __call__(self, step: Any) -> tf.Tensor:
    with tf.name_scope(self.name or "ConstantSchedule"):
      return tf.fill(
        tf.shape(step), tf.constant(self.initial_learning_rate, tf.float32)
      )

  def get_config(self) -> dict[str, Any]:
    return {"initial_learning_rate": self.initial_learning_rate, "name": self.name}


# ---------------------------------------------------------------------------
# Budgeted schedules with optional linear warm-up.


class _BudgetMixin:
  """Shared arguments, checks and warm-up of budgeted schedules.

  With peak = initial_learning_rate, w = warmup_steps and T = total_steps, the
  step t is clamped to [0, T]; for t < w the rate ramps linearly
    lr(t) = warmup_start_learning_rate
            + (peak - warmup_start_learning_rate) * t / w,
  and for t >= w the decay runs over the remaining T - w steps with progress
  p = (t - w) / (T - w) in [0, 1], from peak (p = 0) to min_learning_rate
  (p = 1).
  """

  def _init_budget(
    self,
    initial_learning_rate: float,
    total_steps: int,
    min_learning_rate: float,
    warmup_steps: int,
    warmup_start_learning_rate: float,
  ) -> None:
    self.total_steps = _int_steps("total_steps", total_steps, minimum=1)
    peak = _learning_rate("initial_learning_rate", initial_learning_rate)
    self.min_learning_rate = _non_negative_learning_rate(
      "min_learning_rate", min_learning_rate
    )
    if self.min_learning_rate > peak:
      raise UserError(
        f"min_learning_rate must not exceed initial_learning_rate={peak}, "
        f"got {self.min_learning_rate}"
      )
    self.warmup_steps = _warmup_steps(warmup_steps, self.total_steps)
    self.warmup_start_learning_rate = _non_negative_learning_rate(
      "warmup_start_learning_rate", warmup_start_learning_rate
    )
    self.peak_learning_rate = peak

  @property
  def decay_duration(self) -> int:
    """Steps of the decay phase, T - w (> 0)."""
    return self.total_steps - self.warmup_steps

  def _budget_config(self) -> dict[str, Any]:
    return {
      "initial_learning_rate": self.peak_learning_rate,
      "total_steps": self.total_steps,
      "min_learning_rate": self.min_learning_rate,
      "warmup_steps": self.warmup_steps,
      "warmup_start_learning_rate": self.warmup_start_learning_rate,
      "name": self.name,
    }

  def _warmup_then(
    self, step: Any, decay: Callable[[tf.Tensor], tf.Tensor]
  ) -> tf.Tensor:
    """Warm-up for t < w, else `decay(t - w)`; float32.

    Args:
      step: the step (any shape, int or float).
      decay: maps steps since the end of warm-up (float64, in [0, T - w]) to
        the learning rate.
    """
    t = _as_step(step, upper=self.total_steps)
    w = self.warmup_steps
    if w == 0:
      return _f32(decay(t))
    start = self.warmup_start_learning_rate
    warm = start + (self.peak_learning_rate - start) * t / w
    decayed = decay(tf.maximum(t - w, 0.0))
    return tf.where(t < w, _f32(warm), _f32(decayed))


class _ShapedSchedule(_BudgetMixin, LearningRateSchedule):
  """A budgeted schedule min + (peak - min) * shape(p), computed in float64.

  Cosine, linear, REX and UBA are this one shape with their own closed form
  `shape(p)`, 1 at p = 0 and 0 at p = 1 (see `_BudgetMixin` for p and the
  warm-up).
  """

  def __init__(
    self,
    initial_learning_rate: float,
    total_steps: int,
    min_learning_rate: float = 0.0,
    warmup_steps: int = 0,
    warmup_start_learning_rate: float = 0.0,
    name: str | None = None,
  ):
    """Initializes the schedule.

    Args:
      initial_learning_rate: peak learning rate, at the end of warm-up.
      total_steps: T, steps of the whole schedule; the rate is
        `min_learning_rate` from step T on.
      min_learning_rate: final learning rate, in [0, initial_learning_rate].
      warmup_steps: w, steps of linear warm-up, in [0, T).
      warmup_start_learning_rate: learning rate at step 0 when w > 0.
      name: optional name scope.

    Raises:
      UserError: for a bad argument.
    """
    super().__init__()
    self._init_budget(
      initial_learning_rate,
      total_steps,
      min_learning_rate,
      warmup_steps,
      warmup_start_learning_rate,
    )
    self.initial_learning_rate = self.peak_learning_rate
    self.name = name

  def _shape(self, progress: tf.Tensor) -> tf.Tensor:
    """Maps progress p in [0, 1] (float64) to a fraction, 1 at p=0, 0 at p=1."""
    raise NotImplementedError

  def _decay(self, since_warmup: tf.Tensor) -> tf.Tensor:
    progress = since_warmup / float(self.decay_duration)
    low = self.min_learning_rate
    return low + (self.peak_learning_rate - low) * self._shape(progress)

  def __call__(self, step: Any) -> tf.Tensor:
    with tf.name_scope(self.name or type(self).__name__):
      return self._warmup_then(step, self._decay)

  def get_config(self) -> dict[str, Any]:
    return self._budget_config()


@_serializable
class CosineSchedule(_ShapedSchedule):
  """Cosine decay (Loshchilov & Hutter 2017), optional linear warm-up.

  After warm-up, with p = (t - w) / (T - w):
    lr = min_learning_rate
         + (initial_learning_rate - min_learning_rate) * (1 + cos(pi p)) / 2,
  Keras' `CosineDecay` with alpha = min_learning_rate / initial_learning_rate
  (tested against it).
  """

  def _shape(self, progress: tf.Tensor) -> tf.Tensor:
    return 0.5 * (1.0 + tf.cos(math.pi * progress))


@_serializable
class LinearSchedule(_ShapedSchedule):
  """Linear decay (Defazio et al. 2023), optional linear warm-up.

  After warm-up, with p = (t - w) / (T - w):
    lr = min_learning_rate + (initial_learning_rate - min_learning_rate) * (1 - p),
  which for w = 0 and min_learning_rate = 0 is lr0 * (1 - t / T); Keras'
  `PolynomialDecay` with power 1.
  """

  def _shape(self, progress: tf.Tensor) -> tf.Tensor:
    return 1.0 - progress


@_serializable
class RexSchedule(_ShapedSchedule):
  """REX (Chen et al. 2021), optional linear warm-up.

  After warm-up, with z = 1 - p and p = (t - w) / (T - w):
    lr = min_learning_rate
         + (initial_learning_rate - min_learning_rate) * z / (1/2 + z/2).

  Arguments are those of `CosineSchedule`.
  """

  def _shape(self, progress: tf.Tensor) -> tf.Tensor:
    z = 1.0 - progress
    return z / (0.5 + 0.5 * z)


@_serializable
class UbaSchedule(_ShapedSchedule):
  """UBA, the Unified Budget-Aware schedule (Tang et al. 2025), warm-up optional.

  After warm-up, with c = 1 + cos(pi p) and p = (t - w) / (T - w):
    lr = min_learning_rate + (initial_learning_rate - min_learning_rate)
         * 2 c / (2 phi + (2 - phi) c).
  The fraction is 1 at p = 0 (c = 2) and 0 at p = 1 (c = 0); its denominator is
  positive for every phi > 0. phi = 2 gives 2c / 4 = (1 + cos(pi p)) / 2, i.e.
  cosine decay; phi < 2 keeps the rate high for longer, phi > 2 decays sooner.
  (Formula as specified for this project, not re-derived from the paper.)
  """

  def __init__(
    self,
    initial_learning_rate: float,
    total_steps: int,
    phi: float = 1.0,
    min_learning_rate: float = 0.0,
    warmup_steps: int = 0,
    warmup_start_learning_rate: float = 0.0,
    name: str | None = None,
  ):
    """Initializes the schedule.

    Args:
      initial_learning_rate: peak learning rate, at the end of warm-up.
      total_steps: T, steps of the whole schedule.
      phi: the UBA shape parameter (> 0); 2 is cosine decay.
      min_learning_rate: final learning rate, in [0, initial_learning_rate].
      warmup_steps: w, steps of linear warm-up, in [0, T).
      warmup_start_learning_rate: learning rate at step 0 when w > 0.
      name: optional name scope.

    Raises:
      UserError: for a bad argument.
    """
    self.phi = _positive("phi", phi)
    super().__init__(
      initial_learning_rate,
      total_steps,
      min_learning_rate=min_learning_rate,
      warmup_steps=warmup_steps,
      warmup_start_learning_rate=warmup_start_learning_rate,
      name=name,
    )

  def _shape(self, progress: tf.Tensor) -> tf.Tensor:
    c = 1.0 + tf.cos(math.pi * progress)
    return 2.0 * c / (2.0 * self.phi + (2.0 - self.phi) * c)

  def get_config(self) -> dict[str, Any]:
    return {**super().get_config(), "phi": self.phi}


@_serializable
class OneCycleSchedule(LearningRateSchedule):
  """OneCycle (Smith & Topin 2019) exactly as PyTorch's `OneCycleLR` computes it.

  With max_lr = initial_learning_rate, initial_lr = max_lr / div_factor and
  min_lr = initial_lr / final_div_factor, the phases are (end steps are floats,
  as in PyTorch):
    two-phase:   [0, a] initial_lr -> max_lr, [a, T - 1] max_lr -> min_lr,
    three_phase: [0, a] initial_lr -> max_lr, [a, b] max_lr -> initial_lr,
                 [b, T - 1] initial_lr -> min_lr,
  with a = pct_start * T - 1 and b = 2 * pct_start * T - 2. A step t belongs to
  the first phase whose end step is >= t (else to the last), pct =
  (t - phase_start) / (phase_end - phase_start), and the rate is
    cos:    end + (start - end) / 2 * (1 + cos(pi pct)),
    linear: start + (end - start) * pct.
  The step is clamped to [0, T - 1]: PyTorch's last training step is T - 1,
  so the rate stays at min_lr afterwards (PyTorch evaluates step T with
  pct > 1, slightly above min_lr, but never trains with it).
  """

  def __init__(
    self,
    initial_learning_rate: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
    name: str | None = None,
  ):
    """Initializes the schedule.

    Args:
      initial_learning_rate: max_lr, the peak learning rate.
      total_steps: T, steps of the cycle.
      pct_start: fraction of T spent increasing the rate, in (0, 1); the
        first phase must last more than one step (pct_start * T > 1).
      anneal_strategy: "cos" or "linear".
      div_factor: initial_lr = max_lr / div_factor (> 0).
      final_div_factor: min_lr = initial_lr / final_div_factor (> 0).
      three_phase: use PyTorch's three-phase variant.
      name: optional name scope.

    Raises:
      UserError: for a bad argument.
    """
    super().__init__()
    self.initial_learning_rate = _learning_rate(
      "initial_learning_rate", initial_learning_rate
    )
    self.total_steps = _int_steps("total_steps", total_steps, minimum=1)
    pct = checks.between("pct_start", pct_start, 0.0, 1.0)
    self.pct_start = pct
    if anneal_strategy not in ("cos", "linear"):
      raise UserError(
        f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}"
      )
    self.anneal_strategy = anneal_strategy
    self.div_factor = _positive("div_factor", div_factor)
    self.final_div_factor = _positive("final_div_factor", final_div_factor)
    self.three_phase = checks.boolean("three_phase", three_phase)
    self.name = name

    max_lr = self.initial_learning_rate
    initial_lr = max_lr / self.div_factor
    min_lr = initial_lr / self.final_div_factor
    total = self.total_steps
    # (end_step, start_lr, end_lr), the same float arithmetic as PyTorch.
    if three_phase:
      phases = [
        (float(pct * total) - 1, initial_lr, max_lr),
        (float(2 * pct * total) - 2, max_lr, initial_lr),
        (total - 1, initial_lr, min_lr),
      ]
    else:
      phases = [
        (float(pct * total) - 1, initial_lr, max_lr),
        (total - 1, max_lr, min_lr),
      ]
    start_step = 0.0
    self._phases: list[tuple[float, float, float, float]] = []
    for end_step, start_lr, end_lr in phases:
      if not end_step > start_step:
        raise UserError(
          f"pct_start={pct_start!r} gives an empty OneCycle phase for "
          f"total_steps={total}{' with three_phase' if three_phase else ''}"
        )
      self._phases.append((start_step, float(end_step), start_lr, end_lr))
      start_step = float(end_step)

  def _anneal(self, start: float, end: float, pct: tf.Tensor) -> tf.Tensor:
    if self.anneal_strategy == "cos":
      return end + (start - end) / 2.0 * (tf.cos(math.pi * pct) + 1.0)
    return (end - start) * pct + start

  def __call__(self, step: Any) -> tf.Tensor:
    with tf.name_scope(self.name or "OneCycleSchedule"):
      t = _as_step(step, upper=self.total_steps - 1)
      result = None
      # The last phase is the default; earlier phases win when t <= their end.
      for start_step, end_step, start_lr, end_lr in reversed(self._phases):
        pct = (t - start_step) / (end_step - start_step)
        value = self._anneal(start_lr, end_lr, pct)
        result = value if result is None else tf.where(t <= end_step, value, result)
      return _f32(result)

  def get_config(self) -> dict[str, Any]:
    return {
      "initial_learning_rate": self.initial_learning_rate,
      "total_steps": self.total_steps,
      "pct_start": self.pct_start,
      "anneal_strategy": self.anneal_strategy,
      "div_factor": self.div_factor,
      "final_div_factor": self.final_div_factor,
      "three_phase": self.three_phase,
      "name": self.name,
    }


# ---------------------------------------------------------------------------
# Factory. Each constructor takes (initial_learning_rate, total_steps) and the
# schedule's own keyword arguments (a class's `name` aside); `build_schedule`
# rejects any other keyword.


def _step_decay(
  initial_learning_rate: float,
  total_steps: int,
  discount_step: float | None = None,
  factor: float = 0.1,
) -> StepDecaySchedule:
  """Step decay; `discount_step` defaults to ceil(T / 3) (two decays in T)."""
  if discount_step is None:
    discount_step = math.ceil(total_steps / 3)
  return StepDecaySchedule(initial_learning_rate, discount_step, factor)


def _exponential(
  initial_learning_rate: float,
  total_steps: int,
  decay_steps: float | None = None,
  decay_rate: float = 0.1,
) -> ExponentialSchedule:
  """Exponential decay; `decay_steps` defaults to T (rate * lr0 at step T)."""
  if decay_steps is None:
    decay_steps = total_steps
  return ExponentialSchedule(initial_learning_rate, decay_steps, decay_rate)


def _inverse_sqrt(
  initial_learning_rate: float,
  total_steps: int,
  warmup_steps: float | None = None,
  linear_warmup: bool = False,
  warmup_start_learning_rate: float = 0.0,
) -> InverseSqrtSchedule:
  """Inverse square root; `warmup_steps` defaults to ceil(T / 10)."""
  if warmup_steps is None:
    warmup_steps = math.ceil(total_steps / 10)
  return InverseSqrtSchedule(
    initial_learning_rate,
    warmup_steps,
    linear_warmup=linear_warmup,
    warmup_start_learning_rate=warmup_start_learning_rate,
  )


def _constant(initial_learning_rate: float, total_steps: int) -> ConstantSchedule:
  del total_steps  # A constant rate has no budget.
  return ConstantSchedule(initial_learning_rate)


SCHEDULES: dict[str, Callable[..., LearningRateSchedule]] = {
  "step_decay": _step_decay,
  # Budgeted schedules take (initial_learning_rate, total_steps) themselves.
  "cosine": CosineSchedule,
  "linear": LinearSchedule,
  "rex": RexSchedule,
  "uba": UbaSchedule,
  "one_cycle": OneCycleSchedule,
  "exponential": _exponential,
  "inverse_sqrt": _inverse_sqrt,
  "constant": _constant,
}


def schedule_keywords(name: str) -> list[str]:
  """The keyword arguments `build_schedule` accepts for schedule `name`.

  Args:
    name: a key of `SCHEDULES`.

  Returns:
    The schedule's own keywords (besides initial_learning_rate, total_steps).

  Raises:
    UserError: for an unknown schedule name.
  """
  if not isinstance(name, str) or name not in SCHEDULES:
    raise UserError(
      f"unknown schedule {name!r}; known schedules: {', '.join(sorted(SCHEDULES))}"
    )
  parameters = inspect.signature(SCHEDULES[name]).parameters
  return [
    p for p in parameters if p not in ("initial_learning_rate", "total_steps", "name")
  ]


def build_schedule(
  name: str,
  initial_learning_rate: float,
  total_steps: int,
  **kwargs: Any,
) -> tf.keras.optimizers.schedules.LearningRateSchedule:
  """Builds the learning-rate schedule `name` (no gin: the caller sets everything).

  Keywords per schedule (defaults in brackets; T = total_steps):
    step_decay: discount_step [ceil(T / 3) steps], factor [0.1].
    cosine, linear, rex: min_learning_rate [0], warmup_steps [0 steps],
      warmup_start_learning_rate [0].
    uba: phi [1.0] and the keywords of cosine.
    one_cycle: pct_start [0.3], anneal_strategy ['cos'], div_factor [25],
      final_div_factor [1e4], three_phase [False].
    exponential: decay_steps [T steps], decay_rate [0.1].
    inverse_sqrt: warmup_steps [ceil(T / 10) steps], linear_warmup [False],
      warmup_start_learning_rate [0].
    constant: none.

  Args:
    name: one of `SCHEDULES`.
    initial_learning_rate: the peak or initial learning rate (lr0, lr_max,
      OneCycle's max_lr).
    total_steps: T, the training budget in steps; checked for every schedule,
      used by the budgeted ones and for defaults.
    **kwargs: the schedule's own keywords, listed above.

  Returns:
    The schedule, a `LearningRateSchedule` returning float32.

  Raises:
    UserError: for an unknown name or keyword, or a bad value.
  """
  keywords = schedule_keywords(name)
  unknown = sorted(set(kwargs) - set(keywords))
  if unknown:
    raise UserError(
      f"unknown keyword {', '.join(unknown)} for schedule {name!r}; "
      f"accepted: {', '.join(keywords) or 'none'}"
    )
  _learning_rate("initial_learning_rate", initial_learning_rate)
  total_steps = _int_steps("total_steps", total_steps, minimum=1)
  return SCHEDULES[name](initial_learning_rate, total_steps, **kwargs)


@gin.configurable
def make_schedule(
  name: str = "step_decay",
  initial_learning_rate: float = 0.01,
  total_steps: int = 1000,
  **kwargs: Any,
) -> tf.keras.optimizers.schedules.LearningRateSchedule:
  """The schedule a user picks with gin: `build_schedule` of its bindings.

  Called by `fixed_schedule_runs.train_with_schedule` (`bin/train_trainee`)
  without arguments, so every binding (`make_schedule.name = 'cosine'`,
  `make_schedule.total_steps = %NUM_STEPS`, a schedule's own keyword such as
  `make_schedule.phi = 2.0`) takes effect there. The library's other
  schedules (the step-decay grid, the peers, the untuned schedules) come from
  `build_schedule`, which gin does not reach.

  Args:
    name, initial_learning_rate, total_steps, **kwargs: as for
      `build_schedule`.

  Returns:
    The schedule.

  Raises:
    UserError: as `build_schedule`.
  """
  return build_schedule(name, initial_learning_rate, total_steps, **kwargs)


def schedule_values(schedule: Callable[[Any], Any], num_steps: int) -> np.ndarray:
  """The learning rate at steps 0, 1, ..., num_steps - 1.

  Schedules that accept a vector of steps (all of this module's) are evaluated
  in one call; others (e.g. Keras `CosineDecay` with warm-up, which uses
  `tf.cond`) step by step in a `tf.function`.

  Args:
    schedule: a `LearningRateSchedule` or any callable step -> learning rate.
    num_steps: number of steps to tabulate (>= 0).

  Returns:
    float64 array of shape [num_steps] holding learning rates.

  Raises:
    UserError: for a negative or non-integer `num_steps`.
  """
  n = _int_steps("num_steps", num_steps, minimum=0)
  if n == 0:
    return np.zeros([0], np.float64)
  steps = tf.range(n, dtype=tf.int64)
  try:
    values = np.asarray(schedule(steps), dtype=np.float64)
    if values.shape == (n,):
      return values
  except (ValueError, TypeError, tf.errors.OpError):
    pass

  @tf.function
  def one_by_one(all_steps: tf.Tensor) -> tf.Tensor:
    return tf.map_fn(
      lambda s: tf.cast(schedule(s), tf.float32),
      all_steps,
      fn_output_signature=tf.float32,
    )

  return one_by_one(steps).numpy().astype(np.float64)
