r"""Does a pretrained controller help on settings it never saw? (The preset's judge.)

Two modes over the held-out settings of a task set (default
`tasks/pretrained_heldout.gin`: MNIST-1D shuffled on the 1-D CNN, RMSprop on
LeNet-5, ResNet-18 on the digits):

`--mode=test` (default) judges one controller (default: the shipped preset
"general") on each held-out setting with `lr_controller.bin.evaluate`, as a
user would meet it: the controller from the setting's own initial rate,
against what a user runs without tuning (`untuned_constant`,
`untuned_cosine`: constant and cosine decay from that rate) and against the
step decay and the peers tuned on the setting itself (their search cost
shown). 10 held-out trainee seeds, paired t-tests. Each setting is one
`evaluate` subprocess into ROOT/<setting>/ (reused when its results.json
exists); the summary goes to ROOT/preset_heldout.md and .json.

`--mode=validation` scores candidate controllers (`--policy_dir`,
repeatable) for choosing between them: each runs greedily on `--num_runs`
validation trainees of every held-out setting (trainee seeds
`VALIDATION_SEED_OFFSET + i`, apart from the evaluation's 500,000 + i and
from controller training's), and only the mean best validation loss is
reported; the test split is never read. With `--peers`, the step decay and
every peer, each tuned on the setting by its own search (on the selection
seed, as the evaluation tunes them), run on the same validation trainees too:
the reference of the preset's choice in units of noise
(`lr_controller.judge.preset_choice`, `scripts/build_preset.py`).

  python benchmarks/preset_heldout.py --root_dir=runs/preset_heldout
  python benchmarks/preset_heldout.py --mode=validation \
      --policy_dir=runs/pt_s0 --policy_dir=runs/pt_s1 --settings=rmsprop
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

flags.DEFINE_enum("mode", "test", ["test", "validation"], "What to run (see above).")
flags.DEFINE_string("root_dir", os.path.join("runs", "preset_heldout"), "Output root.")
flags.DEFINE_multi_string(
  "policy_dir",
  ["general"],
  "A preset name or an exported policy (test: the first; validation: each).",
)
flags.DEFINE_string(
  "task_set", "tasks/pretrained_heldout.gin", "Task set whose test settings to run."
)
flags.DEFINE_list(
  "settings", [], "Only the held-out settings whose name contains one of these."
)
flags.DEFINE_integer("num_runs", 10, "Trainee seeds per method.", lower_bound=2)
flags.DEFINE_bool(
  "peers",
  False,
  "Validation: also run the tuned step decay and peers on the validation trainees.",
)
flags.DEFINE_multi_string(
  "gin_bindings", [], "Applied after every setting's own (e.g. to shrink runs)."
)
flags.DEFINE_multi_string(
  "gin_file", [], "Applied after every setting's files (e.g. smoke.gin)."
)
FLAGS = flags.FLAGS

UNTUNED = ("constant", "cosine")
# Validation trainee seeds: base seed 0, episodes VALIDATION_SEED_OFFSET + i.
VALIDATION_SEED_OFFSET = 700_000


def _say(text: str) -> None:
  print(text, flush=True)


def _slug(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def _policy_path(policy: str) -> str:
  from lr_controller import presets

  if os.path.exists(policy) or os.sep in policy:
    return os.path.abspath(policy)
  return presets.preset_path(policy)


def _settings(tasks):
  chosen = [
    s
    for s in tasks.test
    if not FLAGS.settings or any(key in s.name for key in FLAGS.settings)
  ]
  if not chosen:
    raise app.UsageError(f"no held-out setting matches --settings={FLAGS.settings}")
  return chosen


# ---------------------------------------------------------------------------
# Validation: choose between controllers without reading the test split.


def _validation(tasks, task_set_path: str) -> None:
  from lr_controller.control import env as env_lib
  from lr_controller.judge import method_runs, preset_choice, task_sets

  os.makedirs(FLAGS.root_dir, exist_ok=True)
  path = os.path.join(FLAGS.root_dir, "validation.json")
  scores = json.load(open(path)) if os.path.isfile(path) else {}
  seeds = [
    env_lib.episode_seed(0, VALIDATION_SEED_OFFSET + i) for i in range(FLAGS.num_runs)
  ]
  settings = _settings(tasks)
  for policy in FLAGS.policy_dir:
    policy_dir = _policy_path(policy)
    loaded, metadata = method_runs.load_policy(policy_dir)
    for setting in settings:
      key = preset_choice.score_key(policy_dir, setting.name, FLAGS.num_runs)
      if key in scores:
        continue
      task_sets.apply_setting(setting, tasks, FLAGS.gin_file, FLAGS.gin_bindings)
      env = method_runs.make_environment(metadata, seed=0, evaluate_test=False)
      start = time.perf_counter()
      best = []
      for seed in seeds:
        run = method_runs.run_controller(env, loaded, seed)
        diverged = run["diverged"] or run["best_val_loss"] is None
        best.append(np.inf if diverged else run["best_val_loss"])  # Never the test.
      scores[key] = {"policy": policy_dir, "setting": setting.name, "best_val": best}
      with open(path, "w") as f:
        json.dump(scores, f, indent=1)
      _say(
        f"{policy} on {setting.name}: mean best validation loss "
        f"{np.mean(best):.4f} ({time.perf_counter() - start:.0f}s)"
      )
  if FLAGS.peers:
    _validation_peers(tasks, settings, scores, path, seeds)
  lines = [
    "| policy | " + " | ".join(s.name for s in settings) + " |",
    "|---" * (len(settings) + 1) + "|",
  ]
  rows = [(policy, _policy_path(policy), False) for policy in FLAGS.policy_dir]
  if FLAGS.peers:
    rows += [(f"tuned {name}", name, True) for name in _tuned_names()]
  for label, name, tuned in rows:
    cells = []
    for setting in settings:
      key = preset_choice.score_key(name, setting.name, FLAGS.num_runs, tuned)
      entry = scores.get(key)
      best = entry["best_val"] if entry else None
      cells.append(
        "-" if best is None else f"{np.mean(best):.4f} ± {np.std(best, ddof=1):.4f}"
      )
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  table = "\n".join(lines)
  _say(f"\nMean best validation loss, {FLAGS.num_runs} validation trainees:\n{table}")
  with open(os.path.join(FLAGS.root_dir, "validation.md"), "w") as f:
    f.write(table + "\n")


def _tuned_names() -> list[str]:
  from lr_controller import gin_utils
  from lr_controller.judge import evaluation

  peers = gin_utils.bound_value("evaluate.peers", evaluation.DEFAULT_PEERS)
  return ["step_decay", *evaluation.check_peers(peers)]


def _validation_peers(tasks, settings, scores: dict, path: str, seeds) -> None:
  """The tuned step decay and peers on the validation trainees (test never read).

  Each is tuned as `evaluate` tunes it (the step-decay grid into
  ROOT/<setting>/baseline_search, the peers' rate searches, on selection
  seed 0), then runs on `seeds`; only best validation losses are kept.
  """
  from lr_controller import gin_utils
  from lr_controller.judge import evaluation, method_runs, preset_choice, task_sets

  _, metadata = method_runs.load_policy(_policy_path(FLAGS.policy_dir[0]))
  for setting in settings:
    task_sets.apply_setting(setting, tasks, FLAGS.gin_file, FLAGS.gin_bindings)
    names = _tuned_names()  # A setting may bind its own peers.
    keys = {
      n: preset_choice.score_key(n, setting.name, FLAGS.num_runs, tuned=True)
      for n in names
    }
    missing = [n for n in names if keys[n] not in scores]
    if not missing:
      continue
    env = method_runs.make_environment(metadata, seed=0, evaluate_test=False)
    num_steps, interval = env.num_steps, env.action_interval
    env = None
    root = os.path.join(FLAGS.root_dir, _slug(setting.name))
    os.makedirs(root, exist_ok=True)
    step_decay = (
      evaluation.run_baseline_search(root, None, 0, num_steps, say=_say)
      if "step_decay" in missing
      else None
    )
    rates = gin_utils.bound_value(
      "evaluate.peer_learning_rates", evaluation.DEFAULT_PEER_LEARNING_RATES
    )
    peers = [n for n in missing if n != "step_decay"]
    tuned = evaluation.tune_peers(peers, rates, num_steps, interval, 0, say=_say)
    for name in missing:
      trainee = evaluation.build_evaluation_trainee(seeds[0])
      start, best = time.perf_counter(), []
      for seed in seeds:
        if name == "step_decay":
          run = method_runs.run_step_decay(
            trainee,
            step_decay["setting"],
            seed,
            num_steps,
            interval,
            evaluate_test=False,
          )
        else:
          rate = tuned[name]["initial_learning_rate"]
          run = method_runs.run_peer(
            name, trainee, rate, seed, num_steps, interval, evaluate_test=False
          )
        diverged = run["diverged"] or run["best_val_loss"] is None
        best.append(np.inf if diverged else run["best_val_loss"])  # Never the test.
      scores[keys[name]] = {"method": name, "setting": setting.name, "best_val": best}
      with open(path, "w") as f:
        json.dump(scores, f, indent=1)
      _say(
        f"tuned {name} on {setting.name}: mean best validation loss "
        f"{np.mean(best):.4f} ({time.perf_counter() - start:.0f}s)"
      )


# ---------------------------------------------------------------------------
# Test: the evaluation of record.


def _evaluate(setting, root: str, policy_dir: str) -> dict:
  results_path = os.path.join(root, "results.json")
  if not os.path.isfile(results_path):
    command = [
      sys.executable,
      "-m",
      "lr_controller.bin.evaluate",
      f"--root_dir={root}",
      f"--policy_dir={policy_dir}",
      f"--num_runs={FLAGS.num_runs}",
      *[f"--gin_file={f}" for f in [*setting.gin_files, *FLAGS.gin_file]],
      *[
        f"--gin_bindings={b}"
        for b in [
          *setting.gin_bindings,
          f"evaluate.untuned_schedules = {list(UNTUNED)!r}",
          *FLAGS.gin_bindings,
        ]
      ],
    ]
    os.makedirs(root, exist_ok=True)
    _say(f"evaluating on {setting.name} (log: {root}/evaluate.log)")
    with open(os.path.join(root, "evaluate.log"), "w") as log:
      status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if status:
      raise SystemExit(f"error: evaluate failed on {setting.name}; see {log.name}")
  with open(results_path) as f:
    return json.load(f)


def _p(test: dict | None) -> str:
  p = (test or {}).get("p")
  return "-" if p is None else f"{p:.2g}"


def _row(name: str, record: dict) -> tuple[list[str], dict]:
  methods = {m["name"]: m for m in record["methods"]}
  controller = methods["controller"]

  def cell(method: dict) -> str:
    return f"{method['test_loss_mean']:.4f} ± {method['test_loss_std']:.4f}"

  summary = {"setting": name, "controller": controller["test_loss_mean"]}
  cells = [name, cell(controller)]
  for schedule in UNTUNED:
    method = methods[f"untuned_{schedule}"]
    paired = method["vs_controller"]["test_loss"]["paired"]
    cells.append(f"{cell(method)} (p {_p(paired)})")
    summary[f"untuned_{schedule}"] = {
      "test_loss_mean": method["test_loss_mean"],
      "paired_p": paired.get("p"),
      "controller_better": bool(
        paired.get("significant") and paired["mean_difference"] > 0
      ),
    }
  versus = controller.get("vs_best_peer")
  if versus:
    best = methods[versus["name"]]
    paired = versus["test_loss"]["paired"]
    setup = (best.get("cost") or {}).get("setup") or {}
    cells.append(
      f"{versus['name']} {cell(best)} (p {_p(paired)}; search "
      f"{setup.get('steps', 0):,} steps)"
    )
    summary["best_peer"] = {
      "name": versus["name"],
      "test_loss_mean": best["test_loss_mean"],
      "paired_p": paired.get("p"),
      "difference": paired.get("mean_difference"),
    }
  else:
    cells.append("-")
  step_decay = methods["step_decay"]
  cells.append(f"{cell(step_decay)} (p {_p(controller['vs_baseline']['test_loss'])})")
  at_chance = sum(
    1
    for r in controller["runs"]
    if r["test_loss"] is None or r["test_loss"] > 2.0 or r["diverged"]
  )
  cells.append(str(at_chance))
  summary["controller_runs_at_chance"] = at_chance
  return cells, summary


def _test(tasks) -> None:
  policy_dir = _policy_path(FLAGS.policy_dir[0])
  rows, summaries = [], []
  for setting in _settings(tasks):
    record = _evaluate(
      setting, os.path.join(FLAGS.root_dir, _slug(setting.name)), policy_dir
    )
    cells, summary = _row(setting.name, record["settings"][0])
    rows.append("| " + " | ".join(cells) + " |")
    summaries.append(summary)
  header = (
    "| setting | controller | untuned constant (paired p) | untuned cosine "
    "(paired p) | best peer tuned on the setting (paired p; its search) | step "
    "decay tuned on the setting (Student p) | controller runs at chance |\n"
    "|---|---|---|---|---|---|---|"
  )
  table = header + "\n" + "\n".join(rows)
  _say(f"\n{policy_dir}, {FLAGS.num_runs} held-out trainee seeds, test loss:\n{table}")
  with open(os.path.join(FLAGS.root_dir, "preset_heldout.md"), "w") as f:
    f.write(table + "\n")
  with open(os.path.join(FLAGS.root_dir, "preset_heldout.json"), "w") as f:
    json.dump({"policy": policy_dir, "settings": summaries}, f, indent=1)


def main(argv):
  del argv
  from lr_controller import gin_utils
  from lr_controller.errors import UserError, first_line
  from lr_controller.judge import task_sets

  try:
    task_set_path = gin_utils.resolve_gin_file(FLAGS.task_set)
    tasks = task_sets.load_task_set(task_set_path)
    if FLAGS.mode == "validation":
      _validation(tasks, task_set_path)
    else:
      _test(tasks)
  except UserError as e:
    raise SystemExit(f"error: {first_line(e)}") from None


if __name__ == "__main__":
  app.run(main)
