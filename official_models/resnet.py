"""ResNet-18 for small (CIFAR-sized) images as a plain functional `tf.keras.Model`.

He, Zhang, Ren and Sun 2016, "Deep Residual Learning for Image Recognition"
(arXiv:1512.03385), with the pre-activation option of He, Zhang, Ren and Sun
2016, "Identity Mappings in Deep Residual Networks" (arXiv:1603.05027). This is
the CIFAR-10 trainee network of Xu et al. 2019, "Learning an Adaptive Learning
Rate Schedule" (arXiv:1909.09712).

Layout follows the TF official models (`official/vision/modeling/backbones/
resnet.py`: a spec table of stages) with the usual 32x32 stem: a 3x3, stride 1
convolution with 64 filters and no max-pooling, then four stages of two basic
blocks (64-128-256-512 filters, strides 1-2-2-2), global average pooling and a
dense layer of logits named "logits".

Blocks are functions adding standard Keras layers to a functional graph, so the
model's `get_config`/`from_config` round-trip needs no custom objects. Gin binds
the builder (`resnet18.weight_decay = 5e-4`), never the layers.
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

# depth -> stages as (block type, filters, number of blocks). The first block
# of each stage after the first has stride 2.
RESNET_SPECS = {
  18: [
    ("residual", 64, 2),
    ("residual", 128, 2),
    ("residual", 256, 2),
    ("residual", 512, 2),
  ],
}

STEM_FILTERS = 64
# Height and width below which the three stride-2 stages would run out of pixels.
MIN_INPUT_SIZE = 8
_KERNEL_INITIALIZER = "he_normal"


def _regularizer(weight_decay: float) -> tf.keras.regularizers.Regularizer | None:
  return tf.keras.regularizers.L2(weight_decay) if weight_decay > 0 else None


def _conv(
  x: tf.Tensor,
  filters: int,
  kernel_size: int,
  strides: int,
  weight_decay: float,
  name: str,
) -> tf.Tensor:
  """Bias-free 'same' convolution with He-normal init: [B, H, W, C] -> [B, H/s, W/s, F]."""
  return tf.keras.layers.Conv2D(
    filters,
    kernel_size,
    strides=strides,
    padding="same",
    use_bias=False,
    kernel_initializer=_KERNEL_INITIALIZER,
    kernel_regularizer=_regularizer(weight_decay),
    name=name,
  )(x)


def _batch_norm(x: tf.Tensor, momentum: float, epsilon: float, name: str) -> tf.Tensor:
  """Batch norm over the channel (last) axis; shape unchanged."""
  return tf.keras.layers.BatchNormalization(
    axis=-1, momentum=momentum, epsilon=epsilon, name=name
  )(x)


def _relu(x: tf.Tensor, name: str) -> tf.Tensor:
  return tf.keras.layers.ReLU(name=name)(x)


def residual_block(
  x: tf.Tensor,
  filters: int,
  strides: int,
  weight_decay: float,
  momentum: float,
  epsilon: float,
  name: str,
) -> tf.Tensor:
  """Post-activation basic block (He et al. 2015).

  conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU. The shortcut
  is the identity, or a projection 1x1 conv(stride)-BN when the stride is not 1
  or the channel count changes.

  Args:
    x: `[batch, height, width, in_channels]`.
    filters: output channels.
    strides: 1 or 2, applied by the first conv and the projection.
    weight_decay: L2 factor on conv kernels (0 means none).
    momentum: batch-norm moving-average momentum.
    epsilon: batch-norm epsilon.
    name: prefix of the block's layer names.

  Returns:
    `[batch, ceil(height / strides), ceil(width / strides), filters]`.
  """
  shortcut = x
  if strides != 1 or x.shape[-1] != filters:
    shortcut = _conv(x, filters, 1, strides, weight_decay, f"{name}_proj_conv")
    shortcut = _batch_norm(shortcut, momentum, epsilon, f"{name}_proj_bn")
  y = _conv(x, filters, 3, strides, weight_decay, f"{name}_conv1")
  y = _batch_norm(y, momentum, epsilon, f"{name}_bn1")
  y = _relu(y, f"{name}_relu1")
  y = _conv(y, filters, 3, 1, weight_decay, f"{name}_conv2")
  y = _batch_norm(y, momentum, epsilon, f"{name}_bn2")
  y = tf.keras.layers.Add(name=f"{name}_add")([shortcut, y])
  return _relu(y, f"{name}_out")


def preact_residual_block(
  x: tf.Tensor,
  filters: int,
  strides: int,
  weight_decay: float,
  momentum: float,
  epsilon: float,
  name: str,
) -> tf.Tensor:
  """Pre-activation basic block (He et al. 2016, "Identity Mappings").

  BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3, plus the shortcut, with no activation
  after the addition. The shortcut is the identity, or (when the stride is not 1
  or the channel count changes) a bias-free 1x1 conv(stride) of the block's
  pre-activated input, without batch norm, as in the paper and the TF official
  ResNet v2.

  Args:
    x: `[batch, height, width, in_channels]`.
    filters: output channels.
    strides: 1 or 2, applied by the first conv and the projection.
    weight_decay: L2 factor on conv kernels (0 means none).
    momentum: batch-norm moving-average momentum.
    epsilon: batch-norm epsilon.
    name: prefix of the block's layer names.

  Returns:
    `[batch, ceil(height / strides), ceil(width / strides), filters]`.
  """
  preact = _batch_norm(x, momentum, epsilon, f"{name}_preact_bn")
  preact = _relu(preact, f"{name}_preact_relu")
  shortcut = x
  if strides != 1 or x.shape[-1] != filters:
    shortcut = _conv(preact, filters, 1, strides, weight_decay, f"{name}_proj_conv")
  y = _conv(preact, filters, 3, strides, weight_decay, f"{name}_conv1")
  y = _batch_norm(y, momentum, epsilon, f"{name}_bn1")
  y = _relu(y, f"{name}_relu1")
  y = _conv(y, filters, 3, 1, weight_decay, f"{name}_conv2")
  return tf.keras.layers.Add(name=f"{name}_add")([shortcut, y])


def _check_hyperparameters(
  weight_decay: float, batch_norm_momentum: float, batch_norm_epsilon: float
) -> None:
  if not isinstance(weight_decay, int | float) or not weight_decay >= 0:
    raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
  if not isinstance(batch_norm_momentum, int | float) or not (
    0 <= batch_norm_momentum < 1
  ):
    raise ValueError(
      f"batch_norm_momentum must be in [0, 1), got {batch_norm_momentum!r}"
    )
  if not isinstance(batch_norm_epsilon, int | float) or not batch_norm_epsilon > 0:
    raise ValueError(f"batch_norm_epsilon must be > 0, got {batch_norm_epsilon!r}")


@gin.configurable(denylist=SHAPE_ARGUMENTS)
def resnet18(
  input_shape: Sequence[int] = (32, 32, 3),
  num_classes: int = 10,
  preactivation: bool = False,
  weight_decay: float = 0.0,
  batch_norm_momentum: float = 0.9,
  batch_norm_epsilon: float = 1e-5,
) -> tf.keras.Model:
  """Builds the CIFAR ResNet-18: images to `num_classes` logits.

  Standard (`preactivation=False`, He et al. 2015): stem conv3x3/64 (stride 1)
  -BN-ReLU, no max-pool; stages of 2 post-activation basic blocks with
  64/128/256/512 filters and strides 1/2/2/2 (projection shortcut 1x1 conv + BN
  where the shape changes); global average pooling; dense "logits".
  11,173,962 trainable parameters (+ 9,600 batch-norm moving statistics) for
  10 classes.

  Pre-activation (`preactivation=True`, He et al. 2016): stem conv3x3/64 only;
  the same stages of pre-activation blocks (BN-ReLU before each conv, projection
  shortcut a bare 1x1 conv); a final BN-ReLU before global average pooling.

  Convolutions are bias-free with He-normal init. Inputs smaller than 32x32
  (down to 8x8, e.g. the 8x8 digits) are used as is, without resizing: all
  convolutions are 'same'-padded and the pooling is global, so any size works
  and the parameter count does not depend on it (an 8x8 input ends as 1x1 in the
  last stage).

  Args:
    input_shape: `(height, width, channels)` of one image; height, width >= 8.
    num_classes: number of classes, at least 2.
    preactivation: build the pre-activation ("v2") network.
    weight_decay: if > 0, an L2 kernel regularizer `weight_decay * sum(w**2)`
      (Keras' convention, no 1/2) on every conv and on the logits kernel; it is
      collected in `model.losses`. 0 means no regularizer.
    batch_norm_momentum: moving-average momentum of every batch norm, in [0, 1).
    batch_norm_epsilon: epsilon of every batch norm, > 0.

  Returns:
    An uncompiled `tf.keras.Model` mapping float images
    `[batch, height, width, channels]` to logits `[batch, num_classes]`.
    Weights are deterministic given `tf.keras.utils.set_random_seed`.

  Raises:
    ValueError: for a bad `input_shape`, `num_classes` or hyperparameter.
  """
  height, width, channels = check_image_classifier_args(
    input_shape, num_classes, min_size=MIN_INPUT_SIZE
  )
  _check_hyperparameters(weight_decay, batch_norm_momentum, batch_norm_epsilon)
  weight_decay = float(weight_decay)
  bn = dict(momentum=float(batch_norm_momentum), epsilon=float(batch_norm_epsilon))
  block_fn = preact_residual_block if preactivation else residual_block

  inputs = tf.keras.Input(shape=(height, width, channels), name="images")
  x = _conv(inputs, STEM_FILTERS, 3, 1, weight_decay, "stem_conv")
  if not preactivation:
    x = _batch_norm(x, name="stem_bn", **bn)
    x = _relu(x, "stem_relu")
  for stage_index, (block_type, filters, num_blocks) in enumerate(RESNET_SPECS[18]):
    if block_type != "residual":
      raise ValueError(f"unknown ResNet block type: {block_type}")
    for block_index in range(num_blocks):
      strides = 2 if stage_index > 0 and block_index == 0 else 1
      x = block_fn(
        x,
        filters,
        strides,
        weight_decay,
        name=f"stage{stage_index + 1}_block{block_index + 1}",
        **bn,
      )
  if preactivation:
    x = _batch_norm(x, name="final_bn", **bn)
    x = _relu(x, "final_relu")
  x = tf.keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
  logits = tf.keras.layers.Dense(
    num_classes, kernel_regularizer=_regularizer(weight_decay), name=FINAL_LAYER_NAME
  )(x)
  name = "preact_resnet18" if preactivation else "resnet18"
  return tf.keras.Model(inputs=inputs, outputs=logits, name=name)
