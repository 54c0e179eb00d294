"""A trained controller as a Keras callback: it sets the learning rate during `fit`.

    scheduler = lr_controller.LearnedLRScheduler(
      "ROOT/policies/greedy_policy", validation_data=(x_val, y_val)
    )
    model.compile(tf.keras.optimizers.SGD(0.01), loss=..., metrics=[...])
    model.fit(x, y, epochs=5, callbacks=[scheduler])
    scheduler.history  # [{"step", "lr", "action", "val_loss", "train_loss"}, ...]

The callback replays the environment of `lr_controller.control.env` inside the user's
own `fit`, so the policy sees what it saw during controller training:

* At `on_train_begin` it validates the model on a fixed subset of
  `validation_data` (the first `validation_examples` examples) and builds the
  first observation as the environment does at reset (train loss := that
  validation loss, previous probabilities := the current ones, so the change
  variance is 0). The environment acts on that observation before the first
  trainee step, so the callback does too: the policy's first call (step type
  0, "first") sets the rate of the first chunk.
* After every `action_interval` training batches (counted across epochs) it
  builds `features.TrainingState` (the chunk's mean training loss, the
  validation loss and softmax outputs of the model, the previous decision's
  outputs, the final Dense layer's kernel, the log of the rate the chunk used,
  the fraction of the run left), calls the policy (step type 1, its RNN state
  carried along) and sets

      lr <- clip(lr * exp(clip(a, -max_log_factor, max_log_factor)),
                 min_learning_rate, max_learning_rate)

  with the bounds of the policy's metadata. A non-finite action is applied as
  0.
* The run follows the protocol of every method (`lr_controller.trainee.protocol`,
  the environment's during controller training): when a chunk's mean training
  loss is not finite or above `max_train_loss`, or (with `validation_data`)
  a validation loss is not finite or above `max_val_loss_ratio` times the
  first one (at `on_train_begin`), the run has diverged: the decision is
  recorded without calling the policy (the environment never shows a
  diverged run to the policy) and training stops (`model.stop_training`).
  With `restore_best_weights`, the weights of the lowest validation loss (the
  initial ones included; never a diverged decision's) are put back when
  `fit` ends, diverged or not, ready for the user's one test.

Training loss: in Keras 2 and 3, `logs["loss"]` in `on_train_batch_end` is the
running mean since the start of the epoch, so the chunk's per-batch losses are
recovered from consecutive running means (`n * mean_n - m * mean_m` is the sum
of batches m+1..n); they are the losses the batches were trained on (before
their update, including regularization losses, as Keras reports them). Keras
weighs the running mean by batch size, so a smaller last batch of an epoch
counts as a full one in the chunk mean.

Without `validation_data` (Keras does not show `fit`'s own validation data or
any batch to callbacks), pass `probe_data`, a fixed batch of inputs (for
instance some training inputs; labels, if given, are ignored):

* the probability features use the model's softmax outputs on `probe_data`;
* `val_loss` is replaced by the chunk's mean training loss;
* as no loss exists before the first step, the first decision (step type 0)
  happens after the first `action_interval` batches, with the outputs at
  `on_train_begin` as its previous probabilities; the first chunk keeps the
  compiled learning rate.

A policy that observes neither `prediction_variance` nor
`prediction_change_variance` also runs with no data at all (val loss := train
loss); one that does raises `UserError` at construction when neither
`validation_data` nor `probe_data` is given.

Outputs: if the model's last layer has a softmax activation (or is a `Softmax`
layer) its outputs are taken as probabilities, else as logits (softmax
applied). The validation loss is the sparse categorical cross-entropy for
integer labels ([N] or [N, 1]) and the categorical one for one-hot labels
[N, K]; sample weights are ignored.

The policy directory is the `policies/greedy_policy` SavedModel written by
`lr_controller.control.controller_training` (format `lr_controller.policy/1`, see
`lr_controller.control.export`); it loads with TensorFlow alone. A controller run's root
directory is accepted too.

Keras 2 and 3: the callback runs in `fit` of `tf.keras` on TensorFlow 2.15
(Keras 2) and on TensorFlow 2.16+ (Keras 3, `import keras`), and needs nothing
but TensorFlow (`pip install lr_controller` without extras). The two differ
where the callback touches the optimizer: Keras 2 keeps the learning rate in a
`tf.Variable`, Keras 3 in a `keras.Variable`, which is no `tf.Variable`; both
have `assign` and read as a NumPy scalar, and `_LearningRate` holds that one
difference. The rest is common to both: `logs` (the running mean above; `lr`
added at each epoch's end reaches `History`), the callback hooks, `params`
("epochs", "steps"), layers and losses through `tf.keras` (which is Keras 3 from
TensorFlow 2.16 on). tests/keras3 runs the callback on Keras 3.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any

import numpy as np
import tensorflow as tf

from lr_controller import checks, io_utils, presets
from lr_controller import controller as controller_lib
from lr_controller import features as features_lib
from lr_controller.errors import UserError, first_line
from lr_controller.trainee import protocol

# Features read from the model's outputs on fixed inputs.
_PROBABILITY_FEATURES = ("prediction_variance", "prediction_change_variance")

# Examples per forward pass when validating.
_EVAL_BATCH_SIZE = 256

# Columns of `lr_log_path` (and keys of `LearnedLRScheduler.history`).
LOG_FIELDS = ("step", "lr", "action", "val_loss", "train_loss")


def _to_tensor(value):
  """Array-like or dict of array-likes -> tensor(s)."""
  if isinstance(value, dict):
    return {k: tf.convert_to_tensor(v) for k, v in value.items()}
  return tf.convert_to_tensor(value)


def _num_examples(x) -> int:
  return int(tf.nest.flatten(x)[0].shape[0])


def _take_examples(data, n: int, what: str) -> tuple:
  """The first `n` examples of `data` as a tuple: (x,), (x, y) or (x, y, w).

  Args:
    data: a tuple (x, y[, w]) of arrays/tensors (x may be a dict), a single x,
      or a `tf.data.Dataset` of such batches.
    n: cap on the number of examples.
    what: the argument's name for error messages.
  """
  try:
    if isinstance(data, tf.data.Dataset):
      parts, count = [], 0
      for element in data:
        element = tuple(element) if isinstance(element, tuple | list) else (element,)
        parts.append(element)
        count += _num_examples(element[0])
        if count >= n:
          break
      if not parts:
        raise UserError(f"{what} is an empty dataset")
      data = tf.nest.map_structure(lambda *t: tf.concat(t, 0), *parts)
    elif isinstance(data, tuple):
      data = tuple(_to_tensor(part) for part in data)
    else:
      data = (_to_tensor(data),)
    data = tuple(tf.nest.map_structure(lambda t: t[:n], part) for part in data)
    sizes = {_num_examples(part) for part in data}
  except UserError:
    raise
  except (TypeError, ValueError, IndexError, tf.errors.OpError) as e:
    raise UserError(f"cannot read {what}: {first_line(e)}") from None
  if len(sizes) != 1 or 0 in sizes:
    raise UserError(
      f"{what}: its parts must hold the same, non-zero number of examples"
    )
  return data


def _ends_in_softmax(model: tf.keras.Model) -> bool:
  """Whether the model's last layer applies a softmax (outputs are probabilities)."""
  layer = model
  while isinstance(layer, tf.keras.Model) and layer.layers:
    layer = layer.layers[-1]
  if isinstance(layer, tf.keras.layers.Softmax):
    return True
  activation = getattr(layer, "activation", None)
  return getattr(activation, "__name__", None) == "softmax"


class _LearningRate:
  """The compiled optimizer's learning rate, read and set in Keras 2 and 3.

  Keras 2 holds it in a `tf.Variable` (legacy optimizers: a hyperparameter
  variable), Keras 3 in a `keras.Variable`; either is set with `assign` and
  read through NumPy. A schedule or a callable is refused: the optimizer would
  overwrite or ignore what the callback sets.

  Args:
    model: the compiled model whose optimizer's rate is set.

  Raises:
    UserError: without an optimizer, or if its rate is not a settable variable.
  """

  def __init__(self, model: tf.keras.Model):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
      raise UserError(
        "LearnedLRScheduler: compile the model with an optimizer before fit"
      )
    name = type(optimizer).__name__
    try:
      learning_rate = optimizer.learning_rate
    except (AttributeError, ValueError):
      raise UserError(
        f"LearnedLRScheduler: optimizer {name} has no learning_rate"
      ) from None
    # Optimizers built with a schedule keep it in `_learning_rate` (a loss-scale
    # wrapper: in its `inner_optimizer`) and answer `learning_rate` with a
    # variable they overwrite at every step (Keras 2) or a tensor (Keras 3).
    for candidate in (optimizer, getattr(optimizer, "inner_optimizer", None)):
      raw = getattr(candidate, "_learning_rate", None)
      if isinstance(raw, tf.keras.optimizers.schedules.LearningRateSchedule):
        learning_rate = raw
    if isinstance(learning_rate, tf.keras.optimizers.schedules.LearningRateSchedule):
      raise UserError(
        f"LearnedLRScheduler: the learning rate of {name} is a schedule "
        f"({type(learning_rate).__name__}); compile with a float learning rate, "
        "the callback sets it"
      )
    if not callable(getattr(learning_rate, "assign", None)):
      raise UserError(
        f"LearnedLRScheduler: the learning rate of {name} is a "
        f"{type(learning_rate).__name__}, not a variable the callback can set; "
        "compile with a float learning rate"
      )
    self._variable = learning_rate

  def get(self) -> float:
    """The current rate (the rate of the next batch)."""
    return float(np.asarray(self._variable))

  def set(self, value: float) -> None:
    """Sets the rate of the batches from the next one on."""
    self._variable.assign(value)


class LearnedLRScheduler(tf.keras.callbacks.Callback):
  """Sets the optimizer's learning rate with a trained controller policy.

  See the module docstring for what is observed and when the policy acts.

  Args:
    policy_dir: the exported policy, `ROOT/policies/greedy_policy` of a
      `train_controller` run (or ROOT itself).
    action_interval: training batches per decision; None uses the policy's
      (the interval it was trained with).
    validation_data: labelled data the features are computed on: a tuple
      `(x, y)` or `(x, y, sample_weight)` of arrays/tensors (`x` may be a dict
      of inputs), or a finite `tf.data.Dataset` of such batches. Integer labels
      [N] (or [N, 1]) or one-hot labels [N, K]. Only the first
      `validation_examples` examples are kept and reused at every decision.
    final_layer: the Dense layer whose kernel gives the output-weight features:
      a layer name, a `tf.keras.layers.Dense`, or None for the model's last
      Dense layer (`features.find_final_dense`).
    validation_examples: cap on the fixed validation (or probe) subset.
    lr_log_path: if set, a `.csv` or `.jsonl` file that receives one row per
      decision (columns `LOG_FIELDS`: step, lr, action, val_loss, train_loss);
      rewritten at each `fit`, appended to as training goes.
    verbose: 0 (or False) is silent; 1 (or True) prints one line per decision.
    probe_data: used only without `validation_data`: inputs `x` (or a tuple
      whose first entry is `x`, or a dataset) whose softmax outputs give the
      probability features; val_loss is then the chunk's training loss (see the
      module docstring).
    total_steps: the run's total training batches, for a policy that observes
      `budget_left`; None uses `epochs * steps` of `fit` (the steps per epoch
      must then be known).
    max_train_loss: a chunk's mean training loss above this (nats; inf: only
      a non-finite one) is divergence: training stops (see the module
      docstring). Default `protocol.MAX_TRAIN_LOSS`, the library's.
    max_val_loss_ratio: a validation loss above this multiple (> 1) of the
      first one is divergence; None: only a non-finite one. Needs
      `validation_data` to act. Default `protocol.MAX_VAL_LOSS_RATIO`.
    restore_best_weights: when `fit` ends, put back the weights of the lowest
      validation loss (needs `validation_data`); False leaves the last ones.
    adaptive_optimizer: for a policy that observes `adaptive_optimizer`,
      whether the optimizer scales its steps per coordinate; None reads it
      from the compiled optimizer's class (`features.is_adaptive_optimizer`;
      a custom optimizer needs True or False here).

  Attributes:
    policy: the loaded `Policy`.
    history: one dict per decision of the last `fit`, keys `LOG_FIELDS`:
      `step` (training batches done), `lr` (the rate set, used from the next
      batch on), `action` (the applied, clipped log factor; None if the
      run diverged at the decision: no policy call), `val_loss`, `train_loss`
      (the values observed, nats; None if not finite).
    observations: float32 [num_features] observation of each decision that
      called the policy.
    step_types: the step type (0 first, 1 mid) of each such call.
    nonfinite_actions: non-finite actions applied as 0.
    diverged: whether the last `fit` diverged (and was stopped).
    best_val_loss: the lowest validation loss of the last `fit` (inf before
      any; with `validation_data` only).
    best_step: the training batches done at `best_val_loss` (None before any).

  Raises:
    UserError: at construction for a bad policy directory or argument; at
      `on_train_begin` (before any training step) for an optimizer without a
      settable learning rate, a missing final Dense layer, unusable data, an
      unknown total number of steps when `budget_left` is observed or an
      optimizer of unknown kind when `adaptive_optimizer` is.
  """

  def __init__(
    self,
    policy_dir: str | os.PathLike,
    action_interval: int | None = None,
    validation_data: Any = None,
    final_layer: str | tf.keras.layers.Dense | None = None,
    validation_examples: int = 1000,
    lr_log_path: str | os.PathLike | None = None,
    verbose: int = 0,
    probe_data: Any = None,
    total_steps: int | None = None,
    max_train_loss: float = protocol.MAX_TRAIN_LOSS,
    max_val_loss_ratio: float | None = protocol.MAX_VAL_LOSS_RATIO,
    restore_best_weights: bool = False,
    adaptive_optimizer: bool | None = None,
  ):
    super().__init__()
    self.rule = protocol.DivergenceRule(max_train_loss, max_val_loss_ratio)
    self.policy = controller_lib.load_policy(policy_dir)
    self._controller = controller_lib.Controller(self.policy)
    self.action_interval = checks.integer(
      "action_interval",
      self.policy.action_interval if action_interval is None else action_interval,
      what="a positive integer",
    )
    self.validation_examples = checks.integer(
      "validation_examples", validation_examples, what="a positive integer"
    )
    if final_layer is not None and not isinstance(
      final_layer, str | tf.keras.layers.Dense
    ):
      raise UserError(
        f"final_layer must be a layer name or a Dense layer, got {type(final_layer).__name__}"
      )
    self._final_layer_arg = final_layer
    self.total_steps = (
      None
      if total_steps is None
      else checks.integer("total_steps", total_steps, what="a positive integer")
    )
    self._validation: tuple[Any, tf.Tensor, bool] | None = None
    self._probe = None
    if validation_data is not None:
      self._validation = self._labelled(validation_data)
    elif probe_data is not None:
      probe = _take_examples(probe_data, self.validation_examples, "probe_data")
      self._probe = probe[0]  # Labels, if any, are not used.
    else:
      needed = [f for f in self.policy.feature_names if f in _PROBABILITY_FEATURES]
      if needed:
        raise UserError(
          f"the policy observes {', '.join(needed)}, computed from the model's "
          "outputs on fixed inputs: pass validation_data=(x, y) or probe_data=x"
        )
    self.lr_log_path = None if lr_log_path is None else os.fspath(lr_log_path)
    if self.lr_log_path is not None:
      extension = os.path.splitext(self.lr_log_path)[1].lower()
      if extension not in (".csv", ".jsonl"):
        raise UserError(
          f"lr_log_path must end in .csv or .jsonl, got {self.lr_log_path}"
        )
    checks.boolean("restore_best_weights", restore_best_weights)
    if restore_best_weights and self._validation is None:
      raise UserError(
        "restore_best_weights keeps the weights of the lowest validation loss: "
        "pass validation_data=(x, y)"
      )
    self.restore_best_weights = restore_best_weights
    if adaptive_optimizer is not None:
      checks.boolean("adaptive_optimizer", adaptive_optimizer)
    self._adaptive_optimizer_arg = adaptive_optimizer
    self.verbose = checks.integer(
      "verbose",
      int(verbose) if isinstance(verbose, bool) else verbose,  # Keras takes True.
      minimum=0,
      what="an integer >= 0 (0: silent, 1: a line per decision)",
    )
    self.history: list[dict] = []
    self.observations: list[np.ndarray] = []
    self.step_types: list[int] = []
    self.nonfinite_actions = 0
    self._learning_rate: _LearningRate | None = None
    self._forward_model: tf.keras.Model | None = None
    self._monitor = protocol.RunMonitor(self.rule)

  @classmethod
  def from_preset(cls, name: str, **kwargs) -> LearnedLRScheduler:
    """The callback with a controller that ships in the package (`presets`).

    Args:
      name: a preset, one of `lr_controller.list_presets()` (e.g. "general").
      **kwargs: the callback's other arguments (`validation_data`, ...).

    Raises:
      UserError: (one line) for an unknown preset or a bad argument.
    """
    if "policy_dir" in kwargs:
      raise UserError("from_preset takes a preset name, not policy_dir")
    return cls(presets.preset_path(name), **kwargs)

  @property
  def diverged(self) -> bool:
    """Whether the last `fit` diverged by the protocol's rule (and was stopped)."""
    return self._monitor.diverged

  @property
  def best_val_loss(self) -> float:
    """The last `fit`'s lowest validation loss (inf before any)."""
    return self._monitor.best_val_loss

  @property
  def best_step(self) -> int | None:
    """Training batches done at `best_val_loss` (None before any)."""
    return self._monitor.best_step

  # ---- Set-up. ----

  def _labelled(self, data) -> tuple[Any, tf.Tensor, bool]:
    """(x, labels, sparse) of the first `validation_examples` examples."""
    parts = _take_examples(data, self.validation_examples, "validation_data")
    if len(parts) < 2:
      raise UserError(
        "validation_data must hold labels: (x, y), (x, y, sample_weight) or a "
        "dataset of such batches"
      )
    x, y = parts[0], parts[1]
    if not isinstance(y, tf.Tensor):
      raise UserError("validation_data: labels must be one array or tensor")
    sparse = (
      y.dtype.is_integer
      or y.shape.rank == 1
      or (y.shape.rank == 2 and y.shape[-1] == 1)
    )
    if sparse:
      y = tf.reshape(tf.cast(y, tf.int32), [-1])
    elif y.shape.rank != 2:
      raise UserError(
        f"validation_data: labels must be integers [N] or one-hot [N, K], got shape {y.shape}"
      )
    else:
      y = tf.cast(y, tf.float32)
    return x, y, sparse

  def _resolve_final_layer(self) -> tf.keras.layers.Dense:
    if isinstance(self._final_layer_arg, tf.keras.layers.Dense):
      return self._final_layer_arg
    return features_lib.find_final_dense(self.model, self._final_layer_arg)

  def _resolve_total_steps(self) -> int:
    if self.total_steps is not None:
      return self.total_steps
    epochs, steps = self.params.get("epochs"), self.params.get("steps")
    if not epochs or not steps:
      raise UserError(
        "the policy observes budget_left, which needs the run's total number of "
        "steps: fit with a known number of steps per epoch (sized data or "
        "steps_per_epoch) or pass total_steps"
      )
    self._total_from_params = True
    return int(epochs) * int(steps)

  def _needs_train_loss(self) -> bool:
    names = self.policy.feature_names
    return "train_loss" in names or (self._validation is None and "val_loss" in names)

  # ---- Keras hooks. ----

  def on_train_begin(self, logs=None):
    self.history = []
    self.observations = []
    self.step_types = []
    self.nonfinite_actions = 0
    self._step = 0
    self._chunk_steps = 0
    self._chunk_loss_sum = 0.0
    self._chunk_has_loss = True
    self._epoch_first_batch: int | None = None
    self._epoch_steps = 0
    self._epoch_loss_sum = 0.0
    self._seen_epoch = False
    self._total_from_params = False
    self._controller.reset()
    self._stall = features_lib.StallTracker()
    model = self.model
    self._monitor = (
      protocol.RunMonitor(self.rule, model.get_weights, model.set_weights)
      if self.restore_best_weights
      else protocol.RunMonitor(self.rule)
    )
    self._previous_probabilities = np.zeros((1, 1), np.float32)
    self._learning_rate = _LearningRate(self.model)
    self._initial_learning_rate = self._learning_rate.get()
    self._final_layer = self._resolve_final_layer()
    self._total = None
    if "budget_left" in self.policy.feature_names:
      self._total = self._resolve_total_steps()
    # Read only when observed: a custom optimizer is then no error.
    self._adaptive_optimizer = "adaptive_optimizer" in self.policy.feature_names and (
      self._adaptive_optimizer_arg
      if self._adaptive_optimizer_arg is not None
      else features_lib.is_adaptive_optimizer(self.model.optimizer)
    )
    self._outputs_are_probabilities = _ends_in_softmax(self.model)
    self._inputs_checked = False
    if self._forward_model is not self.model:  # One trace per model, not per fit.
      model = self._forward_model = self.model
      self._forward = tf.function(
        lambda x: model(x, training=False), reduce_retracing=True
      )
    self._start_log()
    if self._validation is not None:
      loss, probabilities = self._validate()
      self._monitor.observe_validation(loss, self._step)
      self._previous_probabilities = probabilities
      self._decide(train_loss=loss, val_loss=loss, probabilities=probabilities)
    elif self._probe is not None:
      self._previous_probabilities = self._probabilities(self._outputs(self._probe))

  def on_epoch_begin(self, epoch, logs=None):
    if not self._seen_epoch:
      self._seen_epoch = True
      if self._total_from_params and epoch:  # fit(initial_epoch=epoch).
        self._total = (int(self.params["epochs"]) - int(epoch)) * int(
          self.params["steps"]
        )
    self._epoch_first_batch = None
    self._epoch_steps = 0
    self._epoch_loss_sum = 0.0

  def on_train_batch_begin(self, batch, logs=None):
    if self._epoch_first_batch is None:
      # Batches the epoch counts before this fit resumed it (BackupAndRestore).
      self._epoch_first_batch = int(batch)

  def on_train_batch_end(self, batch, logs=None):
    logs = logs if logs is not None else {}
    first = self._epoch_first_batch or 0
    steps_in_epoch = (
      int(batch) + 1 - first
    )  # > 1 batch per call with steps_per_execution.
    new_steps = steps_in_epoch - self._epoch_steps
    if new_steps > 0:
      loss = logs.get("loss")
      if loss is None:
        self._chunk_has_loss = False
      else:
        # logs["loss"] is the epoch's running mean: recover the new batches' sum.
        running_sum = float(loss) * steps_in_epoch
        self._chunk_loss_sum += running_sum - self._epoch_loss_sum
        self._epoch_loss_sum = running_sum
      self._epoch_steps = steps_in_epoch
      self._step += new_steps
      self._chunk_steps += new_steps
      if self._chunk_steps >= self.action_interval:
        self._end_chunk()
    logs["lr"] = self.learning_rate

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["lr"] = self.learning_rate

  def on_train_end(self, logs=None):
    if self.restore_best_weights and self._monitor.restore_best() and self.verbose:
      print(
        f"LearnedLRScheduler: restored the weights of step {self.best_step} "
        f"(val_loss {self.best_val_loss:.4f})"
      )

  # ---- Decisions. ----

  @property
  def learning_rate(self) -> float:
    """The optimizer's current learning rate (the rate of the next batch)."""
    if self._learning_rate is None:
      raise RuntimeError("the learning rate is known once training began")
    return self._learning_rate.get()

  def _end_chunk(self) -> None:
    known_train_loss = None
    if self._chunk_has_loss:
      train_loss = known_train_loss = self._chunk_loss_sum / self._chunk_steps
    elif self._needs_train_loss():
      raise UserError(
        "LearnedLRScheduler needs logs['loss'] in on_train_batch_end; the "
        "model's train_step did not report 'loss'"
      )
    else:
      train_loss = math.nan
    self._monitor.observe_training(known_train_loss)
    if self._validation is not None:
      val_loss, probabilities = self._validate()
      self._monitor.observe_validation(val_loss, self._step)
    else:
      val_loss = train_loss
      probabilities = (
        self._probabilities(self._outputs(self._probe))
        if self._probe is not None
        else self._previous_probabilities
      )
    self._chunk_steps = 0
    self._chunk_loss_sum = 0.0
    self._chunk_has_loss = True
    self._decide(train_loss, val_loss, probabilities)

  def _budget_left(self) -> float:
    if self._total is None:
      return 1.0
    return min(max(1.0 - self._step / self._total, 0.0), 1.0)

  def _decide(self, train_loss: float, val_loss: float, probabilities: np.ndarray):
    """Observes, calls the policy and sets the learning rate of the next chunk.

    A diverged run (the monitor has seen the losses) calls no policy: training
    stops.
    """
    lr = self.learning_rate
    row = {
      "step": self._step,
      "lr": lr,
      "action": None,
      "val_loss": io_utils.finite_or_none(val_loss),
      "train_loss": io_utils.finite_or_none(train_loss),
    }
    if self._monitor.diverged:
      self.model.stop_training = True
    else:  # The losses the policy observes are finite (else: diverged).
      self._stall.observe(val_loss)
      state = features_lib.TrainingState(
        train_loss=train_loss,
        val_loss=val_loss,
        probabilities=probabilities,
        previous_probabilities=self._previous_probabilities,
        final_kernel=self._final_layer.kernel,
        learning_rate=lr,
        budget_left=self._budget_left(),
        initial_learning_rate=self._initial_learning_rate,
        best_val_loss=self._stall.best_val_loss,
        decisions_since_best=self._stall.decisions_since_best,
        adaptive_optimizer=self._adaptive_optimizer,
      )
      step_type = 0 if self._controller.first else 1
      new_lr, action, finite, observation = self._controller.decide(state)
      if not finite:
        self.nonfinite_actions += 1
      self._learning_rate.set(new_lr)
      row.update(lr=self.learning_rate, action=action)
      self.observations.append(observation)
      self.step_types.append(step_type)
    self._previous_probabilities = probabilities
    self.history.append(row)
    self._write_log(row)
    if self.verbose:
      action_text = (
        "none (diverged: training stops)"
        if self._monitor.diverged
        else f"{row['action']:+.4f}"
      )
      val_text = "n/a" if row["val_loss"] is None else f"{row['val_loss']:.4f}"
      print(
        f"LearnedLRScheduler: step {self._step}  action {action_text}  "
        f"lr {row['lr']:.4g}  val_loss {val_text}"
      )

  # ---- Model outputs. ----

  def _outputs(self, x) -> tf.Tensor:
    """The model's outputs on x, float32 [N, K] (inference mode, in batches)."""
    n = _num_examples(x)
    if not self._inputs_checked:
      # One eager call first: its errors read better than a traced function's.
      self._call_model(
        lambda: self.model(tf.nest.map_structure(lambda t: t[:1], x), training=False)
      )
      self._inputs_checked = True
    outputs = []
    for start in range(0, n, _EVAL_BATCH_SIZE):
      batch = tf.nest.map_structure(lambda t, s=start: t[s : s + _EVAL_BATCH_SIZE], x)
      out = self._call_model(lambda b=batch: self._forward(b))
      if not isinstance(out, tf.Tensor):
        raise UserError(
          "LearnedLRScheduler needs a model with one output of class scores "
          f"[N, classes], got {type(out).__name__}"
        )
      outputs.append(out)
    out = tf.cast(tf.concat(outputs, 0), tf.float32)
    if out.shape.rank != 2 or out.shape[-1] < 2:
      raise UserError(
        "LearnedLRScheduler needs the model's output to be class scores "
        f"[N, classes >= 2], got shape {out.shape}"
      )
    return out

  def _call_model(self, fn):
    try:
      return fn()
    except (TypeError, ValueError, tf.errors.InvalidArgumentError) as e:
      what = "validation_data" if self._validation is not None else "probe_data"
      raise UserError(f"cannot run the model on {what}: {first_line(e)}") from None

  def _probabilities(self, outputs: tf.Tensor) -> np.ndarray:
    if self._outputs_are_probabilities:
      return outputs.numpy()
    return tf.nn.softmax(outputs).numpy()

  def _validate(self) -> tuple[float, np.ndarray]:
    """(mean cross-entropy in nats, probabilities [N, K]) on the validation subset."""
    x, y, sparse = self._validation
    outputs = self._outputs(x)
    from_logits = not self._outputs_are_probabilities
    if sparse:
      losses = tf.keras.losses.sparse_categorical_crossentropy(
        y, outputs, from_logits=from_logits
      )
    else:
      if y.shape[-1] != outputs.shape[-1]:
        raise UserError(
          f"validation_data: one-hot labels have {y.shape[-1]} classes, the "
          f"model outputs {outputs.shape[-1]}"
        )
      losses = tf.keras.losses.categorical_crossentropy(
        y, outputs, from_logits=from_logits
      )
    return float(tf.reduce_mean(losses)), self._probabilities(outputs)

  # ---- LR path file. ----

  def _start_log(self) -> None:
    if self.lr_log_path is None:
      return
    parent = os.path.dirname(os.path.abspath(self.lr_log_path))
    os.makedirs(parent, exist_ok=True)
    with open(self.lr_log_path, "w", newline="") as f:
      if self.lr_log_path.lower().endswith(".csv"):
        csv.DictWriter(f, fieldnames=LOG_FIELDS).writeheader()

  def _write_log(self, row: dict) -> None:
    if self.lr_log_path is None:
      return
    with open(self.lr_log_path, "a", newline="") as f:
      if self.lr_log_path.lower().endswith(".csv"):
        csv.DictWriter(f, fieldnames=LOG_FIELDS).writerow(
          {k: "" if row[k] is None else row[k] for k in LOG_FIELDS}
        )
      else:
        f.write(json.dumps({k: row[k] for k in LOG_FIELDS}) + "\n")


def read_lr_log(path: str | os.PathLike) -> list[dict]:
  """Reads a file written through `lr_log_path` back into `history`-like rows."""
  path = os.fspath(path)
  with open(path, newline="") as f:
    if path.lower().endswith(".csv"):
      rows = []
      for raw in csv.DictReader(f):
        row = {k: (None if raw[k] == "" else float(raw[k])) for k in LOG_FIELDS}
        row["step"] = int(row["step"])
        rows.append(row)
      return rows
    return [json.loads(line) for line in f if line.strip()]


# The policy loader lives in the controller core; re-exported for users.
Policy = controller_lib.Policy
load_policy = controller_lib.load_policy

__all__ = ["LearnedLRScheduler", "Policy", "load_policy", "read_lr_log"]
