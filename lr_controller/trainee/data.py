"""Input pipelines of the trainee: fixed train/validation/test splits as tf.data.

`load_data` turns a tfds data set into a `Data`: an infinite, shuffled, batched
train stream and finite, deterministic validation and test sets of float32
inputs (image pixels scaled to [0, 1]; MNIST-1D's standardised signals as
they are) and int32 labels. The train split is decoded once and held in
memory; `Data.train_stream(seed)` builds a stream over it whose batch order is
a function of the seed and the data only (stateless shuffles), so a trainee
reset to a seed sees the same batches in any process. The validation split is carved out of the
official train split (Xu et al. 2019 compute the controller's reward on
held-out data, never on the test set).

Nothing here touches the network. `lrc_digits` (scikit-learn's 8x8 digits, see
`lr_controller.trainee.digits_dataset`) and `lrc_mnist1d` (MNIST-1D generated
by the `mnist1d` package, see `lr_controller.trainee.mnist1d_dataset`) are
prepared on first use; any other data set must already be prepared in
`data_dir`, otherwise a one-line `UserError` says how to prepare it on a
machine with internet.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from unittest import mock

import gin
import tensorflow as tf
import tensorflow_datasets as tfds

from lr_controller.errors import UserError

# Importing the builders registers `lrc_digits` and `lrc_mnist1d`.
from lr_controller.trainee import digits_dataset, mnist1d_dataset

# The splits of a builder of ours, used as they are.
_OWN_SPLITS = {"train": "train", "validation": "validation", "test": "test"}

# Data set name -> split -> tfds split string. Fixed slices, so every run,
# seed and machine sees the same examples in each split.
SPLITS: dict[str, dict[str, str]] = {
  # 50,000 / 10,000 / 10,000.
  "fashion_mnist": {
    "train": "train[:50000]",
    "validation": "train[50000:]",
    "test": "test",
  },
  # 40,000 / 10,000 / 10,000.
  "cifar10": {
    "train": "train[:40000]",
    "validation": "train[40000:]",
    "test": "test",
  },
  # 1,000 / 397 / 400: the builder's own splits.
  digits_dataset.LrcDigits.name: _OWN_SPLITS,
  # 4,000 / 2,000 / 8,000: the builder's own splits (see `mnist1d_dataset`);
  # `/shuffled` is the same examples with permuted positions.
  mnist1d_dataset.LrcMnist1d.name: _OWN_SPLITS,
  f"{mnist1d_dataset.LrcMnist1d.name}/shuffled": _OWN_SPLITS,
}

# Data sets `load_data` prepares itself, offline, on first use.
_SELF_PREPARED = frozenset(
  {
    digits_dataset.LrcDigits.name,
    mnist1d_dataset.LrcMnist1d.name,
    f"{mnist1d_dataset.LrcMnist1d.name}/shuffled",
  }
)

_PIXEL_MAX = 255.0

# Train batches prepared ahead of the trainee. A batch is one gather (about
# 1 ms for 250 28x28 images), far below a training step, so a fixed small
# buffer never starves training (benchmarks/episode_profile.py: the loop runs
# as fast as on one repeated batch).
_PREFETCH_BATCHES = 2


@dataclasses.dataclass(frozen=True)
class Data:
  """A data set's splits as ready-to-use pipelines.

  Attributes:
    name: tfds name of the data set, a key of `SPLITS`.
    train: Infinite dataset of `(inputs, labels)`: inputs float32
      [batch_size, *input_shape] (images in [0, 1]), labels int32 [batch_size]. Shuffled
      with the seed, reshuffled each epoch, only full batches. For
      `load_data`, `train_fn(seed)` of its `seed`.
    validation: Finite dataset of `(inputs, labels)` batches (float32
      [<=eval_batch_size, *input_shape], int32 [<=eval_batch_size]), same order on
      every pass.
    test: Like `validation`, for the test split.
    input_shape: shape of one input: `(H, W, C)` of an image, `(40, 1)` of an
      MNIST-1D signal.
    num_classes: Number of label values; labels are in [0, num_classes).
    num_examples: Split name -> number of examples actually used (after
      `train_examples` / `validation_examples` / `test_examples`).
    train_fn: seed -> a new train stream like `train` whose batch order is a
      function of the seed and the data only (see `make_train_fn`); None for
      a hand-built `Data` with one fixed stream.
  """

  name: str
  train: tf.data.Dataset
  validation: tf.data.Dataset
  test: tf.data.Dataset
  input_shape: tuple[int, ...]
  num_classes: int
  num_examples: dict[str, int]
  train_fn: Callable[[int], tf.data.Dataset] | None = None

  def train_stream(self, seed: int) -> tf.data.Dataset:
    """A fresh train stream whose batch order depends on `seed` and the data only.

    Without `train_fn` this is `train` itself: its order then depends on how
    much of it was read before (tf.data's shuffle state is per dataset).

    Args:
      seed: seed of the order (any int64).

    Returns:
      A dataset with the element spec of `train`.
    """
    return self.train if self.train_fn is None else self.train_fn(seed)


def make_train_fn(
  images: tf.Tensor,
  labels: tf.Tensor,
  batch_size: int,
  preprocess: Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
  | None = None,
) -> Callable[[int], tf.data.Dataset]:
  """Returns seed -> an infinite stream of shuffled batches of in-memory examples.

  Epoch e of seed s visits every example once, in the order of the stateless
  permutation `stateless_shuffle(range(N), seed=[s, e])`; batches run across
  epoch boundaries and are all full. The order is a function of (s, data)
  only: not of TensorFlow's global seed, nor of other streams read before.
  Batches are gathered and preprocessed whole (vectorized) and prefetched; the
  examples are held once and shared by every seed's stream.

  tf.data's autotuning is off: destroying an iterator waits for its autotune
  thread to wake from a sleep that grows with the iterator's age (TF 2.15:
  stalls of 0.4 s to 22 s measured), and `Trainee.reset` drops the previous
  stream's iterator every episode.

  Args:
    images: [N, H, W, C], any dtype (e.g. uint8 as decoded).
    labels: [N].
    batch_size: examples per batch (<= N).
    preprocess: maps a batch `(images, labels)` to what training reads (e.g.
      uint8 -> float32 in [0, 1]); None keeps them.

  Returns:
    A function of an int seed returning a new `tf.data.Dataset` of batches.
  """
  images = tf.convert_to_tensor(images)
  labels = tf.convert_to_tensor(labels)
  num = int(labels.shape[0])
  assert 0 < batch_size <= num, f"batch_size {batch_size} not in [1, {num}]"
  preprocess = preprocess or (lambda x, y: (x, y))

  def gather(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return preprocess(tf.gather(images, indices), tf.gather(labels, indices))

  def stream(seed: int) -> tf.data.Dataset:
    seed = tf.constant(int(seed), tf.int64)

    def epoch_order(epoch: tf.Tensor) -> tf.Tensor:
      """int64 [N], the example indices of epoch `epoch` in visiting order."""
      return tf.random.experimental.stateless_shuffle(
        tf.range(num, dtype=tf.int64), seed=tf.stack([seed, epoch])
      )

    return _without_autotune(
      tf.data.Dataset.counter()
      .map(epoch_order)
      .rebatch(batch_size, drop_remainder=True)
      .map(gather)
      .prefetch(_PREFETCH_BATCHES)
    )

  return stream


def resolve_data_dir(data_dir: str | None) -> str:
  """Returns the tfds data directory to use, as tfds would pick it.

  Args:
    data_dir: An explicit directory, or None for `$TFDS_DATA_DIR` if set, else
      `~/tensorflow_datasets`.

  Returns:
    The absolute directory path (it need not exist).
  """
  if not data_dir:
    data_dir = os.environ.get("TFDS_DATA_DIR") or os.path.join(
      "~", "tensorflow_datasets"
    )
  return os.path.abspath(os.path.expanduser(data_dir))


def prepare_instructions(name: str, data_dir: str) -> str:
  """Returns a one-line hint on how to make `name` available in `data_dir`.

  Args:
    name: tfds name of the data set.
    data_dir: The tfds data directory it is expected in.

  Returns:
    A sentence naming the commands to run.
  """
  return (
    f"run `tfds build {name} --data_dir {data_dir}` (or "
    f"`python -m lr_controller.bin.prepare_data --dataset {name} --data_dir "
    f"{data_dir}`) on a machine with internet and copy its {name} folder into "
    f"{data_dir}"
  )


def _version_dir(name: str, data_dir: str) -> str:
  """Returns `<data_dir>/<name>[/<config>]/<version>` of the code's version."""
  # `builder_cls` only imports the class. Instantiating the builder instead
  # (`tfds.builder(...).is_prepared()`) would, for an unprepared data set, call
  # `DatasetInfo.initialize_from_bucket()`, which queries gs://tfds-data even
  # with `try_gcs=False` (seconds, or a hang, without internet).
  base, _, config_name = name.partition("/")
  cls = tfds.builder_cls(base)
  parts = [data_dir, base]
  config = cls.default_builder_config
  if config_name:
    config = cls.builder_configs[config_name]
  if config is not None:
    parts.append(config.name)
  version = config.version if config is not None and config.version else cls.VERSION
  parts.append(str(version))
  return os.path.join(*parts)


def is_prepared(name: str, data_dir: str) -> bool:
  """Whether `name` is prepared in `data_dir`, checked on disk only (no network).

  This is what `tfds.builder(name, data_dir=data_dir).is_prepared()` answers
  (the code version's folder exists) without building the builder.

  Args:
    name: tfds name of a registered data set.
    data_dir: tfds data directory.

  Returns:
    True if `<data_dir>/<name>/<version>/dataset_info.json` exists.
  """
  return os.path.isfile(os.path.join(_version_dir(name, data_dir), "dataset_info.json"))


def _tfds_is_mocked() -> bool:
  """Whether tfds is patched by `tfds.testing.mock_data` (or a similar mock).

  `mock_data` does not patch `tfds.load` itself: it patches
  `DatasetBuilder.__init__` (the given `data_dir` is replaced by its own),
  `download_and_prepare` (a no-op) and `as_dataset` (serves random examples
  of the code's features although nothing is prepared). Under it, the on-disk
  preparedness check would wrongly fail and preparing `lrc_digits` would be a
  no-op, so `load_data` skips both when `as_dataset` is no longer tfds's own.
  """
  as_dataset = tfds.core.DatasetBuilder.as_dataset
  return isinstance(as_dataset, mock.Mock) or (
    getattr(as_dataset, "__module__", "") != "tensorflow_datasets.core.dataset_builder"
  )


def _ensure_available(name: str, data_dir: str) -> None:
  """Prepares our offline data sets if needed; raises if another data set is missing.

  Raises:
    UserError: `name` is not self-prepared and not prepared in `data_dir`.
  """
  if _tfds_is_mocked():
    return
  if name in _SELF_PREPARED:
    if not is_prepared(name, data_dir):
      builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
      builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
      )
    return
  if not is_prepared(name, data_dir):
    raise UserError(
      f"{name} is not prepared in {data_dir}: {prepare_instructions(name, data_dir)}"
    )


def _without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """`dataset` with tf.data's autotuning off (see `make_train_fn`)."""
  options = tf.data.Options()
  options.autotune.enabled = False
  return dataset.with_options(options)


def _to_float(inputs: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Inputs [...] and int64 labels [...] -> float32 inputs, int32 labels.

  uint8 images are scaled to [0, 1]; float inputs (MNIST-1D's standardised
  signals) are kept as they are.
  """
  if inputs.dtype == tf.uint8:
    return tf.cast(inputs, tf.float32) / _PIXEL_MAX, tf.cast(label, tf.int32)
  return tf.cast(inputs, tf.float32), tf.cast(label, tf.int32)


def _count(dataset: tf.data.Dataset) -> int:
  """Number of elements of a finite dataset (its cardinality, if known)."""
  cardinality = int(dataset.cardinality())
  if cardinality >= 0:
    return cardinality
  return int(dataset.reduce(0, lambda n, _: n + 1))


def _check_positive(**values: int | None) -> None:
  """Raises UserError if a given (non-None) value is not a positive int."""
  for key, value in values.items():
    if value is None:
      continue
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
      raise UserError(f"{key} must be a positive integer, got {value!r}")


def _limit(
  dataset: tf.data.Dataset, limit: int | None, split: str, name: str
) -> tuple[tf.data.Dataset, int]:
  """Keeps the first `limit` examples (all if None); returns them and their count.

  Raises:
    UserError: `limit` exceeds the size of the split.
  """
  available = _count(dataset)
  if limit is None:
    return dataset, available
  if limit > available:
    raise UserError(
      f"{split}_examples={limit} exceeds the {available} examples of {name}'s "
      f"{split} split"
    )
  return dataset.take(limit), limit


@gin.configurable
def load_data(
  name: str = digits_dataset.LrcDigits.name,
  data_dir: str | None = None,
  batch_size: int = 1000,
  eval_batch_size: int = 1000,
  seed: int = 0,
  validation_examples: int | None = None,
  train_examples: int | None = None,
  test_examples: int | None = None,
) -> Data:
  """Loads a data set's fixed splits as tf.data pipelines.

  Args:
    name: tfds name, one of `SPLITS` ("lrc_digits", "lrc_mnist1d",
      "lrc_mnist1d/shuffled", "fashion_mnist", "cifar10").
    data_dir: tfds data directory; None: `$TFDS_DATA_DIR`, else
      `~/tensorflow_datasets`. `lrc_digits` and `lrc_mnist1d` are prepared
      there on first use.
    batch_size: Examples per train batch; every train batch is full.
    eval_batch_size: Examples per validation/test batch (the last may be
      smaller).
    seed: Seed of the order of `Data.train` (`Data.train_stream` takes others).
    validation_examples: Keep only the first N validation examples (a fixed
      subset); None keeps the whole split.
    train_examples: Keep only the first N train examples (for quick runs);
      None keeps the whole split.
    test_examples: Keep only the first N test examples (for quick runs); None
      keeps the whole split.

  Returns:
    The `Data`: float32 inputs (pixels in [0, 1]) and int32 labels.

  Raises:
    UserError: Unknown `name`, non-positive sizes, a data set that is not
      prepared in `data_dir`, `*_examples` larger than the split, or
      `batch_size` larger than the number of train examples.
  """
  if not isinstance(name, str) or name not in SPLITS:
    raise UserError(
      f"unknown data set {name!r}; known data sets: {', '.join(sorted(SPLITS))}"
    )
  _check_positive(
    batch_size=batch_size,
    eval_batch_size=eval_batch_size,
    validation_examples=validation_examples,
    train_examples=train_examples,
    test_examples=test_examples,
  )
  if isinstance(seed, bool) or not isinstance(seed, int):
    raise UserError(f"seed must be an integer, got {seed!r}")
  data_dir = resolve_data_dir(data_dir)
  _ensure_available(name, data_dir)

  split_names = ("train", "validation", "test")
  raw, info = tfds.load(
    name,
    split=[SPLITS[name][split] for split in split_names],
    data_dir=data_dir,
    download=False,
    try_gcs=False,
    as_supervised=True,
    shuffle_files=False,
    with_info=True,
    # We cache after decoding ourselves; tfds' auto-cache would cache twice.
    read_config=tfds.ReadConfig(try_autocache=False),
  )
  raw = dict(zip(split_names, raw, strict=True))

  train, num_train = _limit(raw["train"], train_examples, "train", name)
  validation, num_validation = _limit(
    raw["validation"], validation_examples, "validation", name
  )
  test, num_test = _limit(raw["test"], test_examples, "test", name)
  if batch_size > num_train:
    raise UserError(
      f"batch_size={batch_size} exceeds the {num_train} train examples of "
      f"{name}: no full batch could be formed"
    )

  # Decoded once into memory (uint8: 39 MB for Fashion-MNIST, 123 MB for
  # CIFAR-10), shared by the streams of every seed.
  train_images, train_labels = train.batch(num_train).get_single_element()
  train_fn = make_train_fn(train_images, train_labels, batch_size, _to_float)

  def finite(dataset: tf.data.Dataset) -> tf.data.Dataset:
    return _without_autotune(
      dataset.batch(eval_batch_size).map(_to_float).cache().prefetch(_PREFETCH_BATCHES)
    )

  return Data(
    name=name,
    train=train_fn(seed),
    validation=finite(validation),
    test=finite(test),
    input_shape=tuple(int(d) for d in info.features[info.supervised_keys[0]].shape),
    num_classes=int(info.features["label"].num_classes),
    num_examples={"train": num_train, "validation": num_validation, "test": num_test},
    train_fn=train_fn,
  )
