"""Schedule-free SGD as a peer of the learned controller.

Defazio et al. 2024, "The Road Less Scheduled" (arXiv:2405.15682; the
self-tuning winner of AlgoPerf 2024), Sec. 2 and their SGD algorithm: with
gamma the base learning rate, beta in [0, 1] and step t = 1, 2, ...,

  gamma_t = gamma * min(1, t / warmup_steps)     (linear warm-up; 0 = none)
  y_t     = (1 - beta) z_t + beta x_t            (where gradients are taken)
  z_{t+1} = z_t - gamma_t * grad f(y_t)          (the SGD sequence)
  c_{t+1} = gamma_t^2 / sum_{i <= t} gamma_i^2   (the paper's warm-up weighting)
  x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}  (a weighted average of z)

from x_1 = z_1 = the initial weights. There is no schedule: the rate stays at
gamma after warm-up, and the average x is the point to evaluate. (The
authors' code weights by max_{i <= t} gamma_i^2 instead of gamma_t^2; the two
agree for a warm-up followed by a constant rate.)

`ScheduleFreeSGD` is a Keras 2 optimizer. During training the model's
trainable variables hold y (so Keras computes gradients there); the optimizer
keeps z and x as slots. `swap_to_x(variables)` writes x into the variables
for validation, testing or export; `swap_to_y(variables)` writes back
y = (1 - beta) z + beta x, bit for bit the value training left.
`ScheduleFreeTrainee` is a `trainee.Trainee` that validates, tests and keeps
its best-validation checkpoint at x, and `run_schedule_free` is the peer.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gin
import numpy as np
import tensorflow as tf

from lr_controller import checks
from lr_controller.errors import UserError
from lr_controller.trainee import data as data_lib
from lr_controller.trainee import trainee as trainee_lib

# The paper's beta for SGD (their default "momentum").
DEFAULT_BETA = 0.9
# Warm-up length as a fraction of the run (our choice for the peer; the paper
# warms up as the schedules it compares against do).
DEFAULT_WARMUP_FRACTION = 0.05


def _check_beta(beta: Any) -> float:
  return checks.between("beta", beta, 0, 1, closed=True)


def _check_warmup_steps(warmup_steps: Any) -> int:
  return checks.integer("warmup_steps", warmup_steps, minimum=0)


@tf.keras.utils.register_keras_serializable(package="lr_controller")
class ScheduleFreeSGD(tf.keras.optimizers.Optimizer):
  """Schedule-free SGD (Defazio et al. 2024), see the module docstring.

  The model's variables hold y while training; call `swap_to_x` before
  evaluating and `swap_to_y` before training again (`apply_gradients` fails
  while they hold x). Before the first step x = y = z = the variables, so both
  swaps are no-ops then. Only trainable variables are averaged: batch-norm
  statistics gathered at y are not recomputed at x. Rates and weights are
  float32 scalars; `beta` and `warmup_steps` are variables, so changing them
  never retraces a compiled step.

  Args:
    learning_rate: gamma, the rate after warm-up (a float > 0, not a schedule;
      assign `learning_rate` to change it).
    beta: interpolation between z (0) and x (1) where gradients are taken;
      beta = 0 gives SGD on z with x its weighted average.
    warmup_steps: length of the linear warm-up in steps (0: none).
    clipnorm, clipvalue, global_clipnorm: Keras gradient clipping.
    name: the optimizer's name.
    **kwargs: other Keras optimizer arguments; weight decay and EMA are
      rejected (they would act on y, not on the schedule-free sequences).

  Raises:
    UserError: for a bad rate, beta, warm-up, weight decay or EMA.
  """

  def __init__(
    self,
    learning_rate: float = 1.0,
    beta: float = DEFAULT_BETA,
    warmup_steps: int = 0,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    name: str = "ScheduleFreeSGD",
    **kwargs: Any,
  ):
    if kwargs.pop("weight_decay", None) is not None:
      raise UserError("ScheduleFreeSGD has no weight decay")
    if kwargs.pop("use_ema", False):
      raise UserError("ScheduleFreeSGD keeps its own average (x): no EMA")
    kwargs.pop("jit_compile", None)
    super().__init__(
      name=name,
      weight_decay=None,
      clipnorm=clipnorm,
      clipvalue=clipvalue,
      global_clipnorm=global_clipnorm,
      use_ema=False,
      jit_compile=False,
      **kwargs,
    )
    if isinstance(learning_rate, tf.keras.optimizers.schedules.LearningRateSchedule):
      raise UserError("ScheduleFreeSGD takes a float learning rate, not a schedule")
    self._learning_rate = self._build_learning_rate(
      trainee_lib.check_learning_rate(learning_rate)
    )
    with tf.init_scope():
      # Hyperparameters: variables, but not optimizer state (`variables`).
      self._beta = tf.Variable(
        _check_beta(beta), dtype=tf.float32, trainable=False, name="beta"
      )
      self._warmup_steps = tf.Variable(
        float(_check_warmup_steps(warmup_steps)),
        dtype=tf.float32,
        trainable=False,
        name="warmup_steps",
      )
      # State (in `variables`, zeroed with the slots by `Trainee.reset`):
      # sum_{i <= t} gamma_i^2 and whether the model's variables hold x (1.0).
      self._weight_sum = self.add_variable([], tf.float32, name="weight_sum")
      self._at_x = self.add_variable([], tf.float32, name="at_x")

  def build(self, var_list: Sequence[tf.Variable]) -> None:
    """Creates the z and x slots, one of each per model variable."""
    super().build(var_list)
    if getattr(self, "_built", False):
      return
    self._z = [self.add_variable_from_reference(v, "z") for v in var_list]
    self._x = [self.add_variable_from_reference(v, "x") for v in var_list]
    self._built = True

  # ---- Hyperparameters. ----

  @property
  def beta(self) -> float:
    """beta (assigning it never retraces a compiled step)."""
    return float(self._beta.numpy())

  @beta.setter
  def beta(self, value: float) -> None:
    self._beta.assign(_check_beta(value))

  @property
  def warmup_steps(self) -> int:
    """Warm-up length in steps (assigning it never retraces a compiled step)."""
    return int(self._warmup_steps.numpy())

  @warmup_steps.setter
  def warmup_steps(self, value: int) -> None:
    self._warmup_steps.assign(float(_check_warmup_steps(value)))

  @property
  def weight_sum(self) -> float:
    """sum of gamma_i^2 over the steps taken (rate^2 units)."""
    return float(self._weight_sum.numpy())

  @property
  def is_at_x(self) -> bool:
    """Whether the model's variables hold x (after `swap_to_x`)."""
    return bool(self._at_x.numpy() > 0)

  # ---- The update. ----

  def _rate_and_weight(self) -> tuple[tf.Tensor, tf.Tensor]:
    """gamma_t and c_{t+1} of the coming step (float32 scalars)."""
    t = tf.cast(self.iterations, tf.float32) + 1.0  # The paper's 1-based t.
    warmup = self._warmup_steps
    factor = tf.where(
      warmup > 0, tf.minimum(1.0, t / tf.maximum(warmup, 1.0)), tf.ones([])
    )
    rate = tf.cast(self.learning_rate, tf.float32) * factor
    weight = tf.square(rate)
    return rate, tf.math.divide_no_nan(weight, self._weight_sum + weight)

  def update_step(self, gradient: tf.Tensor, variable: tf.Variable) -> None:
    """One schedule-free step of `variable` (holding y_t) given grad f(y_t)."""
    index = self._index_dict[self._var_key(variable)]
    z, x = self._z[index], self._x[index]
    dtype = variable.dtype
    rate, weight = self._rate_and_weight()
    rate, weight = tf.cast(rate, dtype), tf.cast(weight, dtype)
    beta = tf.cast(self._beta, dtype)
    first = tf.equal(self.iterations, 0)  # x_1 = z_1 = y_1 = the variable.
    z_t = tf.where(first, variable, z)
    x_t = tf.where(first, variable, x)
    z_next = z_t - rate * tf.convert_to_tensor(gradient)
    x_next = (1 - weight) * x_t + weight * z_next
    z.assign(z_next)
    x.assign(x_next)
    variable.assign((1 - beta) * z_next + beta * x_next)

  def apply_gradients(self, grads_and_vars, name=None, **kwargs):
    """Keras' `apply_gradients` plus the weight sum; the variables must hold y."""
    tf.debugging.assert_equal(
      self._at_x,
      tf.zeros([]),
      message="the model holds x: call swap_to_y before training",
    )
    rate, _ = self._rate_and_weight()  # Read before `iterations` moves on.
    iteration = super().apply_gradients(grads_and_vars, name=name, **kwargs)
    self._weight_sum.assign_add(tf.square(rate))
    return iteration

  # ---- Moving the model between y and x. ----

  def _slots(self, variables: Sequence[tf.Variable]) -> Iterator[tuple]:
    if not getattr(self, "_built", False):
      raise UserError("build the optimizer (or take a step) before swapping")
    for variable in variables:
      index = self._index_dict.get(self._var_key(variable))
      if index is None:
        raise UserError(f"the optimizer does not train variable {variable.name}")
      yield variable, self._z[index], self._x[index]

  def swap_to_x(self, variables: Sequence[tf.Variable]) -> None:
    """Writes x into `variables` (the model's trainable variables); idempotent."""
    keep = tf.logical_or(self._at_x > 0, tf.equal(self.iterations, 0))
    for variable, _, x in self._slots(variables):
      variable.assign(tf.where(keep, variable, x))
    self._at_x.assign(1.0)

  def swap_to_y(self, variables: Sequence[tf.Variable]) -> None:
    """Writes y = (1 - beta) z + beta x into `variables`; idempotent."""
    keep = tf.logical_or(self._at_x <= 0, tf.equal(self.iterations, 0))
    for variable, z, x in self._slots(variables):
      beta = tf.cast(self._beta, variable.dtype)
      variable.assign(tf.where(keep, variable, (1 - beta) * z + beta * x))
    self._at_x.assign(0.0)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    for key in ("weight_decay", "use_ema", "jit_compile"):
      config.pop(key, None)
    config.update(
      learning_rate=self._serialize_hyperparameter(self._learning_rate),
      beta=self.beta,
      warmup_steps=self.warmup_steps,
    )
    return config


class ScheduleFreeTrainee(trainee_lib.Trainee):
  """A trainee trained by `ScheduleFreeSGD` that evaluates at x.

  Training steps (and `final_layer`) see y; `evaluate`, `validate` and hence
  the best-validation checkpoint use x. The checkpoint holds x together with
  the optimizer's state, so `restore_best` leaves the model at the best x
  (ready to test or export) and training may continue from there (`train`
  swaps back to y first). The learning rate is gamma (constant; no schedule);
  `learning_rate` reports gamma, not the warmed-up gamma_t.

  Args:
    model, data: as for `Trainee`.
    optimizer: a `ScheduleFreeSGD`.
    **kwargs: other `Trainee` arguments; `schedule` must be None.

  Raises:
    UserError: for another optimizer or a schedule.
  """

  def __init__(
    self,
    model: tf.keras.Model,
    optimizer: ScheduleFreeSGD,
    data: data_lib.Data,
    **kwargs: Any,
  ):
    if not isinstance(optimizer, ScheduleFreeSGD):
      raise UserError(
        f"a schedule-free trainee needs a ScheduleFreeSGD, got {type(optimizer).__name__}"
      )
    if kwargs.get("schedule") is not None:
      raise UserError("schedule-free SGD keeps its rate constant: no schedule")
    super().__init__(model, optimizer, data, **kwargs)

  @classmethod
  def from_trainee(
    cls,
    trainee: trainee_lib.Trainee,
    beta: float = DEFAULT_BETA,
    warmup_steps: int = 0,
  ) -> ScheduleFreeTrainee:
    """A schedule-free trainee with `trainee`'s architecture and data.

    As `Trainee.from_trainee`, with a new `ScheduleFreeSGD` at `trainee`'s
    current rate, whatever `trainee`'s optimizer is.
    """
    optimizer = ScheduleFreeSGD(
      learning_rate=trainee.learning_rate, beta=beta, warmup_steps=warmup_steps
    )
    return super().from_trainee(trainee, optimizer=optimizer)

  @contextlib.contextmanager
  def weights_at_x(self) -> Iterator[None]:
    """Within the block the model's variables hold x; y again after it.

    Nests: only the outermost block that moved the model to x moves it back.
    """
    was_at_x = self.optimizer.is_at_x
    if not was_at_x:
      self.optimizer.swap_to_x(self.model.trainable_variables)
    try:
      yield
    finally:
      if not was_at_x:
        self.optimizer.swap_to_y(self.model.trainable_variables)

  def _checkpoint(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The best-validation checkpoint's state: weights (at x) and optimizer state."""
    return self.model.get_weights(), [v.numpy() for v in self.optimizer.variables]

  def _load_checkpoint(self, state: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    weights, optimizer_values = state
    self.model.set_weights(weights)
    for variable, value in zip(self.optimizer.variables, optimizer_values):
      variable.assign(value)

  def train(self, num_steps: int) -> float:
    """`Trainee.train` from y (the model is moved back from x if needed)."""
    if self.optimizer.is_at_x:
      self.optimizer.swap_to_y(self.model.trainable_variables)
    return super().train(num_steps)

  def evaluate(
    self, split: str = "validation", keep_probabilities: bool = False
  ) -> trainee_lib.EvalResult:
    """`Trainee.evaluate` at x."""
    with self.weights_at_x():
      return super().evaluate(split, keep_probabilities)

  def validate(self, keep_probabilities: bool = False) -> trainee_lib.EvalResult:
    """`Trainee.validate` at x: the best-validation checkpoint holds x."""
    with self.weights_at_x():
      return super().validate(keep_probabilities)

  def reset(
    self,
    seed: int,
    learning_rate: float,
    schedule: Callable[[tf.Tensor], tf.Tensor] | None = None,
  ) -> None:
    """`Trainee.reset` (also zeroes z, x, the weight sum and the x flag)."""
    if schedule is not None:
      raise UserError("schedule-free SGD keeps its rate constant: no schedule")
    super().reset(seed, learning_rate)


def schedule_free_trainee(trainee: trainee_lib.Trainee) -> ScheduleFreeTrainee:
  """The cached `ScheduleFreeTrainee` built from `trainee` (itself if it is one)."""
  return trainee_lib.derived_trainee(trainee, ScheduleFreeTrainee)


@gin.configurable(denylist=trainee_lib.RUN_ARGUMENTS)
def run_schedule_free(
  trainee: trainee_lib.Trainee,
  initial_learning_rate: float,
  num_steps: int,
  eval_interval: int = 10,
  beta: float = DEFAULT_BETA,
  warmup_fraction: float = DEFAULT_WARMUP_FRACTION,
  seed: int = 0,
  evaluate_test: bool = True,
) -> dict:
  """Trains with schedule-free SGD and the paper's protocol, evaluating at x.

  Args:
    trainee: a `ScheduleFreeTrainee`, or a trainee whose architecture and data
      are copied into a cached one (the given trainee is not trained; its
      optimizer is not used).
    initial_learning_rate: gamma, the rate after warm-up (> 0).
    num_steps: training steps.
    eval_interval: steps between validations (at x).
    beta: the interpolation parameter (paper: 0.9).
    warmup_fraction: warm-up length as a fraction of `num_steps`, in [0, 1]
      (rounded to whole steps).
    seed: seeds the initial weights and the batch order.
    evaluate_test: test the best (x) checkpoint at the end.

  Returns:
    The `trainee_lib.run_training` dict; history rows' `lr` is gamma.
  """
  warmup_fraction = checks.between(
    "warmup_fraction", warmup_fraction, 0, 1, closed=True
  )
  num_steps = checks.integer("num_steps", num_steps)
  sf = schedule_free_trainee(trainee)
  sf.optimizer.beta = beta
  sf.optimizer.warmup_steps = int(math.floor(warmup_fraction * num_steps + 0.5))
  sf.reset(seed, initial_learning_rate)
  return trainee_lib.run_training(
    sf, num_steps=num_steps, eval_interval=eval_interval, evaluate_test=evaluate_test
  )
