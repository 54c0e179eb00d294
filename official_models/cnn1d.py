"""The MNIST-1D convolutional network as a plain functional `tf.keras.Model`.

Greydanus and Kobak 2024, "Scaling down deep learning with MNIST-1D" (their
`ConvBase`, about 94% test accuracy): three 1-D convolutions of 25 channels,
kernel sizes 5, 3, 3, stride 2 and zero padding 1, ReLU after each, then a
linear layer on the flattened 5 x 25 features of a length-40 signal.
PyTorch's `padding=1` is an explicit `ZeroPadding1D(1)` before a "valid"
convolution, so the lengths match theirs: 40 -> 19 -> 10 -> 5.
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

# (kernel size, stride) of each convolution; each is preceded by a zero padding of 1.
CNN1D_SPEC = [(5, 2), (3, 2), (3, 2)]
_PADDING = 1


@gin.configurable(denylist=SHAPE_ARGUMENTS)
def cnn1d(
  input_shape: Sequence[int] = (40, 1), num_classes: int = 10, channels: int = 25
) -> tf.keras.Model:
  """Builds the MNIST-1D CNN: `(length, in_channels)` signals to logits.

  With the defaults (40 x 1 inputs, 25 channels, 10 classes): 5,210
  parameters (convolutions 150 + 1,900 + 1,900, logits 1,260).

  Args:
    input_shape: `(length, channels)` of one signal; the length must survive
      the three stride-2 convolutions (at least 3).
    num_classes: number of classes, at least 2.
    channels: output channels of every convolution (positive int).

  Returns:
    An uncompiled `tf.keras.Model` mapping float `[batch, length, channels]`
    to logits `[batch, num_classes]`; the last layer is the Dense "logits".

  Raises:
    ValueError: for a bad `input_shape`, `num_classes` or `channels`.
  """
  length, in_channels = check_input_shape(input_shape, rank=2)
  check_num_classes(num_classes)
  if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
    raise ValueError(f"channels must be a positive int, got {channels!r}")
  out_length = length
  for kernel, stride in CNN1D_SPEC:
    out_length = (out_length + 2 * _PADDING - kernel) // stride + 1
  if out_length < 1:
    raise ValueError(
      f"input_shape length {length} is too short for the three stride-2 convolutions"
    )
  inputs = tf.keras.Input(shape=(length, in_channels), name="signals")
  x = inputs
  for index, (kernel, stride) in enumerate(CNN1D_SPEC, start=1):
    x = tf.keras.layers.ZeroPadding1D(_PADDING, name=f"pad{index}")(x)
    x = tf.keras.layers.Conv1D(
      channels, kernel, strides=stride, activation="relu", name=f"conv{index}"
    )(x)
  x = tf.keras.layers.Flatten(name="flatten")(x)
  logits = tf.keras.layers.Dense(num_classes, name=FINAL_LAYER_NAME)(x)
  return tf.keras.Model(inputs=inputs, outputs=logits, name="cnn1d")
