"""Judges a learned controller as the paper does (Xu et al. 2019, Sec. 4, Tables 1, 2).

The protocol of one setting (the gin-configured data, model, optimizer and
number of steps):

* The baseline is the paper's hand-tuned one: the best step-decay schedule of
  `baseline_search.search_step_decay`'s grid, chosen by validation loss (run
  into `ROOT/baseline_search/`, or read from a given `search.json`).
* The learned controller is the exported greedy policy (`export.py`), loaded
  with `tf.saved_model.load` alone and run in the gin-configured
  `env.create_environment` (its features and decision interval must be the
  policy's).
* Beyond the paper, peers of `adaptive_peers` (cosine, OneCycle,
  ReduceLROnPlateau, hypergradient descent, ...) each at the initial learning
  rate of a small search on validation loss.
* Every method is run `num_runs` times (paper: 10) with the SAME trainee seeds
  `evaluation_seeds(seed, num_runs)`; each run validates every `eval_interval`
  steps, keeps the best-validation weights and tests those once.
* Per method: mean and sample standard deviation (ddof=1) of the test loss and
  accuracy, and an independent two-sample t-test against the baseline
  (`scipy.stats.ttest_ind`, equal_var=True, two-sided: Student's t-test);
  p < 0.05 is marked with an asterisk, as in the paper's Table 1.

Seeds. Controller training episode k of a run with seed s trains a trainee
from seed `s * 1_000_003 + k` (`env.episode_seed`). Evaluation run i uses
`s * 1_000_003 + EVAL_SEED_OFFSET + i` with EVAL_SEED_OFFSET = 500_000: the
middle of the gap between two training seeds' blocks, so no evaluation seed
is a seed any controller training run (of any seed, with fewer than 500,000
episodes) trained on. (An offset of 10**6 + 7 would collide with episode 4 of
training seed 1.) The baseline grid and the peers' learning-rate searches use
seed `s` itself, a selection seed never used for the reported runs.

Each method trains its own trainee (one compiled graph per method). A
trainee's run is a function of its seed alone: the initial weights and the
order of mini-batches (`data.train_stream(seed)`) come from the seed, whatever
ran before (`Trainee.reset`). So run i of every method starts from the same
initial weights AND sees the same mini-batches: methods differ in their
schedule only. (Exceptions: "refined" trains twice per run; AutoLRS's trial
steps read batches of the stream, so its real training steps see later ones.)
Runs stay independent samples, so the test is the paper's unpaired one.

Task sets, as data (like DACBench's instance sets): a gin file binding
`task_set` names the settings a controller was trained on (`train`) and
held-out ones (`test`), each a dict of a name, gin files and bindings (data
set x model x optimizer x initial learning rate). `transfer` applies a
controller trained on the first training setting, without retraining, to every
held-out setting, against the step-decay baseline (and peer learning rates)
tuned on that source setting: the paper's Table 2.

Outputs (see `lr_controller.report`): ROOT/report.md, results.json,
results.csv, figure1_val_loss.png, figure2_lr_schedules.png.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gin
import numpy as np
import scipy.stats

from lr_controller import (
  adaptive_peers,
  baseline_search,
  constants,
  costs,
  gin_utils,
  io_utils,
  report,
  schedules,
)
from lr_controller import controller as controller_lib
from lr_controller import env as env_lib
from lr_controller import trainee as trainee_lib
from lr_controller.errors import UserError, first_line

RESULTS_FORMAT = "lr_controller.evaluation/1"

# Evaluation run i of seed s uses trainee seed s * SEED_STRIDE + EVAL_SEED_OFFSET + i
# (see the module docstring): SEED_STRIDE is env.episode_seed's stride.
SEED_STRIDE = env_lib.SEED_STRIDE
EVAL_SEED_OFFSET = 500_000
_MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit.

ALPHA = 0.05  # Significance level of the t-tests (marked with an asterisk).
METRICS = ("test_loss", "test_accuracy")

# Method names of the baseline and the controller in tables and results.
BASELINE = "step_decay"
CONTROLLER = "controller"

DEFAULT_PEERS = adaptive_peers.PEER_NAMES
# Candidate initial (or peak) learning rates of each peer's search.
DEFAULT_PEER_LEARNING_RATES = (0.3, 0.1, 0.03, 0.01, 0.003)


# ---------------------------------------------------------------------------
# Settings and task sets.


@dataclasses.dataclass(frozen=True)
class Setting:
  """One problem a controller can be evaluated on.

  Attributes:
    name: a short label for tables, e.g. "digits/lenet/adam".
    gin_files: gin files defining it (paths or shipped names), in order.
    gin_bindings: bindings applied after the files.
  """

  name: str
  gin_files: tuple[str, ...] = ()
  gin_bindings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TaskSet:
  """Training and held-out settings, kept apart as data.

  Attributes:
    name: the task set's name.
    train: settings the controller was trained on (the first is the source of
      a transfer).
    test: held-out settings the controller never saw.
    gin_files: files applied before every setting's own.
    gin_bindings: bindings applied before every setting's own.
  """

  name: str
  train: tuple[Setting, ...]
  test: tuple[Setting, ...]
  gin_files: tuple[str, ...] = ()
  gin_bindings: tuple[str, ...] = ()


def _strings(what: str, values: Any) -> tuple[str, ...]:
  if isinstance(values, str) or not isinstance(values, Sequence):
    raise UserError(f"{what} must be a list of strings, got {values!r}")
  if not all(isinstance(v, str) for v in values):
    raise UserError(f"{what} must be a list of strings, got {values!r}")
  return tuple(values)


def _setting(what: str, entry: Any) -> Setting:
  if not isinstance(entry, Mapping):
    raise UserError(f"{what} must be a dict with name, gin_files, gin_bindings")
  unknown = sorted(set(entry) - {"name", "gin_files", "gin_bindings"})
  if unknown or not isinstance(entry.get("name"), str) or not entry["name"]:
    raise UserError(
      f"{what} must be a dict with a name and optional gin_files, gin_bindings; "
      f"got {dict(entry)!r}"
    )
  return Setting(
    name=entry["name"],
    gin_files=_strings(f"gin_files of {entry['name']}", entry.get("gin_files", ())),
    gin_bindings=_strings(
      f"gin_bindings of {entry['name']}", entry.get("gin_bindings", ())
    ),
  )


@gin.configurable
def task_set(
  name: str = gin.REQUIRED,
  train: Sequence[Mapping[str, Any]] = gin.REQUIRED,
  test: Sequence[Mapping[str, Any]] = gin.REQUIRED,
  common_gin_files: Sequence[str] = (),
  common_gin_bindings: Sequence[str] = (),
) -> TaskSet:
  """A task set, as a gin file under lr_controller/gin_configs/tasks/ binds it.

  Args:
    name: the task set's name.
    train: training settings, each a dict {'name': str, 'gin_files': [...],
      'gin_bindings': [...]}; the first is the source of `transfer`.
    test: held-out settings, in the same form.
    common_gin_files: files applied before every setting's own files.
    common_gin_bindings: bindings applied before every setting's own.

  Returns:
    The `TaskSet`.

  Raises:
    UserError: for a malformed entry or an empty list.
  """
  settings = {}
  for part, entries in (("train", train), ("test", test)):
    if isinstance(entries, str | Mapping) or not isinstance(entries, Sequence):
      raise UserError(f"task_set.{part} must be a list of settings")
    if not entries:
      raise UserError(f"task_set.{part} must name at least one setting")
    settings[part] = tuple(
      _setting(f"task_set.{part}[{i}]", entry) for i, entry in enumerate(entries)
    )
  return TaskSet(
    name=str(name),
    train=settings["train"],
    test=settings["test"],
    gin_files=_strings("task_set.common_gin_files", common_gin_files),
    gin_bindings=_strings("task_set.common_gin_bindings", common_gin_bindings),
  )


def load_task_set(path: str) -> TaskSet:
  """Reads a task-set gin file (e.g. `tasks/digits_transfer.gin`); clears gin.

  Raises:
    UserError: for a missing or malformed file.
  """
  gin_utils.parse_gin([path], finalize=False)
  try:
    return task_set()
  except (TypeError, ValueError) as e:
    if isinstance(e, UserError):
      raise
    first = first_line(e)
    raise UserError(f"{path} does not define a task set: {first}") from None
  finally:
    gin.clear_config()


def apply_setting(
  setting: Setting,
  tasks: TaskSet | None = None,
  extra_gin_files: Sequence[str] = (),
  extra_gin_bindings: Sequence[str] = (),
) -> list[str]:
  """Makes `setting` the gin configuration (clears what was parsed before).

  Files are parsed in the order task-set files, setting files, extra files;
  then bindings in the order task-set bindings, setting bindings, extra
  bindings (a later one wins). Extra files such as smoke.gin shrink every
  setting; extra bindings have the last word.

  Returns:
    The resolved gin file paths.
  """
  common_files = tasks.gin_files if tasks else ()
  common_bindings = tasks.gin_bindings if tasks else ()
  return gin_utils.parse_gin(
    [*common_files, *setting.gin_files, *extra_gin_files],
    [*common_bindings, *setting.gin_bindings, *extra_gin_bindings],
    finalize=False,
  )


# ---------------------------------------------------------------------------
# Seeds, checks, the policy.


def _int_at_least(what: str, value: Any, minimum: int) -> int:
  if (
    isinstance(value, bool)
    or not isinstance(value, numbers.Real)
    or not float(value).is_integer()
    or int(value) < minimum
  ):
    raise UserError(f"{what} must be an integer >= {minimum}, got {value!r}")
  return int(value)


def evaluation_seeds(seed: int, num_runs: int) -> list[int]:
  """The trainee seeds of the `num_runs` evaluation runs (see the module docstring).

  Raises:
    UserError: for a negative seed, fewer than one run, or seeds past 2**32 - 1.
  """
  seed = _int_at_least("seed", seed, 0)
  num_runs = _int_at_least("num_runs", num_runs, 1)
  first = seed * SEED_STRIDE + EVAL_SEED_OFFSET
  if first + num_runs - 1 > _MAX_SEED:
    raise UserError(f"seed {seed} is too large for 32-bit trainee seeds")
  return [first + i for i in range(num_runs)]


def check_peers(peers: Sequence[str]) -> tuple[str, ...]:
  """`peers` as a tuple without repeats; UserError for an unknown name."""
  if isinstance(peers, str) or not isinstance(peers, Sequence):
    raise UserError(f"peers must be a list of names, got {peers!r}")
  unknown = [p for p in peers if p not in adaptive_peers.PEER_NAMES]
  if unknown:
    raise UserError(
      f"unknown peer(s) {', '.join(map(str, unknown))}; known peers: "
      f"{', '.join(adaptive_peers.PEER_NAMES)}"
    )
  return tuple(dict.fromkeys(peers))


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
  """Raises UserError unless `env` observes and acts as the policy was trained to."""
  if list(env.feature_names) != list(metadata["features"]):
    raise UserError(
      f"the controller observes features {list(metadata['features'])} but the "
      f"environment gives {list(env.feature_names)}: set "
      "create_environment.feature_names to the controller's"
    )
  if env.action_interval != int(metadata["action_interval"]):
    raise UserError(
      f"the controller acts every {metadata['action_interval']} steps but the "
      f"environment every {env.action_interval}: set "
      "create_environment.action_interval to the controller's"
    )
  # The environment applies its own bounds; they must be the policy's, which
  # the callback applies, so that evaluation measures what users get.
  for name, ours in (
    ("max_log_factor", env.max_log_factor),
    ("min_learning_rate", env.min_learning_rate),
    ("max_learning_rate", env.max_learning_rate),
  ):
    theirs = metadata.get(name)
    if theirs is not None and not math.isclose(float(theirs), ours, rel_tol=1e-6):
      raise UserError(
        f"the controller was trained with {name} {theirs} but the environment "
        f"has {ours}: configure create_environment as the controller was"
      )


def make_environment(
  metadata: dict,
  seed: int = 0,
  trainee_fn: Callable[..., Any] | None = None,
) -> env_lib.LearningRateControlEnv:
  """The gin-configured environment, checked against the policy's metadata.

  The trainee is not built here (`trainee_fn` is called on the first reset).
  """
  kwargs = {} if trainee_fn is None else {"trainee_fn": trainee_fn}
  # An exported policy answers with log factors, whatever head it was trained
  # with (a discrete head's choice is mapped in the export), so the
  # environment takes log factors here.
  env = env_lib.create_environment(
    seed=seed, evaluate_test=True, action_levels=None, **kwargs
  )
  check_policy_matches(env, metadata)
  return env


# ---------------------------------------------------------------------------
# One run of each kind, as one record.


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
) -> dict:
  """One run of a step-decay setting (lr0, discount_step, factor) from `seed`."""
  lr0 = float(setting["initial_learning_rate"])
  trainee.reset(seed, lr0, schedule=baseline_search.step_decay(setting, num_steps))
  result = trainee_lib.run_training(
    trainee, num_steps=num_steps, eval_interval=eval_interval, evaluate_test=True
  )
  return _from_training(result, seed, lr0)


def run_peer(
  name: str,
  trainee: trainee_lib.Trainee,
  initial_learning_rate: float,
  seed: int,
  num_steps: int,
  eval_interval: int,
) -> dict:
  """One run of peer `name` (see `adaptive_peers.run_peer`) from `seed`."""
  result = adaptive_peers.run_peer(
    name,
    trainee,
    initial_learning_rate=initial_learning_rate,
    num_steps=num_steps,
    eval_interval=eval_interval,
    seed=seed,
    evaluate_test=True,
  )
  return _from_training(result, seed, initial_learning_rate)


# ---------------------------------------------------------------------------
# Statistics.


def finite_values(runs: Sequence[dict], metric: str) -> list[float]:
  """`metric` of the runs that have a finite value (diverged-early runs have none)."""
  return [
    float(r[metric])
    for r in runs
    if r.get(metric) is not None and math.isfinite(r[metric])
  ]


def t_test(values: Sequence[float], baseline_values: Sequence[float]) -> dict:
  """Student's two-sample t-test (equal variances, two-sided) of values vs baseline.

  Returns:
    `t` and `p` (None with fewer than two values on a side, or when both sides
    are constant), `significant` (p < ALPHA), and the sample sizes.
  """
  out = {"t": None, "p": None, "significant": False}
  if len(values) >= 2 and len(baseline_values) >= 2:
    result = scipy.stats.ttest_ind(values, baseline_values, equal_var=True)
    t, p = float(result.statistic), float(result.pvalue)
    if math.isfinite(t) and math.isfinite(p):
      out = {"t": t, "p": p, "significant": p < ALPHA}
  return {**out, "n": len(values), "n_baseline": len(baseline_values)}


def summarize_method(
  name: str,
  kind: str,
  runs: Sequence[dict],
  baseline_runs: Sequence[dict] | None,
  **info: Any,
) -> dict:
  """A method's record: its runs, mean/std of each metric, its t-tests.

  Args:
    name: the method's name.
    kind: "baseline", "controller" or "peer".
    runs: its run records.
    baseline_runs: the baseline's runs (None for the baseline itself).
    **info: extra fields (e.g. `initial_learning_rate`).
  """
  record = {
    "name": name,
    "kind": kind,
    **info,
    "seeds": [r["seed"] for r in runs],
    "n": len(finite_values(runs, "test_loss")),
    **baseline_search.summarize(runs),
  }
  record["vs_baseline"] = (
    None
    if baseline_runs is None
    else {
      metric: t_test(finite_values(runs, metric), finite_values(baseline_runs, metric))
      for metric in METRICS
    }
  )
  record["runs"] = list(runs)
  return record


# ---------------------------------------------------------------------------
# The protocol.


def _value(value: float | None) -> str:
  return "none" if value is None else f"{value:.4f}"


def _bound(name: str, default: Any) -> Any:
  """The gin-bound value of `configurable.parameter`, else `default`."""
  try:
    return gin.query_parameter(name)
  except ValueError:
    return default


def describe_setting(env: env_lib.LearningRateControlEnv, trainee: Any) -> dict:
  """What the current gin configuration trains: data, model, optimizer, sizes."""
  batch = trainee.data.train.element_spec[0].shape[0]
  rates = _bound("create_environment.initial_learning_rates", [0.01])
  if not isinstance(rates, Sequence) or not all(
    isinstance(r, numbers.Real) for r in rates
  ):
    rates = []  # A gin macro or reference: not resolvable here.
  return {
    "data": trainee.data.name,
    "model": str(_bound("build_trainee.model_name", "lenet")),
    "optimizer": type(trainee.optimizer).__name__.lower(),
    "batch_size": None if batch is None else int(batch),
    "num_steps": env.num_steps,
    "controller_initial_learning_rates": [float(r) for r in rates],
  }


def _eval_interval(eval_interval: int | None, env: env_lib.LearningRateControlEnv):
  if eval_interval is None:
    return env.action_interval
  return _int_at_least("eval_interval", eval_interval, 1)


def run_baseline_search(
  root_dir: str,
  baseline_search_path: str | None,
  seed: int,
  num_steps: int,
  say: Callable[[str], None] = print,
) -> dict:
  """The best step-decay setting: read from `baseline_search_path`, else searched.

  Without a path the gin-configured grid of `search_step_decay` is run into
  `root_dir/baseline_search/` (resumed if it is there) with `num_steps` steps
  and the selection seed `seed`.

  Returns:
    `setting` (initial_learning_rate, discount_step, factor), `best_val_loss`,
    `search` (the search.json path) and the search's `grid`.

  Raises:
    UserError: for a missing, malformed or unfinished search file.
  """
  if baseline_search_path is None:
    search_dir = os.path.join(root_dir, constants.BASELINE_SEARCH_DIR)
    os.makedirs(search_dir, exist_ok=True)
    say(f"searching the step-decay baseline into {search_dir}")
    record = baseline_search.search_step_decay(
      search_dir, seed=seed, num_steps=num_steps, num_repeats=0, say=say
    )
    path = os.path.join(search_dir, constants.SEARCH_JSON)
  else:
    path = baseline_search_path
    if os.path.isdir(path):
      path = os.path.join(path, constants.SEARCH_JSON)
    if not os.path.isfile(path):
      raise UserError(
        f"baseline search {path} not found (expected the search.json of search_baseline)"
      )
    try:
      record = io_utils.read_json(path)
    except (OSError, ValueError) as e:
      raise UserError(f"cannot read baseline search {path}: {e}") from None
    if not isinstance(record, dict) or not isinstance(record.get("runs"), list):
      raise UserError(f"{path} is not a step-decay search (no runs)")
    if not record.get("best"):
      raise UserError(
        f"the search in {path} is unfinished: run search_baseline again to complete it"
      )
  best = record["best"]
  keys = ("initial_learning_rate", "discount_step", "factor")
  if not isinstance(best, dict) or any(k not in best for k in keys):
    raise UserError(f"the best run in {path} lacks {', '.join(keys)}")
  grid = record.get("grid") or {}
  if grid.get("num_steps") not in (None, num_steps):
    say(
      f"note: the baseline was searched with {grid['num_steps']} steps per run; "
      f"it is evaluated with {num_steps}"
    )
  runs = record["runs"]
  return {
    "setting": {k: best[k] for k in keys},
    "best_val_loss": best.get("best_val_loss"),
    "search": os.path.abspath(path),
    "grid": grid,
    "cost": costs.runs_cost(
      runs, f"{len(runs)}-run grid search", grid.get("num_steps") or num_steps
    ),
  }


def tune_peers(
  peers: Sequence[str],
  learning_rates: Sequence[float],
  num_steps: int,
  eval_interval: int,
  seed: int,
  say: Callable[[str], None] = print,
  label: str = "",
) -> dict[str, dict]:
  """Each peer's initial learning rate, chosen by best validation loss.

  Uses `adaptive_peers.search_peer_learning_rate` with the selection seed
  `seed`, each peer on its own `build_evaluation_trainee(seed)`, so a peer's
  choice does not depend on which other peers are searched before it.

  Returns:
    name -> {`initial_learning_rate`, `candidates`, `search_runs` (rate, best
    validation loss, diverged, steps and seconds per candidate), `cost`}.
  """
  if not peers:
    return {}
  candidates = [trainee_lib.check_learning_rate(lr) for lr in learning_rates]
  if not candidates:
    raise UserError("peer_learning_rates must not be empty")
  tuned = {}
  for name in peers:
    start = time.perf_counter()
    best, runs = adaptive_peers.search_peer_learning_rate(
      name,
      build_evaluation_trainee(seed),
      candidates,
      num_steps,
      eval_interval=eval_interval,
      seed=seed,
    )
    search_runs = [
      {
        "initial_learning_rate": r["initial_learning_rate"],
        "best_val_loss": r["best_val_loss"],
        "diverged": r["diverged"],
        "steps_done": r.get("steps_done"),
        "trial_steps": int(r.get("trial_steps") or 0),
        "seconds": r.get("seconds"),
      }
      for r in runs
    ]
    chosen = next(r for r in search_runs if r["initial_learning_rate"] == best)
    tuned[name] = {
      "initial_learning_rate": best,
      "candidates": candidates,
      "search_runs": search_runs,
      "cost": costs.runs_cost(search_runs, f"{len(candidates)}-rate search", num_steps),
    }
    say(
      f"{label}{name}: initial learning rate {best:g} of {len(candidates)} "
      f"(best val loss {_value(chosen['best_val_loss'])})  "
      f"{time.perf_counter() - start:.1f}s"
    )
  return tuned


def build_evaluation_trainee(seed: int) -> trainee_lib.Trainee:
  """A gin-configured trainee: one per evaluated method.

  A trainee's run is a function of its seed (weights and batch order, see
  `Trainee.reset`), so every method evaluated from the same seed trains on the
  same initial weights and mini-batches, whatever ran before.
  """
  return trainee_lib.build_trainee(seed=seed)


def evaluate_setting(
  setting: Setting,
  policy: Any,
  metadata: dict,
  baseline: dict,
  peers: Mapping[str, dict],
  seeds: Sequence[int],
  eval_interval: int | None = None,
  say: Callable[[str], None] = print,
) -> dict:
  """Runs the baseline, the controller and the peers on the gin-configured setting.

  Args:
    setting: the setting's label and gin (already applied; recorded only).
    policy: the loaded controller (`load_policy`).
    metadata: its metadata.
    baseline: `run_baseline_search`'s result.
    peers: `tune_peers`' result.
    seeds: the evaluation seeds, the same for every method.
    eval_interval: steps between validations of every method; None: the
      controller's decision interval.
    say: progress printer.

  Returns:
    The setting's record (see `report`): `name`, `description`, `seeds`,
    `num_steps`, `eval_interval`, `baseline_schedule` (the baseline's rate at
    every step) and `methods` (baseline first, then controller, then peers).
  """

  def new_trainee(seed: int | None = None) -> trainee_lib.Trainee:
    del seed  # Every run resets the trainee to its own seed.
    return build_evaluation_trainee(seeds[0])

  # The environment builds the controller's trainee on its first episode.
  env = make_environment(metadata, trainee_fn=new_trainee)  # Every run is seeded.
  num_steps = env.num_steps
  eval_interval = _eval_interval(eval_interval, env)
  baseline_trainee = new_trainee()
  description = describe_setting(env, baseline_trainee)
  name = setting.name or "/".join(
    description[k] for k in ("data", "model", "optimizer")
  )
  label = f"[{name}] "
  start = time.perf_counter()

  def repeat(method: str, run_one: Callable[[int], dict]) -> list[dict]:
    runs = []
    for k, s in enumerate(seeds, start=1):
      run = run_one(s)
      runs.append(run)
      diverged = "  (diverged)" if run["diverged"] else ""
      say(
        f"{label}{method} seed {k}/{len(seeds)} ({s}): test loss "
        f"{_value(run['test_loss'])}  accuracy {_value(run['test_accuracy'])}"
        f"{diverged}  {run['seconds']:.1f}s  (elapsed "
        f"{io_utils.format_seconds(time.perf_counter() - start)})"
      )
    return runs

  best = baseline["setting"]
  baseline_runs = repeat(
    BASELINE,
    lambda s: run_step_decay(baseline_trainee, best, s, num_steps, eval_interval),
  )
  baseline_trainee = None  # Frees its cached data before the next method's.
  methods = [
    summarize_method(
      BASELINE,
      "baseline",
      baseline_runs,
      None,
      initial_learning_rate=float(best["initial_learning_rate"]),
      schedule=dict(best),
      cost=_cost(baseline.get("cost"), baseline_runs),
    )
  ]
  controller_runs = repeat(CONTROLLER, lambda s: run_controller(env, policy, s))
  env = None  # Frees the controller's trainee before the peers'.
  methods.append(
    summarize_method(
      CONTROLLER,
      "controller",
      controller_runs,
      baseline_runs,
      initial_learning_rate=sorted(
        {r["initial_learning_rate"] for r in controller_runs}
      ),
      cost=_cost(_controller_training_cost(policy, metadata), controller_runs),
    )
  )
  for peer, tuned in peers.items():
    lr = tuned["initial_learning_rate"]
    peer_trainee = new_trainee()
    runs = repeat(
      peer,
      lambda s, t=peer_trainee, p=peer, lr=lr: run_peer(
        p, t, lr, s, num_steps, eval_interval
      ),
    )
    methods.append(
      summarize_method(
        peer,
        "peer",
        runs,
        baseline_runs,
        initial_learning_rate=lr,
        cost=_cost(tuned.get("cost"), runs),
      )
    )
  baseline_schedule = schedules.schedule_values(
    baseline_search.step_decay(best, num_steps), num_steps
  )
  return {
    "name": name,
    "gin_files": list(setting.gin_files),
    "gin_bindings": list(setting.gin_bindings),
    "description": description,
    "num_steps": num_steps,
    "eval_interval": eval_interval,
    "seeds": [int(s) for s in seeds],
    "baseline_schedule": [float(v) for v in baseline_schedule],
    "methods": methods,
    "seconds": round(time.perf_counter() - start, 3),
  }


def _cost(setup: dict | None, runs: Sequence[dict]) -> dict:
  """A method's cost record (see `costs`): its one-time setup and one run."""
  return {"setup": setup, "per_run": costs.per_run_cost(runs)}


def _controller_training_cost(policy: Any, metadata: dict) -> dict | None:
  """The controller's training cost from its run's logs; None without them.

  The policy directory is ROOT/policies/<name> of a `train_controller` run.
  Finding `greedy_policy` took the whole run (every episode and selection,
  also those after the chosen policy's export); `greedy_policy_NNNNNN`, what
  a run stopped after episode NNNNNN chose, took the run up to there; any
  other policy, the run up to its export (its metadata's `episodes`).
  """
  path = os.path.abspath(policy.path)
  root = os.path.dirname(os.path.dirname(path))
  if not os.path.isfile(os.path.join(root, constants.EPISODES_JSONL)):
    return None
  name = os.path.basename(path)
  stopped = name.removeprefix(constants.GREEDY_POLICY_DIR + "_")
  if name == constants.GREEDY_POLICY_DIR:
    episodes = math.inf
  elif stopped != name and stopped.isdigit():
    episodes = int(stopped)
  else:
    episodes = metadata.get("episodes")
    if not isinstance(episodes, int):
      return None
  return costs.controller_training_cost(root, episodes)


def _protocol(seed: int, num_runs: int, seeds: Sequence[int], peers) -> dict:
  return {
    "num_runs": num_runs,
    "seed": seed,
    "seeds": list(seeds),
    "eval_seed_offset": EVAL_SEED_OFFSET,
    "seed_rule": (
      f"run i uses trainee seed seed * {SEED_STRIDE} + {EVAL_SEED_OFFSET} + i; "
      f"controller training episode k uses seed * {SEED_STRIDE} + k"
    ),
    "selection_seed": seed,
    "checkpoint": "best validation loss, evaluated once on the test split",
    "statistics": "mean and sample standard deviation (ddof=1) over runs with a "
    "finite test result",
    "test": "scipy.stats.ttest_ind(method, baseline, equal_var=True): Student's "
    "independent two-sample t-test, two-sided",
    "alpha": ALPHA,
    "peers": list(peers),
  }


def _check_common(
  seed: int, num_runs: int, peers: Sequence[str]
) -> tuple[list[int], tuple[str, ...]]:
  seeds = evaluation_seeds(seed, num_runs)
  return seeds, check_peers(peers)


@gin.configurable
def evaluate(
  root_dir: str,
  policy_dir: str,
  seed: int = 0,
  num_runs: int = 10,
  baseline_search_path: str | None = None,
  peers: Sequence[str] = DEFAULT_PEERS,
  peer_learning_rates: Sequence[float] = DEFAULT_PEER_LEARNING_RATES,
  eval_interval: int | None = None,
  setting: Setting | None = None,
  say: Callable[[str], None] = print,
) -> dict:
  """The paper's Table 1 protocol on the gin-configured setting (module docstring).

  Args:
    root_dir: output directory (exists).
    policy_dir: the exported controller (ROOT/policies/greedy_policy of
      train_controller).
    seed: selects the evaluation seeds (`evaluation_seeds`) and is the
      selection seed of the baseline and peer searches.
    num_runs: runs per method (paper: 10).
    baseline_search_path: a search.json (or its directory) of search_baseline
      to reuse; None runs the search into ROOT/baseline_search/.
    peers: names of `adaptive_peers.PEER_NAMES` to compare too (() for none).
    peer_learning_rates: candidate initial learning rates of each peer.
    eval_interval: steps between validations; None: the controller's decision
      interval (every method is validated equally often).
    setting: the setting's label and gin, for the report; None names it after
      its data, model and optimizer.
    say: progress printer.

  Returns:
    The results (also in ROOT/results.json); `report_files` lists the written
    report, tables and figures.

  Raises:
    UserError: for a bad argument, policy or baseline search, or a policy whose
      features or decision interval differ from the environment's.
  """
  start = time.perf_counter()
  seeds, peers = _check_common(seed, num_runs, peers)
  policy, metadata = load_policy(policy_dir)
  env = make_environment(metadata, seed)  # Checks the policy before any training.
  num_steps = env.num_steps
  interval = _eval_interval(eval_interval, env)
  say(
    f"evaluating {policy_dir} ({metadata.get('episodes', '?')} training episodes): "
    f"{num_runs} runs per method, seeds {seeds[0]}..{seeds[-1]}"
  )
  baseline = run_baseline_search(root_dir, baseline_search_path, seed, num_steps, say)
  tuned = tune_peers(peers, peer_learning_rates, num_steps, interval, seed, say)
  record = evaluate_setting(
    setting or Setting(name=""),
    policy,
    metadata,
    baseline,
    tuned,
    seeds,
    eval_interval=interval,
    say=say,
  )
  baseline["tuned_on"] = record["name"]
  for tuning in tuned.values():
    tuning["tuned_on"] = record["name"]
  results = {
    "format": RESULTS_FORMAT,
    "mode": "evaluate",
    "policy": {"dir": os.path.abspath(policy_dir), "metadata": metadata},
    "protocol": _protocol(seed, num_runs, seeds, peers),
    "baseline": baseline,
    "peers": tuned,
    "settings": [record],
    "seconds": round(time.perf_counter() - start, 3),
  }
  return _write(root_dir, results, say)


@gin.configurable
def transfer(
  root_dir: str,
  policy_dir: str,
  task_set_path: str,
  extra_gin_files: Sequence[str] = (),
  extra_gin_bindings: Sequence[str] = (),
  seed: int = 0,
  num_runs: int = 10,
  baseline_search_path: str | None = None,
  peers: Sequence[str] = DEFAULT_PEERS,
  peer_learning_rates: Sequence[float] = DEFAULT_PEER_LEARNING_RATES,
  eval_interval: int | None = None,
  evaluate_source: bool = False,
  say: Callable[[str], None] = print,
) -> dict:
  """The paper's Table 2: a controller applied, without retraining, to held-out settings.

  The source is the task set's first training setting: the step-decay baseline
  (searched into ROOT/baseline_search/ unless `baseline_search_path` is given)
  and the peers' learning rates are tuned there, then applied unchanged to
  every held-out setting together with the controller. Each setting is applied
  with `apply_setting` (gin is re-parsed); ROOT/operative_config.gin holds one
  section per setting.

  Args:
    root_dir: output directory (exists).
    policy_dir: the exported controller, trained on the source setting.
    task_set_path: a task-set gin file (e.g. `tasks/digits_transfer.gin`).
    extra_gin_files: applied after every setting's files (e.g. smoke.gin).
    extra_gin_bindings: applied after every setting's bindings.
    seed, num_runs, peers, peer_learning_rates, eval_interval, say: as for
      `evaluate`.
    baseline_search_path: the SOURCE setting's search.json to reuse.
    evaluate_source: also evaluate on the source setting itself (Table 1).

  Returns:
    The results (also in ROOT/results.json), one entry per evaluated setting.

  Raises:
    UserError: as `evaluate`, or for a malformed task set.
  """
  start = time.perf_counter()
  seeds, peers = _check_common(seed, num_runs, peers)
  policy, metadata = load_policy(policy_dir)
  tasks = load_task_set(task_set_path)
  source = tasks.train[0]
  targets = [source, *tasks.test] if evaluate_source else list(tasks.test)
  # Check every setting's environment before any training.
  for target in [source, *targets]:
    apply_setting(target, tasks, extra_gin_files, extra_gin_bindings)
    make_environment(metadata, seed)
  apply_setting(source, tasks, extra_gin_files, extra_gin_bindings)
  env = make_environment(metadata, seed)
  interval = _eval_interval(eval_interval, env)
  say(
    f"transfer ({tasks.name}): {policy_dir} from {source.name} to "
    f"{', '.join(t.name for t in targets)}; {num_runs} runs per method"
  )
  label = f"[{source.name}] "
  baseline = run_baseline_search(
    root_dir, baseline_search_path, seed, env.num_steps, say
  )
  baseline["tuned_on"] = source.name
  tuned = tune_peers(
    peers, peer_learning_rates, env.num_steps, interval, seed, say, label=label
  )
  operative = [f"# ==== source {source.name}\n{gin.operative_config_str()}"]
  for tuning in tuned.values():
    tuning["tuned_on"] = source.name
  records = []
  for target in targets:
    apply_setting(target, tasks, extra_gin_files, extra_gin_bindings)
    records.append(
      evaluate_setting(
        target,
        policy,
        metadata,
        baseline,
        tuned,
        seeds,
        eval_interval=interval,
        say=say,
      )
    )
    operative.append(f"# ==== setting {target.name}\n{gin.operative_config_str()}")
  with open(os.path.join(root_dir, constants.OPERATIVE_GIN), "w") as f:
    f.write("\n".join(operative))
  results = {
    "format": RESULTS_FORMAT,
    "mode": "transfer",
    "task_set": {
      "name": tasks.name,
      "path": os.path.abspath(gin_utils.resolve_gin_file(task_set_path)),
      "source": source.name,
      "train": [s.name for s in tasks.train],
      "test": [s.name for s in tasks.test],
    },
    "policy": {"dir": os.path.abspath(policy_dir), "metadata": metadata},
    "protocol": _protocol(seed, num_runs, seeds, peers),
    "baseline": baseline,
    "peers": tuned,
    "settings": records,
    "seconds": round(time.perf_counter() - start, 3),
  }
  return _write(root_dir, results, say)


def _write(root_dir: str, results: dict, say: Callable[[str], None]) -> dict:
  io_utils.write_json(os.path.join(root_dir, constants.RESULTS_JSON), results)
  files = report.write_report(root_dir, results)
  results["report_files"] = files
  say(f"evaluation done in {io_utils.format_seconds(results['seconds'])}")
  return results
