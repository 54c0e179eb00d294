"""What the learning tests (tests/test_learning.py) judge, and a script to re-measure it.

A learned controller is judged against references computed on the same
held-out trainees, never against a fixed number: the frozen controller
(every action 0: the initial rate throughout) and the two collapsing ones
(every action at +max or -max: the rate driven to a bound).

A test of a learned outcome must pass for the right reason on any machine of
the kind, by criteria that a frozen or collapsing controller fails; seeded
runs repeat bit for bit only on one CPU. So the margins in
test_learning.py's docstrings were measured with this script in three
numerics configurations (1 and 2 intra-op threads, and 2 with
`TF_ENABLE_ONEDNN_OPTS=0`), one process at a time:

  TF_NUM_INTRAOP_THREADS=1 .venv/bin/python tests/learning_check.py digits
  TF_NUM_INTRAOP_THREADS=2 .venv/bin/python tests/learning_check.py digits
  TF_NUM_INTRAOP_THREADS=2 TF_ENABLE_ONEDNN_OPTS=0 \
    .venv/bin/python tests/learning_check.py digits

(and the same with `quadratic`; `--seed` picks the controller seed,
`--exports=24,48` judges the policy after 24 episodes too). It prints one
JSON line: each controller's best and final validation losses on the
held-out trainees, its last learning rates, and the training episodes'
early and late medians. About 2-3 minutes for digits, 1 for quadratic.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

import numpy as np

# Held-out trainee seeds: apart from training episodes (controller seed s:
# s * 1_000_003 + k for small k), selection (+ 900,000) and evaluation.
HELD_OUT_SEEDS = tuple(2_000_000_000 + i for i in range(16))

# The episode counts, seeds and numbers of held-out trainees of the tests.
DIGITS = {"gin": "controller/digits.gin", "episodes": 48, "trainees": 12}
QUADRATIC = {"gin": "controller/noisy_quadratic.gin", "episodes": 60, "trainees": 16}

# An action beyond every bound: the environment clips it to +-max_log_factor.
_BEYOND = 100.0


def numerics() -> dict:
  """The numerics settings of this process (what varies between machines)."""
  from tensorflow.python.util import _pywrap_util_port

  return {
    "intra_op_threads": os.environ.get("TF_NUM_INTRAOP_THREADS", "default"),
    "onednn": bool(_pywrap_util_port.IsMklEnabled()),
  }


def run_episodes(
  env, act: Callable[[np.ndarray, bool], float], seeds: Sequence[int]
) -> list[dict]:
  """Runs one episode per trainee seed with `act(observation, first)`.

  Returns:
    The environment's `last_episode` summaries, one per seed.
  """
  summaries = []
  for seed in seeds:
    env.seed_next_episode(seed)
    time_step = env.reset()
    first = True
    while not time_step.is_last():
      time_step = env.step(np.float32(act(time_step.observation, first)))
      first = False
    summaries.append(dict(env.last_episode))
  return summaries


def constant_action(value: float) -> Callable[[np.ndarray, bool], float]:
  """A controller answering `value` always: 0 frozen, +-_BEYOND collapsing."""
  return lambda observation, first: value


FROZEN = constant_action(0.0)
COLLAPSE_UP = constant_action(_BEYOND)
COLLAPSE_DOWN = constant_action(-_BEYOND)


def greedy_controller(policy_dir: str) -> Callable[[np.ndarray, bool], float]:
  """The exported policy acting as users run it (`controller.Controller`)."""
  from lr_controller import controller as controller_lib

  controller = controller_lib.Controller(controller_lib.load_policy(policy_dir))

  def act(observation, first):
    if first:
      controller.reset()
    return controller.act(observation)

  return act


def _measure(setting: dict, seed: int, exports: Sequence[int]) -> dict:
  import tensorflow as tf

  from lr_controller import constants, gin_utils
  from lr_controller.control import controller_training
  from lr_controller.control import env as env_lib

  tf.config.experimental.enable_op_determinism()
  gin_utils.parse_gin([setting["gin"]], [], finalize=False)
  out = {**numerics(), "seed": seed}
  with tempfile.TemporaryDirectory() as root:
    start = time.perf_counter()
    controller_training.train_controller(
      root,
      seed=seed,
      num_episodes=setting["episodes"],
      export_interval=min(exports),
      selection_runs=0,
      say=lambda s: None,
    )
    out["train_seconds"] = round(time.perf_counter() - start, 1)
    with open(os.path.join(root, constants.EPISODES_JSONL)) as f:
      rows = [json.loads(line) for line in f]
    for key in ("best_val_loss", "final_val_loss"):
      values = np.array([10.0 if r[key] is None else r[key] for r in rows])
      quarter = len(values) // 4
      out[f"train_{key}_early_median"] = float(np.median(values[:quarter]))
      out[f"train_{key}_late_median"] = float(np.median(values[-quarter:]))
    env = env_lib.create_environment(seed=seed, evaluate_test=False)
    seeds = HELD_OUT_SEEDS
    controllers = {
      "frozen": FROZEN,
      "collapse_up": COLLAPSE_UP,
      "collapse_down": COLLAPSE_DOWN,
    }
    policies = os.path.join(root, constants.POLICIES_DIR)
    for episode in exports:
      name = constants.GREEDY_POLICY_DIR
      if episode < setting["episodes"]:
        name = constants.policy_copy(name, episode)
      controllers[f"greedy_{episode}"] = greedy_controller(os.path.join(policies, name))
    for name, act in controllers.items():
      start = time.perf_counter()
      summaries = run_episodes(env, act, seeds)
      out[f"{name}_best"] = [round(s["best_val_loss"], 5) for s in summaries]
      out[f"{name}_final"] = [
        None if s["final_val_loss"] is None else round(s["final_val_loss"], 5)
        for s in summaries
      ]
      out[f"{name}_seconds"] = round(time.perf_counter() - start, 1)
      out[f"{name}_last_lr"] = [s["learning_rates"][-1] for s in summaries]
  return out


def main(argv: Sequence[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("setting", choices=["digits", "quadratic"])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--exports", default="", help="episodes, comma-separated")
  args = parser.parse_args(argv)
  setting = DIGITS if args.setting == "digits" else QUADRATIC
  exports = [int(e) for e in args.exports.split(",") if e] or [setting["episodes"]]
  print(json.dumps({"setting": args.setting, **_measure(setting, args.seed, exports)}))


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  main(sys.argv[1:])
