"""Choosing the controller on validation runs, never on the test split.

PPO's latest policy is not always its best: a run can learn and then drift
back. Every few updates `train_controller` runs the greedy policy on a fixed
set of validation trainees and keeps the policy with the lowest mean best
validation loss as `policies/greedy_policy` (the latest is
`policies/last_policy`).

The validation trainees are episodes `SELECTION_EPISODE_OFFSET + i` of the
controller's seed: their trainee seeds, `env.episode_seed(seed, ...)`, are
apart from training episodes (0, 1, ...) and from the evaluation's held-out
seeds (`evaluation.EVAL_SEED_OFFSET + i`). Only validation losses are read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from lr_controller.control import episode_collection, exploration

SELECTION_EPISODE_OFFSET = 900_000


def selection_episodes(num_runs: int) -> list[int]:
  """Episode indices of the `num_runs` validation trainees."""
  return [SELECTION_EPISODE_OFFSET + i for i in range(num_runs)]


def score(infos: list[dict]) -> float:
  """Mean best validation loss of finished greedy episodes; inf if any diverged."""
  losses = [info["best_val_loss"] for info in infos]
  if any(v is None or not math.isfinite(v) for v in losses) or any(
    info["diverged"] for info in infos
  ):
    return math.inf
  return float(np.mean(losses))


def improves(score: float, kept_score: float) -> bool:
  """Whether a policy scoring `score` replaces the kept one (`kept_score`).

  Strictly lower only: on a tie the earlier policy stays. `train_controller`
  applies this at each selection, `kept_episode` to a finished run's scores.
  """
  return score < kept_score


def kept_episode(scores: Mapping[int, float]) -> int:
  """The episode whose policy a selection keeps, given each judged episode's score.

  The judged policies in order of episode, each replacing the kept one if it
  `improves` on it: the lowest score, the earliest on a tie.
  """
  if not scores:
    raise ValueError("no scores to choose from")
  episodes = sorted(scores)
  kept = episodes[0]
  for episode in episodes[1:]:
    if improves(scores[episode], scores[kept]):
      kept = episode
  return kept


def run_greedy_policy(
  env, policy: exploration.SeededPolicy, seed: int, num_runs: int
) -> list[dict]:
  """Runs `policy` (greedy) on the validation trainees of `seed`.

  Args:
    env: a `LearningRateControlEnv` in this process.
    policy: the greedy policy.
    seed: the controller's base seed.
    num_runs: validation trainees.

  Returns:
    The episodes' summaries (`score` them).
  """
  return [
    episode_collection.collect_episodes([env], policy, [k], seed)[0].info
    for k in selection_episodes(num_runs)
  ]
