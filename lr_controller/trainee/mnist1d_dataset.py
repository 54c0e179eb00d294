"""`lrc_mnist1d`: MNIST-1D (Greydanus and Kobak, ICML 2024) as an offline tfds data set.

MNIST-1D turns ten hand-made 1-D templates into length-40 signals by random
padding, shear, scaling, translation and correlated plus i.i.d. noise. The
`mnist1d` package generates it procedurally (`mnist1d.data.make_dataset`), so
this builder prepares it on first use with no network. It was made to tell
training choices apart at CPU scale: a 2 x 100 MLP over-fits its 4,000
training examples, and there the tuned schedules differ clearly.

Splits (`SPLIT_SIZES`), all from the package's default transformation
arguments:

* train (4,000): the training part of the package's own data set, i.e.
  `make_dataset(get_dataset_args())` (5,000 examples, seed 42, the first 80%),
  the generation the package's published 4,000 / 1,000 split comes from;
* validation (2,000): the first 2,000 of 9,000 more examples generated the
  same way with seed `EXTRA_SEED`;
* test (8,000): the package's 1,000 published test examples followed by the
  remaining 7,000 extra ones. Eight times the published test split, so that
  test sampling noise (about 0.013 nats of standard error on a loss near 1)
  stays well below the 0.05-0.1 nats that separate tuned schedules.

Each `make_dataset` call standardises its own examples (mean 0, standard
deviation 1 over the whole call); the two calls' statistics agree to about
1%. The `shuffled` config applies one fixed permutation (`SHUFFLE_SEED`) of
the 40 positions to every example (the package's `shuffle_seq`, which
standardisation commutes with): the same examples as a signal that a
convolution can no longer exploit.

The package seeds Python's `random` and NumPy's global generator; generation
here saves and restores both, so preparing never changes a caller's random
streams. Importing this module registers the builder (configs `default` and
`shuffled`); `mnist1d` itself is imported only when generating.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Iterator, Mapping

import numpy as np
import tensorflow_datasets as tfds

from lr_controller.errors import UserError
from lr_controller.trainee import digits_dataset

SEQUENCE_LENGTH = 40
SIGNAL_SHAPE = (SEQUENCE_LENGTH, 1)
NUM_CLASSES = 10
# Examples of each split of the prepared data set.
SPLIT_SIZES = {"train": 4000, "validation": 2000, "test": 8000}
# The package's default generation: 5,000 examples, 80% train, seed 42.
PUBLISHED_SAMPLES = 5000
PUBLISHED_TRAIN_FRACTION = 0.8
# Seed of the second generation, which adds validation and test examples
# (9,000 of them for `SPLIT_SIZES`).
EXTRA_SEED = 1042
# Seed of the fixed permutation of the 40 positions of the `shuffled` config.
SHUFFLE_SEED = 0

_DESCRIPTION = """\
MNIST-1D (Greydanus and Kobak, "Scaling down deep learning with MNIST-1D",
ICML 2024): length-40 1-D signals of the ten digits, generated offline by the
`mnist1d` package with its default arguments. train: the package's own 4,000
training examples (seed 42); validation: 2,000 and test: 1,000 published test
examples plus 7,000 more, from a second generation (seed 1042). Signals are
float32 [40, 1], standardised; labels 0..9.
"""

_CITATION = """\
@inproceedings{greydanus2024scaling,
  title     = {Scaling down deep learning with {MNIST}-{1D}},
  author    = {Greydanus, Sam and Kobak, Dmitry},
  booktitle = {Proceedings of the 41st International Conference on Machine Learning},
  year      = {2024},
}
"""

_HOMEPAGE = "https://github.com/greydanus/mnist1d"


@contextlib.contextmanager
def _global_random_state_kept() -> Iterator[None]:
  """Restores Python's and NumPy's global random states on exit."""
  python_state, numpy_state = random.getstate(), np.random.get_state()
  try:
    yield
  finally:
    random.setstate(python_state)
    np.random.set_state(numpy_state)


def _make(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """`num_samples` examples of the package's default generation with `seed`.

  Returns:
    float32 [num_samples, 40] signals (standardised over the call) and int64
    [num_samples] labels, in the package's shuffled order. The global random
    states are left as they were.
  """
  # Imported here: the package imports matplotlib.pyplot, which only
  # preparing needs.
  from mnist1d import data as mnist1d_data

  args = mnist1d_data.get_dataset_args()
  args.num_samples = num_samples
  args.seed = seed
  args.train_split = 1.0
  args.shuffle_seq = False
  with _global_random_state_kept():
    made = mnist1d_data.make_dataset(args)
  return np.asarray(made["x"], np.float32), np.asarray(made["y"], np.int64)


def _check_sizes(sizes: Mapping[str, int], published_samples: int) -> dict[str, int]:
  """Returns `sizes` as ints, or raises UserError naming the bad request."""
  if set(sizes) != set(SPLIT_SIZES):
    raise UserError(
      f"MNIST-1D splits must be exactly {sorted(SPLIT_SIZES)}, got {sorted(sizes)}"
    )
  checked = {}
  for split, size in sizes.items():
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
      raise UserError(f"MNIST-1D {split} size must be a positive int, got {size!r}")
    checked[split] = int(size)
  published_train = int(published_samples * PUBLISHED_TRAIN_FRACTION)
  if checked["train"] > published_train:
    raise UserError(
      f"MNIST-1D train size {checked['train']} exceeds the {published_train} "
      f"training examples of the package's {published_samples}-example generation"
    )
  return checked


def generate_splits(
  sizes: Mapping[str, int] = SPLIT_SIZES,
  shuffle_seq: bool = False,
  published_samples: int = PUBLISHED_SAMPLES,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Generates the train, validation and test splits (see the module docstring).

  Args:
    sizes: examples per split ("train", "validation", "test").
    shuffle_seq: permute the 40 positions of every example by one fixed
      permutation (seed `SHUFFLE_SEED`).
    published_samples: size of the package's own generation (seed 42) whose
      training part gives train and whose test part opens test; 5,000 is the
      package's default (tests use fewer).

  Returns:
    Split name -> (float32 [n, 40, 1] signals, int64 [n] labels).

  Raises:
    UserError: unknown or missing split names, a size that is not a positive
      int, or more train examples than the package's generation has.
  """
  sizes = _check_sizes(sizes, published_samples)
  published_x, published_y = _make(published_samples, seed=42)
  cut = int(published_samples * PUBLISHED_TRAIN_FRACTION)
  extra_needed = sizes["validation"] + max(0, sizes["test"] - (published_samples - cut))
  # The package makes num_samples // 10 examples of each class: round up.
  extra_samples = -(-extra_needed // NUM_CLASSES) * NUM_CLASSES
  extra_x, extra_y = _make(extra_samples, seed=EXTRA_SEED)
  num_validation = sizes["validation"]
  test_x = np.concatenate([published_x[cut:], extra_x[num_validation:]])
  test_y = np.concatenate([published_y[cut:], extra_y[num_validation:]])
  splits = {
    "train": (published_x[: sizes["train"]], published_y[: sizes["train"]]),
    "validation": (extra_x[:num_validation], extra_y[:num_validation]),
    "test": (test_x[: sizes["test"]], test_y[: sizes["test"]]),
  }
  permutation = (
    np.random.RandomState(SHUFFLE_SEED).permutation(SEQUENCE_LENGTH)
    if shuffle_seq
    else np.arange(SEQUENCE_LENGTH)
  )
  return {
    split: (x[:, permutation, np.newaxis].astype(np.float32), y)
    for split, (x, y) in splits.items()
  }


@dataclasses.dataclass
class LrcMnist1dConfig(tfds.core.BuilderConfig):
  """A variant of the data set.

  Attributes:
    shuffle_seq: whether the 40 positions are permuted (one fixed permutation).
  """

  shuffle_seq: bool = False


class LrcMnist1d(tfds.core.GeneratorBasedBuilder):
  """MNIST-1D generated offline by the `mnist1d` package."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
    LrcMnist1dConfig(name="default", description="The package's signals."),
    LrcMnist1dConfig(
      name="shuffled",
      description="The same examples with one fixed permutation of the 40 positions.",
      shuffle_seq=True,
    ),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    """Returns the features: `signal` float32 [40, 1] and `label` int64 in [0, 10)."""
    return digits_dataset.LocalDatasetInfo(
      builder=self,
      description=_DESCRIPTION,
      features=tfds.features.FeaturesDict(
        {
          "signal": tfds.features.Tensor(shape=SIGNAL_SHAPE, dtype=np.float32),
          "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }
      ),
      supervised_keys=("signal", "label"),
      homepage=_HOMEPAGE,
      citation=_CITATION,
      # Keep the generated order (tfds would shuffle by key hash), so a split
      # reads as documented and `*_examples=N` keeps its first N examples.
      disable_shuffling=True,
    )

  def _split_generators(
    self, dl_manager: tfds.download.DownloadManager
  ) -> dict[str, Iterator[tuple[int, dict[str, object]]]]:
    """Returns one example generator per split; nothing is downloaded."""
    del dl_manager  # Generated by the mnist1d package.
    splits = generate_splits(
      SPLIT_SIZES,
      shuffle_seq=self.builder_config.shuffle_seq,
      published_samples=PUBLISHED_SAMPLES,
    )
    return {split: self._generate_examples(*arrays) for split, arrays in splits.items()}

  def _generate_examples(
    self, signals: np.ndarray, labels: np.ndarray
  ) -> Iterator[tuple[int, dict[str, object]]]:
    """Yields `(index in split, {"signal": float32 [40, 1], "label": int})`."""
    for index, (signal, label) in enumerate(zip(signals, labels)):
      yield index, {"signal": signal, "label": int(label)}
