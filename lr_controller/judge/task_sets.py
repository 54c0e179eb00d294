"""Settings and task sets: the data of an evaluation (Xu et al. 2019, Tables 1 and 2).

A `Setting` is a name with gin files and bindings (data set x model x
optimizer x initial learning rate). A task set, as data (like DACBench's
instance sets), is a gin file binding `task_set`: the settings a controller
was trained on (`train`) and held-out ones (`test`); `evaluation.transfer`
applies a controller trained on the first training setting to every held-out
one (the paper's Table 2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import gin

from lr_controller import gin_utils
from lr_controller.errors import UserError, first_line


@dataclasses.dataclass(frozen=True)
class Setting:
  """One problem a controller can be evaluated on.

  Attributes:
    name: a short label for tables, e.g. "digits/lenet/adam".
    gin_files: gin files defining it (paths or shipped names), in order.
    gin_bindings: bindings applied after the files.
  """

  name: str
  gin_files: tuple[str, ...] = ()
  gin_bindings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TaskSet:
  """Training and held-out settings, kept apart as data.

  Attributes:
    name: the task set's name.
    train: settings the controller was trained on (the first is the source of
      a transfer).
    test: held-out settings the controller never saw.
    gin_files: files applied before every setting's own.
    gin_bindings: bindings applied before every setting's own.
  """

  name: str
  train: tuple[Setting, ...]
  test: tuple[Setting, ...]
  gin_files: tuple[str, ...] = ()
  gin_bindings: tuple[str, ...] = ()


def _strings(what: str, values: Any) -> tuple[str, ...]:
  if isinstance(values, str) or not isinstance(values, Sequence):
    raise UserError(f"{what} must be a list of strings, got {values!r}")
  if not all(isinstance(v, str) for v in values):
    raise UserError(f"{what} must be a list of strings, got {values!r}")
  return tuple(values)


def _setting(what: str, entry: Any) -> Setting:
  if not isinstance(entry, Mapping):
    raise UserError(f"{what} must be a dict with name, gin_files, gin_bindings")
  unknown = sorted(set(entry) - {"name", "gin_files", "gin_bindings"})
  if unknown or not isinstance(entry.get("name"), str) or not entry["name"]:
    raise UserError(
      f"{what} must be a dict with a name and optional gin_files, gin_bindings; "
      f"got {dict(entry)!r}"
    )
  return Setting(
    name=entry["name"],
    gin_files=_strings(f"gin_files of {entry['name']}", entry.get("gin_files", ())),
    gin_bindings=_strings(
      f"gin_bindings of {entry['name']}", entry.get("gin_bindings", ())
    ),
  )


@gin.configurable
def task_set(
  name: str = gin.REQUIRED,
  train: Sequence[Mapping[str, Any]] = gin.REQUIRED,
  test: Sequence[Mapping[str, Any]] = gin.REQUIRED,
  common_gin_files: Sequence[str] = (),
  common_gin_bindings: Sequence[str] = (),
) -> TaskSet:
  """A task set, as a gin file under gin_configs/tasks/ binds it.

  Args:
    name: the task set's name.
    train: training settings, each a dict {'name': str, 'gin_files': [...],
      'gin_bindings': [...]}; the first is the source of `transfer`.
    test: held-out settings, in the same form.
    common_gin_files: files applied before every setting's own files.
    common_gin_bindings: bindings applied before every setting's own.

  Returns:
    The `TaskSet`.

  Raises:
    UserError: for a malformed entry or an empty list.
  """
  settings = {}
  for part, entries in (("train", train), ("test", test)):
    if isinstance(entries, str | Mapping) or not isinstance(entries, Sequence):
      raise UserError(f"task_set.{part} must be a list of settings")
    if not entries:
      raise UserError(f"task_set.{part} must name at least one setting")
    settings[part] = tuple(
      _setting(f"task_set.{part}[{i}]", entry) for i, entry in enumerate(entries)
    )
  return TaskSet(
    name=str(name),
    train=settings["train"],
    test=settings["test"],
    gin_files=_strings("task_set.common_gin_files", common_gin_files),
    gin_bindings=_strings("task_set.common_gin_bindings", common_gin_bindings),
  )


def load_task_set(path: str) -> TaskSet:
  """Reads a task-set gin file (e.g. `tasks/digits_transfer.gin`); clears gin.

  Raises:
    UserError: for a missing or malformed file.
  """
  gin_utils.parse_gin([path], finalize=False)
  try:
    return task_set()
  except (TypeError, ValueError) as e:
    if isinstance(e, UserError):
      raise
    first = first_line(e)
    raise UserError(f"{path} does not define a task set: {first}") from None
  finally:
    gin.clear_config()


def apply_setting(
  setting: Setting,
  tasks: TaskSet | None = None,
  extra_gin_files: Sequence[str] = (),
  extra_gin_bindings: Sequence[str] = (),
) -> list[str]:
  """Makes `setting` the gin configuration (clears what was parsed before).

  Files are parsed in the order task-set files, setting files, extra files;
  then bindings in the order task-set bindings, setting bindings, extra
  bindings (a later one wins). Extra files such as smoke.gin shrink every
  setting; extra bindings have the last word.

  Returns:
    The resolved gin file paths.
  """
  common_files = tasks.gin_files if tasks else ()
  common_bindings = tasks.gin_bindings if tasks else ()
  return gin_utils.parse_gin(
    [*common_files, *setting.gin_files, *extra_gin_files],
    [*common_bindings, *setting.gin_bindings, *extra_gin_bindings],
    finalize=False,
  )
