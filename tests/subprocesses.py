"""How the tests run lr_controller's binaries: as processes, as a user starts them.

One rule for every test that does: the command is
`python -m lr_controller.bin.NAME ARGS` with this interpreter, the environment
is the test's own with TensorFlow's C++ logs off and output unbuffered (a
killed job's log keeps what it said), and, when a test gives one, a private
tfds data directory (nothing touches ~/tensorflow_datasets).

- `run`: one process, waited for (`subprocess.CompletedProcess`).
- `start`: one process left running (`subprocess.Popen`).
- `run_forked`, `start_forked`: the same, forked. A binary's process pays
  the import of TensorFlow, tf-agents and the package first, 5-7 s of CPU:
  for a bad input or a short run, most of what the test costs. So one
  process per test process (started on first use, or by `prepare_forks`)
  imports the package and every configurable module once and forks a child
  per command. The child sets up what `python -m` does (the environment,
  argv, the binary's module as `__main__`, working directory, its own stdin,
  stdout and stderr, fresh seeds of Python's and NumPy's global generators),
  imports the binary's module and calls its `run()`; it ends as the
  interpreter ends a process (exit status, non-daemon threads joined, exit
  hooks run, streams flushed) but for freeing every object. Nothing else
  runs in the forking process (no TensorFlow op, no thread), so a child
  starts from the state of a fresh process after those imports. Tests keep
  one plain `python -m` run of each binary, and test_controller_training
  checks that a forked run and a plain one of the same command are the same
  run.

`python tests/subprocesses.py STATUS_FD` is the forking process: it reads
one JSON command per line on stdin and writes a JSON line on STATUS_FD when
it starts a child ({"pid"}) and when one ends ({"exited", "returncode"}).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import threading

import numpy

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_SECS = 600
EXIT_USER_ERROR = 2  # `lr_controller.bin.cli`: a user's error, one line.
# What the forking process imports besides the configurable modules: the
# rest of what the binaries import that is slow to import.
_PRELOADED = ("lr_controller.control.distributed", "lr_controller.judge.report")


def environment(tfds_dir: str | None = None) -> dict[str, str]:
  """The environment of a binary the tests start."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
  if tfds_dir is not None:
    env["TFDS_DATA_DIR"] = tfds_dir
  return env


def command(binary: str, *args: str) -> list[str]:
  """`python -m lr_controller.bin.<binary> args...`."""
  return [sys.executable, "-m", f"lr_controller.bin.{binary}", *args]


def run(
  binary: str,
  *args: str,
  cwd: str | None = None,
  tfds_dir: str | None = None,
  timeout: float = TIMEOUT_SECS,
) -> subprocess.CompletedProcess:
  """Runs the binary to its end; its output is captured as text."""
  return subprocess.run(
    command(binary, *args),
    cwd=cwd,
    env=environment(tfds_dir),
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )


def start(
  binary: str,
  *args: str,
  tfds_dir: str | None = None,
  stdout=subprocess.DEVNULL,
  stderr=subprocess.DEVNULL,
) -> subprocess.Popen:
  """Starts the binary and leaves it running."""
  return subprocess.Popen(
    command(binary, *args), env=environment(tfds_dir), stdout=stdout, stderr=stderr
  )


def run_forked(
  binary: str,
  *args: str,
  cwd: str | None = None,
  tfds_dir: str | None = None,
  timeout: float = TIMEOUT_SECS,
) -> subprocess.CompletedProcess:
  """`run`, forked (module docstring)."""
  with tempfile.TemporaryDirectory() as tmp:
    out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
    job = start_forked(
      binary, *args, cwd=cwd, tfds_dir=tfds_dir, stdout=out, stderr=err
    )
    try:
      returncode = job.wait(timeout)
    except subprocess.TimeoutExpired:
      job.kill()
      job.wait()
      raise
    with open(out) as f_out, open(err) as f_err:
      return subprocess.CompletedProcess(
        job.args, returncode, f_out.read(), f_err.read()
      )


def start_forked(
  binary: str,
  *args: str,
  cwd: str | None = None,
  tfds_dir: str | None = None,
  stdout: str | None = None,
  stderr: str | None = None,
) -> Job:
  """`start`, forked (module docstring).

  Args:
    binary: the module's name in `lr_controller.bin`.
    args: its arguments.
    cwd: its working directory (default: this process's).
    tfds_dir: see `environment`.
    stdout: a file its stdout is appended to (default: /dev/null).
    stderr: a file for its stderr, or the same path as `stdout` for both.
  """
  return prepare_forks().start(
    {
      "binary": binary,
      "args": list(args),
      "env": environment(tfds_dir),
      "cwd": os.path.abspath(cwd or os.getcwd()),
      "stdout": stdout,
      "stderr": stderr,
    }
  )


_forks = None
_forks_lock = threading.Lock()


def prepare_forks() -> _Forks:
  """Starts the forking process if it is not running yet (it imports for seconds)."""
  global _forks
  with _forks_lock:
    if _forks is None:
      _forks = _Forks()
      atexit.register(_forks.close)
    return _forks


class _Forks:
  """The parent's side of the forking process (module docstring)."""

  def __init__(self):
    self._log = tempfile.TemporaryFile()
    read_end, write_end = os.pipe()
    self._server = subprocess.Popen(
      [sys.executable, os.path.abspath(__file__), str(write_end)],
      stdin=subprocess.PIPE,
      stdout=self._log,
      stderr=subprocess.STDOUT,
      pass_fds=(write_end,),
      env=environment(),
    )
    os.close(write_end)
    self._status = os.fdopen(read_end)
    self.changed = threading.Condition()
    self._started: list[int] = []
    self.exited: dict[int, int] = {}
    self.closed = False
    self._request_lock = threading.Lock()
    threading.Thread(target=self._read_status, daemon=True).start()

  def _read_status(self) -> None:
    for line in self._status:
      message = json.loads(line)
      with self.changed:
        if "exited" in message:
          self.exited[message["exited"]] = message["returncode"]
        else:
          self._started.append(message["pid"])
        self.changed.notify_all()
    with self.changed:
      self.closed = True
      self.changed.notify_all()

  def wait_for(self, predicate, timeout: float | None) -> bool:
    with self.changed:
      return self.changed.wait_for(lambda: predicate() or self.closed, timeout)

  def start(self, request: dict) -> Job:
    with self._request_lock:
      count = len(self._started)
      try:
        self._server.stdin.write((json.dumps(request) + "\n").encode())
        self._server.stdin.flush()
      except BrokenPipeError:
        pass  # Ended: reported below.
      self.wait_for(lambda: len(self._started) > count, TIMEOUT_SECS)
      if len(self._started) <= count:
        raise RuntimeError(f"the forking process ended:\n{self.log()}")
      pid = self._started[count]
    return Job(self, pid, command(request["binary"], *request["args"]))

  def log(self) -> str:
    """What the forking process itself printed (an import error, say)."""
    self._log.seek(0)
    return self._log.read().decode(errors="replace")[-5000:]

  def close(self) -> None:
    """Ends the forking process; children still running run on."""
    with contextlib.suppress(BrokenPipeError):
      self._server.stdin.close()
    self._server.wait(timeout=60)
    self._log.close()


class Job:
  """A forked child, with the part of `subprocess.Popen`'s interface tests use."""

  def __init__(self, forks: _Forks, pid: int, args: list[str]):
    self._forks = forks
    self.pid = pid
    self.args = args

  @property
  def returncode(self) -> int | None:
    """The exit status (-N: killed by signal N); None while it runs."""
    with self._forks.changed:
      return self._forks.exited.get(self.pid)

  def poll(self) -> int | None:
    return self.returncode

  def wait(self, timeout: float | None = None) -> int:
    """Waits for the child's end; its exit status.

    Raises:
      subprocess.TimeoutExpired: still running after `timeout` seconds.
    """
    self._forks.wait_for(lambda: self.pid in self._forks.exited, timeout)
    if self.returncode is None:
      if self._forks.closed:
        raise RuntimeError(f"the forking process ended:\n{self._forks.log()}")
      raise subprocess.TimeoutExpired(self.args, timeout)
    return self.returncode

  def send_signal(self, sig: int) -> None:
    if self.returncode is None:  # Not yet reaped: the pid is still the child's.
      os.kill(self.pid, sig)

  def terminate(self) -> None:
    self.send_signal(signal.SIGTERM)

  def kill(self) -> None:
    self.send_signal(signal.SIGKILL)


# ---------------------------------------------------------------------------
# The forking process.


def _open_for_writing(path: str) -> int:
  return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def _exit_status(code) -> int:
  """The exit status of `SystemExit(code)`, as the interpreter gives it."""
  if code is None:
    return 0
  if isinstance(code, int):
    return code
  print(code, file=sys.stderr)
  return 1


def _child(request: dict, status_fd: int) -> None:
  """Becomes the command's process and ends it; never returns."""
  status = 1
  try:
    os.close(status_fd)
    devnull = os.open(os.devnull, os.O_RDWR)
    out = _open_for_writing(request["stdout"]) if request["stdout"] else devnull
    if request["stderr"] == request["stdout"]:
      err = out
    else:
      err = _open_for_writing(request["stderr"]) if request["stderr"] else devnull
    for fd, target in ((0, devnull), (1, out), (2, err)):
      os.dup2(target, fd)
    for fd in {devnull, out, err}:
      os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    # Fresh seeds from the OS for the global generators that the imports
    # seeded, as in a new process (else every child would share the server's).
    random.seed()
    numpy.random.seed()
    # What `python -m` sets up: the module as __main__, its file as argv[0],
    # the working directory first on the path.
    sys.path[0] = request["cwd"]
    module = importlib.import_module(f"lr_controller.bin.{request['binary']}")
    sys.modules["__main__"] = module
    sys.argv = [module.__file__, *request["args"]]
    module.run()  # absl's app.run ends with sys.exit.
    status = 0
  except SystemExit as e:
    status = _exit_status(e.code)
  except BaseException:
    sys.excepthook(*sys.exc_info())
  finally:
    # The interpreter's way out, but for freeing every object (2 s of CPU
    # after these imports, the same for every command): non-daemon threads
    # joined, exit hooks run, streams flushed.
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _serve(status_fd: str) -> None:
  """Imports the package's slow modules, then forks a child per command."""
  from lr_controller import gin_utils

  gin_utils.register_configurables()
  for name in _PRELOADED:
    importlib.import_module(name)
  fd = int(status_fd)

  def report(message: dict) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())

  pending, children = b"", set()
  while True:
    ready, _, _ = select.select([0], [], [], 0.05)
    if ready:
      chunk = os.read(0, 1 << 16)
      if not chunk:
        break  # The tests are done; children still running run on.
      pending += chunk
      while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
          _child(json.loads(line), fd)
        children.add(pid)
        report({"pid": pid})
    while children:
      pid, wait_status = os.waitpid(-1, os.WNOHANG)
      if pid == 0:
        break
      children.discard(pid)
      report({"exited": pid, "returncode": os.waitstatus_to_exitcode(wait_status)})
  os._exit(0)  # Nothing to flush; freeing every object would take seconds.


if __name__ == "__main__":
  _serve(*sys.argv[1:])
