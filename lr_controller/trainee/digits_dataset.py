"""`lrc_digits`: scikit-learn's 8x8 handwritten digits as an offline tfds data set.

scikit-learn ships the 1,797 8x8 images of the UCI "Optical Recognition of
Handwritten Digits" test set inside its wheel (`sklearn.datasets.load_digits`),
so this builder prepares a real, small image-classification data set without
any network access. It is the default data set of `lr_controller.trainee.data` for
quick experiments and tests.

Importing this module registers the builder under the name `lrc_digits`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

IMAGE_SHAPE = (8, 8, 1)
NUM_CLASSES = 10
# Number of examples of each split; they add up to the 1,797 images.
SPLIT_SIZES = {"train": 1000, "validation": 397, "test": 400}
# Seed of the fixed permutation of the 1,797 indices the splits are cut from.
PERMUTATION_SEED = 0
# Maximal pixel value of the source images (4x4 blocks of 32x32 bitmaps, 0..16).
_SOURCE_MAX = 16.0

_DESCRIPTION = """\
The 8x8 handwritten digits bundled with scikit-learn
(`sklearn.datasets.load_digits`): 1,797 grey-scale images of the digits 0..9,
the test part of the UCI "Optical Recognition of Handwritten Digits"
(optdigits) data set by E. Alpaydin and C. Kaynak. Each pixel counts the "on"
pixels of a 4x4 block of a 32x32 bitmap (0..16); here it is scaled to 0..255
with round(v * 255 / 16) and stored as uint8.

The images are split by a fixed permutation (numpy RandomState(0)) of their
indices into train (1,000), validation (397) and test (400).
"""

_CITATION = """\
@misc{alpaydin1998optdigits,
  author       = {Alpaydin, E. and Kaynak, C.},
  title        = {Optical Recognition of Handwritten Digits},
  year         = {1998},
  howpublished = {UCI Machine Learning Repository},
  doi          = {10.24432/C50P49},
}
"""

_HOMEPAGE = (
  "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits"
)


class LocalDatasetInfo(tfds.core.DatasetInfo):
  """A `DatasetInfo` that never looks for pre-computed metadata on GCS.

  `tfds.core.DatasetBuilder.__init__` calls `info.initialize_from_bucket()`
  whenever the data set is not prepared yet, which queries the public
  `gs://tfds-data` bucket even with `try_gcs=False`. This data set is never
  there, and the look-up costs seconds (or hangs) without internet.
  """

  def initialize_from_bucket(self) -> None:
    """Does nothing: `lrc_digits` only exists locally."""


def split_indices(num_images: int = 1797) -> dict[str, np.ndarray]:
  """Returns the source indices of each split.

  Args:
    num_images: Number of images of the source data set.

  Returns:
    Dict split name -> int64 array [n] of indices into `load_digits()`, the
    splits being disjoint consecutive slices of one fixed permutation.

  Raises:
    ValueError: If `num_images` differs from the sum of `SPLIT_SIZES`.
  """
  if num_images != sum(SPLIT_SIZES.values()):
    raise ValueError(
      f"load_digits() returned {num_images} images, expected "
      f"{sum(SPLIT_SIZES.values())}"
    )
  permutation = np.random.RandomState(PERMUTATION_SEED).permutation(num_images)
  result = {}
  start = 0
  for split, size in SPLIT_SIZES.items():
    result[split] = permutation[start : start + size].astype(np.int64)
    start += size
  return result


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Scales source pixel values 0..16 to 0..255.

  Args:
    images: float array [..., 8, 8] with values in [0, 16].

  Returns:
    uint8 array [..., 8, 8, 1] holding round(v * 255 / 16).
  """
  scaled = np.rint(np.asarray(images, np.float64) * 255.0 / _SOURCE_MAX)
  return np.clip(scaled, 0, 255).astype(np.uint8)[..., np.newaxis]


class LrcDigits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's 8x8 digits (UCI optdigits), prepared without network."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self) -> tfds.core.DatasetInfo:
    """Returns the features: `image` uint8 [8, 8, 1] and `label` int64 in [0, 10)."""
    return LocalDatasetInfo(
      builder=self,
      description=_DESCRIPTION,
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(shape=IMAGE_SHAPE, dtype=np.uint8),
          "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }
      ),
      supervised_keys=("image", "label"),
      homepage=_HOMEPAGE,
      citation=_CITATION,
    )

  def _split_generators(
    self, dl_manager: tfds.download.DownloadManager
  ) -> dict[str, Iterator[tuple[int, dict[str, object]]]]:
    """Returns one example generator per split; nothing is downloaded."""
    del dl_manager  # The data ships with scikit-learn.
    # Imported here, when generating: scikit-learn costs every process that
    # imports the package about 0.6 s, and the data is generated once.
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = to_uint8(digits.images)
    labels = np.asarray(digits.target, np.int64)
    return {
      split: self._generate_examples(images, labels, indices)
      for split, indices in split_indices(len(images)).items()
    }

  def _generate_examples(
    self, images: np.ndarray, labels: np.ndarray, indices: Sequence[int]
  ) -> Iterator[tuple[int, dict[str, object]]]:
    """Yields `(source index, {"image": uint8 [8, 8, 1], "label": int})`."""
    for index in indices:
      yield int(index), {"image": images[index], "label": int(labels[index])}
