r"""Runs the whole distributed layout on this machine: reverb, collectors, learner.

  python -m lr_controller.bin.launch_local --root_dir=/tmp/controller \
      --gin_file=controller/digits.gin --num_collectors=2 --num_episodes=150

Starts one reverb job (on a free port unless --reverb_port is given),
`--num_collectors` collect jobs and one train job of `lr_controller.bin.distributed`,
prefixes their output lines with the job's name (also kept in
ROOT/logs/JOB.log), restarts a collector that crashes, and stops everything
when the learner ends (or on Ctrl-C). Re-running the same command resumes
from the learner's checkpoint. On a cluster, start the same three jobs with
your scheduler instead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import flags

from lr_controller.bin import cli
from lr_controller.errors import UserError

flags.DEFINE_integer("num_collectors", 2, "Collect jobs to start.")
flags.DEFINE_integer("num_episodes", None, "Total episodes to reach (overrides gin).")
flags.DEFINE_integer("reverb_port", 0, "Port of the reverb job (0: a free one).")
flags.DEFINE_integer(
  "max_collector_restarts", 3, "Restarts of a crashing collector before giving up."
)
FLAGS = flags.FLAGS

_JOB = [sys.executable, "-m", "lr_controller.bin.distributed"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


class _Job:
  """A child process whose output lines are prefixed, echoed and logged."""

  def __init__(self, name: str, args: list[str], log_dir: str):
    self.name = name
    self._args = args
    self._log_path = os.path.join(log_dir, f"{name.replace(' ', '_')}.log")
    self.restarts = 0
    self.start()

  def start(self) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    self.process = subprocess.Popen(
      _JOB + self._args,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      env=env,
    )
    threading.Thread(target=self._echo, args=(self.process,), daemon=True).start()

  def _echo(self, process) -> None:
    with open(self._log_path, "a") as log:
      for line in process.stdout:
        log.write(line)
        log.flush()
        if not _is_noise(line):
          print(f"[{self.name}] {line}", end="", flush=True)

  def stop(self, timeout: float = 10) -> None:
    if self.process.poll() is None:
      self.process.terminate()
      try:
        self.process.wait(timeout)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()


def _is_noise(line: str) -> bool:
  """Library start-up chatter (gym's deprecation notice, Reverb's C++ log)."""
  return (
    line.startswith("[reverb/cc/")
    or "Gym has been unmaintained" in line
    or "gymnasium" in line.lower()
    or not line.strip()
  )


def main(argv):
  del argv
  if FLAGS.num_collectors <= 0:
    raise UserError(f"--num_collectors must be positive, got {FLAGS.num_collectors}")
  if FLAGS.num_episodes is not None and FLAGS.num_episodes <= 0:
    raise UserError(f"--num_episodes must be positive, got {FLAGS.num_episodes}")
  if not 0 <= FLAGS.reverb_port <= 65535:
    raise UserError(f"--reverb_port must be in 0..65535, got {FLAGS.reverb_port}")
  root_dir = cli.make_root_dir(FLAGS.root_dir)
  cli.load_gin_from_flags()  # Bad gin fails here, before any job starts.
  log_dir = os.path.join(root_dir, "logs")
  os.makedirs(log_dir, exist_ok=True)
  port = FLAGS.reverb_port or _free_port()
  address = f"localhost:{port}"
  gin_args = [f"--gin_file={f}" for f in FLAGS.gin_file] + [
    f"--gin_bindings={b}" for b in FLAGS.gin_bindings
  ]
  server = _Job(
    "reverb",
    ["--job=reverb", f"--reverb_port={port}", f"--seed={FLAGS.seed}", *gin_args],
    log_dir,
  )
  collectors = [
    _Job(
      f"collect {i}",
      ["--job=collect", f"--reverb_address={address}", f"--task={i}"],
      log_dir,
    )
    for i in range(FLAGS.num_collectors)
  ]
  train_args = ["--job=train", f"--reverb_address={address}", f"--root_dir={root_dir}"]
  if FLAGS.num_episodes is not None:
    train_args.append(f"--num_episodes={FLAGS.num_episodes}")
  learner = _Job("train", train_args, log_dir)
  cli.say(
    f"reverb on {address}, {len(collectors)} collectors, learner in {root_dir} "
    f"(logs in {log_dir})"
  )
  jobs = [server, *collectors, learner]
  # A `kill` of the launcher stops its jobs too (the `finally` below).
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
  try:
    code = _supervise(server, collectors, learner)
  finally:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # Let the clean-up finish.
    # Collectors stop by themselves once the learner has finished; give them
    # a moment to see it, then stop whatever is left.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(
      c.process.poll() is None for c in collectors
    ):
      time.sleep(0.2)
    for job in reversed(jobs):
      job.stop()
  if code:
    sys.exit(code)
  cli.say(f"done: {root_dir}")


def _supervise(server: _Job, collectors: list[_Job], learner: _Job) -> int:
  """Waits for the learner; restarts crashing collectors. Returns an exit code."""
  while True:
    code = learner.process.poll()
    if code is not None:
      if code:
        print(f"error: the train job exited with status {code}", file=sys.stderr)
      return code
    code = server.process.poll()
    if code is not None:
      print(f"error: the reverb job exited with status {code}", file=sys.stderr)
      return code or 1
    for job in collectors:
      code = job.process.poll()
      if code:  # Crashed (a finished collector exits with 0).
        if job.restarts >= FLAGS.max_collector_restarts:
          print(f"error: {job.name} keeps failing (status {code})", file=sys.stderr)
          return code
        job.restarts += 1
        cli.say(f"{job.name} exited with status {code}; restarting it")
        job.start()
    time.sleep(0.5)


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
