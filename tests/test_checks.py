"""The shared checks of user-given numbers."""

import math

import pytest

from lr_controller import checks
from lr_controller.errors import UserError


def test_integer():
  assert checks.integer("k", 3) == 3
  assert checks.integer("k", 4.0) == 4
  assert checks.integer("k", 0, minimum=0) == 0
  for bad in (0, 2.5, True, "3", math.nan, math.inf):
    with pytest.raises(UserError, match="k must be an integer >= 1"):
      checks.integer("k", bad)


def test_non_negative_and_positive():
  assert checks.non_negative("x", 0) == 0.0
  assert checks.positive("x", 1e-9) == 1e-9
  for bad in (-1e-9, True, math.nan, math.inf, None):
    with pytest.raises(UserError, match="x must be a finite number >= 0"):
      checks.non_negative("x", bad)
  for bad in (0, -1, False, math.nan):
    with pytest.raises(UserError, match="x must be a finite number > 0"):
      checks.positive("x", bad)
