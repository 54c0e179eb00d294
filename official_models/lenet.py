"""LeNet-5 as a plain functional `tf.keras.Model`.

LeCun, Bottou, Bengio and Haffner 1998, "Gradient-Based Learning Applied to
Document Recognition": two 5x5 convolutions with pooling, then three dense
layers, on 32x32 inputs. This is the small trainee network used for the MNIST /
digits experiments of Xu et al. 2019, "Learning an Adaptive Learning Rate
Schedule" (arXiv:1909.09712). Modern choices replace LeCun's scaled tanh and
RBF output: ReLU activations, max-pooling, and a linear output of logits.

The builder is configurable by gin, its shapes aside (`build_model` passes the
data's); the model itself is made only of standard Keras layers, so `get_config`/`from_config` round-trip
without custom objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import gin
import tensorflow as tf

from official_models.common import (
  FINAL_LAYER_NAME,
  SHAPE_ARGUMENTS,
  check_image_classifier_args,
)

# LeNet-5 works on 32x32 images, as in LeCun et al. 1998.
LENET_INPUT_SIZE = 32
# MNIST's 28x28 digits are zero-padded by this many pixels on each side.
_MNIST_SIZE = 28
_MNIST_PADDING = (LENET_INPUT_SIZE - _MNIST_SIZE) // 2

# Images smaller than this (e.g. scikit-learn's 8x8 digits) keep their own
# resolution and the convolutions zero-pad ("same"), instead of being blown up
# 16-fold to 32x32: the same layers at a fraction of the cost.
SMALL_INPUT_SIZE = 28


def _is_small(height: int, width: int) -> bool:
  return height < SMALL_INPUT_SIZE or width < SMALL_INPUT_SIZE


# (layer kind, filters or units, kernel size or None). Pooling is 2x2, stride 2.
LENET_SPEC = [
  ("conv", 6, 5),
  ("pool", None, 2),
  ("conv", 16, 5),
  ("pool", None, 2),
  ("flatten", None, None),
  ("dense", 120, None),
  ("dense", 84, None),
]


def _to_lenet_size(x: tf.Tensor, height: int, width: int) -> tf.Tensor:
  """Brings `[batch, height, width, C]` images to `[batch, 32, 32, C]`.

  Small images (see `SMALL_INPUT_SIZE`) are returned as they are.
  """
  if height == LENET_INPUT_SIZE and width == LENET_INPUT_SIZE:
    return x
  if _is_small(height, width):
    return x
  if height == _MNIST_SIZE and width == _MNIST_SIZE:
    return tf.keras.layers.ZeroPadding2D(padding=_MNIST_PADDING, name="pad_to_32")(x)
  return tf.keras.layers.Resizing(
    LENET_INPUT_SIZE, LENET_INPUT_SIZE, interpolation="bilinear", name="resize_to_32"
  )(x)


@gin.configurable(denylist=SHAPE_ARGUMENTS)
def lenet(
  input_shape: Sequence[int] = (28, 28, 1), num_classes: int = 10
) -> tf.keras.Model:
  """Builds LeNet-5: 32x32xC images to `num_classes` logits.

  Layers: conv 6@5x5 (valid, ReLU) -> max-pool 2 -> conv 16@5x5 (valid, ReLU)
  -> max-pool 2 -> flatten (5*5*16 = 400) -> dense 120 (ReLU) -> dense 84
  (ReLU) -> dense `num_classes` named "logits" (no activation).

  Inputs are brought to 32x32, as LeCun did, before the first convolution:
    * 32x32 (e.g. CIFAR-10) is used as is;
    * 28x28 (MNIST, Fashion-MNIST) is zero-padded by 2 pixels on each side,
      LeCun's MNIST practice (a `ZeroPadding2D` layer);
    * images smaller than 28 (e.g. scikit-learn's 8x8 digits) keep their size
      and both convolutions zero-pad ("same"), so 8x8 gives 4x4x6 after the
      first pooling, 2x2x16 after the second and a flatten of 64: the same
      layers, 16 times cheaper than resizing to 32x32;
    * any other size is bilinearly resized to 32x32 (a `Resizing` layer).
  So for 28x28 and larger the parameter count depends only on the channel
  count C and `num_classes`; for small images the first dense layer has
  `ceil(H/4) * ceil(W/4) * 16` inputs instead of 400.

  Args:
    input_shape: `(height, width, channels)` of one image.
    num_classes: number of classes, at least 2.

  Returns:
    An uncompiled `tf.keras.Model` mapping float images
    `[batch, height, width, channels]` to logits `[batch, num_classes]`.
    Weights are deterministic given `tf.keras.utils.set_random_seed`.

  Raises:
    ValueError: for a bad `input_shape` or `num_classes`.
  """
  height, width, channels = check_image_classifier_args(
    input_shape, num_classes, min_size=4
  )
  padding = "same" if _is_small(height, width) else "valid"
  inputs = tf.keras.Input(shape=(height, width, channels), name="images")
  x = _to_lenet_size(inputs, height, width)
  conv_index = pool_index = dense_index = 0
  for kind, size, kernel in LENET_SPEC:
    if kind == "conv":
      conv_index += 1
      x = tf.keras.layers.Conv2D(
        size, kernel, padding=padding, activation="relu", name=f"conv{conv_index}"
      )(x)
    elif kind == "pool":
      pool_index += 1
      x = tf.keras.layers.MaxPool2D(pool_size=kernel, name=f"pool{pool_index}")(x)
    elif kind == "flatten":
      x = tf.keras.layers.Flatten(name="flatten")(x)
    elif kind == "dense":
      dense_index += 1
      x = tf.keras.layers.Dense(size, activation="relu", name=f"fc{dense_index}")(x)
    else:
      raise ValueError(f"unknown LeNet layer kind: {kind}")
  logits = tf.keras.layers.Dense(num_classes, name=FINAL_LAYER_NAME)(x)
  return tf.keras.Model(inputs=inputs, outputs=logits, name="lenet5")
