"""A cheap synthetic trainee whose best learning-rate schedule is known.

`NoisyQuadraticTrainee` is a noisy quadratic model (NQM; Zhang et al. 2019,
"Which Algorithmic Choices Matter at Which Batch Sizes? Insights From a Noisy
Quadratic Model", arXiv:1907.04164), in the spirit of DACBench's ToySGD. It has
the duck-typed interface of `trainee.Trainee`, so the controller's environment
and `trainee.run_training` drive it unchanged, in milliseconds, in pure NumPy.

The problem. Parameters theta in R^d (default d = 16); the loss is

    L(theta) = 0.5 * sum_i h_i * theta_i^2        (nats, by convention)

with curvatures h_i = geomspace(min_curvature, max_curvature, d) (default
1e-2..1, the same for every seed). A run's seed draws theta_0 ~ N(0, init_scale^2 I)
and the gradient noise. One SGD step at rate lr takes a minibatch gradient

    g = h * theta + noise_scale * sqrt(h) * z,    z ~ N(0, I_d),

i.e. noise covariance noise_scale^2 * H (the NQM's H / batch_size, so
noise_scale = 1 / sqrt(batch_size)), and sets theta <- theta - lr * g. It is
the gradient of the minibatch loss L_B(theta) = 0.5 * sum_i h_i (theta_i - c_i)^2
with a minibatch optimum c_i = -noise_scale * z_i / sqrt(h_i); `train` returns
the mean of L_B before each step's update, so E[train loss] = L(theta) +
0.5 * d * noise_scale^2 (0.72 nats with the defaults: the data-noise floor).
With noise_scale = 0 the steps are exact gradient descent.

Why the schedule matters. Coordinate i contracts by (1 - lr h_i) per step and
its stationary variance is lr * noise_scale^2 / (2 - lr h_i): a constant rate
ends at a noise floor proportional to lr, while the low-curvature coordinates
(h ~ 1e-2) need a large rate to move at all in a short run. Rates above
2 / max_curvature = 2 diverge; [1e-3, 2) is the sensible range. A decaying
schedule (large early, small late) therefore beats every constant rate.

Measured (default constants: d = 16, h in [1e-2, 1], init_scale = 1,
noise_scale = 0.3; expected initial loss 0.5 * sum(h) = 1.88 nats), final exact
loss L(theta) after 200 steps, mean over seeds 0..9 (per-seed range):

  - constant 1.0:                                  0.114
  - best of 25 constants log-spaced in [1e-3, 1.9]
    (lr 0.21):                                     0.0287  (0.016 .. 0.050)
  - step decay 1.0 * 0.3 ** floor(t / 50):         0.0071  (0.003 .. 0.011)
  - step decay 1.0 * 0.7 ** floor(t / 20):         0.0080

so on every one of these seeds the step decay beats the best constant. Over
seeds 0..999: constant 1.0 gives 0.126, constant 0.198 (the best constant of
the exact second-moment recursion) 0.0281, and the 0.3-per-50-steps decay
0.0092, as the recursion predicts. A 200-step run in chunks of 10 takes ~5 ms.

Evaluation. `validate` and `evaluate` report the exact loss L(theta) for both
"validation" and "test" (no data noise: the two splits give the same loss, so
the best-validation checkpoint also has the best test loss). The classifier
outputs the controller's features read are predictions on a fixed probe set
(independent of the run's seed; validation and test have their own probe
sets of `num_probes` examples): probe j has label y_j = j mod d, an input
x_j ~ N(0, I_d), and logits

    logits_j = probe_margin * onehot(y_j) + x_j * sqrt(h) * theta     (K = d)

(x_j * sqrt(h) * theta elementwise), so E_x ||logits_j - probe_margin *
onehot(y_j)||^2 = 2 L(theta): predictions are those of a (weakly confident)
perfect classifier at the optimum and are perturbed in proportion to the loss
elsewhere; their variance across probes and its change between decisions
follow the run. `accuracy` is the top-1 accuracy on the probe set, a proxy
(float in [0, 1], NaN once theta is not finite): with the default margin 0.25
it is about 0.2 at theta_0, about 0.6 on constant 1.0's noise floor and 1.0
at the end of the 0.3-per-50-steps decay (seeds 0..4). `final_layer.kernel`
is theta, float32 [d, 1].
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import gin
import numpy as np
import tensorflow as tf

from lr_controller import checks
from lr_controller.errors import UserError
from lr_controller.trainee import protocol
from lr_controller.trainee import trainee as trainee_lib

DEFAULT_DIM = 16
DEFAULT_MIN_CURVATURE = 1e-2
DEFAULT_MAX_CURVATURE = 1.0
DEFAULT_NOISE_SCALE = 0.3
DEFAULT_INIT_SCALE = 1.0
DEFAULT_INITIAL_LEARNING_RATE = 1.0
DEFAULT_NUM_PROBES = 32
DEFAULT_PROBE_MARGIN = 0.25
# Seed of the fixed probe sets (the same for every run, like a data set).
_PROBE_SEED = 20190919

Schedule = Callable[[Any], Any]


class FinalLayer:
  """Stands in for the final Dense layer: its kernel is the parameter vector.

  Args:
    owner: the trainee whose theta is exposed.
  """

  name = "theta"

  def __init__(self, owner: NoisyQuadraticTrainee):
    self._owner = owner

  @property
  def kernel(self) -> np.ndarray:
    """theta as float32 [d, 1] (a copy)."""
    return self._owner.theta.astype(np.float32).reshape(-1, 1)


class NoisyQuadraticTrainee(protocol.MonitoredRun):
  """A noisy quadratic "training run" with the interface of `trainee.Trainee`.

  See the module docstring for the model. All arithmetic is float64 NumPy; a
  run is fully determined by the seed given to the constructor or `reset`
  (the noise stream does not depend on how the steps are chunked).

  Args:
    seed: seeds theta_0 and the gradient noise of the first run.
    dim: number of parameters d (also the number of probe classes K).
    min_curvature: smallest curvature h_i (> 0).
    max_curvature: largest curvature h_i (>= min_curvature); rates above
      2 / max_curvature diverge.
    initial_learning_rate: the rate of the first run (when no schedule).
    noise_scale: gradient-noise std per unit sqrt(h_i) (>= 0); 0 gives exact
      gradient descent.
    init_scale: std of theta_0's entries (> 0).
    schedule: optional per-step schedule, a callable of the step (an int64
      array or tensor of steps, or a scalar) returning the rate(s), e.g. a
      `schedules` schedule. None leaves the rate to `set_learning_rate`.
    rule: the run's divergence rule (`protocol`); None:
      `trainee.divergence_rule()`, as gin configures it.
    num_probes: examples N in each probe set (validation and test).
    probe_margin: logit margin of a probe's label at the optimum.

  Raises:
    UserError: for an invalid constant.
  """

  def __init__(
    self,
    seed: int = 0,
    dim: int = DEFAULT_DIM,
    min_curvature: float = DEFAULT_MIN_CURVATURE,
    max_curvature: float = DEFAULT_MAX_CURVATURE,
    initial_learning_rate: float = DEFAULT_INITIAL_LEARNING_RATE,
    noise_scale: float = DEFAULT_NOISE_SCALE,
    init_scale: float = DEFAULT_INIT_SCALE,
    schedule: Schedule | None = None,
    rule: protocol.DivergenceRule | None = None,
    num_probes: int = DEFAULT_NUM_PROBES,
    probe_margin: float = DEFAULT_PROBE_MARGIN,
  ):
    dim = checks.integer("dim", dim, 1, "a positive integer")
    min_curvature = checks.positive("min_curvature", min_curvature)
    max_curvature = checks.positive("max_curvature", max_curvature)
    if min_curvature > max_curvature:
      raise UserError(
        f"min_curvature ({min_curvature}) must not exceed max_curvature ({max_curvature})"
      )
    noise_scale = checks.non_negative("noise_scale", noise_scale)
    init_scale = checks.positive("init_scale", init_scale)
    num_probes = checks.integer("num_probes", num_probes, 1, "a positive integer")
    self.dim = dim
    self.curvatures = np.geomspace(min_curvature, max_curvature, dim)
    self.noise_scale = float(noise_scale)
    self.init_scale = float(init_scale)
    self.probe_margin = float(probe_margin)
    probe_rng = np.random.default_rng(_PROBE_SEED)
    labels = np.arange(num_probes) % dim
    self._probes = {
      split: (probe_rng.standard_normal((num_probes, dim)), labels)
      for split in ("validation", "test")
    }
    self.final_layer = FinalLayer(self)
    # Divergence and the best-validation checkpoint, by the protocol.
    self.monitor = protocol.RunMonitor(
      trainee_lib.divergence_rule() if rule is None else rule,
      lambda: self.theta.copy(),
      lambda theta: setattr(self, "theta", theta.copy()),
    )
    self.reset(seed, initial_learning_rate, schedule)

  # ---- The trainee interface. ----

  @property
  def learning_rate(self) -> float:
    """The rate of the next step (with a schedule: the last step's rate)."""
    return self._learning_rate

  def set_learning_rate(self, learning_rate: float) -> None:
    """Sets the learning rate of the following steps."""
    self._learning_rate = float(learning_rate)

  @property
  def global_step(self) -> int:
    """Training steps taken since the last reset."""
    return self._step

  def set_global_step(self, step: int) -> None:
    """Moves the step counter (a restored snapshot, see `autolrs`)."""
    self._step = int(step)

  @property
  def noise_state(self) -> dict:
    """A copy of the gradient-noise generator's state (NumPy bit generator)."""
    return copy.deepcopy(self._noise_rng.bit_generator.state)

  @noise_state.setter
  def noise_state(self, state: dict) -> None:
    self._noise_rng.bit_generator.state = copy.deepcopy(state)

  def train(self, num_steps: int) -> float:
    """Takes `num_steps` noisy SGD steps.

    Returns:
      The mean minibatch loss L_B over these steps (nats, each before its
      step's update). A value the rule calls divergence marks the run
      diverged.

    Raises:
      RuntimeError: if the run already diverged.
      UserError: if `num_steps` is not a positive integer.
    """
    if self.diverged:
      raise RuntimeError("the trainee diverged; reset it before training further")
    num_steps = checks.integer("num_steps", num_steps)
    rates = self._step_rates(num_steps)
    h = self.curvatures
    # Minibatch optima c = -noise_scale * z / sqrt(h), drawn for the whole chunk.
    offsets = -self.noise_scale * self._noise_rng.standard_normal((num_steps, self.dim))
    offsets /= np.sqrt(h)
    theta = self.theta
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
      for lr, c in zip(rates, offsets):
        residual = theta - c
        total += 0.5 * float(np.sum(h * residual * residual))
        theta = theta - lr * (h * residual)
    self.theta = theta
    self._step += num_steps
    if self.schedule is not None:
      self._learning_rate = float(rates[-1])
    loss = total / num_steps
    self.monitor.observe_training(loss)
    return loss

  def evaluate(
    self, split: str = "validation", keep_probabilities: bool = False
  ) -> trainee_lib.EvalResult:
    """Evaluates the current theta on "validation" or "test".

    Args:
      split: which split; both give the exact loss L(theta), each with its
        own probe set for accuracy and probabilities.
      keep_probabilities: also return the probe predictions, float32 [N, d].

    Returns:
      An EvalResult; loss and accuracy are NaN if theta is no longer finite.

    Raises:
      ValueError: for an unknown split.
    """
    if split not in self._probes:
      raise ValueError(f"unknown split '{split}'")
    inputs, labels = self._probes[split]
    with np.errstate(over="ignore", invalid="ignore"):
      loss = self.exact_loss()
      logits = inputs * (np.sqrt(self.curvatures) * self.theta)
      logits[np.arange(len(labels)), labels] += self.probe_margin
      finite = bool(np.all(np.isfinite(logits))) and math.isfinite(loss)
      if finite:
        accuracy = float(np.mean(np.argmax(logits, axis=-1) == labels))
      else:
        loss = accuracy = math.nan
      probabilities = None
      if keep_probabilities:
        shifted = logits - np.max(logits, axis=-1, keepdims=True)
        exp = np.exp(shifted)
        probabilities = (exp / np.sum(exp, axis=-1, keepdims=True)).astype(np.float32)
    return trainee_lib.EvalResult(
      loss=loss, accuracy=accuracy, probabilities=probabilities
    )

  def validate(self, keep_probabilities: bool = False) -> trainee_lib.EvalResult:
    """Evaluates on "validation"; the protocol judges the loss and keeps the best theta."""
    result = self.evaluate("validation", keep_probabilities)
    self.monitor.observe_validation(result.loss, self.global_step)
    return result

  def restore_best(self) -> bool:
    """Loads the best-validation theta; False if there was none."""
    return self.monitor.restore_best()

  def describe(self) -> dict:
    """What this run trains (`trainee.Trainee.describe`'s fields)."""
    return {
      "data": "noisy_quadratic",
      "model": f"quadratic_{self.dim}d",
      "optimizer": "sgd",
      "batch_size": None,
    }

  def reset(
    self,
    seed: int,
    learning_rate: float,
    schedule: Schedule | None = None,
  ) -> None:
    """Starts a fresh run: theta_0 and the noise stream come from `seed`.

    Args:
      seed: seeds theta_0 and the gradient noise (separate streams).
      learning_rate: the rate of the first step (when there is no schedule).
      schedule: the new run's per-step schedule, or None.
    """
    init_seed, noise_seed = np.random.SeedSequence(seed).spawn(2)
    self.theta = self.init_scale * np.random.default_rng(init_seed).standard_normal(
      self.dim
    )
    self._noise_rng = np.random.default_rng(noise_seed)
    self.schedule = schedule
    self._learning_rate = trainee_lib.check_learning_rate(learning_rate)
    self._step = 0
    self.monitor.start()

  # ---- Extras of the toy problem. ----

  def exact_loss(self) -> float:
    """L(theta) = 0.5 * sum_i h_i theta_i^2 of the current theta (nats)."""
    with np.errstate(over="ignore", invalid="ignore"):
      return 0.5 * float(np.sum(self.curvatures * self.theta * self.theta))

  def _step_rates(self, num_steps: int) -> np.ndarray:
    """Learning rates of the next `num_steps` steps, float64 [num_steps]."""
    if self.schedule is None:
      return np.full(num_steps, self._learning_rate)
    steps = np.arange(self._step, self._step + num_steps, dtype=np.int64)
    try:  # Our schedules (and most Keras ones) take a vector of steps.
      rates = np.asarray(self.schedule(steps), dtype=np.float64)
      if rates.shape == (num_steps,):
        return rates
    except (TypeError, ValueError, tf.errors.InvalidArgumentError):
      pass
    return np.array([float(self.schedule(step)) for step in steps])


# As for `trainee.build_trainee`: the environment sets the seed and `reset`s
# every run's rate and schedule, so binding any of them is a gin error.
@gin.configurable(denylist=["seed", "initial_learning_rate", "schedule"])
def build_noisy_quadratic(
  seed: int = 0,
  dim: int = DEFAULT_DIM,
  min_curvature: float = DEFAULT_MIN_CURVATURE,
  max_curvature: float = DEFAULT_MAX_CURVATURE,
  initial_learning_rate: float = DEFAULT_INITIAL_LEARNING_RATE,
  noise_scale: float = DEFAULT_NOISE_SCALE,
  init_scale: float = DEFAULT_INIT_SCALE,
  schedule: Schedule | None = None,
  num_probes: int = DEFAULT_NUM_PROBES,
  probe_margin: float = DEFAULT_PROBE_MARGIN,
) -> NoisyQuadraticTrainee:
  """Builds a noisy-quadratic trainee at step 0 (see `NoisyQuadraticTrainee`).

  Usable as the environment's `trainee_fn` (called with `seed=`).

  Returns:
    A NoisyQuadraticTrainee.
  """
  return NoisyQuadraticTrainee(
    seed=seed,
    dim=dim,
    min_curvature=min_curvature,
    max_curvature=max_curvature,
    initial_learning_rate=initial_learning_rate,
    noise_scale=noise_scale,
    init_scale=init_scale,
    schedule=schedule,
    num_probes=num_probes,
    probe_margin=probe_margin,
  )
