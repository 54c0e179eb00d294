r"""Rebuilds the shipped "general" preset from scratch, then installs it in the package.

    python scripts/build_preset.py --root_dir=runs/pretrained

1. Trains one controller per seed (default 0-8) with
   `controller/pretrained.gin`, two at a time (`train_controller`
   subprocesses; a finished or interrupted run is resumed, not redone).
2. Scores each seed's greedy policy, and the step decay and every peer tuned
   on the setting, on validation trainees of the held-out settings of
   `tasks/pretrained_heldout.gin` (`benchmarks/preset_heldout.py
   --mode=validation --peers`; only validation losses are read; ResNet-18 is
   left out of the choice for its cost), and keeps the seed whose worst
   setting is nearest, in units of noise, to that setting's best tuned
   method (`lr_controller.judge.preset_choice`; docs/experiments.md,
   round 28).
3. Copies that policy to `lr_controller/preset_policies/general`, the folder
   the wheel ships (`lr_controller.presets`).

On 2 CPU cores, about 70 min in all (measured at stop 29): 9-11 min per
seed with two at a time (about 55 min for nine), then about 15 min of
validation runs (about 35 s per policy; the tuned methods' searches and
runs take the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESET_DIR = os.path.join(REPO_ROOT, "lr_controller", "preset_policies")
GIN_FILE = "controller/pretrained.gin"
VALIDATION_SETTINGS = "shuffled,rmsprop"


def _train(root_dir: str, seeds: list[int], jobs: int) -> None:
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1"}
  pending, running = list(seeds), []
  while pending or running:
    while pending and len(running) < jobs:
      seed = pending.pop(0)
      run_dir = os.path.join(root_dir, f"seed_{seed}")
      os.makedirs(run_dir, exist_ok=True)
      log = open(os.path.join(run_dir, "train.log"), "a")
      print(f"training seed {seed} (log: {log.name})", flush=True)
      command = [
        sys.executable,
        "-m",
        "lr_controller.bin.train_controller",
        f"--root_dir={run_dir}",
        f"--gin_file={GIN_FILE}",
        f"--seed={seed}",
      ]
      running.append((seed, subprocess.Popen(command, stdout=log, stderr=log, env=env)))
    time.sleep(10)
    for seed, process in list(running):
      if process.poll() is not None:
        running.remove((seed, process))
        if process.returncode:
          sys.exit(f"error: training seed {seed} failed; see its train.log")
        print(f"seed {seed} trained", flush=True)


def _choose(root_dir: str, seeds: list[int], num_runs: int) -> str:
  from lr_controller.errors import UserError
  from lr_controller.judge import preset_choice

  policies = [
    os.path.abspath(os.path.join(root_dir, f"seed_{s}", "policies", "greedy_policy"))
    for s in seeds
  ]
  validation_root = os.path.join(root_dir, "validation")
  command = [
    sys.executable,
    os.path.join(REPO_ROOT, "benchmarks", "preset_heldout.py"),
    "--mode=validation",
    f"--root_dir={validation_root}",
    f"--settings={VALIDATION_SETTINGS}",
    f"--num_runs={num_runs}",
    "--peers",
    *[f"--policy_dir={p}" for p in policies],
  ]
  if subprocess.run(command).returncode:
    sys.exit("error: the validation runs failed (their error is above)")
  with open(os.path.join(validation_root, "validation.json")) as f:
    scores = json.load(f)
  try:
    candidates, methods = preset_choice.split_scores(scores, policies, num_runs)
    chosen, table = preset_choice.choose(candidates, methods)
  except UserError as e:
    sys.exit(f"error: {e}")
  for policy, entry in sorted(table.items(), key=lambda item: item[1]["score"]):
    gaps = ", ".join(
      f"{setting} {gap:+.2f} (vs {entry['references'][setting]})"
      for setting, gap in sorted(entry["gaps"].items())
    )
    print(f"{policy}: worst paired t {entry['score']:+.2f}; {gaps}")
  return chosen


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root_dir", default=os.path.join("runs", "pretrained"))
  parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8")
  parser.add_argument("--jobs", type=int, default=2)
  parser.add_argument("--num_runs", type=int, default=10)
  parser.add_argument("--name", default="general")
  args = parser.parse_args()
  try:
    seeds = [int(s) for s in args.seeds.split(",")]
  except ValueError:
    sys.exit(f"error: --seeds must be integers separated by commas, got {args.seeds!r}")
  if not seeds or args.jobs < 1 or args.num_runs < 2:
    sys.exit("error: give at least one seed, --jobs >= 1 and --num_runs >= 2")
  root_dir = os.path.abspath(args.root_dir)
  _train(root_dir, seeds, args.jobs)
  chosen = _choose(root_dir, seeds, args.num_runs)
  target = os.path.join(PRESET_DIR, args.name)
  shutil.rmtree(target, ignore_errors=True)
  shutil.copytree(chosen, target, ignore=shutil.ignore_patterns("assets"))
  print(f"preset {args.name!r}: {chosen} -> {target}")


if __name__ == "__main__":
  main()
