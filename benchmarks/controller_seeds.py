r"""Does the learned controller hold across controller seeds? (Table 1 protocol.)

Trains the default digits controller (`controller/digits.gin`, its default
episode count) from each controller seed, then judges each seed's greedy
policy (`policies/greedy_policy`, chosen on validation trainees only) as
`evaluate` does: the same held-out trainee seeds for every method, the
best-validation checkpoint tested once, a two-sided Student t-test against
the step decay chosen by the 48-run grid search, and against the best peer
schedule. The policies a run had after 48 and 96 episodes (the grid search's
own cost, and twice it) are judged the same way.

  python benchmarks/controller_seeds.py                       # seeds 0 1 2, ~40 min on 2 cores
  python benchmarks/controller_seeds.py --seeds=0 --checkpoints=  # one seed, final only
  python benchmarks/controller_seeds.py --gin_file=controller/mnist1d_mlp.gin \
      --root_dir=runs/seeds_mnist1d_mlp --num_runs=30           # MNIST-1D's MLP

Fine-tuning (`train_controller.warm_start_dir`): with `--source_gin_bindings`,
each seed first trains a source controller on the setting those bindings
make (seed `--source_seed_offset` + seed, the source's default episodes),
and the judged controller starts from its networks, e.g. 48 episodes on
digits/SGD after a controller trained on digits/Adam:

  python benchmarks/controller_seeds.py --root_dir=runs/fine_tune \
      --source_gin_bindings="make_optimizer.name='adam'" \
      --source_gin_bindings="create_environment.initial_learning_rates=[0.001]" \
      --gin_bindings=train_controller.num_episodes=48 --checkpoints=

Transfer (the paper's Table 2): with `--task_set` (repeatable), each seed's
final policy is also applied, without retraining, to each task set's held-out
settings, against the step decay and the peers tuned on its training setting
(tuned once per task set, in the first seed's transfer), and with
`--target_home` against the step decay and best peer tuned on the target
itself (from that setting's own evaluation on the same trainee seeds):

  python benchmarks/controller_seeds.py --task_set=tasks/digits_transfer.gin \
      --task_set=tasks/digits_optimizers.gin
  python benchmarks/controller_seeds.py --task_set=tasks/digits_to_mnist1d.gin \
      --target_home=mnist1d_mlp=runs/seeds_mnist1d_mlp/eval/seed_0_final/results.json

Training runs as `train_controller` subprocesses, `--jobs` at a time, and
resumes: re-running reuses finished training and evaluations. Prints one row
per (episodes, controller seed) and a summary per episode count, then one
table per held-out setting of each `--task_set`; writes ROOT/controller_seeds.json
and ROOT/controller_seeds.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags, logging

flags.DEFINE_string(
  "root_dir", os.path.join("runs", "controller_seeds"), "Output root."
)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Controller seeds.")
flags.DEFINE_list(
  "checkpoints", ["48", "96"], "Earlier episode counts to judge too (exported copies)."
)
flags.DEFINE_integer("num_runs", 10, "Held-out trainee seeds per method.")
flags.DEFINE_integer("jobs", 2, "Controller trainings at once.")
flags.DEFINE_multi_string(
  "gin_file", ["controller/digits.gin"], "Controller setting (repeatable)."
)
flags.DEFINE_multi_string(
  "gin_bindings",
  [],
  "Extra gin bindings of the judged controllers and the evaluation (a source "
  "controller takes --source_gin_bindings alone).",
)
flags.DEFINE_multi_string(
  "source_gin_bindings",
  [],
  "Warm start: bindings of the setting a source controller per seed trains "
  "on first (after --gin_file); none: no warm start.",
)
flags.DEFINE_integer(
  "source_seed_offset", 10, "A source controller's seed: this plus the seed."
)
flags.DEFINE_multi_string(
  "task_set",
  [],
  "Also judge each seed's final policy on this task set's held-out settings "
  "(the paper's Table 2), e.g. tasks/digits_transfer.gin; repeatable.",
)
flags.DEFINE_multi_string(
  "target_home",
  [],
  "SETTING=RESULTS_JSON: a transfer setting's own Table 1 evaluation (e.g. "
  "ROOT/eval/seed_0_final/results.json of a benchmark run on that setting), "
  "whose step decay and best peer, tuned on the target, the transferred "
  "controller is also compared with; repeatable.",
)
FLAGS = flags.FLAGS

# Per data set, a test loss above which a run learned next to nothing: on
# digits the tuned methods reach about 0.1, on MNIST-1D about 1.0 (chance is
# ln 10 = 2.3 on both).
CHANCE_TEST_LOSS = {"lrc_digits": 1.0, "lrc_mnist1d": 2.0, "lrc_mnist1d/shuffled": 2.0}
DEFAULT_CHANCE_TEST_LOSS = 2.0


def _say(text: str) -> None:
  print(text, flush=True)


def _start(seed: int, controller_root: str, bindings: list[str], env: dict):
  """Starts (or resumes) one `train_controller` subprocess; returns (process, log)."""
  os.makedirs(controller_root, exist_ok=True)
  log = open(os.path.join(controller_root, "train.log"), "a")
  command = [
    sys.executable,
    "-m",
    "lr_controller.bin.train_controller",
    f"--root_dir={controller_root}",
    *[f"--gin_file={g}" for g in FLAGS.gin_file],
    f"--seed={seed}",
    *[f"--gin_bindings={b}" for b in bindings],
  ]
  _say(f"training {controller_root} (seed {seed}; log: {log.name})")
  return subprocess.Popen(command, stdout=log, stderr=log, env=env), log


def _train(chains: list[list[tuple[int, str, list[str]]]]) -> None:
  """Runs chains of (seed, root_dir, gin bindings) trainings, `--jobs` chains at once.

  A chain's trainings run one after the other (a source, then the run that
  starts from it).
  """
  pending = [list(chain) for chain in chains if chain]
  running: list[tuple[list, str, subprocess.Popen, object]] = []
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  if FLAGS.jobs > 1:
    env.setdefault("TF_NUM_INTRAOP_THREADS", "1")
  while pending or running:
    while pending and len(running) < FLAGS.jobs:
      chain = pending.pop(0)
      seed, controller_root, bindings = chain.pop(0)
      running.append(
        (chain, controller_root, *_start(seed, controller_root, bindings, env))
      )
    time.sleep(5)
    for item in list(running):
      chain, controller_root, process, log = item
      if process.poll() is None:
        continue
      running.remove(item)
      log.close()
      if process.returncode:
        raise SystemExit(
          f"error: training {controller_root} failed (exit {process.returncode}); "
          f"see {log.name}"
        )
      _say(f"{controller_root} trained")
      if chain:  # Its next training goes first, in the slot just freed.
        pending.insert(0, chain)


def _source_root(root: str, seed: int) -> str:
  """Where the source controller of `seed` trains (with --source_gin_bindings)."""
  return os.path.join(root, f"seed_{seed}", "source")


def _train_all(root: str) -> dict[int, str]:
  """Trains (or resumes) one controller per seed; returns seed -> its root.

  With `--source_gin_bindings`, each seed's source controller first.
  """
  roots = {
    int(s): os.path.join(root, f"seed_{int(s)}", "controller") for s in FLAGS.seeds
  }
  from lr_controller import constants

  for seed, controller_root in roots.items():  # Runs that trained, before resuming.
    if os.path.exists(os.path.join(controller_root, constants.EPISODES_JSONL)):
      _check_warm_start(root, seed, controller_root)
  if FLAGS.source_gin_bindings:
    _check_sources(root)
  chains = []
  for seed, controller_root in roots.items():
    bindings = list(FLAGS.gin_bindings)
    chain = []
    if FLAGS.source_gin_bindings:
      source = _source_root(root, seed)
      chain.append((FLAGS.source_seed_offset + seed, source, FLAGS.source_gin_bindings))
      bindings.append(f"train_controller.warm_start_dir={source!r}")
    chain.append((seed, controller_root, bindings))
    chains.append(chain)
  _train(chains)
  for seed, controller_root in roots.items():
    _check_warm_start(root, seed, controller_root)
  return roots


def _check_sources(root: str) -> None:
  """Records the sources' setting in ROOT/sources.json; exits if it differs."""
  setting = {
    "gin_file": list(FLAGS.gin_file),
    "source_gin_bindings": list(FLAGS.source_gin_bindings),
    "source_seed_offset": FLAGS.source_seed_offset,
  }
  from lr_controller import io_utils

  path = os.path.join(root, "sources.json")
  if not os.path.exists(path):
    io_utils.write_json(path, setting)
  elif io_utils.read_json(path) != setting:
    raise SystemExit(
      f"error: {root} holds source controllers of another setting "
      f"(see {path}): use another --root_dir"
    )


def _check_warm_start(root: str, seed: int, controller_root: str) -> None:
  """Exits if a judged run's warm start is not what the flags ask for.

  A finished run only resumes, so a root reused with other
  `--source_gin_bindings` would judge controllers trained otherwise.
  """
  from lr_controller import constants, io_utils

  path = os.path.join(controller_root, constants.WARM_START_JSON)
  source = io_utils.read_json(path)["source_dir"] if os.path.exists(path) else None
  wanted = (
    os.path.abspath(_source_root(root, seed)) if FLAGS.source_gin_bindings else None
  )
  if source != wanted:
    raise SystemExit(
      f"error: {controller_root} was trained "
      + (f"from {source}" if source else "without a warm start")
      + (
        f", not from {wanted}"
        if wanted
        else ", and no --source_gin_bindings were given"
      )
      + ": use another --root_dir"
    )


def _policies(controller_root: str) -> dict[str, str]:
  """Label -> policy dir: the copies at `--checkpoints` episodes, then the final."""
  from lr_controller import constants

  greedy = os.path.join(
    controller_root, constants.POLICIES_DIR, constants.GREEDY_POLICY_DIR
  )
  out = {}
  for episodes in FLAGS.checkpoints:
    path = constants.policy_copy(greedy, int(episodes))
    if os.path.isdir(path):
      out[str(int(episodes))] = path
  out["final"] = greedy
  return out


def _judged(
  eval_root: str, judge, policy_dir: str, search_path: str | None, peers, **kwargs
) -> dict:
  """`judge` (`evaluation.evaluate` or `.transfer`) into `eval_root`, reused when it ran before.

  Every judgement uses the held-out trainee seeds of evaluation seed 0;
  `peers` None runs the default peers, `search_path` None searches step decay.
  """
  from lr_controller import constants
  from lr_controller.judge import evaluation

  results_path = os.path.join(eval_root, constants.RESULTS_JSON)
  if os.path.exists(results_path):
    with open(results_path) as f:
      return json.load(f)
  os.makedirs(eval_root, exist_ok=True)
  return judge(
    eval_root,
    policy_dir,
    seed=0,
    num_runs=FLAGS.num_runs,
    baseline_search_path=search_path,
    peers=evaluation.DEFAULT_PEERS if peers is None else peers,
    say=lambda _: None,
    **kwargs,
  )


def _evaluate(eval_root: str, policy_dir: str, search_path: str | None, peers) -> dict:
  """Table 1 (`evaluation.evaluate`) of `policy_dir` into `eval_root`."""
  from lr_controller.judge import evaluation

  return _judged(eval_root, evaluation.evaluate, policy_dir, search_path, peers)


def _transfer(
  task_set: str, eval_root: str, policy_dir: str, search_path: str | None, peers
) -> dict:
  """Table 2 (`evaluation.transfer` to `task_set`) of `policy_dir` into `eval_root`."""
  from lr_controller import gin_utils
  from lr_controller.judge import evaluation

  return _judged(
    eval_root,
    evaluation.transfer,
    policy_dir,
    search_path,
    peers,
    task_set_path=gin_utils.resolve_gin_file(task_set),
    extra_gin_bindings=FLAGS.gin_bindings,
  )


def _episodes_spent(controller_root: str) -> int:
  from lr_controller import constants

  with open(os.path.join(controller_root, constants.EPISODES_JSONL)) as f:
    return sum(1 for _ in f)


def _test_losses(method: dict) -> np.ndarray:
  """Test losses [runs with a finite one] of an evaluated method."""
  from lr_controller.judge import comparison

  return np.array(comparison.finite_values(method["runs"], "test_loss"))


def chance_test_loss(data: str) -> float:
  """Test loss above which a run of data set `data` learned next to nothing."""
  return CHANCE_TEST_LOSS.get(data, DEFAULT_CHANCE_TEST_LOSS)


def _compare(
  controller: dict,
  step_decay: dict,
  peer: dict | None,
  data: str,
  **others: dict | None,
) -> dict:
  """A controller's test losses against step decay's, the best peer's and `others`'.

  Student's t-test (the paper's) and the paired one over the shared trainee
  seeds (`comparison.paired_t_test`), each two-sided; keys `p_vs_<label>`,
  `paired_p_vs_<label>` and `better_than_<label>` per compared method.
  """
  from lr_controller.judge import comparison

  losses = _test_losses(controller)
  row = {
    "test_loss": _pair(losses),
    "n": int(len(losses)),
    "at_chance": int(np.sum(losses > chance_test_loss(data)))
    + FLAGS.num_runs
    - int(len(losses)),
  }
  compared = (("step_decay", step_decay), ("best_peer", peer), *others.items())
  for label, other in compared:
    if other is None:
      continue
    test = comparison.compare(controller["runs"], other["runs"], "test_loss")
    row[f"p_vs_{label}"] = test["p"]
    row[f"paired_p_vs_{label}"] = test["paired"]["p"]
    row[f"better_than_{label}"] = bool(losses.mean() < _test_losses(other).mean())
  return row


def _pair(losses: np.ndarray) -> list[float]:
  """[mean, std] (ddof 1) of test losses [runs]."""
  return [float(losses.mean()), float(losses.std(ddof=1))]


def _baselines(methods: list[dict]) -> tuple[dict, dict | None, dict]:
  """Step decay's record, the best peer's, and both summarised as
  {'step_decay', 'best_peer'}.

  The best peer has the lowest mean among the peers with a test loss on every
  run (a run that diverged before its first validation has none, and leaving
  it out would flatter its method); None if no peer has.
  """
  by_name = {m["name"]: m for m in methods}
  peers = {n: _test_losses(m) for n, m in by_name.items() if m["kind"] == "peer"}
  complete = {
    n: losses for n, losses in peers.items() if len(losses) == len(by_name[n]["runs"])
  }
  step_decay = by_name["step_decay"]
  best = min(complete, key=lambda n: complete[n].mean()) if complete else None
  summary = {
    "step_decay": _pair(_test_losses(step_decay)),
    "best_peer": None
    if best is None
    else {"name": best, "test_loss": _pair(complete[best])},
  }
  return step_decay, by_name[best] if best else None, summary


def _controller(setting: dict) -> dict:
  """The setting's controller record."""
  return next(m for m in setting["methods"] if m["kind"] == "controller")


def _transfer_all(root: str, roots: dict[int, str], task_set: str) -> list[dict]:
  """Each seed's final policy on `task_set`'s held-out settings; one entry each."""
  from lr_controller import constants

  first = min(roots)
  # One folder per task set: a finished transfer is reused by its folder.
  stem = os.path.splitext(os.path.basename(task_set))[0]
  first_root = os.path.join(root, "eval", f"seed_{first}_{stem}")
  per_seed = {}
  for seed, controller_root in sorted(roots.items()):
    _say(f"transfer of controller seed {seed} to {task_set}")
    per_seed[seed] = _transfer(
      task_set,
      os.path.join(root, "eval", f"seed_{seed}_{stem}"),
      _policies(controller_root)["final"],
      None
      if seed == first
      else os.path.join(first_root, constants.BASELINE_SEARCH_DIR),
      peers=None if seed == first else (),
    )
  reference = per_seed[first]  # Step decay and the peers ran there.
  out = []
  for index, setting in enumerate(reference["settings"]):
    step_decay, peer, baselines = _baselines(setting["methods"])
    home = _target_home(setting)
    home_methods = {}
    if home is not None:
      home_step_decay, home_peer, home_baselines = _baselines(home["methods"])
      home_methods = {
        "target_step_decay": home_step_decay,
        "target_best_peer": home_peer,
      }
      baselines["target"] = home_baselines
    rows = []
    for seed, results in per_seed.items():
      row = _compare(
        _controller(results["settings"][index]),
        step_decay,
        peer,
        setting["description"]["data"],
        **home_methods,
      )
      rows.append({"controller_seed": seed, **row})
    out.append(
      {
        "task_set": task_set,
        "setting": setting["name"],
        "tuned_on": reference["task_set"]["source"],
        **baselines,
        "rows": rows,
      }
    )
  return out


def _target_home(setting: dict) -> dict | None:
  """The home evaluation of `--target_home` for the transfer setting, if given.

  It holds the step decay and peers tuned on the target itself; it must have
  judged the same trainee seeds, so that paired tests pair the same runs.
  """
  paths = dict(item.split("=", 1) for item in FLAGS.target_home)
  path = paths.get(setting["name"])
  if path is None:
    return None
  with open(path) as f:
    home = json.load(f)["settings"][0]
  if home["seeds"] != setting["seeds"]:
    raise SystemExit(
      f"error: --target_home={setting['name']}={path} judged other trainee seeds "
      "than the transfer: evaluate both with the same --num_runs"
    )
  return home


def main(argv):
  del argv

  from lr_controller import constants, gin_utils

  logging.set_verbosity(logging.WARNING)
  if FLAGS.task_set:  # A bad task set stops the run before any training.
    from lr_controller.errors import UserError
    from lr_controller.judge import task_sets

    for task_set in FLAGS.task_set:
      try:
        task_sets.load_task_set(gin_utils.resolve_gin_file(task_set))
      except UserError as e:
        raise SystemExit(f"error: --task_set={task_set}: {e}") from None
  root = FLAGS.root_dir
  os.makedirs(root, exist_ok=True)
  roots = _train_all(root)
  gin_utils.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings, finalize=False)

  # Step decay and the peers once (from the first seed's final policy); every
  # other evaluation reuses the grid search and runs step decay again.
  first = min(roots)
  _say("evaluating step decay, the peers and the first controller")
  reference = _evaluate(
    os.path.join(root, "eval", f"seed_{first}_final"),
    _policies(roots[first])["final"],
    None,
    peers=None,
  )
  search_path = os.path.join(
    root, "eval", f"seed_{first}_final", constants.BASELINE_SEARCH_DIR
  )
  step_decay, peer, baselines = _baselines(reference["settings"][0]["methods"])
  # Evaluations of an older version did not record it.
  baselines["numerics"] = reference["protocol"].get("numerics")

  rows = []
  for seed, controller_root in sorted(roots.items()):
    for label, policy_dir in _policies(controller_root).items():
      if not os.path.isdir(policy_dir):
        continue
      _say(f"evaluating controller seed {seed} at {label} episodes")
      results = (
        reference
        if (seed, label) == (first, "final")
        else _evaluate(
          os.path.join(root, "eval", f"seed_{seed}_{label}"),
          policy_dir,
          search_path,
          (),
        )
      )
      rows.append(
        {
          "controller_seed": seed,
          # Training episodes spent, and the episode whose policy validation chose.
          "episodes": _episodes_spent(controller_root)
          if label == "final"
          else int(label),
          "chosen_at": int(results["policy"]["metadata"].get("episodes", -1)),
          **_compare(
            _controller(results["settings"][0]),
            step_decay,
            peer,
            results["settings"][0]["description"]["data"],
          ),
        }
      )

  transfer = [
    entry
    for task_set in FLAGS.task_set
    for entry in _transfer_all(root, roots, task_set)
  ]
  table = _table(rows, baselines)
  for entry in transfer:
    table += "\n\n" + _transfer_table(entry)
  _say("")
  _say(table)
  summary = {
    "source_gin_bindings": list(FLAGS.source_gin_bindings),
    **baselines,
    "rows": rows,
    "task_sets": list(FLAGS.task_set),
    "transfer": transfer,
  }
  with open(os.path.join(root, "controller_seeds.json"), "w") as f:
    json.dump(summary, f, indent=2)
  with open(os.path.join(root, "controller_seeds.md"), "w") as f:
    f.write(table + "\n")
  _say(f"\nwritten: {root}/controller_seeds.md, {root}/controller_seeds.json")


def _mean_std(values) -> str:
  """'mean ± std' of a [mean, std] pair."""
  return f"{values[0]:.4f} ± {values[1]:.4f}"


def _p(value: float | None) -> str:
  return "-" if value is None else f"{value:.3g}"


def _comparison_cells(r: dict) -> str:
  """A row's test loss and its comparisons with step decay and the best peer."""
  return (
    f"{_mean_std(r['test_loss'])} | "
    f"{'better' if r['better_than_step_decay'] else 'worse'} | "
    f"{_p(r['p_vs_step_decay'])} | {_p(r.get('paired_p_vs_step_decay'))} | "
    f"{'better' if r.get('better_than_best_peer') else 'worse'} | "
    f"{_p(r.get('p_vs_best_peer'))} | {_p(r.get('paired_p_vs_best_peer'))} | "
    f"{r['at_chance']} |"
  )


def _significant(r: dict, key: str, better: bool) -> bool:
  """Whether row `r` is significantly better (or worse) by test `key` (p < 0.05)."""
  p = r.get(key)
  return (
    p is not None
    and p < 0.05
    and r[key.replace("paired_", "").replace("p_vs_", "better_than_")] == better
  )


def _counts(group: list[dict]) -> str:
  """How many of the rows beat step decay and the best peer, and how surely."""
  n = len(group)
  parts = [
    f"below step decay in {sum(r['better_than_step_decay'] for r in group)}/{n} "
    "seeds, significantly (p < 0.05; Student / paired) in "
    f"{sum(_significant(r, 'p_vs_step_decay', True) for r in group)} / "
    f"{sum(_significant(r, 'paired_p_vs_step_decay', True) for r in group)}, "
    "significantly worse in "
    f"{sum(_significant(r, 'p_vs_step_decay', False) for r in group)} / "
    f"{sum(_significant(r, 'paired_p_vs_step_decay', False) for r in group)}"
  ]
  if all("better_than_best_peer" in r for r in group):
    parts.append(
      f"below the best peer in {sum(r['better_than_best_peer'] for r in group)}/{n}, "
      "significantly in "
      f"{sum(_significant(r, 'p_vs_best_peer', True) for r in group)} / "
      f"{sum(_significant(r, 'paired_p_vs_best_peer', True) for r in group)}, "
      "significantly worse in "
      f"{sum(_significant(r, 'p_vs_best_peer', False) for r in group)} / "
      f"{sum(_significant(r, 'paired_p_vs_best_peer', False) for r in group)}"
    )
  parts.append(f"runs at chance level: {sum(r['at_chance'] for r in group)}")
  return "; ".join(parts)


def _table(rows: list[dict], baselines: dict) -> str:
  """Table 1: a row per controller seed and episode count, then a summary per count."""
  lines = []
  if FLAGS.source_gin_bindings:
    lines.append(
      "warm-started from a controller per seed trained with "
      f"{' '.join(FLAGS.source_gin_bindings)} (seed {FLAGS.source_seed_offset} + "
      "seed); episodes below are the fine-tuning's"
    )
  numerics = baselines.get("numerics")
  lines.append(
    "step decay and peers evaluated with "
    + (
      f"TensorFlow {numerics['tensorflow']}, intra-op threads: {numerics['intra_op_threads']}"
      if numerics
      else "numerics not recorded (an older evaluation)"
    )
  )
  lines.append(
    f"step decay (48-run grid): test loss {_mean_std(baselines['step_decay'])}"
  )
  peer = baselines["best_peer"]
  if peer:
    lines.append(f"best peer: {peer['name']}, test loss {_mean_std(peer['test_loss'])}")
  lines += [
    "",
    "| episodes | controller seed | chosen at | test loss | vs step decay | p | paired p "
    "| vs best peer | p | paired p | runs at chance |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in sorted(rows, key=lambda r: (r["episodes"], r["controller_seed"])):
    lines.append(
      f"| {r['episodes']} | {r['controller_seed']} | {r['chosen_at']} | "
      + _comparison_cells(r)
    )
  lines.append("")
  for episodes in sorted({r["episodes"] for r in rows}):
    group = [r for r in rows if r["episodes"] == episodes]
    lines.append(f"after {episodes} episodes: " + _counts(group))
  return "\n".join(lines)


def _transfer_table(entry: dict) -> str:
  """One held-out setting of the transfer: a row per controller seed."""
  peer = entry["best_peer"]
  lines = [
    f"transfer to {entry['setting']} ({entry['task_set']}; step decay and peers "
    f"tuned on {entry['tuned_on']}): step decay {_mean_std(entry['step_decay'])}"
    + (f"; best peer: {peer['name']}, {_mean_std(peer['test_loss'])}" if peer else ""),
    "",
    "| controller seed | test loss | vs step decay | p | paired p | vs best peer | p "
    "| paired p | runs at chance |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  for r in entry["rows"]:
    lines.append(f"| {r['controller_seed']} | " + _comparison_cells(r))
  lines += ["", _counts(entry["rows"])]
  target = entry.get("target")
  if target:
    target_peer = target["best_peer"]
    lines += [
      "",
      f"against the methods tuned on {entry['setting']} itself: step decay "
      f"{_mean_std(target['step_decay'])}"
      + (
        f"; best peer: {target_peer['name']}, {_mean_std(target_peer['test_loss'])}"
        if target_peer
        else ""
      ),
      "",
      "| controller seed | vs target's step decay | p | paired p "
      "| vs target's best peer | p | paired p |",
      "|---|---|---|---|---|---|---|",
    ]
    for r in entry["rows"]:
      cells = []
      for label in ("target_step_decay", "target_best_peer"):
        cells += [
          "better" if r.get(f"better_than_{label}") else "worse",
          _p(r.get(f"p_vs_{label}")),
          _p(r.get(f"paired_p_vs_{label}")),
        ]
      lines.append(f"| {r['controller_seed']} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
