"""Tests for `official_models`: LeNet-5 (LeCun et al. 1998) and ResNet-18 (He et al. 2015/2016).

Parameter counts are derived here by independent arithmetic, not read back from
the builders.
"""

from __future__ import annotations

import gin
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import official_models
from official_models import FINAL_LAYER_NAME, build_model, cnn1d, lenet, mlp, resnet18


def _conv_params(kernel: int, c_in: int, c_out: int, bias: bool) -> int:
  return kernel * kernel * c_in * c_out + (c_out if bias else 0)


def _dense_params(n_in: int, n_out: int) -> int:
  return n_in * n_out + n_out


def _bn_params(channels: int) -> int:
  # gamma, beta (trainable) + moving mean, moving variance (non-trainable).
  return 4 * channels


def _lenet_params(channels: int, num_classes: int, height: int = 32) -> int:
  conv1 = 5 * 5 * channels * 6 + 6
  conv2 = 5 * 5 * 6 * 16 + 16
  if height < 28:  # "same" convolutions: two 2x2 poolings only.
    flat = (height // 4) ** 2 * 16
  else:
    flat = 5 * 5 * 16  # 32 -conv5-> 28 -pool-> 14 -conv5-> 10 -pool-> 5.
  fc1 = flat * 120 + 120
  fc2 = 120 * 84 + 84
  logits = 84 * num_classes + num_classes
  return conv1 + conv2 + fc1 + fc2 + logits


_STAGES = [(64, 1), (128, 2), (256, 2), (512, 2)]  # (filters, first stride)


def _resnet18_params(channels: int, num_classes: int, preactivation: bool) -> int:
  """Total (trainable + BN moving statistics) parameters of the CIFAR ResNet-18."""
  total = _conv_params(3, channels, 64, bias=False)  # stem conv
  if not preactivation:
    total += _bn_params(64)
  c_in = 64
  for filters, stride in _STAGES:
    for block in range(2):
      projection = block == 0 and (stride != 1 or c_in != filters)
      if preactivation:
        total += _bn_params(c_in)
        total += _conv_params(3, c_in, filters, bias=False) + _bn_params(filters)
        total += _conv_params(3, filters, filters, bias=False)
        if projection:
          total += _conv_params(1, c_in, filters, bias=False)
      else:
        total += _conv_params(3, c_in, filters, bias=False) + _bn_params(filters)
        total += _conv_params(3, filters, filters, bias=False) + _bn_params(filters)
        if projection:
          total += _conv_params(1, c_in, filters, bias=False) + _bn_params(filters)
      c_in = filters
  if preactivation:
    total += _bn_params(512)
  return total + _dense_params(512, num_classes)


def _images(shape, batch=2, seed=0) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(batch, *shape)).astype(np.float32)


class LeNetTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.named_parameters(
    ("mnist", (28, 28, 1), 10),
    ("cifar", (32, 32, 3), 10),
    ("digits", (8, 8, 1), 10),
    ("three_classes", (28, 28, 1), 3),
  )
  def test_output_shape_and_param_count(self, input_shape, num_classes):
    model = lenet(input_shape=input_shape, num_classes=num_classes)
    logits = model(_images(input_shape), training=False)
    self.assertEqual(logits.shape, (2, num_classes))
    self.assertEqual(logits.dtype, tf.float32)
    self.assertEqual(
      model.count_params(), _lenet_params(input_shape[-1], num_classes, input_shape[0])
    )

  def test_param_counts_written_out(self):
    # 32x32x3, 10 classes: 456 + 2416 + 48120 + 10164 + 850.
    self.assertEqual(lenet((32, 32, 3), 10).count_params(), 62006)
    # 28x28x1, 10 classes: 156 + 2416 + 48120 + 10164 + 850.
    self.assertEqual(lenet((28, 28, 1), 10).count_params(), 61706)

  @parameterized.named_parameters(
    ("pad", (28, 28, 1), "pad_to_32", tf.keras.layers.ZeroPadding2D),
    ("resize", (40, 40, 1), "resize_to_32", tf.keras.layers.Resizing),
  )
  def test_brings_input_to_32(self, input_shape, layer_name, layer_type):
    model = lenet(input_shape=input_shape)
    self.assertIsInstance(model.get_layer(layer_name), layer_type)
    self.assertEqual(model.get_layer("conv1").input_shape[1:3], (32, 32))

  def test_small_input_keeps_its_size_with_same_padding(self):
    model = lenet(input_shape=(8, 8, 1), num_classes=10)
    names = [layer.name for layer in model.layers]
    self.assertNotIn("resize_to_32", names)
    self.assertEqual(model.get_layer("conv1").output_shape[1:], (8, 8, 6))
    self.assertEqual(model.get_layer("conv2").output_shape[1:], (4, 4, 16))
    self.assertEqual(model.get_layer("flatten").output_shape[1:], (2 * 2 * 16,))
    # conv1 156 + conv2 2416 + fc1 (64*120+120) + fc2 10164 + logits 850.
    self.assertEqual(model.count_params(), 156 + 2416 + 7800 + 10164 + 850)

  def test_32_input_used_as_is(self):
    model = lenet(input_shape=(32, 32, 3))
    names = [layer.name for layer in model.layers]
    self.assertNotIn("pad_to_32", names)
    self.assertNotIn("resize_to_32", names)

  def test_padding_is_zeros_around_the_image(self):
    model = lenet(input_shape=(28, 28, 1))
    padded = tf.keras.Model(model.input, model.get_layer("pad_to_32").output)
    x = np.ones((1, 28, 28, 1), np.float32)
    out = padded(x).numpy()[0, :, :, 0]
    self.assertAllEqual(out[2:30, 2:30], np.ones((28, 28)))
    self.assertEqual(out.sum(), 28 * 28)


class ResNet18Test(tf.test.TestCase, parameterized.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = resnet18()  # Shared by the tests that only inspect it.

  def test_param_count_written_out(self):
    self.assertEqual(self.model.count_params(), _resnet18_params(3, 10, False))
    self.assertEqual(self.model.count_params(), 11_183_562)
    trainable = sum(int(np.prod(w.shape)) for w in self.model.trainable_weights)
    # The usual "11.17M": without the 2 * 4800 batch-norm moving statistics.
    self.assertEqual(trainable, 11_173_962)
    self.assertEqual(self.model.name, "resnet18")
    self.assertEmpty(self.model.losses)  # weight_decay=0: no regularizer.

  @parameterized.named_parameters(
    ("standard_digits", False, (8, 8, 1), 3, None),
    ("preactivation", True, (32, 32, 3), 10, 11_179_978),
  )
  def test_output_shape_and_param_count(
    self, preactivation, input_shape, num_classes, written_out
  ):
    model = resnet18(
      input_shape=input_shape, num_classes=num_classes, preactivation=preactivation
    )
    expected = _resnet18_params(input_shape[-1], num_classes, preactivation)
    self.assertEqual(model.count_params(), expected)
    if written_out is not None:
      self.assertEqual(expected, written_out)
    logits = model(_images(input_shape), training=False)
    self.assertEqual(logits.shape, (2, num_classes))
    self.assertTrue(np.all(np.isfinite(logits.numpy())))

  def test_standard_output_shape(self):
    logits = self.model(_images((32, 32, 3)), training=False)
    self.assertEqual(logits.shape, (2, 10))

  def test_preactivation_layout(self):
    model = resnet18(preactivation=True)
    self.assertEqual(model.name, "preact_resnet18")
    names = [layer.name for layer in model.layers]
    self.assertNotIn("stem_bn", names)
    self.assertEqual(names[-4:], ["final_bn", "final_relu", "avg_pool", "logits"])
    # Projection shortcuts are bare 1x1 convs of the pre-activated input.
    self.assertNotIn("stage2_block1_proj_bn", names)
    proj = model.get_layer("stage2_block1_proj_conv")
    self.assertEqual(proj.input.node.layer.name, "stage2_block1_preact_relu")

  def test_conv_layers_bias_free_he_normal(self):
    convs = [la for la in self.model.layers if isinstance(la, tf.keras.layers.Conv2D)]
    self.assertLen(convs, 1 + 8 * 2 + 3)  # stem, 2 per block, 3 projections.
    for conv in convs:
      self.assertFalse(conv.use_bias, conv.name)
      self.assertIsInstance(conv.kernel_initializer, tf.keras.initializers.HeNormal)
    bns = [
      la
      for la in self.model.layers
      if isinstance(la, tf.keras.layers.BatchNormalization)
    ]
    self.assertLen(bns, 1 + 8 * 2 + 3)
    for bn in bns:
      self.assertAllClose([bn.momentum, bn.epsilon], [0.9, 1e-5])

  def test_stage_resolutions(self):
    for stage, size in [(1, 32), (2, 16), (3, 8), (4, 4)]:
      out = self.model.get_layer(f"stage{stage}_block2_out").output_shape
      self.assertEqual(out[1:3], (size, size))

  def test_weight_decay_adds_l2_losses(self):
    model = resnet18(weight_decay=1e-4)
    # One per conv (20) and one for the logits kernel.
    self.assertLen(model.losses, 21)
    expected = 1e-4 * sum(
      float(tf.reduce_sum(tf.square(w)))
      for w in model.trainable_weights
      if "kernel" in w.name
    )
    self.assertAllClose(float(tf.add_n(model.losses)), expected, rtol=1e-4)

  @parameterized.named_parameters(
    ("negative_weight_decay", dict(weight_decay=-1.0)),
    ("momentum_one", dict(batch_norm_momentum=1.0)),
    ("zero_epsilon", dict(batch_norm_epsilon=0.0)),
    ("too_small_input", dict(input_shape=(4, 4, 3))),
  )
  def test_bad_hyperparameters_raise(self, kwargs):
    with self.assertRaises(ValueError):
      resnet18(**kwargs)


class CommonTest(tf.test.TestCase, parameterized.TestCase):
  def tearDown(self):
    gin.clear_config()
    super().tearDown()

  @parameterized.named_parameters(
    ("lenet_mnist", "lenet", (28, 28, 1), 10),
    ("lenet_digits", "lenet", (8, 8, 1), 10),
    ("resnet18", "resnet18", (32, 32, 3), 10),
  )
  def test_final_layer_is_dense_logits(self, name, input_shape, num_classes):
    model = build_model(name, input_shape, num_classes)
    final = model.layers[-1]
    self.assertEqual(FINAL_LAYER_NAME, "logits")
    self.assertIsInstance(final, tf.keras.layers.Dense)
    self.assertEqual(final.name, FINAL_LAYER_NAME)
    self.assertEqual(final.units, num_classes)
    self.assertIn(final.get_config()["activation"], ("linear", None))
    self.assertIs(model.get_layer(FINAL_LAYER_NAME), final)
    self.assertEqual(model.output_names, [FINAL_LAYER_NAME])

  @parameterized.named_parameters(
    ("lenet_mnist", lambda: lenet((28, 28, 1), 10), (28, 28, 1)),
    ("lenet_digits", lambda: lenet((8, 8, 1), 10), (8, 8, 1)),
    ("resnet18", lambda: resnet18(weight_decay=1e-4), (32, 32, 3)),
    ("preact_resnet18", lambda: resnet18(preactivation=True), (32, 32, 3)),
  )
  def test_config_round_trip(self, builder, input_shape):
    model = builder()
    clone = tf.keras.Model.from_config(model.get_config())
    self.assertEqual(clone.count_params(), model.count_params())
    self.assertEqual(clone.name, model.name)
    self.assertLen(clone.losses, len(model.losses))
    clone.set_weights(model.get_weights())
    x = _images(input_shape)
    self.assertAllClose(model(x, training=False), clone(x, training=False), atol=1e-6)
    self.assertEqual(clone.get_config(), model.get_config())

  @parameterized.named_parameters(
    ("lenet", lambda: lenet((28, 28, 1), 10)),
    ("resnet18", lambda: resnet18(preactivation=True)),
  )
  def test_deterministic_given_seed(self, builder):
    tf.keras.utils.set_random_seed(123)
    first = builder().get_weights()
    tf.keras.utils.set_random_seed(123)
    second = builder().get_weights()
    self.assertLen(second, len(first))
    for a, b in zip(first, second, strict=True):
      self.assertAllEqual(a, b)

  def test_unknown_name_raises_listing_known_names(self):
    with self.assertRaisesRegex(ValueError, "vgg16.*cnn1d, lenet, mlp, resnet18"):
      build_model("vgg16", (32, 32, 3), 10)

  @parameterized.named_parameters(
    ("rank_2", (28, 28)),
    ("rank_4", (1, 28, 28, 1)),
    ("zero", (28, 0, 1)),
    ("negative", (28, 28, -1)),
    ("none", (None, 28, 1)),
    ("float", (28.0, 28, 1)),
    ("string", "28x28"),
    ("scalar", 28),
  )
  def test_bad_image_shape_raises(self, input_shape):
    for name in ("lenet", "resnet18"):
      with self.assertRaises(ValueError, msg=name):
        build_model(name, input_shape, 10)

  @parameterized.named_parameters(("one", 1), ("zero", 0), ("float", 10.0))
  def test_bad_num_classes_raises(self, num_classes):
    for name in official_models.MODEL_BUILDERS:
      with self.assertRaises(ValueError, msg=name):
        build_model(name, (32, 32, 3), num_classes)

  def test_gin_binds_builders(self):
    gin.parse_config(
      [
        "build_model.name = 'resnet18'",
        "resnet18.preactivation = True",
        "resnet18.weight_decay = 5e-4",
      ]
    )
    model = build_model(input_shape=(32, 32, 3), num_classes=10)
    self.assertEqual(model.name, "preact_resnet18")
    self.assertLen(model.losses, 21)


def _cnn1d_params(length: int, in_channels: int, channels: int, classes: int) -> int:
  """Parameters of the MNIST-1D CNN, lengths by PyTorch's Conv1d formula."""
  total, c_in = 0, in_channels
  for kernel, stride in [(5, 2), (3, 2), (3, 2)]:
    total += kernel * c_in * channels + channels
    length = (length + 2 * 1 - kernel) // stride + 1
    c_in = channels
  return total + _dense_params(length * channels, classes)


class Mnist1dModelsTest(tf.test.TestCase, parameterized.TestCase):
  """The MNIST-1D paper's MLP and 1-D CNN (Greydanus and Kobak 2024)."""

  def test_mlp_parameter_count_and_output(self):
    model = mlp((40, 1), 10)
    expected = _dense_params(40, 100) + _dense_params(100, 100) + _dense_params(100, 10)
    self.assertEqual(model.count_params(), expected)
    self.assertEqual(expected, 15210)
    self.assertEqual(model(np.zeros((3, 40, 1), np.float32)).shape, (3, 10))

  def test_mlp_is_logistic_regression_without_hidden_layers(self):
    model = mlp((8, 8, 1), 10, hidden_units=())
    self.assertEqual(model.count_params(), _dense_params(64, 10))

  def test_cnn1d_parameter_count_lengths_and_output(self):
    model = cnn1d((40, 1), 10)
    self.assertEqual(model.count_params(), _cnn1d_params(40, 1, 25, 10))
    self.assertEqual(model.count_params(), 5210)
    # PyTorch's lengths: 40 -> 19 -> 10 -> 5.
    lengths = [model.get_layer(f"conv{i}").output.shape[1] for i in (1, 2, 3)]
    self.assertEqual(lengths, [19, 10, 5])
    self.assertEqual(model(np.zeros((2, 40, 1), np.float32)).shape, (2, 10))

  def test_cnn1d_matches_an_independent_numpy_forward_pass(self):
    model = cnn1d((40, 1), 10, channels=4)
    x = np.random.RandomState(0).randn(2, 40, 1).astype(np.float32)
    h = x
    for i, (kernel, stride) in enumerate([(5, 2), (3, 2), (3, 2)], start=1):
      w, b = model.get_layer(f"conv{i}").get_weights()  # [k, c_in, c_out], [c_out]
      padded = np.pad(h, ((0, 0), (1, 1), (0, 0)))
      out_len = (padded.shape[1] - kernel) // stride + 1
      h = np.stack(
        [
          np.einsum("bkc,kcd->bd", padded[:, j * stride : j * stride + kernel], w) + b
          for j in range(out_len)
        ],
        axis=1,
      )
      h = np.maximum(h, 0)
    w, b = model.get_layer(FINAL_LAYER_NAME).get_weights()
    expected = h.reshape(2, -1) @ w + b
    self.assertAllClose(model(x, training=False), expected, atol=1e-5)

  @parameterized.named_parameters(
    ("mlp", lambda: mlp((40, 1), 10)), ("cnn1d", lambda: cnn1d((40, 1), 10))
  )
  def test_config_round_trip(self, builder):
    model = builder()
    clone = tf.keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x = np.random.RandomState(1).randn(3, 40, 1).astype(np.float32)
    self.assertAllClose(model(x), clone(x), atol=1e-6)
    self.assertEqual(clone.get_config(), model.get_config())

  @parameterized.named_parameters(
    ("cnn1d_rank_3", cnn1d, dict(input_shape=(40, 1, 1))),
    ("cnn1d_too_short", cnn1d, dict(input_shape=(2, 1))),
    ("cnn1d_channels", cnn1d, dict(channels=0)),
    ("mlp_units", mlp, dict(hidden_units=(100, 0))),
    ("mlp_units_string", mlp, dict(hidden_units="100")),
    ("mlp_zero_dim", mlp, dict(input_shape=(40, 0))),
    ("mlp_one_class", mlp, dict(num_classes=1)),
  )
  def test_bad_arguments_raise(self, builder, kwargs):
    # Gin appends the configurable's name on later lines; the first says why.
    with self.assertRaises(ValueError) as caught:
      builder(**kwargs)
    self.assertRegex(
      str(caught.exception).splitlines()[0],
      "input_shape|channels|hidden_units|num_classes",
    )

  def test_gin_binds_the_builders(self):
    gin.parse_config(["build_model.name = 'mlp'", "mlp.hidden_units = [7]"])
    model = build_model(input_shape=(40, 1), num_classes=10)
    self.assertEqual(model.count_params(), _dense_params(40, 7) + _dense_params(7, 10))


if __name__ == "__main__":
  tf.test.main()
