"""Writes an evaluation's results as tables and figures (Xu et al. 2019, Tables 1-2, Figs. 1-2).

Reads the results dict of `lr_controller.judge.evaluation` (the content of
results.json) and writes, into the run's directory:

  report.md                 the protocol and one table per setting
  results.csv               one row per setting and method: mean, std, t, p
  figure1_val_loss.png      validation loss vs step, baseline vs controller
                            (geometric mean over seeds, band of +-1 standard
                            deviation of the log loss), one panel per setting
  figure2_lr_schedules.png  the controller's learning rate per seed, with the
                            baseline's step-decay schedule for reference

Figures are drawn with matplotlib's Agg canvas directly (no pyplot state, no
display needed).
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lr_controller import constants

CSV_FIELDS = (
  "setting",
  "method",
  "kind",
  "initial_learning_rate",
  "n",
  "num_runs",
  "num_diverged",
  "test_loss_mean",
  "test_loss_std",
  "test_loss_t",
  "test_loss_p",
  "test_loss_significant",
  "test_loss_paired_t",
  "test_loss_paired_p",
  "test_loss_paired_significant",
  "test_accuracy_mean",
  "test_accuracy_std",
  "test_accuracy_t",
  "test_accuracy_p",
  "test_accuracy_significant",
  "test_accuracy_paired_t",
  "test_accuracy_paired_p",
  "test_accuracy_paired_significant",
  "setup",
  "setup_steps",
  "setup_seconds",
  "steps_per_run",
  "seconds_per_run",
)
COLUMN_MEANINGS = (
  (
    "Method",
    "step_decay: the paper's baseline, the best step-decay schedule of "
    "the grid by validation loss; controller: the learned controller's greedy "
    "policy; controller_replay: its mean rate path, open-loop; untuned_*: a "
    "schedule run untuned from the controller's initial rate (what a user runs "
    "without tuning); others: peers of lr_controller.judge.adaptive_peers",
  ),
  (
    "Initial lr",
    "the starting (or peak) learning rate; for step decay also its "
    "decay (x factor every discount_step steps)",
  ),
  (
    "Test loss, Test accuracy",
    "mean +- sample standard deviation (ddof=1) over "
    "the runs, each the best-validation checkpoint evaluated once on the test "
    "split; '(better)' or '(worse)' marks a difference from step_decay at "
    "p < 0.05 (lower loss, higher accuracy is better)",
  ),
  (
    "p",
    "two-sided p-value of Student's independent two-sample t-test "
    "(scipy.stats.ttest_ind, equal_var=True) of the method's per-run values "
    "against step_decay's; '-' for step_decay itself or too few runs",
  ),
  (
    "paired p",
    "two-sided p-value of the paired t-test (scipy.stats.ttest_rel) of the "
    "method's values against step_decay's on the same trainee seeds (run i of "
    "every method starts from the same weights and batch order), which removes "
    "the seed's own variance; '-' for step_decay itself or fewer than two pairs",
  ),
  (
    "n",
    "runs with a test result (a run that diverged before its first "
    "validation has none and is left out)",
  ),
  (
    "Diverged",
    "runs stopped by the one divergence rule (lr_controller.trainee.protocol: "
    "a non-finite or too large training loss, or a validation loss above a "
    "multiple of the run's first); their best checkpoint before that still "
    "counts",
  ),
)


# ---------------------------------------------------------------------------
# Cells and tables.


def format_mean_std(
  mean: float | None, std: float | None, verdict: str | None = None
) -> str:
  """'0.1234 ± 0.0056', then ' (better)' or ' (worse)' if `verdict`; 'n/a' without runs."""
  if mean is None:
    return "n/a"
  cell = f"{mean:.4f} ± {0.0 if std is None else std:.4f}"
  return cell + (f" ({verdict})" if verdict else "")


def verdict(metric: str, test: dict) -> str | None:
  """'better' or 'worse' than step decay if significant (`test` of `t_test`), else None.

  Lower is better for a loss, higher for an accuracy; the t statistic is the
  method's minus the baseline's.
  """
  if not test.get("significant") or test.get("t") is None:
    return None
  lower = test["t"] < 0
  return "better" if lower == metric.endswith("loss") else "worse"


def format_p(p: float | None) -> str:
  """A p-value for a table: '-' for none, '<0.001' when tiny."""
  if p is None:
    return "-"
  return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_learning_rate(method: dict) -> str:
  """The method's initial learning rate(s), with step decay's decay."""
  lr = method.get("initial_learning_rate")
  rates = lr if isinstance(lr, list) else [lr]
  text = "/".join(f"{r:g}" for r in rates if r is not None) or "-"
  schedule = method.get("schedule")
  if schedule:
    text += f", x{schedule['factor']:g} every {schedule['discount_step']} steps"
  return text


def _test(method: dict, metric: str) -> dict:
  return (method.get("vs_baseline") or {}).get(metric) or {}


def method_table(setting: dict) -> str:
  """The setting's methods as a Markdown table (the paper's Table 1 layout)."""
  lines = [
    "| Method | Initial lr | Test loss | p (loss) | Test accuracy | p (accuracy) "
    "| paired p (loss) | paired p (accuracy) | n | Diverged |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for method in setting["methods"]:
    cells = [method["name"], format_learning_rate(method)]
    for metric in ("test_loss", "test_accuracy"):
      test = _test(method, metric)
      cells.append(
        format_mean_std(
          method[f"{metric}_mean"], method[f"{metric}_std"], verdict(metric, test)
        )
      )
      cells.append(format_p(test.get("p")))
    for metric in ("test_loss", "test_accuracy"):
      cells.append(format_p((_test(method, metric).get("paired") or {}).get("p")))
    cells += [f"{method['n']}/{len(method['runs'])}", str(method["num_diverged"])]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _count(value: float | None, unit: str = "") -> str:
  if value is None:
    return "n/a"
  return f"{value:,.0f}{unit}"


def cost_table(setting: dict) -> str:
  """What each method spent (see `lr_controller.judge.costs`) as a Markdown table."""
  lines = [
    "| Method | Paid once | Steps | Seconds | Steps per run | Seconds per run |",
    "|---|---|---|---|---|---|",
  ]
  for method in setting["methods"]:
    cost = method.get("cost") or {}
    setup = cost.get("setup") or {}
    per_run = cost.get("per_run") or {}
    seconds = per_run.get("seconds")
    cells = [
      method["name"],
      setup.get("what") or "n/a",
      _count(setup.get("steps")),
      _count(setup.get("seconds")),
      _count(per_run.get("steps")),
      "n/a" if seconds is None else f"{seconds:.1f}",
    ]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def adaptation_text(setting: dict) -> str | None:
  """Controller or schedule: the spread of its rate paths and its replay's result.

  Returns:
    One paragraph, or None without a controller and its replay.
  """
  controller = next((m for m in setting["methods"] if m["kind"] == "controller"), None)
  replayed = next((m for m in setting["methods"] if m["kind"] == "replay"), None)
  if controller is None or replayed is None:
    return None
  spread = controller.get("rate_path_spread") or {}
  paired = ((replayed.get("vs_controller") or {}).get("test_loss") or {}).get(
    "paired"
  ) or {}
  if spread.get("relative_spread_mean") is None:
    spread_text = "Its rate paths could not be compared across runs"
  else:
    spread_text = (
      f"Across the runs, the controller's rate at a decision varies by "
      f"±{100 * spread['relative_spread_mean']:.0f}% on average (standard "
      f"deviation of log rate {spread['log_rate_std_mean']:.3f}, at most "
      f"{spread['log_rate_std_max']:.3f})"
    )
  difference = paired.get("mean_difference")
  if paired.get("p") is None or difference is None:
    verdict_text = "the replay could not be compared with it"
  elif paired["significant"] and difference > 0:
    verdict_text = "the controller beats its own replay: it adapts to the run"
  elif paired["significant"]:
    verdict_text = (
      "its replay beats the controller: the mean path carries what it learned, "
      "and its reactions cost"
    )
  else:
    verdict_text = (
      "the controller and its replay are within noise: it acts as the schedule "
      "its mean path is"
    )
  return (
    f"**Controller or schedule?** {spread_text}. `{replayed['name']}` plays "
    f"its mean rate path back open-loop on the same seeds: test loss "
    f"{format_mean_std(replayed['test_loss_mean'], replayed['test_loss_std'])} "
    f"against the controller's "
    f"{format_mean_std(controller['test_loss_mean'], controller['test_loss_std'])} "
    f"(replay minus controller {0.0 if difference is None else difference:+.4f}, "
    f"paired p {format_p(paired.get('p'))}): {verdict_text}."
  )


def untuned_text(setting: dict) -> str | None:
  """The controller against the untuned schedules and the best tuned peer.

  Returns:
    One paragraph (paired t-tests on the shared seeds), or None without a
    controller and an untuned schedule.
  """
  controller = _method(setting, "controller")
  untuned = [m for m in setting["methods"] if m["kind"] == "untuned"]
  if controller is None or not untuned:
    return None
  ours = controller["test_loss_mean"]
  parts = []
  for method in untuned:
    paired = ((method.get("vs_controller") or {}).get("test_loss") or {}).get(
      "paired"
    ) or {}
    difference = paired.get("mean_difference")
    if paired.get("p") is None or difference is None:
      verdict = "not comparable"
    elif not paired["significant"]:
      verdict = "within noise"
    else:
      verdict = "controller better" if difference > 0 else "controller worse"
    parts.append(
      f"`{method['name']}` "
      f"{format_mean_std(method['test_loss_mean'], method['test_loss_std'])} "
      f"(paired p {format_p(paired.get('p'))}: {verdict})"
    )
  versus = controller.get("vs_best_peer")
  if versus:
    best = next(m for m in setting["methods"] if m["name"] == versus["name"])
    paired = versus["test_loss"]["paired"]
    difference = paired.get("mean_difference")
    if paired.get("p") is None or difference is None:
      verdict = "not comparable"
    elif not paired["significant"]:
      verdict = "within noise"
    else:
      verdict = "controller better" if difference < 0 else "controller worse"
    parts.append(
      f"the best peer tuned on this setting, `{best['name']}`, "
      f"{format_mean_std(best['test_loss_mean'], best['test_loss_std'])} "
      f"(paired p {format_p(paired.get('p'))}: {verdict})"
    )
  return (
    f"**Against no tuning.** The controller "
    f"{format_mean_std(ours, controller['test_loss_std'])} test loss; "
    + "; ".join(parts)
    + "."
  )


def tables(results: dict) -> str:
  """Every setting's tables under its name (what the binary prints at the end)."""
  parts = []
  for setting in results["settings"]:
    parts.append(f"{setting['name']} ({len(setting['seeds'])} runs per method)")
    parts.append(method_table(setting))
    for paragraph in (adaptation_text(setting), untuned_text(setting)):
      if paragraph:
        parts.append(paragraph)
    parts.append(cost_table(setting))
  return "\n\n".join(parts)


# ---------------------------------------------------------------------------
# Files.


def csv_rows(results: dict) -> list[dict]:
  """One dict per setting and method, with the keys of `CSV_FIELDS`."""
  rows = []
  for setting in results["settings"]:
    for method in setting["methods"]:
      row = {
        "setting": setting["name"],
        "method": method["name"],
        "kind": method["kind"],
        "initial_learning_rate": format_learning_rate(method),
        "n": method["n"],
        "num_runs": len(method["runs"]),
        "num_diverged": method["num_diverged"],
      }
      for metric in ("test_loss", "test_accuracy"):
        test = _test(method, metric)
        row[f"{metric}_mean"] = method[f"{metric}_mean"]
        row[f"{metric}_std"] = method[f"{metric}_std"]
        row[f"{metric}_t"] = test.get("t")
        row[f"{metric}_p"] = test.get("p")
        row[f"{metric}_significant"] = bool(test.get("significant"))
        paired = test.get("paired") or {}
        row[f"{metric}_paired_t"] = paired.get("t")
        row[f"{metric}_paired_p"] = paired.get("p")
        row[f"{metric}_paired_significant"] = bool(paired.get("significant"))
      cost = method.get("cost") or {}
      setup = cost.get("setup") or {}
      per_run = cost.get("per_run") or {}
      row.update(
        setup=setup.get("what"),
        setup_steps=setup.get("steps"),
        setup_seconds=setup.get("seconds"),
        steps_per_run=per_run.get("steps"),
        seconds_per_run=per_run.get("seconds"),
      )
      rows.append(row)
  return rows


def write_csv(path: str, results: dict) -> str:
  """Writes `csv_rows` to `path` (empty cells for missing values)."""
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for row in csv_rows(results):
      writer.writerow({k: "" if v is None else v for k, v in row.items()})
  return path


def _protocol_text(results: dict) -> list[str]:
  protocol = results["protocol"]
  baseline = results["baseline"]
  best = baseline["setting"]
  seeds = protocol["seeds"]
  policy = results["policy"]
  episodes = policy["metadata"].get("episodes", "?")
  lines = [
    f"- Controller: `{policy['dir']}` (greedy policy after {episodes} training "
    f"episodes; features {', '.join(policy['metadata']['features'])}; a decision "
    f"every {policy['metadata']['action_interval']} steps).",
    f"- Runs: N = {protocol['num_runs']} per method, every method with the same "
    f"trainee seeds {_seed_range(seeds)} (seed * 1,000,003 + "
    f"{protocol['eval_seed_offset']:,} + i: never a seed that a controller "
    "training run of fewer than 500,000 episodes used). Each method trains its own trainee on the same freshly loaded input "
    "stream, so run i of every method starts from the same weights and sees the "
    "same mini-batches (see lr_controller.judge.evaluation for the exceptions).",
    "- Each run validates its initial weights and then at a fixed interval, "
    "keeps the weights of lowest validation loss and evaluates them once on the "
    "test split (lr_controller.trainee.protocol, the same for every method)."
    + (f" {protocol['divergence']}" if protocol.get("divergence") else ""),
    f"- Statistics: {protocol['statistics']}; {protocol['test']}; "
    + (f"{protocol['paired_test']}; " if protocol.get("paired_test") else "")
    + "(better) and "
    f"(worse) mark differences from step decay at p < {protocol['alpha']}.",
    f"- Baseline: step decay lr0 {best['initial_learning_rate']:g}, x"
    f"{best['factor']:g} every {best['discount_step']} steps: the best of the "
    f"grid by validation loss (selection seed {protocol['selection_seed']}), "
    f"tuned on {baseline.get('tuned_on', '?')}; search: `{baseline['search']}`.",
  ]
  if results["peers"]:
    chosen = ", ".join(
      f"{name} {p['initial_learning_rate']:g}" for name, p in results["peers"].items()
    )
    candidates = next(iter(results["peers"].values()))["candidates"]
    lines.append(
      "- Peers (beyond the paper): initial learning rate chosen by best "
      f"validation loss among {', '.join(f'{c:g}' for c in candidates)} on "
      f"{next(iter(results['peers'].values())).get('tuned_on', '?')} "
      f"(selection seed {protocol['selection_seed']}): {chosen}."
    )
  return lines


def _seed_range(seeds: Sequence[int]) -> str:
  if not seeds:
    return "(none)"
  if list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
    return f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
  return ", ".join(map(str, seeds))


def _setting_text(setting: dict) -> list[str]:
  d = setting["description"]
  lines = [
    f"### {setting['name']}",
    "",
    f"Data {d['data']}, model {d['model']}, optimizer {d['optimizer']}, batch "
    f"{d['batch_size']}, {setting['num_steps']} steps per run, validation every "
    f"{setting['eval_interval']} steps; the controller starts at learning rate "
    f"{'/'.join(f'{lr:g}' for lr in d['controller_initial_learning_rates'])}.",
  ]
  if setting["gin_files"] or setting["gin_bindings"]:
    gin_text = ", ".join(f"`{f}`" for f in setting["gin_files"])
    if setting["gin_bindings"]:
      gin_text += "; bindings " + ", ".join(f"`{b}`" for b in setting["gin_bindings"])
    lines.append(f"Gin: {gin_text}.")
  lines += ["", method_table(setting), ""]
  for paragraph in (adaptation_text(setting), untuned_text(setting)):
    if paragraph:
      lines += [paragraph, ""]
  lines += [
    "What each method spent in trainee steps and seconds on the machine that "
    "ran it: once before its runs (the step-decay grid, a peer's learning-rate "
    "search, the controller's training; the controller's is paid once for "
    "every later training run), and per evaluated run (AutoLRS's trial steps "
    "included):",
    "",
    cost_table(setting),
    "",
  ]
  return lines


def markdown(results: dict) -> str:
  """The whole report.md text."""
  transfer = results["mode"] == "transfer"
  title = (
    "Transfer of a learned learning-rate controller (Xu et al. 2019, Table 2)"
    if transfer
    else "Evaluation of a learned learning-rate controller (Xu et al. 2019, Table 1)"
  )
  lines = [f"# {title}", ""]
  if transfer:
    task = results["task_set"]
    lines += [
      f"Task set `{task['name']}` (`{task['path']}`): the controller, trained on "
      f"{task['source']}, is applied without retraining to the held-out settings "
      f"{', '.join(task['test'])}, against the step-decay baseline (and peer "
      f"learning rates) tuned on {task['source']}.",
      "",
    ]
  lines += ["## Protocol", "", *_protocol_text(results), "", "## Results", ""]
  for setting in results["settings"]:
    lines += _setting_text(setting)
  lines += ["### Columns", ""]
  lines += [f"- **{name}**: {meaning}." for name, meaning in COLUMN_MEANINGS]
  lines += [
    "",
    "## Figures",
    "",
    f"- [{constants.FIGURE1_PNG}]({constants.FIGURE1_PNG}): validation loss "
    "(log scale) vs training step, step decay vs the learned controller: "
    "geometric mean over the runs, band of +-1 standard deviation of the log "
    "loss (the paper's Figure 1).",
    f"- [{constants.FIGURE2_PNG}]({constants.FIGURE2_PNG}): the learned "
    "learning-rate schedule of every run (one line per seed) and the baseline's "
    "step-decay schedule, dashed (the paper's Figure 2).",
    "",
    f"All runs, per step: `{constants.RESULTS_JSON}`; one row per method: "
    f"`{constants.RESULTS_CSV}`. Total time {results['seconds']:.0f} s.",
    "",
  ]
  return "\n".join(lines)


# ---------------------------------------------------------------------------
# Figures.


def _method(setting: dict, kind: str) -> dict | None:
  """The setting's first method of `kind` ("baseline", "controller", "peer")."""
  return next((m for m in setting["methods"] if m["kind"] == kind), None)


def _log_val_losses(runs: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
  """Steps [S] and log validation losses [runs, S] (NaN where a run has none)."""
  steps = sorted({s for r in runs for s in r["steps"]})
  index = {s: i for i, s in enumerate(steps)}
  values = np.full([len(runs), len(steps)], np.nan)
  for row, run in enumerate(runs):
    for step, loss in zip(run["steps"], run["val_losses"]):
      if loss is not None and math.isfinite(loss) and loss > 0:
        values[row, index[step]] = math.log(loss)
  return np.asarray(steps, np.float64), values


def _finish_axes(ax, ylabel: str, title: str, fontsize=None) -> None:
  """Log y axis, labels, grid and (if anything is labelled) the legend."""
  _log_y(ax)
  ax.set_xlabel("training step")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(True, which="both", alpha=0.3)
  if ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize=fontsize)


def _log_y(ax) -> None:
  """A log y axis with plain tick labels (2.2, not 2.2 x 10^0).

  Minor ticks are labelled only when the axis spans less than a decade (there
  are no major ticks to read then).
  """
  ax.set_yscale("log")
  plain = ticker.FuncFormatter(lambda value, _: f"{value:g}")
  ax.yaxis.set_major_formatter(plain)
  low, high = ax.get_ylim()
  narrow = low > 0 and high / low < 10
  ax.yaxis.set_minor_formatter(plain if narrow else ticker.NullFormatter())


def _panels(count: int, title: str) -> tuple[Figure, list]:
  figure = Figure(figsize=(5.0 * max(count, 1), 4.0), layout="constrained")
  FigureCanvasAgg(figure)
  axes = figure.subplots(1, max(count, 1), squeeze=False)[0]
  figure.suptitle(title)
  return figure, list(axes)


def plot_val_loss(path: str, results: dict) -> str:
  """Figure 1: validation loss vs step, baseline vs controller, one panel per setting."""
  settings = results["settings"]
  figure, axes = _panels(
    len(settings), "Validation loss: geometric mean over seeds, ±1 sd band"
  )
  styles = (
    ("baseline", "step decay (baseline)", "tab:gray"),
    ("controller", "learned controller", "tab:blue"),
  )
  for ax, setting in zip(axes, settings):
    for kind, label, color in styles:
      method = _method(setting, kind)
      if method is None or not method["runs"]:
        continue
      steps, logs = _log_val_losses(method["runs"])
      if not steps.size:
        continue
      with warnings.catch_warnings():  # All-NaN columns once every run diverged.
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(logs, axis=0)
        counts = np.sum(np.isfinite(logs), axis=0)
        std = np.where(counts > 1, np.nanstd(logs, axis=0, ddof=1), 0.0)
      ax.plot(steps, np.exp(mean), color=color, label=f"{label} (n={len(logs)})")
      ax.fill_between(
        steps, np.exp(mean - std), np.exp(mean + std), color=color, alpha=0.2
      )
    _finish_axes(ax, "validation loss (nats, log scale)", setting["name"])
  figure.savefig(path, dpi=120)
  return path


def plot_lr_schedules(path: str, results: dict) -> str:
  """Figure 2: the controller's schedule per seed and the baseline's, per setting."""
  settings = results["settings"]
  figure, axes = _panels(len(settings), "Learning-rate schedules")
  for ax, setting in zip(axes, settings):
    method = _method(setting, "controller")
    runs = method["runs"] if method else []
    colors = [f"C{i % 10}" for i in range(len(runs))]
    label = f"learned controller, one line per seed (n={len(runs)})"
    for run, color in zip(runs, colors):
      rates = run["learning_rates"]
      if not rates:
        continue
      # Chunk j runs steps [steps[j-1], steps[j]) at rates[j].
      ax.step(
        [0, *run["steps"]],
        [*rates, rates[-1]],
        where="post",
        color=color,
        alpha=0.8,
        linewidth=1.2,
        label=label,
      )
      label = None
    schedule = setting.get("baseline_schedule") or []
    if schedule:
      # schedule[t] is the rate of step t, i.e. of [t, t + 1).
      ax.step(
        np.arange(len(schedule) + 1),
        [*schedule, schedule[-1]],
        where="post",
        color="black",
        linestyle="--",
        linewidth=1.5,
        label="step decay (baseline)",
      )
    _finish_axes(ax, "learning rate (log scale)", setting["name"], fontsize="small")
  figure.savefig(path, dpi=120)
  return path


def write_report(root_dir: str, results: dict) -> dict[str, str]:
  """Writes report.md, results.csv and the two figures into `root_dir`.

  Args:
    root_dir: output directory (exists).
    results: `evaluation`'s results dict.

  Returns:
    Kind ("report", "csv", "figure1", "figure2") -> path.
  """
  paths = {
    "report": os.path.join(root_dir, constants.REPORT_MD),
    "csv": os.path.join(root_dir, constants.RESULTS_CSV),
    "figure1": os.path.join(root_dir, constants.FIGURE1_PNG),
    "figure2": os.path.join(root_dir, constants.FIGURE2_PNG),
  }
  write_csv(paths["csv"], results)
  plot_val_loss(paths["figure1"], results)
  plot_lr_schedules(paths["figure2"], results)
  with open(paths["report"], "w") as f:
    f.write(markdown(results))
  return paths
