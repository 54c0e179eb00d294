"""The preset's choice among candidate controllers, in units of noise.

The bar a pretrained controller must clear on each held-out setting is to be
within noise of the best method tuned on that setting. `choose` asks that of
validation trainees, never of the test split: on each setting, the reference
is the tuned method (the step decay or a peer, each tuned by its own search)
with the lowest mean best validation loss; a candidate's gap there is the
paired t statistic of its best validation losses against the reference's
(run i against run i: the same initial weights and batches); its score is
its worst setting's gap, and the lowest score wins. Unlike a mean of losses
over settings, a gap in units of the setting's own noise weighs a setting
whose runs spread widely (RMSprop on the digits, 14-20% of the mean) no more
than one whose runs agree (the shuffled MNIST-1D CNN, 3%).

`scripts/build_preset.py` chooses the shipped preset with it
(docs/experiments.md, round 28).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lr_controller.errors import UserError
from lr_controller.judge import comparison

# Scores by setting: candidate or method -> setting -> best validation losses,
# one per validation trainee, in the same trainee order everywhere.
Scores = Mapping[str, Mapping[str, Sequence[float]]]


TUNED_PREFIX = "tuned:"  # Keys of tuned methods' scores start with it.


def score_key(name: str, setting: str, num_runs: int, tuned: bool = False) -> str:
  """The key of one score in `benchmarks/preset_heldout.py`'s validation.json.

  `name` is a policy directory (absolute), or with `tuned` a tuned method
  (step_decay or a peer).
  """
  return f"{TUNED_PREFIX if tuned else ''}{name}|{setting}|{num_runs}"


def split_scores(
  scores: Mapping[str, dict], policies: Sequence[str], num_runs: int
) -> tuple[dict, dict]:
  """(candidates, methods) of `choose` from a validation.json's entries.

  Each entry names its `setting` and either its `policy` (a candidate when
  one of `policies`, absolute directories) or its tuned `method`; only
  entries of `num_runs` trainees count.

  Raises:
    UserError: for an entry that is not such a record.
  """
  candidates: dict[str, dict] = {}
  methods: dict[str, dict] = {}
  for key, entry in scores.items():
    if (
      not isinstance(entry, Mapping)
      or not isinstance(entry.get("setting"), str)
      or not isinstance(entry.get("best_val"), list)
      or ("policy" in entry) == ("method" in entry)
    ):
      raise UserError(
        f"validation score {key!r} is not a record of one policy or method"
      )
    if len(entry["best_val"]) != num_runs:
      continue
    if "method" in entry:
      methods.setdefault(entry["method"], {})[entry["setting"]] = entry["best_val"]
    elif entry["policy"] in policies:
      candidates.setdefault(entry["policy"], {})[entry["setting"]] = entry["best_val"]
  return candidates, methods


def _mean(values: Sequence[float]) -> float:
  return sum(values) / len(values) if len(values) else math.inf


def reference(methods: Mapping[str, Sequence[float]]) -> str:
  """The method with the lowest mean best validation loss on one setting.

  Raises:
    UserError: without methods.
  """
  if not methods:
    raise UserError("no tuned method to compare the candidates with")
  return min(methods, key=lambda name: _mean(methods[name]))


def gap(candidate: Sequence[float], reference_values: Sequence[float]) -> float:
  """Paired t statistic of candidate minus reference (> 0: the candidate is worse).

  A non-finite candidate loss (a diverged run) makes the gap inf; identical
  differences leave no noise to measure against, so the gap is then the sign
  of the difference times inf (0 when equal).

  Raises:
    UserError: if the two do not hold one loss per trainee each, or the
      reference has a diverged run (its mean is then inf: it is the
      reference only when every method diverged somewhere).
  """
  if len(candidate) != len(reference_values) or len(candidate) < 2:
    raise UserError(
      f"a candidate and the reference need the same trainees (two at least): "
      f"{len(candidate)} and {len(reference_values)} runs"
    )
  if not all(math.isfinite(v) for v in reference_values):
    raise UserError("every tuned method diverged on some trainee: no reference")
  if not all(math.isfinite(v) for v in candidate):
    return math.inf
  runs = [{"seed": i, "loss": float(v)} for i, v in enumerate(candidate)]
  reference_runs = [
    {"seed": i, "loss": float(v)} for i, v in enumerate(reference_values)
  ]
  test = comparison.paired_t_test(runs, reference_runs, "loss")
  if test["t"] is not None:
    return test["t"]
  difference = test["mean_difference"] or 0.0
  return 0.0 if difference == 0 else math.copysign(math.inf, difference)


def choose(candidates: Scores, methods: Scores) -> tuple[str, dict[str, dict]]:
  """The candidate whose worst setting's gap to that setting's reference is smallest.

  Args:
    candidates: candidate -> setting -> best validation losses.
    methods: tuned method -> setting -> best validation losses, on the same
      trainees.

  Returns:
    The chosen candidate, and for every candidate `score` (its worst gap)
    and `gaps` (setting -> gap); the references are named in `references`
    of each entry.

  Raises:
    UserError: without candidates, or if a candidate lacks a setting that the
      methods have, or the trainees differ.
  """
  if not candidates:
    raise UserError("no candidate controller to choose from")
  settings = sorted({s for by_setting in methods.values() for s in by_setting})
  if not settings:
    raise UserError("no tuned method was scored: run the validation with --peers")
  references = {}
  for setting in settings:
    on_setting = {name: by[setting] for name, by in methods.items() if setting in by}
    references[setting] = reference(on_setting)
  table = {}
  for name, by_setting in candidates.items():
    missing = [s for s in settings if s not in by_setting]
    if missing:
      raise UserError(
        f"candidate {name} has no validation runs on {', '.join(missing)}"
      )
    unmatched = [s for s in by_setting if s not in settings]
    if unmatched:
      raise UserError(f"no tuned method was scored on {', '.join(unmatched)}")
    gaps = {s: gap(by_setting[s], methods[references[s]][s]) for s in settings}
    table[name] = {
      "score": max(gaps.values()) if gaps else 0.0,
      "gaps": gaps,
      "references": dict(references),
    }
  chosen = min(table, key=lambda name: table[name]["score"])
  return chosen, table
