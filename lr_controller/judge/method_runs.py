"""One run of each evaluated method, as one record; the controller's policy and environment.

The learned controller's runs load the exported policy with the controller
core and act through `controller.Controller`, as `LearnedLRScheduler` does, in
an environment given the policy's interface (its features, decision interval
and bounds, read from its metadata: `policy_metadata`); step decay and the peers train
the same kind of trainee with their own schedules. Every run gives one
record (`_run_record`): seed, test loss and accuracy of the best-validation
checkpoint, the validation curve and the learning rates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from lr_controller import controller as controller_lib
from lr_controller import io_utils, policy_metadata
from lr_controller.control import env as env_lib
from lr_controller.errors import UserError, first_line
from lr_controller.judge import adaptive_peers, baseline_search
from lr_controller.trainee import trainee as trainee_lib


def load_policy(policy_dir: str | None) -> tuple[controller_lib.Policy, dict]:
  """Loads an exported controller with the controller core (TensorFlow alone).

  Returns:
    The loaded `controller.Policy` and its metadata dict (features,
    action_interval, bounds, ...).

  Raises:
    UserError: if `policy_dir` is missing or holds no valid exported controller.
  """
  if not policy_dir:
    raise UserError("--policy_dir is required (e.g. ROOT/policies/greedy_policy)")
  policy = controller_lib.load_policy(policy_dir)
  return policy, policy.metadata


def check_policy_matches(env: env_lib.LearningRateControlEnv, metadata: dict) -> None:
  """Raises UserError unless `env` observes and acts as the policy was trained to.

  The environment applies its own bounds; they must be the policy's, which
  the callback applies, so that evaluation measures what users get.
  """
  policy = policy_metadata.read_interface(metadata, "given to check_policy_matches")
  env_interface = policy_metadata.Interface.of_environment(env)
  differing = policy.differences(env_interface)
  if differing:
    theirs, ours = policy.fields(), env_interface.fields()
    raise UserError(
      "the environment differs from the controller in "
      + "; ".join(f"{k} ({ours[k]}, the controller's {theirs[k]})" for k in differing)
    )


def environment_arguments(interface: policy_metadata.Interface) -> dict:
  """`create_environment`'s arguments that give it a controller's interface."""
  return {
    "feature_names": interface.feature_names,
    "action_interval": interface.action_interval,
    "max_factor": math.exp(interface.max_log_factor),
    "min_learning_rate": interface.min_learning_rate,
    "max_learning_rate": interface.max_learning_rate,
  }


def make_environment(
  metadata: dict,
  seed: int = 0,
  trainee_fn: Callable[..., Any] | None = None,
  evaluate_test: bool = True,
) -> env_lib.LearningRateControlEnv:
  """The gin-configured environment with the policy's interface.

  The setting (data, model, optimizer, run length, initial learning rates)
  is gin's; what the controller observes, when it acts and the bounds of its
  actions are the policy's, from its metadata, whatever gin binds for them.
  The trainee is not built here (`trainee_fn` is called on the first reset).
  `evaluate_test=False` leaves the test split unread (choosing between
  controllers on validation runs): the runs' test loss is then None.

  Raises:
    UserError: (one line) if the setting cannot run the controller (say, its
      run length is no multiple of the controller's decision interval).
  """
  interface = policy_metadata.read_interface(metadata, "given to make_environment")
  kwargs = {} if trainee_fn is None else {"trainee_fn": trainee_fn}
  try:
    # An exported policy answers with log factors, whatever head it was
    # trained with (a discrete head's choice is mapped in the export), so the
    # environment takes log factors here; and it runs the unscoped trainee
    # only, the setting being evaluated, whatever else it was trained on.
    env = env_lib.create_environment(
      seed=seed,
      evaluate_test=evaluate_test,
      action_levels=None,
      scoped_initial_learning_rates=None,
      scoped_num_steps=None,
      scoped_reward_scales=None,
      **environment_arguments(interface),
      **kwargs,
    )
  except UserError as e:
    raise UserError(
      f"this setting cannot run the controller (a decision every "
      f"{interface.action_interval} steps on features "
      f"{list(interface.feature_names)}, from its metadata): {first_line(e)}"
    ) from None
  check_policy_matches(env, metadata)  # The environment took them all.
  return env


def _run_record(
  seed: int,
  initial_learning_rate: float,
  steps: Sequence[int],
  val_losses: Sequence[float | None],
  learning_rates: Sequence[float],
  **summary: Any,
) -> dict:
  return {
    "seed": int(seed),
    "initial_learning_rate": float(initial_learning_rate),
    **{k: summary.get(k) for k in ("test_loss", "test_accuracy", "best_val_loss")},
    "best_step": summary.get("best_step"),
    "diverged": bool(summary.get("diverged")),
    # Steps trained and thrown away besides the run (AutoLRS's trials).
    "trial_steps": int(summary.get("trial_steps") or 0),
    "seconds": round(float(summary.get("seconds", 0.0)), 3),
    "steps": [int(s) for s in steps],
    "val_losses": list(val_losses),
    # None where a run went non-finite (a diverged adaptive peer's rate).
    "learning_rates": [
      None if lr is None else io_utils.finite_or_none(float(lr))
      for lr in learning_rates
    ],
  }


def _from_training(result: dict, seed: int, initial_learning_rate: float) -> dict:
  """A run record from a `trainee.run_training` dict.

  `learning_rates[j]` is the rate of the last step of chunk j (the rate the
  history row reports).
  """
  history = result["history"]
  return _run_record(
    seed,
    initial_learning_rate,
    steps=[row["step"] for row in history],
    val_losses=[row["val_loss"] for row in history],
    learning_rates=[row["lr"] for row in history],
    **result,
  )


def run_controller(
  env: env_lib.LearningRateControlEnv, policy: controller_lib.Policy, seed: int
) -> dict:
  """One greedy episode of the controller on a trainee from `seed`.

  The policy acts through `controller.Controller`, as in `LearnedLRScheduler`,
  on the environment's observations (guarded by the same core), and the
  environment applies the core's rule with the policy's bounds.

  Returns:
    The run record: `learning_rates[j]` is the rate of every step of chunk j,
    `val_losses[j]` the validation loss after it (None once diverged).
  """
  start = time.perf_counter()
  controller = controller_lib.Controller(policy)
  env.seed_next_episode(seed)
  time_step = env.reset()
  while not time_step.is_last():
    time_step = env.step(np.float32(controller.act(time_step.observation)))
  episode = env.last_episode
  interval = env.action_interval
  return _run_record(
    seed,
    episode["initial_learning_rate"],
    steps=[interval * (j + 1) for j in range(len(episode["learning_rates"]))],
    val_losses=episode["val_losses"],
    learning_rates=episode["learning_rates"],
    test_loss=episode["test_loss"],
    test_accuracy=episode["test_accuracy"],
    best_val_loss=episode["best_val_loss"],
    best_step=env.trainee.best_step,
    diverged=episode["diverged"],
    seconds=time.perf_counter() - start,
  )


def run_step_decay(
  trainee: trainee_lib.Trainee,
  setting: Mapping[str, Any],
  seed: int,
  num_steps: int,
  eval_interval: int,
  evaluate_test: bool = True,
) -> dict:
  """One run of a step-decay setting (lr0, discount_step, factor) from `seed`.

  `evaluate_test=False` never reads the test split (test fields None).
  """
  return run_schedule(
    trainee,
    baseline_search.step_decay(setting, num_steps),
    float(setting["initial_learning_rate"]),
    seed,
    num_steps,
    eval_interval,
    evaluate_test,
  )


def run_schedule(
  trainee: trainee_lib.Trainee,
  schedule: Callable[[Any], Any],
  initial_learning_rate: float,
  seed: int,
  num_steps: int,
  eval_interval: int,
  evaluate_test: bool = True,
) -> dict:
  """One run of a fixed per-step `schedule` from `seed`, recorded with its `initial_learning_rate`.

  `evaluate_test=False` never reads the test split (test fields None).
  """
  trainee.reset(seed, initial_learning_rate, schedule=schedule)
  result = trainee_lib.run_training(
    trainee,
    num_steps=num_steps,
    eval_interval=eval_interval,
    evaluate_test=evaluate_test,
  )
  return _from_training(result, seed, initial_learning_rate)


def run_peer(
  name: str,
  trainee: trainee_lib.Trainee,
  initial_learning_rate: float,
  seed: int,
  num_steps: int,
  eval_interval: int,
  evaluate_test: bool = True,
) -> dict:
  """One run of peer `name` (see `adaptive_peers.run_peer`) from `seed`.

  `evaluate_test=False` never reads the test split (test fields None).
  """
  result = adaptive_peers.run_peer(
    name,
    trainee,
    initial_learning_rate=initial_learning_rate,
    num_steps=num_steps,
    eval_interval=eval_interval,
    seed=seed,
    evaluate_test=evaluate_test,
  )
  return _from_training(result, seed, initial_learning_rate)
