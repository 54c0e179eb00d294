"""What the controller earns (Xu et al. 2019, Sec. 3.1 "Reward").

The paper rewards each decision with the negated validation loss, so an
episode's return is minus the area under the validation-loss curve. Users will
want to try others; each reward is a pure function of the validation losses
around the decision (before and after it, the lowest so far, a reference
run's), selectable by name:

| name                 | reward of one decision                | note                         |
|----------------------|---------------------------------------|------------------------------|
| neg_val_loss         | -val_loss                             | the paper's                  |
| neg_log_val_loss     | -log(val_loss)                        | scale-free in the loss       |
| val_loss_improvement | previous_val_loss - val_loss          | return = first - last loss   |
| log_val_loss_vs_reference | log(reference_val_loss) - log(val_loss) | see below              |
| best_log_val_loss_improvement | log(best_before) - log(best_after) | return = log(initial / best) |

`best_log_val_loss_improvement` rewards each decision by how much it lowered
the lowest validation loss so far (`best_before`: the lowest before the
decision, the initial one included; `best_after`: after it), in log. The
rewards telescope: the return of an episode that does not diverge is
log(initial / best validation loss), the log of what the evaluation judges
(its checkpoint is the best-validation one), while each decision is credited
as it happens. The area-under-the-curve rewards above also pay for getting
low early.

`log_val_loss_vs_reference` compares each decision's validation loss with a
reference run on the same trainee seed and initial rate, which keeps that
rate constant (every action 0): the environment runs it once per trainee
seed and caches its curve. Differences between trainee initialisations then
cancel out of the rewards, so what is left is the effect of the actions
(a return of 0 means "as good as doing nothing"). It costs one more trainee
run per new seed.

A diverged run ends the episode. Its last reward is the penalty; by default
(`divergence_penalty=None`) it depends on the reward:
- the area rewards (`neg_val_loss`, `neg_log_val_loss`): the reward of sitting
  at the initial (untrained) validation loss for every remaining decision, so
  that diverging early is never cheaper than training on; for the reference
  reward, sitting at the initial loss against the reference's remaining curve;
- the improvement rewards (`val_loss_improvement`,
  `best_log_val_loss_improvement`): all progress given back, so the episode's
  return is 0.
An explicit number overrides it.

A setback weight w (`create_environment.setback_weight`, 0 by default) adds a
term to any reward: each decision also pays -w * `setback`, the log of how far
its validation loss sits above the lowest one before it (0 at a new low). The
best-loss reward alone pays nothing for recovering from a setback until the
run beats its earlier best; with w > 0 every decision spent above the best
costs, and cutting the rate to recover earns (docs/experiments.md, round 15).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from lr_controller.errors import UserError


@dataclasses.dataclass(frozen=True)
class Reward:
  """A reward of one decision and the default divergence penalty.

  Attributes:
    fn: `fn(previous_val_loss, val_loss, reference_val_loss, best_val_loss)`;
      the reference is the reference run's validation loss after the same
      decision (None unless `needs_reference`); `best_val_loss` is the lowest
      validation loss before the decision, the initial one included.
    penalty: `penalty(initial, previous, remaining, references, best)`: the
      last reward of an episode that diverged with `remaining` decisions left
      (the diverging one included); `references` holds the reference's
      validation losses of those decisions (None unless `needs_reference`);
      `best` is the lowest validation loss before the diverging decision.
    description: one line.
    needs_reference: whether the environment must run the reference.
  """

  fn: Callable[..., float]
  penalty: Callable[..., float]
  description: str
  needs_reference: bool = False


def _safe_log(x: float) -> float:
  return math.log(max(x, 1e-12))


REWARDS: dict[str, Reward] = {
  "neg_val_loss": Reward(
    fn=lambda prev, val, ref=None, best=None: -val,
    penalty=lambda initial, prev, remaining, refs=None, best=None: -initial * remaining,
    description="negated validation loss (the paper's)",
  ),
  "neg_log_val_loss": Reward(
    fn=lambda prev, val, ref=None, best=None: -_safe_log(val),
    penalty=lambda initial, prev, remaining, refs=None, best=None: (
      -_safe_log(initial) * remaining
    ),
    description="negated log validation loss",
  ),
  "val_loss_improvement": Reward(
    fn=lambda prev, val, ref=None, best=None: prev - val,
    # Undoes all progress: the episode's return becomes 0 (initial - initial).
    penalty=lambda initial, prev, remaining, refs=None, best=None: prev - initial,
    description="decrease of the validation loss since the previous decision",
  ),
  "log_val_loss_vs_reference": Reward(
    fn=lambda prev, val, ref, best=None: _safe_log(ref) - _safe_log(val),
    penalty=lambda initial, prev, remaining, refs, best=None: sum(
      _safe_log(r) - _safe_log(initial) for r in refs
    ),
    description="log validation loss of the constant-rate reference run on "
    "the same trainee minus the controller's",
    needs_reference=True,
  ),
  "best_log_val_loss_improvement": Reward(
    fn=lambda prev, val, ref, best: _safe_log(best) - _safe_log(min(best, val)),
    # Undoes all progress: the episode's return becomes 0.
    penalty=lambda initial, prev, remaining, refs, best: (
      _safe_log(best) - _safe_log(initial)
    ),
    description="decrease of the log of the lowest validation loss so far "
    "(the return is log(initial / best))",
  ),
}


def setback(val_loss: float, best_val_loss: float) -> float:
  """log(val_loss / best_val_loss) when above the best, else 0 (>= 0).

  Args:
    val_loss: the validation loss after a decision.
    best_val_loss: the lowest validation loss before it, the initial one included.
  """
  return _safe_log(val_loss) - _safe_log(min(best_val_loss, val_loss))


def get_reward(name: str) -> Reward:
  """The reward of that name; UserError if unknown."""
  if name not in REWARDS:
    raise UserError(f"unknown reward '{name}' (known: {', '.join(REWARDS)})")
  return REWARDS[name]
