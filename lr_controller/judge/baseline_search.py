"""The paper's hand-tuned baseline: a grid search over step decay (Xu et al. 2019, Sec. 4).

Step decay `lr = lr0 * factor ** floor(step / discount_step)` over the grid
lr0 in {0.1, 0.01, 0.001, 0.0001} x discount_step in {10, 20, 50, 100} x
factor in {0.99, 0.9, 0.88} (48 runs), each scored by its best validation loss
(never by test data). Diverged runs are kept in the record but not chosen while
any run converged. The best setting can then be repeated over seeds and
evaluated on the test split (best-validation checkpoint, the paper's protocol).

All runs share one compiled trainee (`Trainee.reset`), so the search traces
the training step once. Finished runs are saved after each one in
`search.json`; re-running the same search resumes where it stopped.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Callable, Sequence

import gin

from lr_controller import checks, constants, io_utils
from lr_controller.errors import UserError
from lr_controller.trainee import schedules
from lr_controller.trainee import trainee as trainee_lib

# The paper's grid.
PAPER_INITIAL_LEARNING_RATES = (0.1, 0.01, 0.001, 0.0001)
PAPER_DISCOUNT_STEPS = (10, 20, 50, 100)
PAPER_FACTORS = (0.99, 0.9, 0.88)


def _key(run: dict) -> tuple:
  return (run["initial_learning_rate"], run["discount_step"], run["factor"])


def step_decay(setting: dict, total_steps: int):
  """The step-decay schedule of one grid point."""
  return schedules.build_schedule(
    "step_decay",
    initial_learning_rate=setting["initial_learning_rate"],
    total_steps=total_steps,
    discount_step=setting["discount_step"],
    factor=setting["factor"],
  )


def _nonempty_list(name: str, values) -> list:
  """`values` as a list; UserError unless it is a non-empty sequence (not a str)."""
  if not isinstance(values, Sequence) or isinstance(values, str) or not values:
    raise UserError(f"{name} must be a non-empty list, got {values!r}")
  return list(values)


def _start_run(
  trainee: trainee_lib.Trainee | None, seed: int, setting: dict, num_steps: int
) -> trainee_lib.Trainee:
  """Builds the shared trainee on first use, else resets it, for one grid point."""
  schedule = step_decay(setting, num_steps)
  lr = setting["initial_learning_rate"]
  if trainee is None:
    return trainee_lib.build_trainee(
      seed=seed, schedule=schedule, initial_learning_rate=lr
    )
  trainee.reset(seed, lr, schedule=schedule)
  return trainee


def choose_best(runs: Sequence[dict]) -> dict:
  """The run with the lowest best validation loss, preferring converged runs."""
  scored = [r for r in runs if r["best_val_loss"] is not None]
  if not scored:
    raise UserError("every baseline run diverged before its first validation")
  converged = [r for r in scored if not r["diverged"]]
  return min(converged or scored, key=lambda r: r["best_val_loss"])


# Run control comes from the caller (flags): binding these is a gin error.
@gin.configurable(denylist=["root_dir", "seed", "say"])
def search_step_decay(
  root_dir: str,
  seed: int = 0,
  initial_learning_rates: Sequence[float] = PAPER_INITIAL_LEARNING_RATES,
  discount_steps: Sequence[int] = PAPER_DISCOUNT_STEPS,
  factors: Sequence[float] = PAPER_FACTORS,
  num_steps: int = 1000,
  eval_interval: int = 10,
  num_repeats: int = 0,
  say: Callable[[str], None] = print,
) -> dict:
  """Runs the grid, picks the best by validation loss, optionally repeats it.

  Args:
    root_dir: output directory (exists); `search.json` is written there and,
      with repeats, `repeats.json`.
    seed: seed of every grid run's initial weights (the same for all, so
      settings are compared on equal footing).
    initial_learning_rates: lr0 values (each > 0).
    discount_steps: steps between decays (each > 0).
    factors: decay factors (each > 0).
    num_steps: training steps of each run (the evaluation checks that it is
      the length of the runs it evaluates).
    eval_interval: steps between validations (paper: 10).
    num_repeats: if > 0, the best setting is trained again with seeds
      `seed, ..., seed + num_repeats - 1` and tested.
    say: progress printer.

  Returns:
    The search record: `grid`, `runs` (each with its setting, `best_val_loss`,
    `best_step`, `diverged`, `seconds`), `best`, and `repeats` if asked for.
  """
  for lr in _nonempty_list("initial_learning_rates", initial_learning_rates):
    trainee_lib.check_learning_rate(lr)
  for ds in _nonempty_list("discount_steps", discount_steps):
    checks.integer("discount step", ds, what="a positive whole number of steps")
  for f in _nonempty_list("factors", factors):
    checks.positive("decay factor", f)
  num_steps = checks.integer("num_steps", num_steps, what="a positive integer")
  eval_interval = checks.integer("eval_interval", eval_interval)
  num_repeats = checks.integer("num_repeats", num_repeats, minimum=0)
  grid = {
    "initial_learning_rates": [float(x) for x in initial_learning_rates],
    "discount_steps": [int(x) for x in discount_steps],
    "factors": [float(x) for x in factors],
    "num_steps": int(num_steps),
    "eval_interval": int(eval_interval),
    "seed": int(seed),
  }
  path = os.path.join(root_dir, constants.SEARCH_JSON)
  done: dict[tuple, dict] = {}
  if os.path.exists(path):
    previous = io_utils.read_json(path)
    if previous.get("grid") == grid:
      done = {_key(r): r for r in previous.get("runs", [])}
      if done:
        say(f"resuming the search in {path}: {len(done)} runs already done")
  settings = [
    {"initial_learning_rate": lr, "discount_step": ds, "factor": f}
    for lr, ds, f in itertools.product(
      grid["initial_learning_rates"], grid["discount_steps"], grid["factors"]
    )
  ]
  trainee = None
  runs = []
  for index, setting in enumerate(settings, start=1):
    if _key(setting) in done:
      runs.append(done[_key(setting)])
      continue
    trainee = _start_run(trainee, seed, setting, num_steps)
    result = trainee_lib.run_training(
      trainee, num_steps=num_steps, eval_interval=eval_interval, evaluate_test=False
    )
    run = {
      **setting,
      "best_val_loss": result["best_val_loss"],
      "best_step": result["best_step"],
      "diverged": result["diverged"],
      "steps_done": result["steps_done"],
      "seconds": round(result["seconds"], 3),
    }
    runs.append(run)
    val = "none" if run["best_val_loss"] is None else f"{run['best_val_loss']:.4f}"
    say(
      f"[{index:2d}/{len(settings)}] lr0 {setting['initial_learning_rate']:<7g} "
      f"every {setting['discount_step']:<4d} x{setting['factor']:<5g} "
      f"best val {val}{'  (diverged)' if run['diverged'] else ''}  {run['seconds']:.1f}s"
    )
    io_utils.write_json(path, {"grid": grid, "runs": runs, "best": None})
  best = choose_best(runs)
  record = {"grid": grid, "runs": runs, "best": best}
  io_utils.write_json(path, record)
  say(
    f"best step decay: lr0 {best['initial_learning_rate']:g}, every "
    f"{best['discount_step']} steps x{best['factor']:g} (val loss {best['best_val_loss']:.4f})"
  )
  if num_repeats > 0:
    record["repeats"] = repeat_setting(
      best,
      seeds=range(seed, seed + num_repeats),
      num_steps=num_steps,
      eval_interval=eval_interval,
      trainee=trainee,
      say=say,
    )
    io_utils.write_json(
      os.path.join(root_dir, constants.REPEATS_JSON), record["repeats"]
    )
  return record


def repeat_setting(
  setting: dict,
  seeds: Sequence[int],
  num_steps: int,
  eval_interval: int = 10,
  trainee: trainee_lib.Trainee | None = None,
  say: Callable[[str], None] = print,
) -> dict:
  """Trains one step-decay setting once per seed and tests each best checkpoint.

  Returns:
    `setting`, `seeds`, `runs` (the full `run_training` results, with `seed`),
    and mean/std (sample, ddof=1) of `test_loss` and `test_accuracy` over
    runs that had a finite checkpoint.
  """
  runs = []
  for seed in seeds:
    start = time.perf_counter()
    trainee = _start_run(trainee, seed, setting, num_steps)
    result = trainee_lib.run_training(
      trainee, num_steps=num_steps, eval_interval=eval_interval
    )
    result["seed"] = int(seed)
    runs.append(result)
    say(
      f"repeat seed {seed}: test loss {result['test_loss']}, "
      f"accuracy {result['test_accuracy']}  ({time.perf_counter() - start:.1f}s)"
    )
  return {
    "setting": dict(setting),
    "seeds": [int(s) for s in seeds],
    "runs": runs,
    **summarize(runs),
  }


def summarize(runs: Sequence[dict]) -> dict:
  """Mean and sample std of test loss and accuracy over runs with results."""
  out = {}
  for name in ("test_loss", "test_accuracy"):
    values = [r[name] for r in runs if r.get(name) is not None]
    out[f"{name}_mean"] = statistics.fmean(values) if values else None
    out[f"{name}_std"] = (
      statistics.stdev(values) if len(values) > 1 else 0.0 if values else None
    )
  out["num_diverged"] = sum(1 for r in runs if r.get("diverged"))
  return out
