"""What every binary shares: the run-control flags and the error edge.

Each binary defines `main(argv)` and calls `cli.run(main)`. A bad flag (an
unknown name, a value out of bounds) or a `UserError` raised anywhere below
(gin file, data set, learning rate...) is printed as one line `error: ...`, the
last line on stderr, with exit status 2: no traceback.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable

from absl import app, flags, logging

from lr_controller import gin_utils
from lr_controller.errors import UserError, first_line

flags.DEFINE_string(
  "root_dir", None, "Directory for this run's outputs (created if missing)."
)
flags.DEFINE_multi_string(
  "gin_file",
  [],
  "Gin config file, or the name of one shipped in gin_configs/ (repeatable, in order).",
)
flags.DEFINE_multi_string(
  "gin_bindings",
  [],
  "Gin binding applied after the files, e.g. 'train_with_schedule.num_steps=20'.",
)
flags.DEFINE_integer("seed", 0, "Seed of the run (weights, data order, agent).")

FLAGS = flags.FLAGS

EXIT_USER_ERROR = 2


def make_root_dir(root_dir: str | None) -> str:
  """Creates `root_dir` (and parents); returns its absolute path.

  Raises:
    UserError: if it is missing, or exists and is not a directory.
  """
  if not root_dir:
    raise UserError("--root_dir is required")
  root_dir = os.path.abspath(os.path.expanduser(root_dir))
  if os.path.exists(root_dir) and not os.path.isdir(root_dir):
    raise UserError(f"--root_dir {root_dir} exists and is not a directory")
  try:
    os.makedirs(root_dir, exist_ok=True)
  except OSError as e:
    raise UserError(f"cannot create --root_dir {root_dir}: {e.strerror}") from None
  return root_dir


def load_gin_from_flags() -> list[str]:
  """Parses --gin_file and --gin_bindings (unknown names rejected); returns the files."""
  return gin_utils.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings, finalize=False)


def say(message: str) -> None:
  """Prints a progress line to stdout and flushes it."""
  print(message, flush=True)


def _print_last_line(line: str) -> None:
  """Prints `line` on stderr as the process's last output there.

  Native threads (Reverb's gRPC writers, TensorFlow) may still log while the
  process winds down after a fatal error; their stderr (fd 2) goes to
  /dev/null first, so the one-line error stays the last line a user sees.
  """
  sys.stdout.flush()
  sys.stderr.flush()
  ours = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  os.close(devnull)
  os.write(ours, (line + "\n").encode())
  os.close(ours)


def _guarded(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  def wrapper(argv: list[str]) -> None:
    if len(argv) > 1:
      _print_last_line(f"error: unexpected arguments: {' '.join(argv[1:])}")
      sys.exit(EXIT_USER_ERROR)
    try:
      main(argv)
    except UserError as e:
      # gin appends "In call to configurable ..." lines: keep the first one.
      _print_last_line(f"error: {first_line(e)}")
      sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
      print("interrupted", file=sys.stderr)
      sys.exit(130)

  return wrapper


def _parse_flags(argv: list[str]) -> list[str]:
  """Parses the flags; a bad flag is one `error:` line and exit status 2.

  absl's own parser prints two lines and exits with status 1.
  """
  try:
    return FLAGS(argv)
  except flags.Error as e:
    _print_last_line(f"error: {' '.join(str(e).split())} (see --help)")
    sys.exit(EXIT_USER_ERROR)


def run(main: Callable[[list[str]], None]) -> None:
  """Runs `main` under absl with the one-line error edge."""
  logging.set_verbosity(logging.ERROR)  # Progress goes through `say`.
  # AutoGraph's generated code for tf-agents trips Python 3.11's literal checks.
  warnings.filterwarnings("ignore", category=SyntaxWarning)
  app.run(_guarded(main), flags_parser=_parse_flags)
