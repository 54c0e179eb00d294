r"""Which policy would a selection on n validation trainees keep? (validation only)

`train_controller` keeps every policy its selection judged
(`policies/last_policy_NNNNNN`, and `policies/last_policy` for the last).
This script runs each of them greedily on two disjoint sets of validation
trainees of the run's controller seed:

  set A  the selection's own trainees (`selection.selection_episodes`); a
         selection on n runs sees the first n of them;
  set B  `--judge_runs` further trainees, episodes `--judge_offset` + i, that
         no selection sees: they judge what each selection kept.

For each n in `--selection_runs` it prints the episode whose policy a
selection on n trainees keeps (`selection.kept_episode`) and that policy's
mean best validation loss on set B. No test loss is computed (the
environment is built with `evaluate_test=False`). docs/experiments.md,
rounds 6 and 7, used it.

  python benchmarks/selection_study.py \
    --run=runs/controller_seeds/seed_0/controller:0 \
    --run=runs/controller_seeds/seed_1/controller:1

Each --run is ROOT:SEED, a `train_controller` root and the --seed it was
trained with. Cost: (max n + judge_runs) greedy runs per judged policy.
Prints a table per run and a summary; --output writes the results as JSON.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from absl import app, flags, logging

from lr_controller import io_utils

flags.DEFINE_multi_string(
  "run", [], "ROOT:SEED of a train_controller run (repeatable)."
)
flags.DEFINE_list("selection_runs", ["5", "10", "20"], "Selection sizes n to compare.")
flags.DEFINE_integer("judge_runs", 30, "Validation trainees of set B.")
flags.DEFINE_integer("judge_offset", 950_000, "Episode index of set B's first trainee.")
flags.DEFINE_float(
  "bad_run_loss", 0.3, "A run whose best validation loss stays above this is bad."
)
flags.DEFINE_string("output", None, "Optional JSON file for the results.")
FLAGS = flags.FLAGS


def _say(text: str) -> None:
  print(text, flush=True)


def _fail(message: str) -> None:
  sys.exit(f"error: {message}")


def _parse_run(text: str) -> tuple[str, int]:
  root, _, seed = text.rpartition(":")
  if not root or not seed.isdigit():
    _fail(f"--run={text}: expected ROOT:SEED, e.g. runs/x/controller:0")
  if not os.path.isfile(os.path.join(root, "operative_config.gin")):
    _fail(
      f"--run={text}: {root} is not a train_controller root (no operative_config.gin)"
    )
  return root, int(seed)


def _bad(run: dict) -> bool:
  """A run that diverged or whose best validation loss stayed above --bad_run_loss."""
  best = run["best_val_loss"]
  return bool(run["diverged"]) or best is None or not best < FLAGS.bad_run_loss


def judged_policies(root: str) -> dict[int, str]:
  """Episode -> directory of each policy the run's selection judged."""
  from lr_controller import constants
  from lr_controller import controller as controller_lib

  policies = os.path.join(root, constants.POLICIES_DIR)
  found = {}
  for name in os.listdir(policies) if os.path.isdir(policies) else []:
    episode = constants.policy_copy_episode(name, constants.LAST_POLICY_DIR)
    if episode is not None:
      found[episode] = os.path.join(policies, name)
  last = os.path.join(policies, constants.LAST_POLICY_DIR)
  if os.path.isdir(last):
    found[int(controller_lib.load_policy(last).metadata["episodes"])] = last
  return dict(sorted(found.items()))


def _judge_run(root: str, seed: int, sizes: list[int]) -> dict:
  import gin

  from lr_controller import controller as controller_lib
  from lr_controller import gin_utils
  from lr_controller.control import env as env_lib
  from lr_controller.control import selection
  from lr_controller.judge import method_runs

  gin_utils.parse_gin([os.path.join(root, "operative_config.gin")], finalize=False)
  # Set B must lie past every trainee this run's own selection saw.
  seen = max(*sizes, gin.query_parameter("train_controller.selection_runs"))
  first_free = selection.SELECTION_EPISODE_OFFSET + seen
  if FLAGS.judge_offset < first_free or (
    FLAGS.judge_offset + FLAGS.judge_runs > env_lib.SEED_STRIDE
  ):
    _fail(
      f"set B (episodes {FLAGS.judge_offset}...) must lie in [{first_free}, "
      f"{env_lib.SEED_STRIDE}): past the {seen} trainees the selection of {root} saw"
    )
  policies = judged_policies(root)
  if not policies:
    _fail(f"{root} holds no judged policies (policies/last_policy_NNNNNN)")
  env = env_lib.create_environment(seed=seed, evaluate_test=False, action_levels=None)
  sets = {
    "A": selection.selection_episodes(max(sizes)),
    "B": [FLAGS.judge_offset + i for i in range(FLAGS.judge_runs)],
  }
  rows = {}
  for episodes, path in policies.items():
    policy = controller_lib.load_policy(path)
    method_runs.check_policy_matches(env, policy.metadata)
    runs = {
      name: [
        method_runs.run_controller(env, policy, env_lib.episode_seed(seed, k))
        for k in ks
      ]
      for name, ks in sets.items()
    }
    rows[episodes] = {
      "A": [r["best_val_loss"] for r in runs["A"]],
      **{f"A{n}": selection.score(runs["A"][:n]) for n in sizes},
      "B": selection.score(runs["B"]),
      "B_losses": [r["best_val_loss"] for r in runs["B"]],
      "B_bad": sum(_bad(r) for r in runs["B"]),
    }
    _say(
      f"  {root} episode {episodes}: set A (first {max(sizes)}) "
      f"{rows[episodes][f'A{max(sizes)}']:.4f}, set B {rows[episodes]['B']:.4f}"
    )
  gin.clear_config()
  kept = {
    n: selection.kept_episode({e: row[f"A{n}"] for e, row in rows.items()})
    for n in sizes
  }
  return {"root": root, "seed": seed, "policies": rows, "kept": kept}


def _table(result: dict, sizes: list[int]) -> str:
  head = [
    "episode",
    *[f"set A, first {n}" for n in sizes],
    "set B",
    f"set B runs above {FLAGS.bad_run_loss:g}",
  ]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for episodes, row in result["policies"].items():
    cells = [str(episodes), *[f"{row[f'A{n}']:.4f}" for n in sizes]]
    cells += [f"{row['B']:.4f}", str(row["B_bad"])]
    lines.append("| " + " | ".join(cells) + " |")
  for n in sizes:
    e = result["kept"][n]
    lines.append(
      f"selection on {n}: keeps episode {e}, set B {result['policies'][e]['B']:.4f}"
    )
  return "\n".join(lines)


def _jsonable(value):
  """String keys, and None for a non-finite score (JSON has no inf)."""
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_jsonable(v) for v in value]
  if isinstance(value, float):
    return io_utils.finite_or_none(value)
  return value


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if not FLAGS.run:
    _fail("give at least one --run=ROOT:SEED")
  try:
    sizes = sorted({int(n) for n in FLAGS.selection_runs})
  except ValueError:
    _fail(f"--selection_runs must be integers, got {FLAGS.selection_runs}")
  if not sizes or sizes[0] < 1 or FLAGS.judge_runs < 1:
    _fail("--selection_runs and --judge_runs must be positive")
  if FLAGS.output and not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.output))):
    _fail(f"--output={FLAGS.output}: its directory does not exist")
  runs = [_parse_run(text) for text in FLAGS.run]
  results = []
  for root, seed in runs:
    _say(f"judging the policies of {root} (seed {seed})")
    results.append(_judge_run(root, seed, sizes))
  for result in results:
    _say(f"\n{result['root']} (seed {result['seed']})\n" + _table(result, sizes))
  _say("\nmean over runs of the kept policy's set B score:")
  for n in sizes:
    values = [r["policies"][r["kept"][n]]["B"] for r in results]
    _say(
      f"  selection on {n}: {np.mean(values):.4f}  ({', '.join(f'{v:.4f}' for v in values)})"
    )
  if FLAGS.output:
    # "kept" names episodes as the keys of "policies" do: as strings.
    written = [
      {**r, "kept": {n: str(e) for n, e in r["kept"].items()}} for r in results
    ]
    io_utils.write_json(FLAGS.output, _jsonable(written))
    _say(f"written: {FLAGS.output}")


if __name__ == "__main__":
  app.run(main)
