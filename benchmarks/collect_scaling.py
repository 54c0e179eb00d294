r"""Controller-training throughput (episodes per hour) by collection layout.

Runs the same controller training five ways, one after another in this one
run, and compares their steady-state episodes per hour:

  in-process   train_controller, tf-agents' episode driver (the paper's loop)
  parallel x2  train_controller --num_parallel_envs=2 (spawned processes),
               also with TF_NUM_INTRAOP_THREADS=1 in each process
  reverb x1    launch_local: reverb job, 1 collect job, learner
  reverb x2    launch_local: reverb job, 2 collect jobs, learner

Every layout trains PPO on 2 episodes per update, so the learner's work is the
same. Throughput counts the episodes after the first update, between that
update's and the last update's `wall_time` in episodes.jsonl, which leaves out
start-up and tracing.

  python benchmarks/collect_scaling.py                  # digits LeNet, 100 steps
  python benchmarks/collect_scaling.py --num_episodes=20 --num_steps=200

Prints episodes/hour of each and the ratios against in-process. A timing
script, not a test: nothing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_string("gin_file", "controller/digits.gin", "Controller setting.")
flags.DEFINE_integer("num_steps", 100, "Trainee steps per episode.")
flags.DEFINE_integer("num_episodes", 20, "Episodes per layout (2 per update).")
FLAGS = flags.FLAGS


def _gin_args() -> list[str]:
  return [
    f"--gin_file={FLAGS.gin_file}",
    f"--gin_bindings=NUM_STEPS={FLAGS.num_steps}",
    f"--gin_bindings=create_environment.num_steps={FLAGS.num_steps}",
    "--gin_bindings=train_controller.episodes_per_update=2",
    "--gin_bindings=train_controller.export_interval=0",
  ]


def _layouts(root: str) -> dict[str, tuple[list[str], dict]]:
  """Layout name -> (command, extra environment variables)."""
  py = [sys.executable, "-m"]
  train = py + ["lr_controller.bin.train_controller"]
  launch = py + ["lr_controller.bin.launch_local"]
  common = [*_gin_args(), f"--num_episodes={FLAGS.num_episodes}"]
  parallel = ["--num_parallel_envs=2", *common]
  return {
    "in-process": (train + [f"--root_dir={root}/single", *common], {}),
    "parallel x2": (train + [f"--root_dir={root}/parallel", *parallel], {}),
    "parallel x2, 1 thread": (
      train + [f"--root_dir={root}/parallel1", *parallel],
      {"TF_NUM_INTRAOP_THREADS": "1"},
    ),
    "reverb x1": (
      launch + [f"--root_dir={root}/r1", "--num_collectors=1", *common],
      {},
    ),
    "reverb x2": (
      launch + [f"--root_dir={root}/r2", "--num_collectors=2", *common],
      {},
    ),
  }


def _episodes_per_hour(root_dir: str) -> float:
  with open(os.path.join(root_dir, "episodes.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  times = sorted({r["wall_time"] for r in rows})
  after_first = sum(1 for r in rows if r["wall_time"] > times[0])
  return 3600 * after_first / (times[-1] - times[0])


def main(argv):
  del argv
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  results = {}
  with tempfile.TemporaryDirectory() as root:
    for name, (command, extra_env) in _layouts(root).items():
      start = time.perf_counter()
      done = subprocess.run(
        command, capture_output=True, text=True, env={**env, **extra_env}
      )
      if done.returncode:
        sys.exit(f"error: {name} failed:\n{done.stderr[-2000:]}{done.stdout[-2000:]}")
      root_dir = next(
        a.split("=", 1)[1] for a in command if a.startswith("--root_dir=")
      )
      results[name] = _episodes_per_hour(root_dir)
      print(
        f"{name:22s} {results[name]:8.0f} episodes/h  "
        f"(whole command {time.perf_counter() - start:.0f} s)",
        flush=True,
      )
  base = results["in-process"]
  print(
    f"\n{FLAGS.num_episodes} episodes of {FLAGS.num_steps} steps, {os.cpu_count()} CPUs"
  )
  for name, value in results.items():
    print(f"{name:22s} / in-process = {value / base:.2f}")
  print(f"reverb x2 / reverb x1 = {results['reverb x2'] / results['reverb x1']:.2f}")


if __name__ == "__main__":
  app.run(main)
