"""The MNIST-1D multilayer perceptron as a plain functional `tf.keras.Model`.

Greydanus and Kobak 2024, "Scaling down deep learning with MNIST-1D": a
2 x 100 ReLU MLP on the 40-point signals (about 68% test accuracy in their
paper), the model whose tuned learning-rate schedules differ clearly because
it over-fits the 4,000 training examples. Any input shape is flattened.
"""

from __future__ import annotations

from collections.abc import Sequence

import gin
import tensorflow as tf

from official_models.common import (
  FINAL_LAYER_NAME,
  SHAPE_ARGUMENTS,
  check_input_shape,
  check_num_classes,
)

# Units of the hidden ReLU layers of the MNIST-1D MLP.
MNIST1D_HIDDEN_UNITS = (100, 100)


@gin.configurable(denylist=SHAPE_ARGUMENTS)
def mlp(
  input_shape: Sequence[int] = (40, 1),
  num_classes: int = 10,
  hidden_units: Sequence[int] = MNIST1D_HIDDEN_UNITS,
) -> tf.keras.Model:
  """Builds an MLP: flatten -> ReLU dense layers -> dense `num_classes` logits.

  With the defaults, 40 -> 100 -> 100 -> 10: 15,210 parameters.

  Args:
    input_shape: shape of one example, e.g. `(40, 1)`; flattened first.
    num_classes: number of classes, at least 2.
    hidden_units: units of each hidden layer (ReLU), positive ints; empty
      gives logistic regression.

  Returns:
    An uncompiled `tf.keras.Model` mapping float `[batch, *input_shape]` to
    logits `[batch, num_classes]`; the last layer is the Dense "logits".

  Raises:
    ValueError: for a bad `input_shape`, `num_classes` or `hidden_units`.
  """
  input_shape = check_input_shape(input_shape)
  check_num_classes(num_classes)
  if isinstance(hidden_units, str) or not isinstance(hidden_units, Sequence):
    raise ValueError(f"hidden_units must be a sequence of ints, got {hidden_units!r}")
  for units in hidden_units:
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
      raise ValueError(f"hidden_units must hold positive ints, got {hidden_units!r}")
  inputs = tf.keras.Input(shape=input_shape, name="inputs")
  x = tf.keras.layers.Flatten(name="flatten")(inputs)
  for index, units in enumerate(hidden_units, start=1):
    x = tf.keras.layers.Dense(units, activation="relu", name=f"fc{index}")(x)
  logits = tf.keras.layers.Dense(num_classes, name=FINAL_LAYER_NAME)(x)
  return tf.keras.Model(inputs=inputs, outputs=logits, name="mlp")
