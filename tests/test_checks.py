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


def test_number_between_and_boolean():
  assert checks.number("x", -2) == -2.0
  for bad in (True, "1", math.nan, -math.inf, None):
    with pytest.raises(UserError, match="^x must be a finite number, got "):
      checks.number("x", bad)
  assert checks.between("p", 0.3, 0, 1) == 0.3
  for bad in (0, 1, 1.5, math.nan, "0.5"):
    with pytest.raises(UserError, match=r"^p must be a number in \(0, 1\), got "):
      checks.between("p", bad, 0, 1)
  assert checks.between("p", 0, 0, 1, closed=True) == 0.0
  assert checks.between("p", 1, 0, 1, closed=True) == 1.0
  for bad in (-0.1, 1.5, math.nan, math.inf, True):
    with pytest.raises(UserError, match=r"^p must be a number in \[0, 1\], got "):
      checks.between("p", bad, 0, 1, closed=True)
  assert checks.boolean("b", False) is False
  for bad in (0, 1, "yes", None):
    with pytest.raises(UserError, match="^b must be True or False, got "):
      checks.boolean("b", bad)


def test_callers_may_reword_what_is_expected():
  with pytest.raises(UserError, match=r"^levels must be at least 2, got 1$"):
    checks.integer("levels", 1, minimum=2, what="at least 2")
  with pytest.raises(UserError, match=r"^lr must be positive and finite, got -1$"):
    checks.positive("lr", -1, "positive and finite")
