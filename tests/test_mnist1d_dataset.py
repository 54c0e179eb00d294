"""Tests of the `lrc_mnist1d` tfds builder (MNIST-1D generated offline).

Tiny generations (a few hundred examples) stand in for the real 14,000; the
expected arrays come from calling the `mnist1d` package directly.
"""

from __future__ import annotations

import random
from unittest import mock

import numpy as np
import tensorflow as tf
from absl import flags
from mnist1d import data as mnist1d_data

from lr_controller.errors import UserError
from lr_controller.trainee import data, mnist1d_dataset

if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()

_TINY = {"train": 40, "validation": 30, "test": 50}
_PUBLISHED = 100  # 80 train, 20 test in the package's own split.


def _package(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """The package's own generation with its default arguments."""
  args = mnist1d_data.get_dataset_args()
  args.num_samples, args.seed = num_samples, seed
  made = mnist1d_data.make_dataset(args)
  return (
    np.concatenate([made["x"], made["x_test"]]),
    np.concatenate([made["y"], made["y_test"]]),
  )


class GenerateSplitsTest(tf.test.TestCase):
  def test_splits_are_the_package_generations(self):
    splits = mnist1d_dataset.generate_splits(_TINY, published_samples=_PUBLISHED)
    published_x, published_y = _package(_PUBLISHED, seed=42)
    # validation 30 + test 50 - 20 published test = 60 extra examples.
    extra_x, extra_y = _package(60, seed=mnist1d_dataset.EXTRA_SEED)
    for split, size in _TINY.items():
      x, y = splits[split]
      self.assertEqual(x.shape, (size, 40, 1))
      self.assertEqual(x.dtype, np.float32)
      self.assertEqual(y.dtype, np.int64)
    self.assertAllClose(splits["train"][0][..., 0], published_x[:40])
    self.assertAllEqual(splits["train"][1], published_y[:40])
    self.assertAllClose(splits["validation"][0][..., 0], extra_x[:30])
    # Test: the package's 20 test examples, then the remaining extra ones.
    self.assertAllClose(splits["test"][0][:20, :, 0], published_x[80:])
    self.assertAllClose(splits["test"][0][20:, :, 0], extra_x[30:])
    self.assertAllEqual(
      splits["test"][1], np.concatenate([published_y[80:], extra_y[30:]])
    )

  def test_train_is_the_package_default_training_set(self):
    # The default generation (5,000 examples, seed 42): its first 4,000 are
    # the package's training examples.
    args = mnist1d_data.get_dataset_args()
    made = mnist1d_data.make_dataset(args)
    splits = mnist1d_dataset.generate_splits(
      {"train": 4000, "validation": 10, "test": 10}
    )
    self.assertAllClose(splits["train"][0][..., 0], made["x"])
    self.assertAllEqual(splits["train"][1], made["y"])

  def test_global_random_states_are_left_alone(self):
    random.seed(7)
    np.random.seed(7)
    expected = (random.random(), np.random.rand())
    random.seed(7)
    np.random.seed(7)
    mnist1d_dataset.generate_splits(_TINY, published_samples=_PUBLISHED)
    self.assertEqual((random.random(), np.random.rand()), expected)

  def test_shuffled_permutes_the_positions_of_the_same_examples(self):
    plain = mnist1d_dataset.generate_splits(_TINY, published_samples=_PUBLISHED)
    shuffled = mnist1d_dataset.generate_splits(
      _TINY, shuffle_seq=True, published_samples=_PUBLISHED
    )
    permutation = np.random.RandomState(mnist1d_dataset.SHUFFLE_SEED).permutation(40)
    self.assertFalse(np.array_equal(permutation, np.arange(40)))
    for split in _TINY:
      self.assertAllEqual(shuffled[split][1], plain[split][1])
      self.assertAllClose(shuffled[split][0], plain[split][0][:, permutation])

  def test_bad_split_requests_are_one_line_errors(self):
    bad = [
      ({"train": 40, "validation": 30}, "splits must be exactly"),
      (
        {"train": 40, "validation": 30, "test": 50, "extra": 5},
        "splits must be exactly",
      ),
      ({"train": 0, "validation": 30, "test": 50}, "train size must be a positive int"),
      ({"train": 40, "validation": 2.5, "test": 50}, "validation size must be"),
      ({"train": 81, "validation": 30, "test": 50}, "exceeds the 80 training examples"),
    ]
    for sizes, message in bad:
      with self.assertRaisesRegex(UserError, message) as caught:
        mnist1d_dataset.generate_splits(sizes, published_samples=_PUBLISHED)
      self.assertNotIn("\n", str(caught.exception))


class LoadMnist1dTest(tf.test.TestCase):
  """`load_data` prepares the builder offline on first use (tiny sizes patched in)."""

  def setUp(self):
    super().setUp()
    self.data_dir = self.create_tempdir().full_path
    patches = [
      mock.patch.object(mnist1d_dataset, "SPLIT_SIZES", dict(_TINY)),
      mock.patch.object(mnist1d_dataset, "PUBLISHED_SAMPLES", _PUBLISHED),
    ]
    for patch in patches:
      patch.start()
      self.addCleanup(patch.stop)

  def test_load_data_serves_the_generated_splits(self):
    loaded = data.load_data(
      "lrc_mnist1d", data_dir=self.data_dir, batch_size=10, eval_batch_size=16
    )
    self.assertEqual(loaded.input_shape, (40, 1))
    self.assertEqual(loaded.num_classes, 10)
    self.assertEqual(loaded.num_examples, _TINY)
    expected = mnist1d_dataset.generate_splits(_TINY, published_samples=_PUBLISHED)
    x = np.concatenate([b[0].numpy() for b in loaded.validation])
    y = np.concatenate([b[1].numpy() for b in loaded.validation])
    # Signals stay standardised floats (not divided like uint8 pixels).
    self.assertAllClose(x, expected["validation"][0])
    self.assertAllEqual(y, expected["validation"][1])
    images, labels = next(iter(loaded.train_stream(3)))
    self.assertEqual(images.shape, (10, 40, 1))
    self.assertEqual(images.dtype, tf.float32)
    self.assertEqual(labels.dtype, tf.int32)
    self.assertTrue(data.is_prepared("lrc_mnist1d", self.data_dir))
    self.assertFalse(data.is_prepared("lrc_mnist1d/shuffled", self.data_dir))

  def test_shuffled_config_loads(self):
    loaded = data.load_data(
      "lrc_mnist1d/shuffled", data_dir=self.data_dir, batch_size=10
    )
    self.assertEqual(loaded.num_examples, _TINY)
    self.assertTrue(data.is_prepared("lrc_mnist1d/shuffled", self.data_dir))

  def test_too_many_examples_is_a_one_line_error(self):
    with self.assertRaisesRegex(UserError, "train_examples=41 exceeds the 40"):
      data.load_data(
        "lrc_mnist1d", data_dir=self.data_dir, batch_size=10, train_examples=41
      )


if __name__ == "__main__":
  tf.test.main()
