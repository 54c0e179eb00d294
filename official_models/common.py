"""What every classifier of this package shares: its output layer's name and argument checks.

The builders raise `ValueError` with a one-line message for bad arguments;
`official_models` depends on TensorFlow and gin only.
"""

from __future__ import annotations

from collections.abc import Sequence

# Name of the final dense layer of every model in this package.
FINAL_LAYER_NAME = "logits"

# The data's shapes, which `build_model` always passes to a builder: every
# builder's gin configurable denylists them (binding one is a gin error).
SHAPE_ARGUMENTS = ("input_shape", "num_classes")


def check_num_classes(num_classes: int) -> int:
  """Returns `num_classes`, or raises ValueError unless it is an int >= 2."""
  if isinstance(num_classes, bool) or not isinstance(num_classes, int):
    raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
  if num_classes < 2:
    raise ValueError(f"num_classes must be at least 2, got {num_classes}")
  return num_classes


def check_input_shape(
  input_shape: Sequence[int], rank: int | None = None
) -> tuple[int, ...]:
  """Returns `input_shape` as a tuple of positive Python ints.

  Args:
    input_shape: shape of one example (no batch dimension).
    rank: the required number of dimensions; None accepts any rank >= 1.

  Raises:
    ValueError: if `input_shape` is not a sequence of positive ints of that rank.
  """
  if isinstance(input_shape, str) or not isinstance(input_shape, Sequence):
    raise ValueError(f"input_shape must be a sequence of ints, got {input_shape!r}")
  if rank is not None and len(input_shape) != rank:
    raise ValueError(
      f"input_shape must have rank {rank}, got {tuple(input_shape)!r} of rank "
      f"{len(input_shape)}"
    )
  if not input_shape or any(
    isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in input_shape
  ):
    raise ValueError(f"input_shape must hold positive ints, got {tuple(input_shape)!r}")
  return tuple(int(d) for d in input_shape)


def check_image_classifier_args(
  input_shape: Sequence[int], num_classes: int, min_size: int = 1
) -> tuple[int, int, int]:
  """Checks an image classifier's `input_shape` and `num_classes`.

  Args:
    input_shape: `(height, width, channels)` of one image, positive ints.
    num_classes: number of output classes, at least 2.
    min_size: smallest accepted height and width.

  Returns:
    `input_shape` as a tuple of three Python ints.

  Raises:
    ValueError: if `input_shape` is not three positive ints (height and width at
      least `min_size`) or `num_classes` is not an int >= 2.
  """
  height, width, channels = check_input_shape(input_shape, rank=3)
  if height < min_size or width < min_size:
    raise ValueError(
      f"input_shape height and width must be at least {min_size}, got "
      f"{tuple(input_shape)!r}"
    )
  check_num_classes(num_classes)
  return height, width, channels
