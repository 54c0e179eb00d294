"""Tests of `lr_controller.trainee.data` and the `lrc_digits` tfds builder.

The digits tests use the real data (prepared offline into a temp dir). The
fashion_mnist and cifar10 tests run under `tfds.testing.mock_data`: its default
random examples check shapes, scaling and batching, and a fake `as_dataset_fn`
that honours tfds split slicing (resolved by tfds' own `ReadInstruction`
against the real split sizes) checks the exact 50k/10k/10k and 40k/10k/10k
counts and that train and validation are disjoint.
"""

from __future__ import annotations

import collections
import time
import types
from unittest import mock

import gin
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import flags
from sklearn.datasets import load_digits
from tensorflow_datasets.core.utils import gcs_utils

from lr_controller.errors import UserError
from lr_controller.trainee import data, digits_dataset

# `create_tempdir` reads absl's --test_tmpdir, which pytest never parses.
if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()

# Real sizes of the official tfds splits, for the fake `as_dataset_fn`.
_OFFICIAL_SIZES = {
  "fashion_mnist": {"train": 60000, "test": 10000},
  "cifar10": {"train": 50000, "test": 10000},
}


def _no_gcs(path: object) -> bool:
  raise AssertionError(f"unexpected GCS look-up of {path}")


def _as_numpy(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
  """Concatenates a finite dataset of (images, labels) batches."""
  images, labels = [], []
  for x, y in dataset:
    images.append(x.numpy())
    labels.append(y.numpy())
  return np.concatenate(images), np.concatenate(labels)


def _keys(images: np.ndarray, labels: np.ndarray) -> collections.Counter:
  """Multiset of (uint8 image bytes, label), images float [N, H, W, C] in [0, 1]."""
  pixels = np.rint(images * 255.0).astype(np.uint8)
  return collections.Counter(
    (image.tobytes(), int(label)) for image, label in zip(pixels, labels, strict=True)
  )


def _indexed_as_dataset(self, split, decoders=None, read_config=None, **kwargs):
  """Fake `FileReaderBuilder._as_dataset` for `mock_data(as_dataset_fn=...)`.

  Resolves `split` (e.g. "train[50000:]") with tfds' `ReadInstruction` against
  the real split sizes and yields one example per selected index: every pixel
  is `index % 256`, except pixels [0, 1] and [0, 2] which hold the higher
  bytes of the index; the label is `index % 10`.
  """
  del decoders, read_config, kwargs
  sizes = _OFFICIAL_SIZES[self.name]
  infos = {k: types.SimpleNamespace(num_examples=n) for k, n in sizes.items()}
  spec = split if isinstance(split, tfds.core.ReadInstruction) else str(split)
  (instruction,) = tfds.core.ReadInstruction.from_spec(spec).to_absolute(infos)
  start = instruction.from_ or 0
  stop = sizes[instruction.splitname] if instruction.to is None else instruction.to
  shape = self.info.features["image"].shape
  offset = 0 if instruction.splitname == "train" else 1_000_000

  def examples(index: tf.Tensor) -> dict[str, tf.Tensor]:
    """index int64 [n] -> images uint8 [n, H, W, C], labels int64 [n]."""
    global_index = index + offset
    pixels = [global_index % 256, (global_index // 256) % 256, global_index // 65536]
    low, mid, high = (tf.cast(p, tf.uint8)[:, None, None, None] for p in pixels)
    ones = tf.ones((1, *shape), tf.uint8)
    image = low * ones
    first_row = tf.concat(
      [
        low * ones[:, :1, :1],
        mid * ones[:, :1, :1],
        high * ones[:, :1, :1],
        low * ones[:, :1, 3:],
      ],
      axis=2,
    )
    image = tf.concat([first_row, image[:, 1:]], axis=1)
    return {"image": image, "label": index % 10}

  # Built a batch at a time (fast), then unbatched with the known size, as
  # tfds' reader asserts it.
  return (
    tf.data.Dataset.range(start, stop)
    .batch(1000)
    .map(examples)
    .unbatch()
    .apply(tf.data.experimental.assert_cardinality(stop - start))
  )


def _decode_indices(images: np.ndarray) -> np.ndarray:
  """Inverse of the index encoding of `_indexed_as_dataset`: int64 [N]."""
  pixels = np.rint(images * 255.0).astype(np.int64)
  return pixels[:, 0, 0, 0] + 256 * pixels[:, 0, 1, 0] + 65536 * pixels[:, 0, 2, 0]


class DigitsTest(tf.test.TestCase):
  """The real `lrc_digits` data."""

  def setUp(self):
    super().setUp()
    self.data_dir = self.create_tempdir().full_path

  def test_splits_sizes_contents_and_format(self):
    with mock.patch.object(gcs_utils, "exists", _no_gcs):
      d = data.load_data(data_dir=self.data_dir, batch_size=100, eval_batch_size=2000)
    self.assertTrue(data.is_prepared("lrc_digits", self.data_dir))
    self.assertEqual(d.num_examples, {"train": 1000, "validation": 397, "test": 400})
    self.assertEqual(d.input_shape, (8, 8, 1))
    self.assertEqual(d.num_classes, 10)

    # One epoch of the train stream is the whole train split.
    train = list(d.train.take(10))
    train_x = np.concatenate([x.numpy() for x, _ in train])
    train_y = np.concatenate([y.numpy() for _, y in train])
    splits = {
      "train": (train_x, train_y),
      "validation": _as_numpy(d.validation),
      "test": _as_numpy(d.test),
    }
    for split, (x, y) in splits.items():
      self.assertEqual(x.dtype, np.float32, split)
      self.assertEqual(y.dtype, np.int32, split)
      self.assertEqual(x.shape, (d.num_examples[split], 8, 8, 1), split)
      self.assertGreaterEqual(x.min(), 0.0)
      self.assertLessEqual(x.max(), 1.0)
      self.assertEqual(x.max(), 1.0)
      self.assertAllInRange(y, 0, 9)

    # Disjoint, and together exactly scikit-learn's 1,797 images (scaled).
    digits = load_digits()
    source = _keys(digits_dataset.to_uint8(digits.images) / 255.0, digits.target)
    counters = {split: _keys(x, y) for split, (x, y) in splits.items()}
    for split, counter in counters.items():
      self.assertEqual(sum(counter.values()), len(counter), f"{split} repeats")
    self.assertEqual(
      counters["train"] + counters["validation"] + counters["test"], source
    )

    # The splits are the fixed permutation's slices.
    for split, indices in digits_dataset.split_indices().items():
      expected = _keys(
        digits_dataset.to_uint8(digits.images[indices]) / 255.0,
        digits.target[indices],
      )
      self.assertEqual(counters[split], expected, split)

  def test_train_stream_batches_and_epochs(self):
    d = data.load_data(data_dir=self.data_dir, batch_size=300, seed=3)
    self.assertEqual(d.train.element_spec[0].shape.as_list(), [300, 8, 8, 1])
    self.assertEqual(d.train.element_spec[1].dtype, tf.int32)
    batches = list(d.train.take(10))  # 3,000 examples: exactly 3 epochs.
    self.assertTrue(all(x.shape == (300, 8, 8, 1) for x, _ in batches))
    # Batches run across epoch boundaries: no example is dropped at the end of
    # an epoch, and each run of 1,000 examples is one epoch.
    images = np.concatenate([x.numpy() for x, _ in batches])
    pixels = np.rint(images * 255.0).astype(np.uint8).reshape(3, 1000, -1)
    orders = [[image.tobytes() for image in epoch] for epoch in pixels]
    self.assertLen(set(orders[0]), 1000)
    self.assertEqual(set(orders[0]), set(orders[1]))
    self.assertEqual(set(orders[0]), set(orders[2]))
    self.assertNotEqual(orders[0], orders[1])  # Reshuffled each epoch.
    self.assertNotEqual(orders[1], orders[2])

  def test_determinism_and_seed(self):
    first = data.load_data(data_dir=self.data_dir, batch_size=100, seed=0)
    again = data.load_data(data_dir=self.data_dir, batch_size=100, seed=0)
    other = data.load_data(data_dir=self.data_dir, batch_size=100, seed=1)
    for a, b in ((first.validation, again.validation), (first.test, again.test)):
      xa, ya = _as_numpy(a)
      xb, yb = _as_numpy(b)
      self.assertAllEqual(xa, xb)
      self.assertAllEqual(ya, yb)
    # Two passes over validation give the same order.
    self.assertAllEqual(_as_numpy(first.validation)[0], _as_numpy(first.validation)[0])
    x0, y0 = next(iter(first.train))
    x1, y1 = next(iter(again.train))
    x2, _ = next(iter(other.train))
    self.assertAllEqual(x0, x1)
    self.assertAllEqual(y0, y1)
    self.assertNotAllEqual(x0, x2)

  def test_train_stream_order_is_a_function_of_the_seed_only(self):
    d = data.load_data(data_dir=self.data_dir, batch_size=300, seed=0)
    again = data.load_data(data_dir=self.data_dir, batch_size=300, seed=9)

    def order(dataset, batches=10):
      """Source indices [batches * 300] of the examples a stream visits."""
      x, _ = _as_numpy(dataset.take(batches))
      keys = [image.tobytes() for image in np.rint(x * 255.0).astype(np.uint8)]
      return np.array([index[k] for k in keys])

    train_x, _ = _as_numpy(d.train.take(10))
    pixels = np.rint(train_x[:1000] * 255.0).astype(np.uint8)
    index = {image.tobytes(): i for i, image in enumerate(pixels)}
    self.assertLen(index, 1000)  # The first 1,000 are one epoch: all distinct.
    first = order(d.train_stream(3))
    order(d.train_stream(3), 4)  # Reading a stream leaves the next one alone,
    tf.random.set_seed(123)  # and so does TF's global seed.
    self.assertAllEqual(order(d.train_stream(3)), first)
    self.assertAllEqual(order(again.train_stream(3)), first)  # Any `Data`.
    self.assertAllEqual(order(d.train), order(again.train_stream(0)))
    self.assertNotAllEqual(order(d.train_stream(4)), first)
    # Every epoch of 1,000 is a new permutation; batches span epoch ends.
    epochs = first.reshape(3, 1000)
    for epoch in epochs:
      self.assertAllEqual(np.sort(epoch), np.arange(1000))
    self.assertNotAllEqual(epochs[0], epochs[1])
    self.assertEqual(d.train_stream(3).element_spec, d.train.element_spec)
    # Autotuning off: its thread would stall dropping an iterator (per reset).
    self.assertFalse(d.train_stream(3).options().autotune.enabled)

  def test_validation_and_train_examples_keep_the_first_n(self):
    full = data.load_data(data_dir=self.data_dir, eval_batch_size=100)
    part = data.load_data(
      data_dir=self.data_dir,
      batch_size=50,
      eval_batch_size=64,
      validation_examples=150,
      train_examples=200,
    )
    self.assertEqual(part.num_examples, {"train": 200, "validation": 150, "test": 400})
    self.assertEqual([int(y.shape[0]) for _, y in part.validation], [64, 64, 22])
    self.assertEqual([int(y.shape[0]) for _, y in full.validation], [100] * 3 + [97])
    full_x, full_y = _as_numpy(full.validation)
    part_x, part_y = _as_numpy(part.validation)
    self.assertAllEqual(part_x, full_x[:150])
    self.assertAllEqual(part_y, full_y[:150])
    # The limited train stream cycles over 200 examples only.
    seen = _keys(
      np.concatenate([x.numpy() for x, _ in part.train.take(8)]), np.zeros(400)
    )
    self.assertLen(seen, 200)

  def test_gin_bindings(self):
    gin.clear_config()
    try:
      gin.parse_config(
        [
          "load_data.batch_size = 32",
          "load_data.train_examples = 256",
          "load_data.validation_examples = 64",
          "load_data.test_examples = 50",
        ]
      )
      d = data.load_data(data_dir=self.data_dir)
    finally:
      gin.clear_config()
    self.assertEqual(d.num_examples, {"train": 256, "validation": 64, "test": 50})
    self.assertEqual(d.train.element_spec[0].shape.as_list(), [32, 8, 8, 1])
    self.assertEqual(sum(int(y.shape[0]) for _, y in d.test), 50)

  def test_bad_arguments(self):
    with self.assertRaisesRegex(UserError, "batch_size=1001 exceeds the 1000 train"):
      data.load_data(data_dir=self.data_dir, batch_size=1001)
    with self.assertRaisesRegex(UserError, "batch_size=20 exceeds the 10 train"):
      data.load_data(data_dir=self.data_dir, batch_size=20, train_examples=10)
    with self.assertRaisesRegex(UserError, "validation_examples=398 exceeds"):
      data.load_data(data_dir=self.data_dir, validation_examples=398)
    for kwargs in ({"batch_size": 0}, {"eval_batch_size": -1}, {"train_examples": 0}):
      with self.assertRaisesRegex(UserError, "must be a positive integer"):
        data.load_data(data_dir=self.data_dir, **kwargs)


class TrainFnTest(tf.test.TestCase):
  """`make_train_fn` and the `Data.train_stream` of a hand-built `Data`."""

  def test_batches_are_epoch_permutations_preprocessed_whole(self):
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * 20
    labels = np.arange(10, dtype=np.int64)
    calls = []

    def preprocess(x, y):
      calls.append(x.shape.as_list())  # Traced once, on a whole batch.
      return tf.cast(x, tf.float32) / 255.0, tf.cast(y, tf.int32)

    stream = data.make_train_fn(images, labels, batch_size=4, preprocess=preprocess)
    batches = list(stream(7).take(5))  # 20 examples: exactly 2 epochs.
    self.assertEqual(calls, [[4, 1, 1, 1]])
    x = np.concatenate([b[0].numpy() for b in batches])[:, 0, 0, 0]
    y = np.concatenate([b[1].numpy() for b in batches])
    self.assertEqual(batches[0][1].dtype, tf.int32)
    self.assertAllClose(x, y * 20 / 255.0)  # Images and labels stay paired.
    self.assertAllEqual(np.sort(y[:10]), np.arange(10))
    self.assertAllEqual(np.sort(y[10:]), np.arange(10))
    self.assertNotAllEqual(y[:10], y[10:])
    again = np.concatenate([b[1].numpy() for b in stream(7).take(5)])
    self.assertAllEqual(again, y)

  def test_hand_built_data_without_train_fn_has_one_stream(self):
    train = tf.data.Dataset.from_tensors(
      (tf.zeros([2, 1, 1, 1]), tf.zeros([2], tf.int32))
    )
    d = data.Data(
      name="hand",
      train=train.repeat(),
      validation=train,
      test=train,
      input_shape=(1, 1, 1),
      num_classes=1,
      num_examples={"train": 2, "validation": 2, "test": 2},
    )
    self.assertIs(d.train_stream(5), d.train)


class OtherDatasetsTest(tf.test.TestCase):
  """fashion_mnist and cifar10: mocked data, and the missing-data error."""

  def test_split_strings(self):
    self.assertEqual(
      data.SPLITS["fashion_mnist"],
      {"train": "train[:50000]", "validation": "train[50000:]", "test": "test"},
    )
    self.assertEqual(
      data.SPLITS["cifar10"],
      {"train": "train[:40000]", "validation": "train[40000:]", "test": "test"},
    )

  def test_mock_data_shapes_scaling_batches(self):
    data_dir = self.create_tempdir().full_path  # Empty: nothing is prepared.
    for name, shape in (("fashion_mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))):
      with tfds.testing.mock_data(num_examples=20):
        d = data.load_data(name, data_dir=data_dir, batch_size=8, eval_batch_size=16)
      self.assertEqual(d.input_shape, shape)
      self.assertEqual(d.num_classes, 10)
      # Plain mock_data serves `num_examples` per split, ignoring slicing.
      self.assertEqual(d.num_examples, {"train": 20, "validation": 20, "test": 20})
      x, y = next(iter(d.train))
      self.assertEqual(x.shape, (8, *shape))
      self.assertEqual(x.dtype, tf.float32)
      self.assertEqual(y.dtype, tf.int32)
      self.assertAllInRange(x, 0.0, 1.0)
      self.assertAllInRange(y, 0, 9)
      self.assertEqual([int(b.shape[0]) for _, b in d.test], [16, 4])

  def test_mock_data_split_counts(self):
    data_dir = self.create_tempdir().full_path
    cases = (
      ("fashion_mnist", (28, 28, 1), 50000, 10000, 10000),
      ("cifar10", (32, 32, 3), 40000, 10000, 10000),
    )
    for name, shape, n_train, n_validation, n_test in cases:
      with tfds.testing.mock_data(as_dataset_fn=_indexed_as_dataset):
        d = data.load_data(
          name, data_dir=data_dir, batch_size=5000, eval_batch_size=5000
        )
      self.assertEqual(
        d.num_examples, {"train": n_train, "validation": n_validation, "test": n_test}
      )
      self.assertEqual(d.input_shape, shape)

      n_official = _OFFICIAL_SIZES[name]["train"]
      validation = self._decode(d.validation, shape)
      self.assertAllEqual(validation, np.arange(n_train, n_official))
      self.assertLen(validation, n_validation)
      self.assertAllEqual(self._decode(d.test, shape), 1_000_000 + np.arange(n_test))

      # One epoch of the train stream: exactly the first n_train examples.
      train = self._decode(d.train.take(n_train // 5000), shape, batch_size=5000)
      self.assertAllEqual(np.sort(train), np.arange(n_train))
      self.assertNotAllEqual(train, np.arange(n_train))  # Shuffled.

  def _decode(
    self,
    dataset: tf.data.Dataset,
    shape: tuple[int, ...],
    batch_size: int | None = None,
  ) -> np.ndarray:
    """Indices int64 [N] of `_indexed_as_dataset` examples; checks each batch."""
    indices = []
    for x, y in dataset:
      x, y = x.numpy(), y.numpy()
      if batch_size is not None:
        self.assertEqual(x.shape, (batch_size, *shape))
      self.assertEqual(x.shape[1:], shape)
      self.assertEqual(x.dtype, np.float32)
      self.assertEqual(y.dtype, np.int32)
      index = _decode_indices(x)
      # Scaling: uint8 v -> v / 255 (pixel [5, 5] holds index % 256).
      self.assertAllClose(x[:, 5, 5, -1], (index % 256) / 255.0, rtol=0, atol=1e-7)
      self.assertAllEqual(y, index % 1_000_000 % 10)
      indices.append(index)
    return np.concatenate(indices)

  def test_unprepared_dataset_raises_quickly_without_gcs(self):
    data_dir = self.create_tempdir().full_path
    start = time.monotonic()
    with mock.patch.object(gcs_utils, "exists", _no_gcs):
      with self.assertRaisesRegex(UserError, "fashion_mnist is not prepared in") as e:
        data.load_data("fashion_mnist", data_dir=data_dir)
    self.assertLess(time.monotonic() - start, 5.0)
    message = str(e.exception).splitlines()[0]
    self.assertIn(f"tfds build fashion_mnist --data_dir {data_dir}", message)
    self.assertFalse(data.is_prepared("cifar10", data_dir))

  def test_unknown_name(self):
    with self.assertRaisesRegex(
      UserError, "unknown data set 'mnist'.*cifar10, fashion_mnist, lrc_digits"
    ):
      data.load_data("mnist")


if __name__ == "__main__":
  tf.test.main()
