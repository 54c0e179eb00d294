"""What the controller observes (Xu et al. 2019, Sec. 3.1 "State").

Every `action_interval` trainee steps the environment builds a `TrainingState`
from work the run already did (the chunk's training losses and one validation
pass, which also yields the softmax outputs), and turns it into an observation
vector with the features named in `feature_names`. Each feature is a small
pure function of the state, documented in `FEATURES`:

| name                        | definition                                                   | units            |
|-----------------------------|--------------------------------------------------------------|------------------|
| train_loss                  | mean training cross-entropy over the last chunk's steps       | nats             |
| val_loss                    | mean cross-entropy on the fixed validation subset             | nats             |
| prediction_variance         | softmax outputs p[n, k] on the validation subset: variance    | probability^2    |
|                             | over examples n of p[:, k], averaged over classes k           |                  |
| prediction_change_variance  | the same variance of p[n, k] - p_prev[n, k], the change since | probability^2    |
|                             | the previous decision (0 at the first observation)            |                  |
| output_weight_mean          | mean of the final Dense layer's kernel                        | weight units     |
| output_weight_variance      | variance of the final Dense layer's kernel                    | weight units^2   |
| log_learning_rate           | natural log of the learning rate used by the last chunk       | log(lr)          |
| budget_left                 | fraction of the episode's trainee steps still to run (extra)  | fraction in [0,1]|
| log_learning_rate_change    | log of the last chunk's rate over the run's initial rate      | log(lr / lr0)    |
|                             | (extra; 0 at the first decision)                              |                  |
| log_val_loss_over_best      | log of val_loss over the run's lowest validation loss so far  | log(nats / nats) |
|                             | (this one included: >= 0, 0 at a new best; extra)             |                  |
| decisions_since_best        | decision points since that lowest validation loss (extra)     | decisions        |
| adaptive_optimizer          | 1 if the optimizer scales its steps per coordinate (Adam,     | indicator {0, 1} |
|                             | RMSprop, ...), 0 if not (SGD) (extra)                         |                  |

The paper's seven are `PAPER_FEATURES`; `budget_left` is an optional extra
(budget-aware controllers, as in DACBench and later schedule work):
`BUDGET_AWARE_FEATURES`. `RELATIVE_RATE_FEATURES` is `BUDGET_AWARE_FEATURES`
with `log_learning_rate_change` in place of `log_learning_rate`: a controller
that sees only its rate relative to where the run started (the episode's
initial rate; in the callback, the rate `fit` began with) scales whatever
initial rate it is given (a user's Adam at 1e-3 stays in Adam's range), where
one that sees the absolute rate steers towards the rates it was trained at
(docs/experiments.md, round 12). `STALL_FEATURES` is `BUDGET_AWARE_FEATURES`
plus the two stall features, the signal ReduceLROnPlateau acts on: how far
the validation loss is above its best so far, and for how many decisions it
has not improved (`StallTracker` keeps both; a controller without memory
cannot know them otherwise). `OPTIMIZER_AWARE_FEATURES` is
`BUDGET_AWARE_FEATURES` plus `adaptive_optimizer`, known from the first
decision: an adaptive optimizer's rate means something else than SGD's
(whether a controller trained on Adam then treats RMSprop better is an
experiment: docs/experiments.md, round 25, where it did not). Gin files
name the five lists `%PAPER_FEATURES`, `%BUDGET_AWARE_FEATURES`,
`%RELATIVE_RATE_FEATURES`, `%STALL_FEATURES` and `%OPTIMIZER_AWARE_FEATURES`
(registered by `lr_controller.control.env`: this module needs TensorFlow
only, as the callback does).

The output-weight features read the model's final Dense layer
(`find_final_dense`, TensorFlow only: the callback's look-up).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from lr_controller.errors import UserError


@dataclasses.dataclass(frozen=True)
class TrainingState:
  """What a decision point knows about the run.

  Attributes:
    train_loss: mean training loss of the last chunk (nats).
    val_loss: validation loss (nats).
    probabilities: softmax outputs on the validation subset, [N, K].
    previous_probabilities: the same at the previous decision, [N, K].
    final_kernel: kernel of the final Dense layer, [units_in, K].
    learning_rate: learning rate of the last chunk (> 0).
    budget_left: fraction of the episode's steps still to run.
    initial_learning_rate: learning rate the run started at (> 0).
    best_val_loss: the run's lowest validation loss so far, this one
      included (nats; `StallTracker`).
    decisions_since_best: decision points since that loss was seen (0 when
      `val_loss` is it; `StallTracker`).
    adaptive_optimizer: whether the optimizer scales its steps per
      coordinate (`is_adaptive_optimizer`).
  """

  train_loss: float
  val_loss: float
  probabilities: tf.Tensor | np.ndarray
  previous_probabilities: tf.Tensor | np.ndarray
  final_kernel: tf.Tensor | np.ndarray
  learning_rate: float
  budget_left: float
  initial_learning_rate: float
  best_val_loss: float
  decisions_since_best: int
  adaptive_optimizer: bool


# Optimizers by whether they scale each coordinate's step by statistics of its
# own gradients (Keras class names, the same in Keras 2, its legacy optimizers
# and Keras 3). A subclass is classed as its nearest known base; any other
# optimizer (Keras 3's Muon and MultiOptimizer among them) is not guessed.
ADAPTIVE_OPTIMIZERS = frozenset(
  {
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Ftrl",
    "Lamb",
    "Lion",
    "Nadam",
    "RMSprop",
    "ScheduleFreeAdamW",
  }
)
NON_ADAPTIVE_OPTIMIZERS = frozenset({"SGD", "ScheduleFreeSGD"})
KNOWN_OPTIMIZERS = ADAPTIVE_OPTIMIZERS | NON_ADAPTIVE_OPTIMIZERS


def is_adaptive_optimizer(optimizer) -> bool:
  """Whether a Keras optimizer scales its steps per coordinate (Adam: True, SGD: False).

  A loss-scale wrapper (mixed precision) is judged by the optimizer it wraps;
  a subclass by its nearest base in `ADAPTIVE_OPTIMIZERS` or
  `NON_ADAPTIVE_OPTIMIZERS`.

  Raises:
    UserError: for an optimizer with no known base (a custom one): the
      callback then takes the answer from its `adaptive_optimizer` argument.
  """
  inner = getattr(optimizer, "inner_optimizer", None)
  if inner is not None:
    optimizer = inner
  for cls in type(optimizer).__mro__:
    if cls.__name__ in ADAPTIVE_OPTIMIZERS:
      return True
    if cls.__name__ in NON_ADAPTIVE_OPTIMIZERS:
      return False
  raise UserError(
    f"cannot tell whether optimizer {type(optimizer).__name__} scales its steps per "
    "coordinate (the 'adaptive_optimizer' feature): pass adaptive_optimizer=True "
    "or False"
  )


class StallTracker:
  """The run's lowest validation loss and the decision points since it.

  `observe` once per decision point, the run's start included, with that
  point's (finite) validation loss; then `best_val_loss` and
  `decisions_since_best` describe the run up to and including it.
  """

  def __init__(self):
    self.best_val_loss = math.inf
    self.decisions_since_best = 0

  def observe(self, val_loss: float) -> None:
    """Records one decision point's validation loss (nats)."""
    if val_loss < self.best_val_loss:
      self.best_val_loss = float(val_loss)
      self.decisions_since_best = 0
    else:
      self.decisions_since_best += 1


@dataclasses.dataclass(frozen=True)
class Feature:
  """One observation feature: a pure function of the state, with its meaning."""

  fn: Callable[[TrainingState], tf.Tensor]
  description: str
  units: str


def _class_averaged_variance(p) -> tf.Tensor:
  """Variance over examples (axis 0) of [N, K] values, averaged over K."""
  p = tf.convert_to_tensor(p, tf.float32)
  return tf.reduce_mean(tf.math.reduce_variance(p, axis=0))


FEATURES: dict[str, Feature] = {
  "train_loss": Feature(
    lambda s: tf.constant(s.train_loss, tf.float32),
    "mean training cross-entropy over the last chunk's steps",
    "nats",
  ),
  "val_loss": Feature(
    lambda s: tf.constant(s.val_loss, tf.float32),
    "mean cross-entropy on the fixed validation subset",
    "nats",
  ),
  "prediction_variance": Feature(
    lambda s: _class_averaged_variance(s.probabilities),
    "variance over validation examples of the softmax outputs, averaged over classes",
    "probability^2",
  ),
  "prediction_change_variance": Feature(
    lambda s: _class_averaged_variance(
      tf.convert_to_tensor(s.probabilities, tf.float32)
      - tf.convert_to_tensor(s.previous_probabilities, tf.float32)
    ),
    "the same variance of the change in softmax outputs since the previous decision",
    "probability^2",
  ),
  "output_weight_mean": Feature(
    lambda s: tf.reduce_mean(tf.convert_to_tensor(s.final_kernel, tf.float32)),
    "mean of the final Dense layer's kernel",
    "weight units",
  ),
  "output_weight_variance": Feature(
    lambda s: tf.math.reduce_variance(tf.convert_to_tensor(s.final_kernel, tf.float32)),
    "variance of the final Dense layer's kernel",
    "weight units^2",
  ),
  "log_learning_rate": Feature(
    lambda s: tf.math.log(tf.constant(s.learning_rate, tf.float32)),
    "natural log of the learning rate of the last chunk",
    "log(lr)",
  ),
  "budget_left": Feature(
    lambda s: tf.constant(s.budget_left, tf.float32),
    "fraction of the episode's trainee steps still to run",
    "fraction",
  ),
  "log_learning_rate_change": Feature(
    lambda s: tf.math.log(
      tf.constant(s.learning_rate / s.initial_learning_rate, tf.float32)
    ),
    "natural log of the last chunk's learning rate over the run's initial one",
    "log(lr / lr0)",
  ),
  "log_val_loss_over_best": Feature(
    lambda s: tf.math.log(tf.constant(s.val_loss / s.best_val_loss, tf.float32)),
    "natural log of the validation loss over the run's lowest so far (>= 0)",
    "log(nats / nats)",
  ),
  "decisions_since_best": Feature(
    lambda s: tf.constant(s.decisions_since_best, tf.float32),
    "decision points since the run's lowest validation loss so far",
    "decisions",
  ),
  "adaptive_optimizer": Feature(
    lambda s: tf.constant(float(s.adaptive_optimizer), tf.float32),
    "1 if the optimizer scales its steps per coordinate (Adam, RMSprop), 0 if not (SGD)",
    "indicator",
  ),
}

PAPER_FEATURES = (
  "train_loss",
  "val_loss",
  "prediction_variance",
  "prediction_change_variance",
  "output_weight_mean",
  "output_weight_variance",
  "log_learning_rate",
)
BUDGET_AWARE_FEATURES = PAPER_FEATURES + ("budget_left",)
RELATIVE_RATE_FEATURES = tuple(
  "log_learning_rate_change" if n == "log_learning_rate" else n
  for n in BUDGET_AWARE_FEATURES
)
STALL_FEATURES = BUDGET_AWARE_FEATURES + (
  "log_val_loss_over_best",
  "decisions_since_best",
)
OPTIMIZER_AWARE_FEATURES = BUDGET_AWARE_FEATURES + ("adaptive_optimizer",)


def check_feature_names(names: Sequence[str]) -> tuple[str, ...]:
  """Returns `names` as a tuple; raises UserError for unknown or repeated names."""
  names = tuple(names)
  unknown = [n for n in names if n not in FEATURES]
  if unknown:
    raise UserError(f"unknown feature(s) {unknown} (known: {', '.join(FEATURES)})")
  if len(set(names)) != len(names) or not names:
    raise UserError(f"features must be distinct and non-empty, got {list(names)}")
  return names


def observation(state: TrainingState, names: Sequence[str]) -> np.ndarray:
  """The observation vector: float32 [len(names)], features in the given order."""
  return tf.stack([FEATURES[n].fn(state) for n in names]).numpy().astype(np.float32)


def find_final_dense(
  model: tf.keras.Model, name: str | None = None
) -> tf.keras.layers.Dense:
  """The layer whose kernel the output-weight features read.

  Args:
    model: a Keras model (Keras 2 or 3); nested models are searched.
    name: the layer's name; None takes the model's last Dense layer.

  Raises:
    UserError: if there is no such layer, or it is not a Dense layer.
  """
  if name is not None:
    try:
      layer = model.get_layer(name)
    except ValueError:
      raise UserError(f"model has no layer named '{name}'") from None
    if not isinstance(layer, tf.keras.layers.Dense):
      raise UserError(f"layer '{name}' is a {type(layer).__name__}, not a Dense layer")
    return layer
  dense = [
    layer for layer in _all_layers(model) if isinstance(layer, tf.keras.layers.Dense)
  ]
  if not dense:
    raise UserError("model has no Dense layer to read output-layer features from")
  return dense[-1]


def _all_layers(model: tf.keras.layers.Layer) -> list[tf.keras.layers.Layer]:
  """The layers of `model`, those of nested models in place of the models."""
  layers = []
  for layer in getattr(model, "layers", []):
    if isinstance(layer, tf.keras.Model):
      layers.extend(_all_layers(layer))
    else:
      layers.append(layer)
  return layers
