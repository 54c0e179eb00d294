"""What each evaluated method spent: trainee steps and seconds (the cost column).

A method's cost has two parts:

* `setup`: paid once before its evaluated runs. Step decay: the grid search;
  a peer: its learning-rate search; the learned controller: its training
  (episodes, the reference runs of a reference reward, and the selection
  runs on validation trainees; a warm-started controller adds its source
  run's, up to the checkpoint it started from). The controller pays it once and is then
  free on every later training run, which is its whole argument.
  A shipped preset's training was paid by the package, not by its user: its
  setup is nothing (`nothing_paid`), as is an untuned schedule's.
* `per_run`: the mean steps and seconds of one evaluated run, counting steps
  that a method trains and throws away (AutoLRS's trial steps).

Steps are trainee optimisation steps; seconds are wall-clock seconds on the
machine that ran them (None where a record predates timing).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from lr_controller import constants, io_utils
from lr_controller.errors import UserError, first_line


def _total(values: Iterable[float | None]) -> float | None:
  values = list(values)
  if not values or any(v is None for v in values):
    return None
  return round(float(sum(values)), 3)


def steps_of_run(run: dict, num_steps: int | None = None) -> int:
  """Trainee steps one run took: its steps done plus any thrown-away trial steps.

  Args:
    run: a run record (evaluation, search or peer-search run).
    num_steps: the run's budget, used when the record predates `steps_done`.
  """
  if run.get("steps_done") is not None:
    done = int(run["steps_done"])
  elif run.get("steps"):
    done = int(run["steps"][-1])
  else:
    done = int(num_steps or 0)
  return done + int(run.get("trial_steps") or 0)


def runs_cost(runs: Sequence[dict], what: str, num_steps: int | None = None) -> dict:
  """The summed cost of `runs` (a search): {what, runs, steps, seconds}."""
  return {
    "what": what,
    "runs": len(runs),
    "steps": sum(steps_of_run(r, num_steps) for r in runs),
    "seconds": _total(r.get("seconds") for r in runs),
  }


def nothing_paid(what: str) -> dict:
  """The setup cost of a method that pays nothing before its runs: {what, 0, 0, 0}."""
  return {"what": what, "runs": 0, "steps": 0, "seconds": 0.0}


def per_run_cost(runs: Sequence[dict]) -> dict:
  """Mean steps and seconds of one evaluated run: {steps, seconds}."""
  if not runs:
    return {"steps": None, "seconds": None}
  seconds = _total(r.get("seconds") for r in runs)
  return {
    "steps": round(sum(steps_of_run(r) for r in runs) / len(runs), 1),
    "seconds": None if seconds is None else round(seconds / len(runs), 3),
  }


def controller_training_cost(root_dir: str, episodes: float) -> dict:
  """What training a controller to `episodes` episodes cost, from its logs.

  `episodes` may be `math.inf`: the whole run so far.

  Reads `episodes.jsonl` (each episode's steps and reference steps),
  `updates.jsonl` (each update's seconds: collection and PPO) and
  `selection.jsonl` (each selection's steps and seconds) of the run in
  `root_dir`, up to `episodes`. A warm-started run (`warm_start.json`) adds
  its source run's cost up to the checkpoint it started from.

  Returns:
    {what, runs (episodes), steps, seconds}; seconds None if a log predates
    timing.

  Raises:
    UserError: an unreadable `warm_start.json`, or a chain of warm starts
      that comes back to a run.
  """
  return _training_cost(root_dir, episodes, frozenset())


def _training_cost(root_dir: str, episodes: float, seen: frozenset[str]) -> dict:
  """`controller_training_cost`; `seen`: the runs warm-started from this one."""
  rows = [
    r
    for r in io_utils.read_jsonl(os.path.join(root_dir, constants.EPISODES_JSONL))
    if r["episode"] < episodes
  ]
  steps = sum(
    int(r.get("steps") or 0) + int(r.get("reference_steps") or 0) for r in rows
  )
  seconds, selections = [], 0
  for name in (constants.UPDATES_JSONL, constants.SELECTION_JSONL):
    for r in io_utils.read_jsonl(os.path.join(root_dir, name)):
      if r["episodes"] <= episodes:
        seconds.append(r.get("seconds"))
        steps += int(r.get("steps") or 0)
        if name == constants.SELECTION_JSONL and r.get("steps"):
          selections += 1  # A selection that ran validation trainees.
  what = f"{len(rows)} training episode{'s' if len(rows) != 1 else ''}"
  if selections:
    what += f" and {selections} selection{'s' if selections > 1 else ''}"
  cost = {"what": what, "runs": len(rows), "steps": steps, "seconds": _total(seconds)}
  warm_start_path = os.path.join(root_dir, constants.WARM_START_JSON)
  if not os.path.exists(warm_start_path):
    return cost
  try:
    warm_start = io_utils.read_json(warm_start_path)
    source_dir, source_episodes = warm_start["source_dir"], warm_start["episodes"]
    source_path = os.path.realpath(source_dir)
  except (OSError, ValueError, TypeError, KeyError) as e:
    raise UserError(f"cannot read {warm_start_path}: {first_line(e)}") from None
  seen = seen | {os.path.realpath(root_dir)}
  if source_path in seen:
    raise UserError(
      f"{warm_start_path}: the chain of warm starts comes back to {source_dir}"
    )
  if not os.path.isfile(os.path.join(source_dir, constants.EPISODES_JSONL)):
    cost["what"] += f", warm-started from {source_dir} (its logs are gone: not counted)"
    return cost
  source = _training_cost(source_dir, source_episodes, seen)
  return {
    "what": f"{what}, warm-started from {source['what']}",
    "runs": cost["runs"] + source["runs"],
    "steps": cost["steps"] + source["steps"],
    "seconds": _total([cost["seconds"], source["seconds"]]),
  }
