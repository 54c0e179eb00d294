"""Checks of user-given values: a one-line `UserError` naming the bad value.

Every check reads "{name} must be {what}, got {value!r}", with a default
`what` each caller may reword. Booleans are refused where numbers are expected
(`True` is an `int` in Python), and so are NaN and infinities.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from lr_controller.errors import UserError


def _fail(name: str, what: str, value: Any) -> UserError:
  return UserError(f"{name} must be {what}, got {value!r}")


def _finite(value: Any) -> bool:
  return (
    not isinstance(value, bool)
    and isinstance(value, numbers.Real)
    and math.isfinite(float(value))
  )


def number(name: str, value: Any, what: str = "a finite number") -> float:
  """`value` as a float; UserError unless a finite number."""
  if not _finite(value):
    raise _fail(name, what, value)
  return float(value)


def integer(name: str, value: Any, minimum: int = 1, what: str | None = None) -> int:
  """`value` as an int (integral floats accepted); UserError unless >= minimum."""
  if not _finite(value) or not float(value).is_integer() or int(value) < minimum:
    raise _fail(name, what or f"an integer >= {minimum}", value)
  return int(value)


def non_negative(name: str, value: Any, what: str = "a finite number >= 0") -> float:
  """`value` as a float; UserError unless finite and >= 0."""
  if not _finite(value) or float(value) < 0:
    raise _fail(name, what, value)
  return float(value)


def positive(name: str, value: Any, what: str = "a finite number > 0") -> float:
  """`value` as a float; UserError unless finite and > 0."""
  if not _finite(value) or float(value) <= 0:
    raise _fail(name, what, value)
  return float(value)


def between(
  name: str,
  value: Any,
  low: float,
  high: float,
  what: str | None = None,
  closed: bool = False,
) -> float:
  """`value` as a float; UserError unless low < value < high.

  With `closed`, the bounds are allowed: low <= value <= high.
  """
  inside = _finite(value) and (
    low <= float(value) <= high if closed else low < float(value) < high
  )
  if not inside:
    interval = f"[{low:g}, {high:g}]" if closed else f"({low:g}, {high:g})"
    raise _fail(name, what or f"a number in {interval}", value)
  return float(value)


def boolean(name: str, value: Any) -> bool:
  """`value` itself; UserError unless True or False (not 0, 1 or a string)."""
  if not isinstance(value, bool):
    raise _fail(name, "True or False", value)
  return value
