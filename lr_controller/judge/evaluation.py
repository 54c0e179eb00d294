"""Judges a learned controller as the paper does (Xu et al. 2019, Sec. 4, Tables 1, 2).

The protocol of one setting (the gin-configured data, model, optimizer and
number of steps):

* The baseline is the paper's hand-tuned one: the best step-decay schedule of
  `baseline_search.search_step_decay`'s grid, chosen by validation loss (run
  into `ROOT/baseline_search/`, or read from a given `search.json`).
* The learned controller is the exported greedy policy (`export.py`), loaded
  with `tf.saved_model.load` alone and run in the gin-configured
  `env.create_environment` with the policy's features, decision interval and
  bounds (from its metadata, whatever gin binds for them).
* `controller_replay` (`replay`): the controller's own mean rate path played
  back open-loop on the same seeds, and the spread of its rate paths across
  runs (`rate_path_spread` of the controller's record): does it adapt, or
  act as one fixed schedule?
* Beyond the paper, peers of `adaptive_peers` (cosine, OneCycle,
  ReduceLROnPlateau, hypergradient descent, ...) each at the initial learning
  rate of a small search on validation loss.
* Optionally (`untuned_schedules`), what a user runs without any tuning:
  fixed schedules of `schedules.build_schedule` (say "constant" and "cosine")
  from the very initial learning rate the controller starts each run at,
  named `untuned_<schedule>`, kind "untuned", at no search cost.
* Every method is run `num_runs` times (paper: 10) with the SAME trainee seeds
  `evaluation_seeds(seed, num_runs)`; each run validates every `eval_interval`
  steps, keeps the best-validation weights and tests those once.
* Per method: mean and sample standard deviation (ddof=1) of the test loss and
  accuracy, and an independent two-sample t-test against the baseline
  (`scipy.stats.ttest_ind`, equal_var=True, two-sided: Student's t-test);
  p < 0.05 is marked with an asterisk, as in the paper's Table 1. Beside it,
  the paired t-test over the shared seeds (`comparison.paired_t_test`).

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

Outputs (see `lr_controller.judge.report`): ROOT/report.md, results.json,
results.csv, figure1_val_loss.png, figure2_lr_schedules.png.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gin
import tensorflow as tf

from lr_controller import checks, constants, gin_utils, io_utils, presets
from lr_controller.control import env as env_lib
from lr_controller.errors import UserError
from lr_controller.judge import adaptive_peers, baseline_search, costs, replay, report
from lr_controller.judge.comparison import ALPHA, METRICS, compare, summarize_method
from lr_controller.judge.method_runs import (
  load_policy,
  make_environment,
  run_controller,
  run_peer,
  run_schedule,
  run_step_decay,
)
from lr_controller.judge.task_sets import Setting, apply_setting, load_task_set
from lr_controller.trainee import schedules
from lr_controller.trainee import trainee as trainee_lib

RESULTS_FORMAT = "lr_controller.judge.evaluation/1"

# Evaluation run i of seed s uses trainee seed s * SEED_STRIDE + EVAL_SEED_OFFSET + i
# (see the module docstring): SEED_STRIDE is env.episode_seed's stride.
SEED_STRIDE = env_lib.SEED_STRIDE
EVAL_SEED_OFFSET = 500_000
_MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit.

# Method names of the baseline and the controller in tables and results.
BASELINE = "step_decay"
CONTROLLER = "controller"

DEFAULT_PEERS = adaptive_peers.PEER_NAMES
# Prefix of the untuned schedules' method names (`untuned_cosine`).
UNTUNED_PREFIX = "untuned_"
# Candidate initial (or peak) learning rates of each peer's search.
DEFAULT_PEER_LEARNING_RATES = (0.3, 0.1, 0.03, 0.01, 0.003)


# ---------------------------------------------------------------------------
# Seeds, checks, the policy.


def evaluation_seeds(seed: int, num_runs: int) -> list[int]:
  """The trainee seeds of the `num_runs` evaluation runs (see the module docstring).

  Raises:
    UserError: for a negative seed, fewer than one run, or seeds past 2**32 - 1.
  """
  seed = checks.integer("seed", seed, 0)
  num_runs = checks.integer("num_runs", num_runs, 1)
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


def check_untuned_schedules(names: Sequence[str]) -> tuple[str, ...]:
  """`names` as a tuple without repeats; UserError for a name no schedule has."""
  if isinstance(names, str) or not isinstance(names, Sequence):
    raise UserError(f"untuned_schedules must be a list of names, got {names!r}")
  unknown = [n for n in names if n not in schedules.SCHEDULES]
  if unknown:
    raise UserError(
      f"unknown untuned schedule(s) {', '.join(map(str, unknown))}; known: "
      f"{', '.join(schedules.SCHEDULES)}"
    )
  return tuple(dict.fromkeys(names))


# ---------------------------------------------------------------------------
# The protocol.


def _value(value: float | None) -> str:
  return "none" if value is None else f"{value:.4f}"


def describe_setting(env: env_lib.LearningRateControlEnv, trainee: Any) -> dict:
  """What the current gin configuration trains: data, model, optimizer, sizes."""
  rates = gin_utils.bound_value("create_environment.initial_learning_rates", [0.01])
  if not isinstance(rates, Sequence) or not all(
    isinstance(r, numbers.Real) for r in rates
  ):
    rates = []  # A gin reference: not resolvable here (macros are resolved).
  return {
    **trainee.describe(),
    "num_steps": env.num_steps,
    "controller_initial_learning_rates": [float(r) for r in rates],
  }


def _eval_interval(eval_interval: int | None, env: env_lib.LearningRateControlEnv):
  if eval_interval is None:
    return env.action_interval
  return checks.integer("eval_interval", eval_interval, 1)


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
    UserError: for a missing, malformed or unfinished search file, or (when
      searching) a `search_step_decay.num_steps` other than `num_steps` or a
      `search_step_decay.num_repeats` other than 0.
  """
  if baseline_search_path is None:
    search_dir = os.path.join(root_dir, constants.BASELINE_SEARCH_DIR)
    os.makedirs(search_dir, exist_ok=True)
    say(f"searching the step-decay baseline into {search_dir}")
    defaults = inspect.signature(baseline_search.search_step_decay).parameters
    searched = gin_utils.bound_value(
      "search_step_decay.num_steps", defaults["num_steps"].default
    )
    if searched != num_steps:
      raise UserError(
        f"search_step_decay.num_steps ({searched}) differs from the length of "
        f"the evaluated runs, create_environment.num_steps ({num_steps}): bind "
        "both to the same value"
      )
    # The evaluation runs the best setting itself, on its evaluation seeds:
    # the search's repeats (seeds from the selection seed on) would be unused.
    repeats = gin_utils.bound_value(
      "search_step_decay.num_repeats", defaults["num_repeats"].default
    )
    if repeats != 0:
      raise UserError(
        f"search_step_decay.num_repeats ({repeats}) is not used by the "
        "evaluation, which runs the best setting on its own seeds: remove the "
        "binding (search_baseline --num_repeats repeats it)"
      )
    record = baseline_search.search_step_decay(search_dir, seed=seed, say=say)
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


def _evaluation_environment(
  metadata: dict, seed: int = 0, trainee_fn: Callable[..., Any] | None = None
) -> env_lib.LearningRateControlEnv:
  """`make_environment`, refusing a bound `create_environment.trainee_fn` first.

  Every method, the controller's environment included, trains the
  gin-configured Keras trainee (`build_evaluation_trainee`); a bound
  trainee_fn (the noisy quadratic of `controller/noisy_quadratic.gin`) would
  be silently replaced by it.

  Raises:
    UserError: (one line) for such a binding, or from `make_environment`.
  """
  bound = gin_utils.bound_value("create_environment.trainee_fn", None)
  if bound is not None:
    raise UserError(
      f"create_environment.trainee_fn is bound to {bound}, but the evaluation "
      "trains the gin-configured Keras trainee (build_trainee) for every method: "
      "judge on a Keras setting's gin file, without that binding"
    )
  return make_environment(metadata, seed, trainee_fn)


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
  untuned_schedules: Sequence[str] = (),
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
    untuned_schedules: schedule names run from each controller run's own
      initial rate, untuned (`check_untuned_schedules`).

  Returns:
    The setting's record (see `report`): `name`, `description`, `seeds`,
    `num_steps`, `eval_interval`, `baseline_schedule` (the baseline's rate at
    every step) and `methods` (baseline first, then controller, its replay,
    the untuned schedules, then peers).
  """

  def new_trainee(seed: int | None = None) -> trainee_lib.Trainee:
    del seed  # Every run resets the trainee to its own seed.
    return build_evaluation_trainee(seeds[0])

  # The environment builds the controller's trainee on its first episode.
  env = _evaluation_environment(metadata, trainee_fn=new_trainee)  # Runs are seeded.
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
  interval = env.action_interval
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
      rate_path_spread=replay.rate_path_spread(controller_runs),
    )
  )
  # The controller's own mean rate path, open-loop (is it adapting?).
  path = replay.mean_rate_path(controller_runs, -(-num_steps // interval))
  replay_trainee = new_trainee()
  replay_runs = repeat(
    replay.REPLAY,
    lambda s: run_schedule(
      replay_trainee,
      replay.ReplaySchedule(path, interval),
      float(path[0]),
      s,
      num_steps,
      eval_interval,
    ),
  )
  replay_trainee = None
  methods.append(
    summarize_method(
      replay.REPLAY,
      "replay",
      replay_runs,
      baseline_runs,
      initial_learning_rate=float(path[0]),
      vs_controller={
        metric: compare(replay_runs, controller_runs, metric) for metric in METRICS
      },
      cost=_cost(costs.nothing_paid("none: the controller's mean path"), replay_runs),
    )
  )
  # What a user runs untuned: from the rate each controller run started at.
  start_rates = {r["seed"]: float(r["initial_learning_rate"]) for r in controller_runs}
  for schedule in check_untuned_schedules(untuned_schedules):
    untuned_trainee = new_trainee()
    runs = repeat(
      UNTUNED_PREFIX + schedule,
      lambda s, t=untuned_trainee, n=schedule: run_schedule(
        t,
        schedules.build_schedule(n, start_rates[s], num_steps),
        start_rates[s],
        s,
        num_steps,
        eval_interval,
      ),
    )
    methods.append(
      summarize_method(
        UNTUNED_PREFIX + schedule,
        "untuned",
        runs,
        baseline_runs,
        initial_learning_rate=sorted(set(start_rates.values())),
        vs_controller={
          metric: compare(runs, controller_runs, metric) for metric in METRICS
        },
        cost=_cost(costs.nothing_paid("none: untuned"), runs),
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
  _compare_with_best_peer(methods)
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


def _compare_with_best_peer(methods: list[dict]) -> None:
  """Adds `vs_best_peer` to the controller's record: the tuned peer of lowest mean
  test loss, and the controller's t-tests against it (controller minus peer)."""
  controller = next(m for m in methods if m["kind"] == "controller")
  peers = [m for m in methods if m["kind"] == "peer" and m["n"]]
  if not peers:
    return
  best = min(peers, key=lambda m: m["test_loss_mean"])
  controller["vs_best_peer"] = {
    "name": best["name"],
    **{metric: compare(controller["runs"], best["runs"], metric) for metric in METRICS},
  }


def _cost(setup: dict | None, runs: Sequence[dict]) -> dict:
  """A method's cost record (see `costs`): its one-time setup and one run."""
  return {"setup": setup, "per_run": costs.per_run_cost(runs)}


def _controller_training_cost(policy: Any, metadata: dict) -> dict | None:
  """The controller's training cost from its run's logs; None without them.

  A shipped preset (`presets.preset_name`) costs its user nothing.

  The policy directory is ROOT/policies/<name> of a `train_controller` run.
  Finding `greedy_policy` took the whole run (every episode and selection,
  also those after the chosen policy's export); `greedy_policy_NNNNNN`, what
  a run stopped after episode NNNNNN chose, took the run up to there; any
  other policy, the run up to its export (its metadata's `episodes`).
  """
  path = os.path.abspath(policy.path)
  preset = presets.preset_name(path)
  if preset is not None:
    return costs.nothing_paid(f"none: the shipped preset {preset!r}")
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


def _protocol(
  seed: int, num_runs: int, seeds: Sequence[int], peers, untuned_schedules=()
) -> dict:
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
    "divergence": trainee_lib.divergence_rule().describe(),
    "statistics": "mean and sample standard deviation (ddof=1) over runs with a "
    "finite test result",
    "test": "scipy.stats.ttest_ind(method, baseline, equal_var=True): Student's "
    "independent two-sample t-test, two-sided",
    "paired_test": "scipy.stats.ttest_rel(method, baseline) over the trainee "
    "seeds both have a finite value for (vs_baseline[metric]['paired']): the "
    "paired t-test, two-sided",
    "alpha": ALPHA,
    "peers": list(peers),
    "untuned_schedules": list(untuned_schedules),
    "numerics": _numerics(),
  }


def _numerics() -> dict:
  """What sets the runs' floating-point results besides the seeds.

  The same seeds give slightly different runs with another TensorFlow or
  another number of intra-op threads, and a schedule at the edge of
  stability can then end far apart (docs/experiments.md, round 14).
  """
  threads = tf.config.threading.get_intra_op_parallelism_threads() or int(
    os.environ.get("TF_NUM_INTRAOP_THREADS", "0")
  )
  return {
    "tensorflow": tf.__version__,
    "intra_op_threads": threads or f"TensorFlow's default ({os.cpu_count()} cores)",
  }


def _check_common(
  seed: int, num_runs: int, peers: Sequence[str]
) -> tuple[list[int], tuple[str, ...]]:
  seeds = evaluation_seeds(seed, num_runs)
  return seeds, check_peers(peers)


# Run control comes from the caller (the binaries' flags): binding these is a
# gin error.
@gin.configurable(denylist=["root_dir", "policy_dir", "seed", "say", "setting"])
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
  untuned_schedules: Sequence[str] = (),
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
    untuned_schedules: schedules (e.g. "constant", "cosine") also run untuned
      from the controller's initial rate (module docstring).

  Returns:
    The results (also in ROOT/results.json); `report_files` lists the written
    report, tables and figures.

  Raises:
    UserError: for a bad argument, policy or baseline search, or a setting
      that cannot run the policy (`method_runs.make_environment`).
  """
  start = time.perf_counter()
  seeds, peers = _check_common(seed, num_runs, peers)
  untuned_schedules = check_untuned_schedules(untuned_schedules)
  policy, metadata = load_policy(policy_dir)
  env = _evaluation_environment(metadata, seed)  # Checks before any training.
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
    untuned_schedules=untuned_schedules,
  )
  baseline["tuned_on"] = record["name"]
  for tuning in tuned.values():
    tuning["tuned_on"] = record["name"]
  results = {
    "format": RESULTS_FORMAT,
    "mode": "evaluate",
    "policy": {"dir": os.path.abspath(policy_dir), "metadata": metadata},
    "protocol": _protocol(seed, num_runs, seeds, peers, untuned_schedules),
    "baseline": baseline,
    "peers": tuned,
    "settings": [record],
    "seconds": round(time.perf_counter() - start, 3),
  }
  return _write(root_dir, results, say)


@gin.configurable(
  denylist=[
    "root_dir",
    "policy_dir",
    "task_set_path",
    "extra_gin_files",
    "extra_gin_bindings",
    "seed",
    "say",
  ]
)
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
  untuned_schedules: Sequence[str] = (),
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
    seed, num_runs, peers, peer_learning_rates, eval_interval, say,
      untuned_schedules: as for `evaluate` (the untuned schedules start from
      each target's own initial rate).
    baseline_search_path: the SOURCE setting's search.json to reuse.
    evaluate_source: also evaluate on the source setting itself (Table 1).

  Returns:
    The results (also in ROOT/results.json), one entry per evaluated setting.

  Raises:
    UserError: as `evaluate`, or for a malformed task set.
  """
  start = time.perf_counter()
  seeds, peers = _check_common(seed, num_runs, peers)
  untuned_schedules = check_untuned_schedules(untuned_schedules)
  policy, metadata = load_policy(policy_dir)
  tasks = load_task_set(task_set_path)
  source = tasks.train[0]
  targets = [source, *tasks.test] if evaluate_source else list(tasks.test)
  # Check every setting's environment before any training.
  for target in [source, *targets]:
    apply_setting(target, tasks, extra_gin_files, extra_gin_bindings)
    _evaluation_environment(metadata, seed)
  apply_setting(source, tasks, extra_gin_files, extra_gin_bindings)
  env = _evaluation_environment(metadata, seed)
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
  operative = [(f"source {source.name}", gin.operative_config_str())]
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
        untuned_schedules=untuned_schedules,
      )
    )
    operative.append((f"setting {target.name}", gin.operative_config_str()))
  gin_utils.write_operative_config(root_dir, operative)
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
    "protocol": _protocol(seed, num_runs, seeds, peers, untuned_schedules),
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
