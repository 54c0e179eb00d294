"""Trainee image classifiers for Xu et al. 2019, "Learning an Adaptive Learning Rate Schedule".

Plain functional `tf.keras.Model`s built by plain functions, in the style of the
TF official models (`official/vision/modeling/backbones/resnet.py`):

* `lenet`: LeNet-5 (LeCun et al. 1998) for MNIST, Fashion-MNIST, 8x8 digits.
* `resnet18`: the CIFAR ResNet-18 (He et al. 2015), optionally pre-activation
  (He et al. 2016).
* `mlp`: MNIST-1D's 2 x 100 MLP (Greydanus and Kobak 2024); any input shape.
* `cnn1d`: MNIST-1D's 1-D CNN (three conv layers of 25 channels).

Gin binds the builder functions (`build_model.name = "resnet18"`,
`resnet18.weight_decay = 5e-4`), never the Keras layers. Every model ends in a
`tf.keras.layers.Dense` named `FINAL_LAYER_NAME` that outputs logits. Bad
arguments raise `ValueError` with a one-line message; this package depends on
TensorFlow and gin only.

Note: `official_models.lenet` is the builder function, which shadows the
submodule of the same name; import the module's other names with
`from official_models.lenet import ...`.
"""

from __future__ import annotations

from collections.abc import Sequence

import gin
import tensorflow as tf

from official_models.cnn1d import cnn1d
from official_models.common import FINAL_LAYER_NAME, SHAPE_ARGUMENTS
from official_models.lenet import lenet
from official_models.mlp import mlp
from official_models.resnet import resnet18

# name -> builder taking (input_shape, num_classes).
MODEL_BUILDERS = {
  "cnn1d": cnn1d,
  "lenet": lenet,
  "mlp": mlp,
  "resnet18": resnet18,
}


# The caller's data sets the shapes: binding them is a gin error.
@gin.configurable(denylist=SHAPE_ARGUMENTS)
def build_model(
  name: str, input_shape: Sequence[int], num_classes: int
) -> tf.keras.Model:
  """Builds the named uncompiled classifier.

  Other arguments of the builders (e.g. `resnet18.preactivation`) come from
  their own gin bindings.

  Args:
    name: one of `MODEL_BUILDERS` ("cnn1d", "lenet", "mlp", "resnet18").
    input_shape: shape of one example: `(height, width, channels)` of an
      image (lenet, resnet18), `(length, channels)` of a signal (cnn1d), any
      (mlp).
    num_classes: number of classes, at least 2.

  Returns:
    A `tf.keras.Model` mapping `[batch, *input_shape]` inputs to
    `[batch, num_classes]` logits; its last layer is a `Dense` named
    `FINAL_LAYER_NAME`.

  Raises:
    ValueError: for an unknown `name`, or a bad `input_shape` / `num_classes`.
  """
  if not isinstance(name, str) or name not in MODEL_BUILDERS:
    raise ValueError(
      f"unknown model name {name!r}; known names: {', '.join(sorted(MODEL_BUILDERS))}"
    )
  return MODEL_BUILDERS[name](input_shape=input_shape, num_classes=num_classes)


__all__ = [
  "FINAL_LAYER_NAME",
  "MODEL_BUILDERS",
  "build_model",
  "cnn1d",
  "lenet",
  "mlp",
  "resnet18",
]
