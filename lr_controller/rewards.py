"""What the controller earns (Xu et al. 2019, Sec. 3.1 "Reward").

The paper rewards each decision with the negated validation loss, so an
episode's return is minus the area under the validation-loss curve. Users will
want to try others; each reward is a pure function of the validation loss
before and after the decision, selectable by name:

| name                 | reward of one decision                | note                         |
|----------------------|---------------------------------------|------------------------------|
| neg_val_loss         | -val_loss                             | the paper's                  |
| neg_log_val_loss     | -log(val_loss)                        | scale-free in the loss       |
| val_loss_improvement | previous_val_loss - val_loss          | return = first - last loss   |

A diverged run ends the episode. Its last reward is the penalty: by default
(`divergence_penalty=None`), the reward of sitting at the initial (untrained)
validation loss for every remaining decision, so that diverging early is never
cheaper than training on; an explicit number overrides it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from lr_controller.errors import UserError


@dataclasses.dataclass(frozen=True)
class Reward:
  """A reward: `fn(previous_val_loss, val_loss)` and the default divergence penalty."""

  fn: Callable[[float, float], float]
  penalty: Callable[
    [float, float, int], float
  ]  # (initial, previous, remaining) -> reward
  description: str


def _safe_log(x: float) -> float:
  return math.log(max(x, 1e-12))


REWARDS: dict[str, Reward] = {
  "neg_val_loss": Reward(
    fn=lambda prev, val: -val,
    penalty=lambda initial, prev, remaining: -initial * remaining,
    description="negated validation loss (the paper's)",
  ),
  "neg_log_val_loss": Reward(
    fn=lambda prev, val: -_safe_log(val),
    penalty=lambda initial, prev, remaining: -_safe_log(initial) * remaining,
    description="negated log validation loss",
  ),
  "val_loss_improvement": Reward(
    fn=lambda prev, val: prev - val,
    # Undoes all progress: the episode's return becomes 0 (initial - initial).
    penalty=lambda initial, prev, remaining: prev - initial,
    description="decrease of the validation loss since the previous decision",
  ),
}


def get_reward(name: str) -> Reward:
  """The reward of that name; UserError if unknown."""
  if name not in REWARDS:
    raise UserError(f"unknown reward '{name}' (known: {', '.join(REWARDS)})")
  return REWARDS[name]
