"""A trainee training run, advanced in chunks of steps (Xu et al. 2019, Sec. 3).

The controller of the paper acts every few trainee steps: it reads features of
the run, sets a new learning rate, and lets the run go on. `Trainee` is that run:

  trainee = build_trainee(seed=0)
  trainee.train(10)                # 10 SGD steps in one compiled call
  result = trainee.validate()      # loss, accuracy, softmax outputs
  trainee.set_learning_rate(0.05)  # assigns the optimizer's variable: no retrace

The learning rate lives in the optimizer's own `tf.Variable`, so changing it
between chunks never retraces the compiled step. A run is a function of its
seed: `reset(seed, ...)` (and `build_trainee(seed)`) draws the initial weights
from it and starts the train stream `data.train_stream(seed)`, so the run of
a seed sees the same weights and batches in any process. Divergence and the
best-validation checkpoint follow `protocol` (its rule is the gin-configurable
`divergence_rule`): a diverged run is marked and stops; it is reported, never
raised.

`run_training` is that protocol for a fixed schedule: validate the initial
weights and then every `eval_interval` steps, keep the weights with the best
validation loss, and evaluate those once on the test split at the end.
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import gin
import numpy as np
import tensorflow as tf

import official_models
from lr_controller import checks, io_utils
from lr_controller import features as features_lib
from lr_controller.errors import UserError, first_line
from lr_controller.trainee import data as data_lib
from lr_controller.trainee import protocol

# The trainee's model when gin binds no `build_model.name` (the paper's LeNet).
DEFAULT_MODEL = "lenet"

# What the caller of a method's run always sets (`adaptive_peers.run_peer` for
# every peer): the methods' configurables (`run_autolrs`, ...) denylist these,
# so that binding one is a gin error, not a value the caller overrides.
RUN_ARGUMENTS = (
  "initial_learning_rate",
  "num_steps",
  "eval_interval",
  "seed",
  "evaluate_test",
)


@gin.configurable
def divergence_rule(
  max_train_loss: float = protocol.MAX_TRAIN_LOSS,
  max_val_loss_ratio: float | None = protocol.MAX_VAL_LOSS_RATIO,
) -> protocol.DivergenceRule:
  """The divergence rule of every run the library trains, as gin configures it.

  The one place the rule's bounds are bound (`divergence_rule.max_train_loss
  = 1e4`): every trainee built without an explicit rule reads it, so the
  environment, step decay, the peers and AutoLRS judge alike. See `protocol`.

  Args:
    max_train_loss: a chunk's mean training loss above this (nats) diverges.
    max_val_loss_ratio: a validation loss above this multiple of the run's
      first one diverges (> 1); None: only a non-finite one.

  Returns:
    The rule.

  Raises:
    UserError: for a bad bound.
  """
  return protocol.DivergenceRule(max_train_loss, max_val_loss_ratio)


# The learning rate is the caller's (`build_trainee.initial_learning_rate`, then
# each run's `reset`): binding `make_optimizer.learning_rate` is a gin error.
@gin.configurable(denylist=["learning_rate"])
def make_optimizer(
  name: str = "sgd",
  learning_rate: float = 0.01,
  momentum: float = 0.9,
  beta_1: float = 0.9,
  beta_2: float = 0.999,
  epsilon: float = 1e-7,
) -> tf.keras.optimizers.Optimizer:
  """Builds the trainee's optimizer with a settable (variable) learning rate.

  Args:
    name: "sgd" (with `momentum`; 0 gives plain SGD), "adam" or "rmsprop".
    learning_rate: initial learning rate (> 0); set by the caller, never by gin.
    momentum: SGD/RMSprop momentum.
    beta_1: Adam's first-moment decay.
    beta_2: Adam's second-moment decay.
    epsilon: Adam/RMSprop's numerical epsilon.

  Returns:
    A Keras 2 optimizer whose `learning_rate` is a `tf.Variable`.

  Raises:
    UserError: for an unknown name or a learning rate that is not positive.
  """
  check_learning_rate(learning_rate)
  if name == "sgd":
    return tf.keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
  if name == "adam":
    return tf.keras.optimizers.Adam(
      learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon
    )
  if name == "rmsprop":
    return tf.keras.optimizers.RMSprop(
      learning_rate=learning_rate, momentum=momentum, epsilon=epsilon
    )
  raise UserError(f"unknown optimizer '{name}' (known: sgd, adam, rmsprop)")


def check_learning_rate(learning_rate: float) -> float:
  """Returns `learning_rate` as a float, or raises UserError if not finite and > 0."""
  return checks.positive("learning rate", learning_rate, "positive and finite")


def seeded_initial_weights(model: tf.keras.Model, seed: int) -> list[np.ndarray]:
  """Fresh initial weights of `model`'s architecture, a function of `seed` only.

  Rebuilds the model from its config with every seed in it (initializers,
  dropout) replaced by one derived from (`seed`, position), so no global
  generator is read or reset: reseeding TensorFlow's global generator would
  also restart the random streams of every traced `tf.function` in the
  process (the controller's exploration among them).

  Args:
    model: a Keras model whose config round-trips through `from_config`.
    seed: the run's seed.

  Returns:
    The weights, in `model.get_weights()` order.
  """
  counter = iter(range(1 << 30))

  def reseed(node):
    if isinstance(node, dict):
      out = {k: reseed(v) for k, v in node.items()}
      if "seed" in out and not isinstance(out["seed"], (dict, list)):
        derived = np.random.SeedSequence([int(seed), next(counter)])
        out["seed"] = int(derived.generate_state(1)[0] >> 1)
      return out
    if isinstance(node, list):
      return [reseed(v) for v in node]
    return node

  fresh = tf.keras.Model.from_config(reseed(model.get_config()))
  return fresh.get_weights()


@dataclasses.dataclass(frozen=True)
class EvalResult:
  """One pass over an evaluation split.

  Attributes:
    loss: mean cross-entropy per example (nats).
    accuracy: fraction of correct top-1 predictions.
    probabilities: softmax outputs, float32 [num_examples, num_classes], in the
      split's fixed order (only filled when asked for).
  """

  loss: float
  accuracy: float
  probabilities: np.ndarray | None = None


class TraineeRun(Protocol):
  """What the environment, the evaluation and the peers need of a trainee.

  `Trainee` (a Keras model), `toy_problems.NoisyQuadraticTrainee` and the
  peers' subclasses follow it; each applies `protocol`'s rule through a
  `protocol.RunMonitor` (`train` shows it the training loss, `validate` the
  validation loss). Learning rates are per step; losses in nats.
  """

  learning_rate: float
  global_step: int
  rule: protocol.DivergenceRule  # The run's divergence rule.
  diverged: bool  # By `protocol`'s rule; a diverged run takes no more steps.
  first_val_loss: float | None  # The reference of the rule (None before any).
  best_val_loss: float
  best_step: int | None
  final_layer: Any  # Has a `kernel` (the output layer's weights).

  def reset(self, seed: int, learning_rate: float, schedule=None) -> None: ...

  def set_learning_rate(self, learning_rate: float) -> None: ...

  def train(self, num_steps: int) -> float: ...

  def evaluate(self, split: str, keep_probabilities: bool = False) -> EvalResult: ...

  def validate(self, keep_probabilities: bool = False) -> EvalResult: ...

  def restore_best(self) -> bool: ...

  def describe(self) -> dict: ...


class Trainee(protocol.MonitoredRun):
  """A classifier's training run that a schedule or a controller drives in chunks.

  Args:
    model: an uncompiled Keras model mapping images to logits.
    optimizer: a Keras optimizer built with a float learning rate.
    data: the splits to train, validate and test on.
    schedule: optional per-step schedule (a callable of the int64 step returning
      the learning rate); its rates for a chunk are fed to the compiled loop as
      a vector, so schedules never retrace it. None leaves the rate to
      `set_learning_rate` (the controller's case).
    rule: the run's divergence rule (`protocol`); None: `divergence_rule()`,
      as gin configures it.
    final_layer_name: name of the output Dense layer (features read it).
    jit_compile: compile the training step with XLA. Off by default: on a
      2-core CPU, LeNet at batch 250, it ran at 0.49x the steps/s of the
      plain graph (benchmarks/episode_profile.py; 0.6x measured before).
    seed: seed of the train stream's batch order (`data.train_stream(seed)`);
      None reads `data.train`. `reset` starts the stream of its own seed.
  """

  def __init__(
    self,
    model: tf.keras.Model,
    optimizer: tf.keras.optimizers.Optimizer,
    data: data_lib.Data,
    schedule: Callable[[tf.Tensor], tf.Tensor] | None = None,
    rule: protocol.DivergenceRule | None = None,
    final_layer_name: str | None = official_models.FINAL_LAYER_NAME,
    jit_compile: bool = False,
    seed: int | None = None,
  ):
    if isinstance(
      optimizer.learning_rate, tf.keras.optimizers.schedules.LearningRateSchedule
    ):
      raise UserError(
        "the trainee's optimizer needs a float learning rate, not a schedule"
      )
    self.model = model
    self.optimizer = optimizer
    self.data = data
    self.schedule = schedule
    self.final_layer = features_lib.find_final_dense(model, final_layer_name)
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="trainee_step")
    # Divergence and the best-validation checkpoint, by the protocol.
    self.monitor = protocol.RunMonitor(
      divergence_rule() if rule is None else rule,
      self._checkpoint,
      self._load_checkpoint,
    )
    self._loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(
      from_logits=True, reduction=tf.keras.losses.Reduction.NONE
    )
    train = data.train if seed is None else data.train_stream(seed)
    self._train_iterator = iter(train)
    # The step may be XLA-compiled; the loop around it reads the input
    # iterator, which XLA cannot, so it stays a plain graph. The iterator is
    # an argument: `reset` starts a new one of the same spec, never a retrace.
    self.jit_compile = bool(jit_compile)
    self._train_step = tf.function(self._train_step_impl, jit_compile=jit_compile)
    self._train_loop = tf.function(
      self._train_loop_impl,
      input_signature=[
        tf.data.IteratorSpec(train.element_spec),
        tf.TensorSpec([None], tf.float32),
      ],
    )
    # Evaluation splits are held in memory as tensors (they are cached anyway):
    # a pass is then one compiled call with no input-pipeline start-up.
    self._splits = {
      "validation": _materialize(data.validation),
      "test": _materialize(data.test),
    }
    # Evaluate in batches of the size the data was batched at.
    self._eval_batch_size = int(next(iter(data.validation))[1].shape[0])
    image_spec = tf.TensorSpec([None, *data.input_shape], tf.float32)
    # No XLA: on a 2-core CPU it ran the LeNet pass over 2,000 examples at
    # 0.28x the passes/s of the plain graph (benchmarks/episode_profile.py).
    self._eval_pass = tf.function(
      self._eval_pass_impl,
      input_signature=[image_spec, tf.TensorSpec([None], tf.int32)],
    )
    # Build the optimizer's slots now so that `reset` can zero them.
    self.optimizer.build(self.model.trainable_variables)

  # ---- Compiled parts: the only tf.functions of the trainee side. ----

  def _train_step_impl(self, images, labels, learning_rate):
    """One optimizer step at `learning_rate`; returns the batch's mean loss."""
    self.optimizer.learning_rate.assign(learning_rate)
    with tf.GradientTape() as tape:
      logits = self.model(images, training=True)
      loss = tf.reduce_mean(self._loss_fn(labels, logits))
      loss_with_reg = loss + tf.add_n(self.model.losses) if self.model.losses else loss
    grads = tape.gradient(loss_with_reg, self.model.trainable_variables)
    self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
    return loss

  def _train_loop_impl(self, iterator, learning_rates):
    """Takes one optimizer step per entry of `learning_rates` (float32 [n]).

    Step i reads the next batch of `iterator` and uses rate
    `learning_rates[i]`; returns the mean training loss. Iterator and rates
    are arguments, not captured state, so every seed, schedule and the
    controller share one trace.
    """
    num_steps = tf.shape(learning_rates)[0]
    total = tf.constant(0.0, tf.float32)
    for i in tf.range(num_steps):
      images, labels = next(iterator)
      total += self._train_step(images, labels, learning_rates[i])
      self.step.assign_add(1)
    return total / tf.cast(num_steps, tf.float32)

  def _eval_pass_impl(self, images, labels):
    """Loss, accuracy and softmax outputs of the current weights on a split.

    Args:
      images: float32 [N, H, W, C], the whole split held in memory.
      labels: int32 [N].

    Returns:
      Mean loss (nats), accuracy, and probabilities float32 [N, classes].
    """
    n = tf.shape(labels)[0]
    batch = self._eval_batch_size
    num_batches = (n + batch - 1) // batch
    loss_sum = tf.constant(0.0, tf.float32)
    correct = tf.constant(0.0, tf.float32)
    probs = tf.TensorArray(tf.float32, size=num_batches, infer_shape=False)
    for i in tf.range(num_batches):
      x = images[i * batch : (i + 1) * batch]
      y = labels[i * batch : (i + 1) * batch]
      logits = tf.cast(self.model(x, training=False), tf.float32)
      loss_sum += tf.reduce_sum(self._loss_fn(y, logits))
      predicted = tf.argmax(logits, axis=-1, output_type=y.dtype)
      correct += tf.reduce_sum(tf.cast(tf.equal(predicted, y), tf.float32))
      probs = probs.write(i, tf.nn.softmax(logits))
    count = tf.cast(n, tf.float32)
    return loss_sum / count, correct / count, probs.concat()

  # ---- Public API. ----

  @property
  def learning_rate(self) -> float:
    """The learning rate the optimizer's next step uses."""
    return float(self.optimizer.learning_rate.numpy())

  def set_learning_rate(self, learning_rate: float) -> None:
    """Sets the learning rate of the following steps (assigns a variable: no retrace)."""
    self.optimizer.learning_rate.assign(learning_rate)

  @property
  def global_step(self) -> int:
    """Training steps taken since the last reset."""
    return int(self.step.numpy())

  def _checkpoint(self) -> Any:
    """A copy of the state the best-validation checkpoint keeps (the weights)."""
    return self.model.get_weights()

  def _load_checkpoint(self, state: Any) -> None:
    """Puts a `_checkpoint` copy back."""
    self.model.set_weights(state)

  def train(self, num_steps: int) -> float:
    """Takes `num_steps` optimizer steps in one compiled call.

    Returns:
      The mean training loss over these steps (nats, before the step's update).
      A value the rule calls divergence marks the run diverged.
    """
    if self.diverged:
      raise RuntimeError("the trainee diverged; reset it before training further")
    num_steps = checks.integer("num_steps", num_steps)
    rates = self._step_rates(num_steps)
    loss = float(self._train_loop(self._train_iterator, rates))
    self.monitor.observe_training(loss)
    return loss

  def _step_rates(self, num_steps: int) -> tf.Tensor:
    """Learning rates of the next `num_steps` steps, float32 [num_steps]."""
    if self.schedule is None:
      return tf.fill([num_steps], tf.cast(self.optimizer.learning_rate, tf.float32))
    start = self.global_step
    steps = tf.range(start, start + num_steps, dtype=tf.int64)
    try:  # Our schedules (and most Keras ones) take a vector of steps.
      rates = tf.cast(self.schedule(steps), tf.float32)
      if rates.shape == (num_steps,):
        return rates
    except (TypeError, ValueError, tf.errors.InvalidArgumentError):
      pass
    return tf.stack([tf.cast(self.schedule(step), tf.float32) for step in steps])

  @classmethod
  def from_trainee(
    cls,
    trainee: Trainee,
    optimizer: tf.keras.optimizers.Optimizer | None = None,
    **kwargs,
  ):
    """Builds a `cls` trainee with `trainee`'s architecture, data and set-up.

    The model is rebuilt from `trainee.model.get_config()` (no shared
    variables; its weights are arbitrary until `reset(seed, ...)`); the
    divergence rule, output layer and XLA setting are copied. The peers'
    derived trainees (hypergradient, refined, schedule-free) are built so.

    Args:
      trainee: the trainee to copy the set-up of.
      optimizer: the new trainee's optimizer; None: a copy of `trainee`'s
        (its class and `get_config()`).
      **kwargs: the subclass's own constructor arguments.

    Returns:
      A new trainee of class `cls` at step 0.
    """
    model = tf.keras.Model.from_config(trainee.model.get_config())
    if optimizer is None:
      optimizer = type(trainee.optimizer).from_config(trainee.optimizer.get_config())
    final_name = trainee.final_layer.name
    if final_name not in {layer.name for layer in model.layers}:
      final_name = None  # A nested output layer: found again as the last Dense.
    return cls(
      model,
      optimizer,
      trainee.data,
      rule=trainee.rule,
      final_layer_name=final_name,
      jit_compile=trainee.jit_compile,
      **kwargs,
    )

  def evaluate(
    self, split: str = "validation", keep_probabilities: bool = False
  ) -> EvalResult:
    """Evaluates the current weights on "validation" or "test".

    Args:
      split: which split.
      keep_probabilities: also return the softmax outputs, float32 [N, classes].

    Returns:
      An EvalResult; loss is NaN if the weights are no longer finite.
    """
    if split not in self._splits:
      raise ValueError(f"unknown split '{split}'")
    loss, accuracy, probs = self._eval_pass(*self._splits[split])
    return EvalResult(
      loss=float(loss),
      accuracy=float(accuracy),
      probabilities=probs.numpy() if keep_probabilities else None,
    )

  def validate(self, keep_probabilities: bool = False) -> EvalResult:
    """Evaluates on the validation split; the protocol judges the loss.

    A loss the rule calls divergence marks the run diverged; otherwise the
    weights are kept if their loss is the lowest so far.
    """
    result = self.evaluate("validation", keep_probabilities)
    self.monitor.observe_validation(result.loss, self.global_step)
    return result

  def restore_best(self) -> bool:
    """Loads the best-validation weights; False if there were none."""
    return self.monitor.restore_best()

  def describe(self) -> dict:
    """What this run trains: data set, model and optimizer names, examples per step."""
    batch = self.data.train.element_spec[0].shape[0]
    return {
      "data": self.data.name,
      "model": self.model.name,  # The Keras model's name, e.g. "lenet5", "mlp".
      "optimizer": type(self.optimizer).__name__.lower(),
      "batch_size": None if batch is None else int(batch),
    }

  def reset(
    self,
    seed: int,
    learning_rate: float,
    schedule: Callable[[tf.Tensor], tf.Tensor] | None = None,
  ) -> None:
    """Starts a fresh run of `seed` on the same compiled graph.

    Fresh initial weights are drawn from `seed` (`seeded_initial_weights`,
    which leaves TensorFlow's global random state alone); the optimizer's slots and step counters are zeroed;
    training reads a new stream, `data.train_stream(seed)`. Weights and batch
    order are thus functions of `seed` (and the data) only, whatever ran before.

    Args:
      seed: seeds the new initial weights and the batch order.
      learning_rate: the rate of the first step (when there is no schedule).
      schedule: the new run's per-step schedule, or None.
    """
    self.schedule = schedule
    self.model.set_weights(seeded_initial_weights(self.model, seed))
    self._train_iterator = iter(self.data.train_stream(seed))
    for variable in self.optimizer.variables:
      variable.assign(tf.zeros_like(variable))
    self.set_learning_rate(check_learning_rate(learning_rate))
    self.step.assign(0)
    self.monitor.start()


# Derived trainees per base trainee, so each compiles once and is reused across
# seeds and learning rates. Weak keys: a cache entry dies with its trainee.
_DERIVED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def derived_trainee(
  trainee: Trainee,
  cls: type[Trainee],
  **kwargs: Any,
) -> Trainee:
  """The cached `cls` trainee built from `trainee` (built on first use).

  `trainee` itself is returned if it already is a `cls`. A cached trainee
  whose `max_steps` is below `kwargs["max_steps"]` is rebuilt (the refined
  schedule's gradient-norm recorder has that many slots).

  Args:
    trainee: the base trainee (its model, optimizer and data are copied).
    cls: a `Trainee` subclass (the peers' `HypergradientTrainee`,
      `GradientNormRecordingTrainee`, `ScheduleFreeTrainee`).
    **kwargs: `cls.from_trainee` arguments used when (re)building.

  Returns:
    The derived trainee (its run state is whatever the last run left).
  """
  if isinstance(trainee, cls):
    return trainee
  cache = _DERIVED.setdefault(trainee, {})
  derived = cache.get(cls)
  too_small = (
    derived is not None
    and "max_steps" in kwargs
    and derived.max_steps < int(kwargs["max_steps"])
  )
  if derived is None or too_small:
    derived = cls.from_trainee(trainee, **kwargs)
    cache[cls] = derived
  return derived


def _build_model(input_shape: tuple[int, ...], num_classes: int) -> tf.keras.Model:
  """`official_models.build_model` of gin's `build_model.name`, else `DEFAULT_MODEL`."""
  try:
    return official_models.build_model(input_shape=input_shape, num_classes=num_classes)
  except TypeError as e:
    if "'name'" not in str(e):
      raise
  # gin names no model here, so naming the default overrides no binding.
  return official_models.build_model(
    DEFAULT_MODEL, input_shape=input_shape, num_classes=num_classes
  )


# Every caller sets the seed, the rate and the schedule (the step-decay grid
# and train_trainee pass them; the environment and the evaluation `reset`
# every run to their own), so binding any of them is a gin error.
@gin.configurable(denylist=["seed", "initial_learning_rate", "schedule"])
def build_trainee(
  seed: int = 0,
  data: data_lib.Data | None = None,
  initial_learning_rate: float = 0.01,
  schedule: Callable[[tf.Tensor], tf.Tensor] | None = None,
  jit_compile: bool = False,
) -> Trainee:
  """Builds a trainee from gin-configured data, model and optimizer.

  Args:
    seed: seeds the initial weights (`seeded_initial_weights`) and the batch
      order (`data.train_stream`): the run `reset(seed, ...)` starts. Global
      random generators are left alone.
    data: the data; None loads it with `data.load_data()` as configured by gin.
      The model is `official_models.build_model` as gin names it
      (`build_model.name = 'mlp'`; `DEFAULT_MODEL` if unbound), for the
      data's input shape and classes.
    initial_learning_rate: the optimizer's starting learning rate.
    schedule: optional per-step schedule; overrides the rate at every step.
    jit_compile: XLA-compile the training step (see `Trainee`).

  Returns:
    A Trainee at step 0.
  """
  if data is None:
    data = data_lib.load_data()
  try:
    model = _build_model(data.input_shape, data.num_classes)
  except ValueError as e:  # official_models' argument errors (gin adds lines).
    raise UserError(first_line(e)) from None
  model.set_weights(seeded_initial_weights(model, seed))
  optimizer = make_optimizer(learning_rate=check_learning_rate(initial_learning_rate))
  return Trainee(
    model,
    optimizer,
    data,
    schedule=schedule,
    jit_compile=jit_compile,
    seed=seed,
  )


def run_training(
  trainee: Trainee,
  num_steps: int,
  eval_interval: int,
  evaluate_test: bool = True,
  progress: Callable[[dict], None] | None = None,
) -> dict:
  """The paper's protocol (`protocol`) for one run with the trainee's schedule.

  Validates the initial weights first (unless the run was validated already:
  that first loss is the reference of the divergence rule), then trains
  `num_steps` steps in chunks of `eval_interval`, validating after each
  chunk, until the steps are done or the run diverges; keeps the
  best-validation weights and tests those once at the end (`protocol.finish`).

  Args:
    trainee: a trainee (usually with a `schedule`).
    num_steps: the run's training steps (paper: 1000); the run ends when its
      `global_step` reaches it. Not gin-configurable: every caller sets the
      run length of its own configurable (`train_with_schedule.num_steps`,
      `search_step_decay.num_steps`, the evaluation's environment).
    eval_interval: steps between validations (paper: 10).
    evaluate_test: test the best checkpoint at the end (a search skips it).
    progress: optional callback receiving each history row.

  Returns:
    A JSON-ready dict: `test_loss`, `test_accuracy` (None if no finite
    checkpoint existed), `best_step`, `best_val_loss`, `diverged`,
    `steps_done`, `seconds`, and `history`, a list of rows, one per chunk,
    with `step`, `lr` (the rate used by the chunk's last step), `train_loss`,
    `val_loss`, `val_accuracy` (these two None for the chunk that diverged).
  """
  num_steps = checks.integer("num_steps", num_steps)
  eval_interval = checks.integer("eval_interval", eval_interval)
  start = time.perf_counter()
  if trainee.first_val_loss is None and not trainee.diverged:
    trainee.validate()
  history = []
  while trainee.global_step < num_steps and not trainee.diverged:
    chunk = min(eval_interval, num_steps - trainee.global_step)
    train_loss = trainee.train(chunk)
    row = {
      "step": trainee.global_step,
      "lr": trainee.learning_rate,
      "train_loss": train_loss,
    }
    result = None if trainee.diverged else trainee.validate()
    if trainee.diverged:  # By this chunk's training or validation loss.
      row.update(val_loss=None, val_accuracy=None)
    else:
      row.update(val_loss=result.loss, val_accuracy=result.accuracy)
    history.append(_finite_or_none(row))
    if progress is not None:
      progress(row)
  return {
    **protocol.finish(trainee, evaluate_test),
    "seconds": time.perf_counter() - start,
    "history": history,
  }


def _materialize(dataset: tf.data.Dataset) -> tuple[tf.Tensor, tf.Tensor]:
  """Concatenates a finite dataset of (images, labels) batches into two tensors."""
  images, labels = [], []
  for x, y in dataset:
    images.append(tf.cast(x, tf.float32))
    labels.append(tf.cast(y, tf.int32))
  return tf.concat(images, 0), tf.concat(labels, 0)


def _finite_or_none(row: dict) -> dict:
  """Replaces NaN/inf floats by None so the dict is valid JSON."""
  return {
    k: io_utils.finite_or_none(v) if isinstance(v, float) else v for k, v in row.items()
  }
