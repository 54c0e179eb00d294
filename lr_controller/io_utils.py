"""Crash-safe writes of results (whole files by rename, JSON lines by one append), progress formatting, and the source revision results record."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any


def format_seconds(seconds: float) -> str:
  """A duration for progress lines: '42s', '3m05s' or '2h10m'."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented JSON to `path` atomically (temp file + rename)."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_", suffix=".json")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(obj, f, indent=2, sort_keys=False)
      f.write("\n")
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are for everyone to read.
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def append_jsonl(path: str, obj: Any) -> None:
  """Appends one JSON line with a single `write` on an O_APPEND descriptor.

  A line is written whole or not at all (short of a full disk), so a crash
  never leaves a torn line; readers skip a final line without its newline.
  """
  line = (json.dumps(obj) + "\n").encode()
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    os.write(fd, line)
    os.fsync(fd)
  finally:
    os.close(fd)


def read_jsonl(path: str) -> list[Any]:
  """Reads complete JSON lines from `path` ([] if missing); ignores a torn last line."""
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for line in f:
      if not line.endswith("\n"):
        break
      rows.append(json.loads(line))
  return rows


def rewrite_jsonl(path: str, rows: list[Any]) -> None:
  """Replaces `path` by exactly `rows`, one JSON line each (atomic rename)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def replace_dir(source: str, target: str) -> None:
  """Moves directory `source` to `target`, replacing what was there.

  Renames only (same file system), so a reader sees the old or the new
  directory, never a half-written one, and a crash keeps one of them.
  """
  if os.path.exists(target):
    old = target + ".old"
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(source, target)
    shutil.rmtree(old, ignore_errors=True)
  else:
    os.replace(source, target)


def write_dir(target: str, write: Callable[[str], None]) -> None:
  """Fills a fresh sibling directory with `write(path)`, then swaps it in.

  A reader sees the old or the new `target`, never a half-written one
  (`replace_dir`); if `write` fails, `target` is left as it was.
  """
  parent = os.path.dirname(os.path.abspath(target))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp_")
  try:
    write(tmp)
    replace_dir(tmp, target)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def copy_dir(source: str, target: str) -> None:
  """Copies directory `source` to `target` (replacing it, see `write_dir`)."""
  write_dir(target, lambda tmp: shutil.copytree(source, tmp, dirs_exist_ok=True))


def finite_or_none(value: float | None) -> float | None:
  """`value`, or None if it is None, NaN or infinite (JSON has no NaN)."""
  return value if value is not None and math.isfinite(value) else None


def source_commit() -> str | None:
  """The git revision of this package's source ("<hash>" or "<hash>-dirty"), else None.

  None when the package is not in a git checkout (an installed wheel) or git
  is missing.
  """
  package_dir = os.path.dirname(os.path.abspath(__file__))

  def git(*args: str) -> str:
    return subprocess.run(
      ["git", "-C", package_dir, *args],
      capture_output=True,
      text=True,
      check=True,
      timeout=10,
    ).stdout.strip()

  try:
    commit = git("rev-parse", "--short=12", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
  except (OSError, subprocess.SubprocessError):
    return None
  return f"{commit}-dirty" if dirty else commit
