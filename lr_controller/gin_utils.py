"""The one gin loader shared by binaries and tests (dopamine's `load_gin_configs`).

Files and bindings are parsed with unknown names rejected; any gin problem is
turned into a one-line `UserError` naming the file or binding at fault.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import re
import tokenize
from collections.abc import Sequence
from typing import Any

import gin
from gin import resource_reader as gin_resource_reader

from lr_controller import constants
from lr_controller.errors import UserError, first_line


def _gin_configs_dir() -> str:
  """The shipped gin configs: `gin_configs/` of a checkout, else the wheel's copy.

  The one copy sits at the repository's top level; setup.py maps it into the
  wheel as `lr_controller/gin_configs`.
  """
  package = os.path.dirname(os.path.abspath(__file__))
  checkout = os.path.dirname(package)
  if os.path.isfile(os.path.join(checkout, "setup.py")) and os.path.isdir(
    os.path.join(checkout, "gin_configs")
  ):
    return os.path.join(checkout, "gin_configs")
  return os.path.join(package, "gin_configs")


# Directory holding the shipped gin configs (the same files in a checkout and
# an installed wheel); a bare file name such as `smoke.gin` or
# `controller/digits.gin` is looked up here when it is not a path.
GIN_CONFIGS_DIR = _gin_configs_dir()


def resolve_gin_file(path: str) -> str:
  """Returns the absolute path of `path` if it exists, else of the shipped config.

  Raises:
    UserError: if neither exists.
  """
  if os.path.isfile(path):
    return os.path.abspath(path)
  shipped = os.path.join(GIN_CONFIGS_DIR, path)
  if os.path.isfile(shipped):
    return shipped
  if not path.endswith(".gin") and os.path.isfile(shipped + ".gin"):
    return shipped + ".gin"
  raise UserError(f"gin file not found: {path}")


# Every module that defines gin configurables (or constants), the one list:
# `register_configurables` imports them before any parse (`parse_gin`,
# `parse_gin_string`), so any shipped config and any binding resolves in every
# binary and test. tests/test_gin_configs.py checks it against a scan of the
# package.
CONFIGURABLE_MODULES = (
  "official_models",
  "lr_controller.trainee.data",
  "lr_controller.trainee.schedules",
  "lr_controller.trainee.trainee",
  "lr_controller.trainee.fixed_schedule_runs",
  "lr_controller.judge.baseline_search",
  "lr_controller.trainee.toy_problems",
  "lr_controller.judge.schedule_free",
  "lr_controller.judge.autolrs",
  "lr_controller.judge.adaptive_peers",
  "lr_controller.control.env",
  "lr_controller.control.agent",
  "lr_controller.control.controller_training",
  "lr_controller.judge.task_sets",
  "lr_controller.judge.evaluation",
)


# What gin raises for a bad file, binding or config string (an unclosed
# bracket reaches us as tokenize.TokenError).
GIN_ERRORS = (
  ValueError,
  SyntaxError,
  ImportError,
  KeyError,
  TypeError,
  tokenize.TokenError,
)


def _not_a_gin_probe(record) -> bool:
  """False for gin's log of a failed look-up of an include under one prefix.

  gin tries each search path in turn and its package-resource reader logs
  "Path not found" at ERROR for every miss, although the next path may hold
  the file; a file found under no path raises, which `parse_gin` reports.
  """
  return record.msg != "Path not found: %s"


def register_configurables() -> None:
  """Imports every module with gin configurables."""
  for module in CONFIGURABLE_MODULES:
    importlib.import_module(module)


# gin 0.5.0's error for a binding of a denylisted parameter (one the caller
# always passes, `@gin.configurable(denylist=...)`).
_DENYLISTED = re.compile(r"Configurable '([\w.]+)' has denylisted kwarg '(\w+)'\.")


def _gin_error(error: BaseException) -> str:
  """gin's error in one line (`first_line`), a denylisted parameter said plainly."""
  line = first_line(error)
  found = _DENYLISTED.search(line)
  if found:
    configurable, parameter = found.groups()
    return (
      f"{configurable}.{parameter} cannot be bound: the caller always sets it "
      "(a flag of the binary, or the code that calls it)"
    )
  return line


def _gin_file_error(error: BaseException) -> str:
  """A gin file's parse error in one line (`_gin_error`) with the line gin names."""
  found = re.search(r"line (\d+)", str(error).partition("\n")[2])
  return _gin_error(error) + (f" (line {found.group(1)})" if found else "")


def parse_gin(
  gin_files: Sequence[str] | None = None,
  gin_bindings: Sequence[str] | None = None,
  finalize: bool = True,
) -> list[str]:
  """Clears gin, then parses files (in order) and bindings (after them).

  Args:
    gin_files: paths, or names of configs shipped in `gin_configs/`.
    gin_bindings: strings like `"trainee_setup.num_steps = 20"`.
    finalize: lock the config afterwards.

  Returns:
    The resolved gin file paths.

  Raises:
    UserError: for a missing file, a parse error or an unknown name.
  """
  register_configurables()
  gin.clear_config()
  _search_shipped_configs()
  files = [resolve_gin_file(f) for f in (gin_files or [])]
  for path in files:
    try:
      gin.parse_config_file(path, skip_unknown=False)
    except GIN_ERRORS as e:
      gin.clear_config()
      raise UserError(f"bad gin file {path}: {_gin_file_error(e)}") from None
    except OSError as e:
      gin.clear_config()
      raise UserError(f"cannot read gin file {path}: {first_line(e)}") from None
  for binding in gin_bindings or []:
    try:
      gin.parse_config(binding, skip_unknown=False)
    except GIN_ERRORS as e:
      gin.clear_config()
      raise UserError(f"bad gin binding '{binding}': {_gin_error(e)}") from None
  if finalize:
    gin.finalize()
  return files


@functools.cache  # Once per process.
def _search_shipped_configs() -> None:
  """Lets configs `include 'digits_lenet.gin'` from any working directory.

  Includes are searched in the working directory first, then among the
  shipped configs; the misses gin logs on the way are not shown.
  """
  gin.add_config_file_search_path(GIN_CONFIGS_DIR)
  # gin logs through Python's root logger.
  logging.getLogger().addFilter(_not_a_gin_probe)
  _tolerate_folders_named_like_includes()


def _tolerate_folders_named_like_includes() -> None:
  """Makes gin skip, not crash on, a working-directory folder named like an include's.

  gin 0.5.0's package-resource reader treats the folder of an include
  (`controller` in `include 'controller/recipe.gin'`) as a Python package;
  when the working directory holds a plain folder of that name (a run's
  `controller/` output), `importlib` finds it as a namespace package with no
  file and the reader's existence check raises TypeError instead of saying
  "not here". The check is wrapped so that such a miss moves on to the next
  search path (the shipped configs). gin offers no public way to do this.
  """
  readers = gin.config._FILE_READERS  # noqa: SLF001 (see the docstring)
  for index, (reader, exists) in enumerate(readers):
    if exists is gin_resource_reader.system_path_file_exists:

      def tolerant(path: str, exists=exists) -> bool:
        try:
          return exists(path)
        except TypeError:  # A namespace package: no file of gin's there.
          return False

      readers[index] = (reader, tolerant)


def parse_gin_string(config: str) -> None:
  """Clears gin and parses `config` (a `gin.config_str()` of another process)."""
  register_configurables()
  gin.clear_config()
  try:
    gin.parse_config(config, skip_unknown=False)
  except GIN_ERRORS as e:
    gin.clear_config()
    raise UserError(f"bad gin config: {_gin_file_error(e)}") from None


@contextlib.contextmanager
def recorded_config(
  root_dir: str, gin_files: Sequence[str], gin_bindings: Sequence[str]
):
  """Writes the gin files' text and bindings to `root_dir/config.gin` for a run.

  If the run (the `with` body) stops on bad input (`UserError`), the
  config.gin that was there before, of an earlier run in the same
  directory, is put back (or the new one removed), so a failed command never
  replaces the record of a run that worked.

  Yields:
    The path of config.gin.
  """
  parts = []
  for path in gin_files:
    with open(path) as f:
      parts.append(f"# ---- {path}\n{f.read()}")
  if gin_bindings:
    parts.append("# ---- --gin_bindings\n" + "\n".join(gin_bindings) + "\n")
  out = os.path.join(root_dir, constants.CONFIG_GIN)
  previous = None
  if os.path.exists(out):
    with open(out) as f:
      previous = f.read()
  with open(out, "w") as f:
    f.write("\n".join(parts))
  try:
    yield out
  except UserError:
    if previous is None:
      os.remove(out)
    else:
      with open(out, "w") as f:
        f.write(previous)
    raise


def bound_value(name: str, default: Any) -> Any:
  """The value gin binds to `name` ("configurable.parameter"), else `default`.

  Macros (`%NUM_STEPS`) are resolved to their values; other references
  (`@build_trainee`) are returned as gin holds them.
  """
  try:
    value = gin.query_parameter(name)
  except ValueError:
    return default
  while (
    isinstance(value, gin.config.ConfigurableReference)
    and value.configurable.name == "macro"
  ):
    value = value.scoped_configurable_fn()
  return value


def write_operative_config(
  root_dir: str, sections: Sequence[tuple[str, str]] | None = None
) -> str:
  """Writes what gin used to `root_dir/operative_config.gin` (its one writer).

  Args:
    root_dir: the run's output directory.
    sections: for a run that re-parses gin between its parts (the transfer
      evaluation, one part per setting): (title, that part's
      `gin.operative_config_str()`) pairs, each written under a
      `# ==== title` line. None: what gin used so far.

  Returns:
    The path written.
  """
  if sections is None:
    text = gin.operative_config_str()
  else:
    text = "\n".join(f"# ==== {title}\n{config}" for title, config in sections)
  out = os.path.join(root_dir, constants.OPERATIVE_GIN)
  with open(out, "w") as f:
    f.write(text)
  return out
