"""Online and adaptive learning-rate peers of the learned controller.

Every peer trains a trainee with the paper's protocol, `trainee.protocol` (Xu
et al. 2019: validate every `eval_interval` steps, stop at divergence by the
one rule, keep the best-validation weights, test them once), and returns the
dict of `trainee.run_training` (AutoLRS adds its search cost), so the
evaluation code treats every method alike. Peers:

* Fixed budgeted schedules of `schedules.build_schedule` ("cosine", "linear",
  "rex", "uba", "one_cycle", "exponential"), run on the given trainee.
* "reduce_on_plateau": Keras' `ReduceLROnPlateau` driven by the validation loss
  of each evaluation (`run_reduce_on_plateau`).
* "hypergradient": SGD-HD of Baydin et al. 2018, "Online Learning Rate
  Adaptation with Hypergradient Descent" (ICLR 2018, arXiv:1703.04782), with
  the rate kept above a floor (`HypergradientTrainee`, `run_hypergradient`).
* "refined": schedule refinement of Defazio et al. 2023, "When, Why and How
  Much? Adaptive Learning Rate Scheduling by Refinement" (arXiv:2310.07831),
  Algorithm 1: a first run records per-step gradient norms, a second run uses
  the schedule refined from them (`GradientNormRecordingTrainee`,
  `refined_schedule`, `run_refined`). It costs two training runs.
* "schedule_free": schedule-free SGD of Defazio et al. 2024, "The Road Less
  Scheduled" (arXiv:2405.15682), validated and tested at its average x
  (`schedule_free.run_schedule_free`).
* "autolrs": AutoLRS of Jin et al. 2021 (ICLR, arXiv:2105.10762): per stage,
  Bayesian optimisation of a constant rate over short trials scored by an
  exponential forecast (`autolrs.run_autolrs`); its result also has
  `trial_steps` (the search's cost in training steps) and `stages`.

All peers share one signature through `run_peer(name, trainee,
initial_learning_rate=..., num_steps=..., eval_interval=..., seed=...,
evaluate_test=...)`; `PEER_NAMES` lists the names. The adaptive peers that need
their own compiled step (hypergradient, refined) build a subclass trainee from
the given trainee's model config, optimizer config and data once, and cache it
per trainee, so runs over seeds and learning rates reuse its compiled graph.
`search_peer_learning_rate` tunes a peer's initial learning rate by the best
validation loss (never the test split).
"""

from __future__ import annotations

import itertools
import types
from collections.abc import Callable, Sequence
from typing import Any

import gin
import numpy as np
import scipy.ndimage
import tensorflow as tf

from lr_controller import checks
from lr_controller.errors import UserError
from lr_controller.judge import autolrs, baseline_search, schedule_free
from lr_controller.trainee import data as data_lib
from lr_controller.trainee import protocol, schedules
from lr_controller.trainee import trainee as trainee_lib

# Peers that are a fixed schedule of `schedules.build_schedule` of the same name.
FIXED_SCHEDULE_PEERS = ("cosine", "linear", "rex", "uba", "one_cycle", "exponential")
ADAPTIVE_PEERS = (
  "reduce_on_plateau",
  "hypergradient",
  "refined",
  "schedule_free",
  "autolrs",
)
PEER_NAMES = FIXED_SCHEDULE_PEERS + ADAPTIVE_PEERS

# Baydin et al.'s beta for SGD-HD and SGDN-HD (their run.sh, all three tasks).
DEFAULT_HYPERGRADIENT_LR = 1e-3


# ---------------------------------------------------------------------------
# Trainee subclasses with their own compiled step.


class _DerivedTrainee(trainee_lib.Trainee):
  """A trainee subclass built as a copy of another trainee's set-up (`from_trainee`)."""

  def _loss_and_gradients(
    self, images: tf.Tensor, labels: tf.Tensor
  ) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """The batch's mean loss and the gradients the optimizer applies.

    Mirrors `Trainee._train_step_impl`: the gradient is that of the mean
    cross-entropy plus the model's regularization losses. Missing gradients
    (variables the loss does not use) are zeros and sparse ones are densified.

    Returns:
      The mean cross-entropy (nats, without regularization) and one dense
      gradient per trainable variable.
    """
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      logits = self.model(images, training=True)
      loss = tf.reduce_mean(self._loss_fn(labels, logits))
      total = loss + tf.add_n(self.model.losses) if self.model.losses else loss
    grads = tape.gradient(total, variables)
    dense = [
      tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
      for g, v in zip(grads, variables)
    ]
    return loss, dense


class HypergradientTrainee(_DerivedTrainee):
  """A trainee whose learning rate follows hypergradient descent (SGD-HD).

  Baydin et al. 2018, Algorithm 4 (SGD-HD): at step t, with g_t the gradient
  of this step's batch at the current weights and g_{t-1} that of the previous
  step (flattened over all trainable variables; g_{-1} = 0),

    alpha_t = max(alpha_{t-1} + beta * g_t . g_{t-1}, min_learning_rate),
    theta_{t+1} = optimizer update of theta_t with gradient g_t at rate alpha_t.

  g_t . g_{t-1} is minus the derivative of the loss with respect to the
  previous rate, so this is gradient descent on the rate. The floor is ours:
  the public implementations let alpha drift to zero and below, which turns
  training into ascent. The update happens inside the compiled step, so the
  rate changes every step within a chunk; the rate argument the training loop
  feeds the step is ignored (the trainee has no schedule).

  With a momentum (or adaptive) optimizer the hypergradient still uses the raw
  gradients g_t . g_{t-1}, not the update direction: for plain SGD this is
  exactly SGD-HD; for SGD with momentum it is *not* the paper's SGDN-HD
  (which uses the derivative of the update, g_t . (g_{t-1} + mu v_{t-1})), nor
  Adam-HD for Adam. Gradients include the model's regularization losses and
  are taken before any clipping the optimizer applies.

  Args:
    model, optimizer, data: as for `Trainee`.
    hypergradient_lr: beta, the learning rate of the learning rate (>= 0;
      units of learning rate per squared gradient norm). Baydin et al. use
      1e-3 for SGD-HD.
    min_learning_rate: the floor of alpha (> 0).
    **kwargs: other `Trainee` arguments; `schedule` must be None.
  """

  def __init__(
    self,
    model: tf.keras.Model,
    optimizer: tf.keras.optimizers.Optimizer,
    data: data_lib.Data,
    hypergradient_lr: float = DEFAULT_HYPERGRADIENT_LR,
    min_learning_rate: float = 1e-6,
    **kwargs: Any,
  ):
    if kwargs.get("schedule") is not None:
      raise UserError("a hypergradient trainee adapts its own rate: no schedule")
    super().__init__(model, optimizer, data, **kwargs)
    # Created before the first call of the compiled step, which traces it.
    self._hypergradient_lr = tf.Variable(
      checks.non_negative("hypergradient_lr", hypergradient_lr),
      dtype=tf.float32,
      trainable=False,
      name="hypergradient_lr",
    )
    self._min_learning_rate = tf.Variable(
      trainee_lib.check_learning_rate(min_learning_rate),
      dtype=tf.float32,
      trainable=False,
      name="hypergradient_min_learning_rate",
    )
    self._previous_gradients = [
      tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="previous_grad")
      for v in self.model.trainable_variables
    ]

  @property
  def hypergradient_lr(self) -> float:
    """beta (assigning it never retraces the step)."""
    return float(self._hypergradient_lr.numpy())

  @hypergradient_lr.setter
  def hypergradient_lr(self, value: float) -> None:
    self._hypergradient_lr.assign(checks.non_negative("hypergradient_lr", value))

  @property
  def min_learning_rate(self) -> float:
    """The floor of the adapted rate (assigning it never retraces the step)."""
    return float(self._min_learning_rate.numpy())

  @min_learning_rate.setter
  def min_learning_rate(self, value: float) -> None:
    self._min_learning_rate.assign(trainee_lib.check_learning_rate(value))

  @property
  def previous_gradients(self) -> list[tf.Variable]:
    """g_{t-1}, one variable per trainable variable (zeros after `reset`)."""
    return self._previous_gradients

  def _train_step_impl(self, images, labels, learning_rate):
    """One SGD-HD step; returns the batch's mean loss (see the class docstring)."""
    del learning_rate  # The rate is the adapted one in the optimizer's variable.
    loss, grads = self._loss_and_gradients(images, labels)
    hypergradient = tf.add_n(
      [
        tf.reduce_sum(tf.cast(g, tf.float32) * tf.cast(p, tf.float32))
        for g, p in zip(grads, self._previous_gradients)
      ]
    )
    rate = self.optimizer.learning_rate
    rate.assign(
      tf.maximum(
        tf.cast(rate, tf.float32) + self._hypergradient_lr * hypergradient,
        self._min_learning_rate,
      )
    )
    self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
    for previous, g in zip(self._previous_gradients, grads):
      previous.assign(g)
    return loss

  def reset(
    self,
    seed: int,
    learning_rate: float,
    schedule: Callable[[tf.Tensor], tf.Tensor] | None = None,
  ) -> None:
    """`Trainee.reset` that also zeroes g_{t-1}; `learning_rate` is alpha_0."""
    if schedule is not None:
      raise UserError("a hypergradient trainee adapts its own rate: no schedule")
    super().reset(seed, learning_rate)
    for previous in self._previous_gradients:
      previous.assign(tf.zeros_like(previous))


class GradientNormRecordingTrainee(_DerivedTrainee):
  """A trainee that records the global gradient norm ||g_t||_2 of every step.

  The norm is over all trainable variables (`tf.linalg.global_norm`) of the
  gradient the optimizer applies, written inside the compiled step into a
  preallocated float32 variable [max_steps] at index t = steps since reset;
  steps beyond `max_steps` are trained but not recorded.

  Args:
    model, optimizer, data: as for `Trainee`.
    max_steps: how many steps can be recorded (>= 1).
    **kwargs: other `Trainee` arguments.
  """

  def __init__(
    self,
    model: tf.keras.Model,
    optimizer: tf.keras.optimizers.Optimizer,
    data: data_lib.Data,
    max_steps: int = 1000,
    **kwargs: Any,
  ):
    super().__init__(model, optimizer, data, **kwargs)
    self.max_steps = checks.integer("max_steps", max_steps)
    self._gradient_norms = tf.Variable(
      tf.zeros([self.max_steps], tf.float32), trainable=False, name="gradient_norms"
    )

  @property
  def gradient_norms(self) -> np.ndarray:
    """||g_t||_2 of the steps since reset (up to `max_steps`), float64 [steps]."""
    count = min(self.global_step, self.max_steps)
    return self._gradient_norms.numpy()[:count].astype(np.float64)

  def _train_step_impl(self, images, labels, learning_rate):
    """One optimizer step at `learning_rate` that also records ||g_t||_2."""
    self.optimizer.learning_rate.assign(learning_rate)
    loss, grads = self._loss_and_gradients(images, labels)
    norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in grads])
    index = self.step  # The loop counts the step after this call returns.
    if index < self.max_steps:
      self._gradient_norms.scatter_nd_update([[index]], [norm])
    self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
    return loss

  def reset(
    self,
    seed: int,
    learning_rate: float,
    schedule: Callable[[tf.Tensor], tf.Tensor] | None = None,
  ) -> None:
    """`Trainee.reset` that also clears the recorded norms."""
    super().reset(seed, learning_rate, schedule=schedule)
    self._gradient_norms.assign(tf.zeros_like(self._gradient_norms))


# ---------------------------------------------------------------------------
# ReduceLROnPlateau.


@gin.configurable(denylist=trainee_lib.RUN_ARGUMENTS)
def run_reduce_on_plateau(
  trainee: trainee_lib.Trainee,
  initial_learning_rate: float,
  num_steps: int,
  eval_interval: int = 10,
  factor: float = 0.1,
  patience: int = 5,
  min_delta: float = 1e-4,
  cooldown: int = 0,
  min_learning_rate: float = 1e-6,
  seed: int = 0,
  evaluate_test: bool = True,
) -> dict:
  """Trains with Keras' `ReduceLROnPlateau` on the validation loss.

  Keras' own callback (mode "min", monitor "val_loss") is driven with one
  "epoch" per evaluation, through a stand-in model whose `.optimizer` is the
  trainee's: after evaluation k with validation loss v_k, if
  v_k < best - min_delta it becomes the best and the wait count resets;
  otherwise (outside cooldown) the wait grows, and at `patience` non-improving
  evaluations in a row the rate becomes max(lr * factor, min_learning_rate)
  (only if lr > min_learning_rate), the wait resets and the cooldown counter
  is set to `cooldown`. Keras decrements that counter before testing it, so
  only the `cooldown - 1` evaluations right after a reduction go uncounted
  (cooldown 0 and 1 behave alike; PyTorch's scheduler skips `cooldown`). Keras
  also reduces at the `patience`-th bad evaluation where PyTorch waits for
  `patience + 1`. The new rate applies from the next chunk on (history rows
  show the rate each chunk used).

  Args:
    trainee: the trainee; it is reset (no schedule) and trained in place.
    initial_learning_rate: the first rate (> 0).
    num_steps: training steps.
    eval_interval: steps between evaluations.
    factor: multiplier of a reduction, in (0, 1).
    patience: non-improving evaluations before a reduction (>= 0; 0 reduces at
      every non-improving evaluation).
    min_delta: how much lower (nats) a validation loss must be to improve.
    cooldown: Keras' cooldown (see above; >= 0).
    min_learning_rate: the rate is never reduced below this.
    seed: seeds the initial weights.
    evaluate_test: test the best checkpoint at the end.

  Returns:
    The `trainee_lib.run_training` dict.
  """
  callback = tf.keras.callbacks.ReduceLROnPlateau(
    monitor="val_loss",
    factor=checks.between("factor", factor, 0, 1),
    patience=checks.integer("patience", patience, minimum=0),
    verbose=0,
    mode="min",
    min_delta=checks.non_negative("min_delta", min_delta),
    cooldown=checks.integer("cooldown", cooldown, minimum=0),
    min_lr=checks.non_negative("min_learning_rate", min_learning_rate),
  )
  trainee.reset(seed, initial_learning_rate, schedule=None)
  callback.set_model(types.SimpleNamespace(optimizer=trainee.optimizer))
  callback.on_train_begin()
  evaluation = itertools.count()

  def after_evaluation(row: dict) -> None:
    if row["val_loss"] is not None:  # None only once diverged: the run stops.
      callback.on_epoch_end(next(evaluation), {"val_loss": row["val_loss"]})

  return trainee_lib.run_training(
    trainee,
    num_steps=num_steps,
    eval_interval=eval_interval,
    evaluate_test=evaluate_test,
    progress=after_evaluation,
  )


# ---------------------------------------------------------------------------
# Hypergradient descent.


@gin.configurable(denylist=trainee_lib.RUN_ARGUMENTS)
def run_hypergradient(
  trainee: trainee_lib.Trainee,
  initial_learning_rate: float,
  num_steps: int,
  eval_interval: int = 10,
  hypergradient_lr: float = DEFAULT_HYPERGRADIENT_LR,
  min_learning_rate: float = 1e-6,
  seed: int = 0,
  evaluate_test: bool = True,
) -> dict:
  """Trains with SGD-HD (see `HypergradientTrainee`).

  Args:
    trainee: a `HypergradientTrainee`, or a trainee whose set-up is copied into
      a cached `HypergradientTrainee` (the given trainee is not trained).
    initial_learning_rate: alpha_0 (> 0).
    num_steps: training steps.
    eval_interval: steps between evaluations.
    hypergradient_lr: beta (>= 0).
    min_learning_rate: floor of alpha (> 0).
    seed: seeds the initial weights.
    evaluate_test: test the best checkpoint at the end.

  Returns:
    The `trainee_lib.run_training` dict; each history row's `lr` is the
    adapted rate of the chunk's last step.
  """
  hd = trainee_lib.derived_trainee(trainee, HypergradientTrainee)
  hd.hypergradient_lr = hypergradient_lr
  hd.min_learning_rate = min_learning_rate
  hd.reset(seed, initial_learning_rate)
  return trainee_lib.run_training(
    hd, num_steps=num_steps, eval_interval=eval_interval, evaluate_test=evaluate_test
  )


# ---------------------------------------------------------------------------
# Schedule refinement (Defazio et al. 2023).


def smooth_gradient_norms(
  gradient_norms: np.ndarray, smoothing_window: int
) -> np.ndarray:
  """Median-filters gradient norms as Defazio et al.'s code does.

  The window is made odd, w = 2 * (smoothing_window // 2) + 1; the sequence is
  padded at its end by 2w mirrored values (NumPy "reflect"), median-filtered
  with width w (`scipy.ndimage.median_filter`, edges repeated), and the
  padding is cut off. This is the padding given in the README of the paper's
  code release, so the last steps are not pulled towards the edge value.

  Args:
    gradient_norms: float [T] norms.
    smoothing_window: filter width in steps (<= 1: no smoothing).

  Returns:
    float64 [T] smoothed norms.
  """
  norms = np.asarray(gradient_norms, dtype=np.float64)
  width = 2 * (checks.integer("smoothing_window", smoothing_window, minimum=0) // 2) + 1
  if width == 1 or norms.size < 2:
    return norms.copy()
  pad = 2 * width
  padded = np.pad(norms, (0, pad), mode="reflect")
  return scipy.ndimage.median_filter(padded, size=width, mode="nearest")[:-pad]


def refined_learning_rates(
  gradient_norms: np.ndarray, peak_learning_rate: float, smoothing_window: int = 1
) -> np.ndarray:
  """Defazio et al. 2023, Algorithm 1 (SGD): the refined per-step learning rates.

  With g_t the smoothed norms (t = 1..T) and w_t = g_t^-2,

    eta_t = w_t * sum_{p = t+1..T} w_p,   eta <- peak * eta / max(eta),

  as in the authors' `find_closed_form_schedule`. The last step's rate is 0;
  constant norms give linear decay to zero, eta_t = peak * (T - t) / (T - 1).

  Args:
    gradient_norms: float [T] per-step gradient norms of a previous run
      (T >= 2, all positive and finite).
    peak_learning_rate: the largest rate of the result (> 0).
    smoothing_window: median-filter width in steps (see
      `smooth_gradient_norms`; <= 1 means none).

  Returns:
    float64 [T] learning rates; index s is the rate of step s (0-based).

  Raises:
    UserError: for fewer than two norms or a non-positive/non-finite norm.
  """
  peak = trainee_lib.check_learning_rate(peak_learning_rate)
  norms = np.asarray(gradient_norms, dtype=np.float64)
  if norms.ndim != 1 or norms.size < 2:
    raise UserError(f"need a vector of at least 2 gradient norms, got {norms.shape}")
  if not np.all(np.isfinite(norms)) or np.any(norms <= 0):
    raise UserError("gradient norms must be positive and finite")
  weights = smooth_gradient_norms(norms, smoothing_window) ** -2.0
  # tail[t] = sum_{p > t} w_p (0-based).
  tail = np.concatenate([np.cumsum(weights[::-1])[::-1][1:], [0.0]])
  rates = weights * tail
  return peak * rates / rates.max()


@tf.keras.utils.register_keras_serializable(package="lr_controller")
class TabulatedSchedule(schedules.LearningRateSchedule):
  """A schedule read from a table: lr(t) = learning_rates[clip(t, 0, T - 1)].

  Steps after the table keep its last rate. Vector steps are supported, so
  `Trainee` feeds a chunk's rates without retracing.
  """

  def __init__(self, learning_rates: Sequence[float], name: str | None = None):
    """Initializes the schedule.

    Args:
      learning_rates: the rate of steps 0, 1, ..., T - 1 (T >= 1, each finite
        and >= 0).
      name: optional name scope.

    Raises:
      UserError: for an empty table or a negative/non-finite rate.
    """
    super().__init__()
    values = np.asarray(learning_rates, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
      raise UserError("learning_rates must be a non-empty list of finite rates >= 0")
    self.learning_rates = [float(v) for v in values]
    self.name = name
    self._table = tf.constant(values, tf.float32)

  def __call__(self, step: Any) -> tf.Tensor:
    with tf.name_scope(self.name or "TabulatedSchedule"):
      last = len(self.learning_rates) - 1
      index = tf.clip_by_value(tf.cast(step, tf.int64), 0, last)
      return tf.gather(self._table, index)

  def get_config(self) -> dict[str, Any]:
    return {"learning_rates": list(self.learning_rates), "name": self.name}


def refined_schedule(
  gradient_norms: np.ndarray, peak_learning_rate: float, smoothing_window: int = 1
) -> TabulatedSchedule:
  """The refined schedule of `refined_learning_rates` as a Keras schedule."""
  return TabulatedSchedule(
    refined_learning_rates(gradient_norms, peak_learning_rate, smoothing_window),
    name="RefinedSchedule",
  )


def default_smoothing_window(num_steps: int) -> int:
  """Our default median-filter width, 5% of the run (not a value from the paper)."""
  return max(1, int(num_steps) // 20)


@gin.configurable(denylist=trainee_lib.RUN_ARGUMENTS)
def run_refined(
  trainee: trainee_lib.Trainee,
  initial_learning_rate: float,
  num_steps: int,
  eval_interval: int = 10,
  base_schedule: str = "linear",
  smoothing_window: int | None = None,
  seed: int = 0,
  evaluate_test: bool = True,
) -> dict:
  """Schedule refinement: a base run records gradient norms, a second run uses them.

  Costs two full training runs. Run 1 trains with `base_schedule` (peak
  `initial_learning_rate`) and records ||g_t||_2 per step; run 2 starts again
  from the same seed with `refined_schedule(norms, initial_learning_rate,
  smoothing_window)`. Both use the paper's protocol; only run 2's validation
  and test results are returned (run 1 is never tested), except that a
  diverged run 1 (no norms for the whole budget) is returned as the result.

  Args:
    trainee: a `GradientNormRecordingTrainee`, or a trainee whose set-up is
      copied into a cached one (the given trainee is not trained).
    initial_learning_rate: peak rate of both runs (> 0).
    num_steps: training steps of each run (>= 2).
    eval_interval: steps between evaluations.
    base_schedule: a `schedules.build_schedule` name for run 1 (the paper
      refines linear decay).
    smoothing_window: median-filter width in steps; None uses
      `default_smoothing_window(num_steps)`.
    seed: seeds the initial weights of both runs.
    evaluate_test: test run 2's best checkpoint at the end.

  Returns:
    The `trainee_lib.run_training` dict of run 2, whose `seconds` counts both
    runs.
  """
  num_steps = checks.integer("num_steps", num_steps, minimum=2)
  if smoothing_window is None:
    smoothing_window = default_smoothing_window(num_steps)
  recorder = trainee_lib.derived_trainee(
    trainee, GradientNormRecordingTrainee, max_steps=num_steps
  )
  recorder.reset(
    seed,
    initial_learning_rate,
    schedule=schedules.build_schedule(base_schedule, initial_learning_rate, num_steps),
  )
  first = trainee_lib.run_training(
    recorder, num_steps=num_steps, eval_interval=eval_interval, evaluate_test=False
  )
  norms = recorder.gradient_norms
  if first["diverged"] or norms.size < num_steps:
    return {**first, **protocol.finish(recorder, evaluate_test)}
  schedule = refined_schedule(norms, initial_learning_rate, smoothing_window)
  recorder.reset(seed, initial_learning_rate, schedule=schedule)
  second = trainee_lib.run_training(
    recorder,
    num_steps=num_steps,
    eval_interval=eval_interval,
    evaluate_test=evaluate_test,
  )
  second["seconds"] += first["seconds"]
  return second


# ---------------------------------------------------------------------------
# The registry.


def _fixed_schedule_peer(name: str) -> Callable[..., dict]:
  def run(
    trainee: trainee_lib.Trainee,
    initial_learning_rate: float,
    num_steps: int,
    eval_interval: int,
    seed: int,
    evaluate_test: bool = True,
  ) -> dict:
    trainee.reset(
      seed,
      initial_learning_rate,
      schedule=schedules.build_schedule(name, initial_learning_rate, num_steps),
    )
    return trainee_lib.run_training(
      trainee,
      num_steps=num_steps,
      eval_interval=eval_interval,
      evaluate_test=evaluate_test,
    )

  run.__name__ = f"run_{name}"
  run.__doc__ = (
    f"Trains with the fixed '{name}' schedule of `schedules.build_schedule`."
  )
  return run


def _adaptive_peer(function: Callable[..., dict]) -> Callable[..., dict]:
  def run(
    trainee: trainee_lib.Trainee,
    initial_learning_rate: float,
    num_steps: int,
    eval_interval: int,
    seed: int,
    evaluate_test: bool = True,
  ) -> dict:
    return function(
      trainee,
      initial_learning_rate=initial_learning_rate,
      num_steps=num_steps,
      eval_interval=eval_interval,
      seed=seed,
      evaluate_test=evaluate_test,
    )

  run.__name__ = function.__name__
  run.__doc__ = function.__doc__
  return run


# name -> fn(trainee, initial_learning_rate, num_steps, eval_interval, seed,
# evaluate_test=True) -> the `run_training` dict. These arguments
# (`trainee.RUN_ARGUMENTS`) are the caller's: the adaptive peers' configurables
# denylist them. Their other hyperparameters come from their defaults or gin
# bindings.
PEERS: dict[str, Callable[..., dict]] = {
  **{name: _fixed_schedule_peer(name) for name in FIXED_SCHEDULE_PEERS},
  "reduce_on_plateau": _adaptive_peer(run_reduce_on_plateau),
  "hypergradient": _adaptive_peer(run_hypergradient),
  "refined": _adaptive_peer(run_refined),
  "schedule_free": _adaptive_peer(schedule_free.run_schedule_free),
  "autolrs": _adaptive_peer(autolrs.run_autolrs),
}


def run_peer(
  name: str,
  trainee: trainee_lib.Trainee,
  initial_learning_rate: float,
  num_steps: int,
  eval_interval: int = 10,
  seed: int = 0,
  evaluate_test: bool = True,
) -> dict:
  """Runs peer `name` once with the paper's protocol.

  Fixed schedules, ReduceLROnPlateau and AutoLRS train `trainee` itself
  (reset with `seed`); hypergradient, refined and schedule_free train a
  cached derived trainee with the same set-up (see `trainee.derived_trainee`).

  Args:
    name: one of `PEER_NAMES`.
    trainee: the base trainee.
    initial_learning_rate: the peer's initial or peak rate (> 0).
    num_steps: training steps (the refined peer trains twice as many).
    eval_interval: steps between evaluations.
    seed: seeds the initial weights.
    evaluate_test: test the best-validation checkpoint at the end.

  Returns:
    The `trainee_lib.run_training` dict ("autolrs" adds `autolrs.EXTRA_KEYS`).

  Raises:
    UserError: for an unknown name or bad arguments.
  """
  if name not in PEERS:
    raise UserError(f"unknown peer {name!r}; known peers: {', '.join(PEER_NAMES)}")
  return PEERS[name](
    trainee,
    initial_learning_rate=trainee_lib.check_learning_rate(initial_learning_rate),
    num_steps=num_steps,
    eval_interval=eval_interval,
    seed=seed,
    evaluate_test=evaluate_test,
  )


def search_peer_learning_rate(
  name: str,
  trainee: trainee_lib.Trainee,
  learning_rates: Sequence[float],
  num_steps: int,
  eval_interval: int = 10,
  seed: int = 0,
) -> tuple[float, list[dict]]:
  """Tunes a peer's initial learning rate by the best validation loss.

  Each rate is run once with `seed` and without testing; the choice is
  `baseline_search.choose_best` (lowest best validation loss, converged runs
  preferred; ties go to the earlier rate).

  Args:
    name: one of `PEER_NAMES`.
    trainee: the base trainee.
    learning_rates: candidate initial rates (each > 0).
    num_steps: training steps per run.
    eval_interval: steps between evaluations.
    seed: seed of every run.

  Returns:
    The chosen rate and the runs, each a `run_training` dict (test fields
    None) with `initial_learning_rate` added, in the order of
    `learning_rates`.

  Raises:
    UserError: for no rates, a bad rate, or every run diverging before its
      first evaluation.
  """
  if isinstance(learning_rates, str) or not list(learning_rates):
    raise UserError(f"learning_rates must be a non-empty list, got {learning_rates!r}")
  runs = []
  for rate in learning_rates:
    rate = trainee_lib.check_learning_rate(rate)
    result = run_peer(
      name,
      trainee,
      initial_learning_rate=rate,
      num_steps=num_steps,
      eval_interval=eval_interval,
      seed=seed,
      evaluate_test=False,
    )
    runs.append({"initial_learning_rate": rate, **result})
  return baseline_search.choose_best(runs)["initial_learning_rate"], runs
