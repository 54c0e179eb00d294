"""One trainee run with a fixed learning-rate schedule (`bin/train_trainee`)."""

from __future__ import annotations

import os

import gin

from lr_controller import constants, io_utils
from lr_controller.trainee import schedules
from lr_controller.trainee import trainee as trainee_lib


# Run control comes from the binary's flags: binding these is a gin error.
@gin.configurable(denylist=["root_dir", "seed", "say"])
def train_with_schedule(
  root_dir: str,
  seed: int = 0,
  num_steps: int = 1000,
  eval_interval: int = 10,
  say=print,
) -> dict:
  """Trains one trainee under `schedules.make_schedule()` as configured by gin.

  Writes `root_dir/metrics.json` (see `trainee.run_training` for its fields,
  plus the schedule's config and the seed).

  Args:
    root_dir: output directory (exists).
    seed: seed of the initial weights.
    num_steps: training steps (paper: 1000).
    eval_interval: steps between validations (paper: 10).
    say: progress printer.

  Returns:
    The metrics dict.
  """
  schedule = schedules.make_schedule()
  initial_lr = float(schedule(0))
  trainee = trainee_lib.build_trainee(
    seed=seed, schedule=schedule, initial_learning_rate=initial_lr
  )

  def progress(row):
    val = "diverged" if row["val_loss"] is None else f"{row['val_loss']:.4f}"
    say(
      f"  step {row['step']:5d}  lr {row['lr']:.3g}  train {row['train_loss']:.4f}  val {val}"
    )

  metrics = trainee_lib.run_training(
    trainee, num_steps=num_steps, eval_interval=eval_interval, progress=progress
  )
  metrics["seed"] = seed
  metrics["schedule"] = {
    "class": type(schedule).__name__,
    **_jsonable(schedule.get_config()),
  }
  io_utils.write_json(os.path.join(root_dir, constants.METRICS_JSON), metrics)
  return metrics


def _jsonable(config: dict) -> dict:
  return {
    k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
    for k, v in config.items()
  }
