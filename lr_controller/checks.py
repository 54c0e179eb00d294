"""Checks of user-given numbers: a one-line `UserError` naming the bad value.

Booleans are refused where numbers are expected (`True` is an `int` in
Python), and so are NaN and infinities.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from lr_controller.errors import UserError


def integer(name: str, value: Any, minimum: int = 1) -> int:
  """`value` as an int (integral floats accepted); UserError unless >= minimum."""
  if (
    isinstance(value, bool)
    or not isinstance(value, numbers.Real)
    or not math.isfinite(float(value))
    or not float(value).is_integer()
    or int(value) < minimum
  ):
    raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")
  return int(value)


def non_negative(name: str, value: Any, what: str = "a finite number >= 0") -> float:
  """`value` as a float; UserError ("{name} must be {what}") unless finite and >= 0."""
  if (
    isinstance(value, bool)
    or not isinstance(value, numbers.Real)
    or not math.isfinite(float(value))
    or float(value) < 0
  ):
    raise UserError(f"{name} must be {what}, got {value!r}")
  return float(value)


def positive(name: str, value: Any, what: str = "a finite number > 0") -> float:
  """`value` as a float; UserError ("{name} must be {what}") unless finite and > 0."""
  if (
    isinstance(value, bool)
    or not isinstance(value, numbers.Real)
    or not math.isfinite(float(value))
    or float(value) <= 0
  ):
    raise UserError(f"{name} must be {what}, got {value!r}")
  return float(value)
