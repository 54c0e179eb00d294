"""An exported controller's metadata: its fields, writing and reading them.

Every exported policy (`lr_controller.control.export`) carries a JSON dict
beside its weights. Part of it is the controller's *interface*, what anyone
running the policy must reproduce to get the actions it was trained to give
(Xu et al. 2019, Sec. 3.1: the state it observes, when it acts, how an action
becomes a learning rate):

| field             | meaning                                                   |
|-------------------|-----------------------------------------------------------|
| features          | observation feature names, in order (`features.FEATURES`) |
| action_interval   | trainee steps per decision                                |
| max_log_factor    | largest |action| (log of the largest factor per decision) |
| min_learning_rate | lower bound on the learning rate                          |
| max_learning_rate | upper bound on the learning rate                          |

The rest describes how it was trained (`reward`, `actor_network`,
`action_levels`, `episodes`) and is recorded, not needed to run it. Controller
training writes the dict (`build`, `document`), the controller core reads and
validates it (`read_interface`), and the evaluation builds its environment
from it (`Interface.of_environment`, `differences`). TensorFlow only.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from lr_controller import checks
from lr_controller import features as features_lib
from lr_controller.errors import UserError

FORMAT = "lr_controller.policy/1"

# Field names.
FORMAT_FIELD = "format"
FEATURES = "features"
ACTION_INTERVAL = "action_interval"
MAX_LOG_FACTOR = "max_log_factor"
MIN_LEARNING_RATE = "min_learning_rate"
MAX_LEARNING_RATE = "max_learning_rate"
REWARD = "reward"
ACTOR_NETWORK = "actor_network"
ACTION_LEVELS = "action_levels"
EPISODES = "episodes"

# The interface's fields, which every policy must have.
INTERFACE_FIELDS = (
  FEATURES,
  ACTION_INTERVAL,
  MAX_LOG_FACTOR,
  MIN_LEARNING_RATE,
  MAX_LEARNING_RATE,
)


@dataclasses.dataclass(frozen=True)
class Interface:
  """What a controller observes and how its actions apply (module docstring).

  Attributes:
    feature_names: observation features, in order.
    action_interval: trainee steps per decision.
    max_log_factor: largest |action| (log of the largest factor).
    min_learning_rate: lower bound on the learning rate.
    max_learning_rate: upper bound on the learning rate.
  """

  feature_names: tuple[str, ...]
  action_interval: int
  max_log_factor: float
  min_learning_rate: float
  max_learning_rate: float

  @classmethod
  def of_environment(cls, env: Any) -> Interface:
    """The interface of an environment (`LearningRateControlEnv`'s attributes)."""
    return cls(
      feature_names=tuple(env.feature_names),
      action_interval=int(env.action_interval),
      max_log_factor=float(env.max_log_factor),
      min_learning_rate=float(env.min_learning_rate),
      max_learning_rate=float(env.max_learning_rate),
    )

  def fields(self) -> dict:
    """The interface's metadata fields, JSON-ready."""
    return {
      FEATURES: list(self.feature_names),
      ACTION_INTERVAL: self.action_interval,
      MAX_LOG_FACTOR: self.max_log_factor,
      MIN_LEARNING_RATE: self.min_learning_rate,
      MAX_LEARNING_RATE: self.max_learning_rate,
    }

  def differences(self, other: Interface) -> list[str]:
    """The fields in which `other` differs (bounds up to float rounding)."""
    ours, theirs = self.fields(), other.fields()
    return [
      name
      for name in INTERFACE_FIELDS
      if not (
        math.isclose(ours[name], theirs[name], rel_tol=1e-9)
        if isinstance(ours[name], float)
        else ours[name] == theirs[name]
      )
    ]


def build(
  interface: Interface,
  reward: str,
  actor_network: Any,
  action_levels: int | None,
) -> dict:
  """The metadata controller training exports with every policy (without format).

  Args:
    interface: the environment's interface (`Interface.of_environment`).
    reward: the reward's name.
    actor_network: the actor network's JSON description.
    action_levels: levels of a discrete head; None for a continuous one.
  """
  return {
    **interface.fields(),
    REWARD: reward,
    ACTOR_NETWORK: actor_network,
    ACTION_LEVELS: action_levels,
  }


def document(metadata: dict, episodes: int | None = None) -> dict:
  """The JSON document an export writes: `metadata` with its format (and episodes)."""
  extra = {} if episodes is None else {EPISODES: int(episodes)}
  return {FORMAT_FIELD: FORMAT, **metadata, **extra}


def read_interface(metadata: Any, path: str) -> Interface:
  """Validates a loaded policy's metadata and returns its interface.

  Args:
    metadata: the decoded JSON of the policy's `get_metadata`.
    path: the policy directory, for messages.

  Raises:
    UserError: (one line, naming `path`) for another format, a missing
      field, unknown or repeated features, or a bad interval or bound.
  """
  if not isinstance(metadata, dict) or metadata.get(FORMAT_FIELD) != FORMAT:
    found = metadata.get(FORMAT_FIELD) if isinstance(metadata, dict) else None
    raise UserError(
      f"{path} is not an lr_controller policy: metadata format {found!r}, "
      f"expected {FORMAT!r}"
    )
  missing = [key for key in INTERFACE_FIELDS if key not in metadata]
  if missing:
    raise UserError(f"policy {path}: metadata lacks {', '.join(missing)}")
  features = metadata[FEATURES]
  if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
    raise UserError(f"policy {path}: metadata features must be a list of names")
  try:
    feature_names = features_lib.check_feature_names(features)
    interval = checks.integer(ACTION_INTERVAL, metadata[ACTION_INTERVAL], 1)
    bounds = {
      name: checks.positive(name, metadata[name])
      for name in (MAX_LOG_FACTOR, MIN_LEARNING_RATE, MAX_LEARNING_RATE)
    }
  except UserError as e:
    raise UserError(f"policy {path}: metadata {e}") from None
  if bounds[MIN_LEARNING_RATE] >= bounds[MAX_LEARNING_RATE]:
    raise UserError(
      f"policy {path}: min_learning_rate {bounds[MIN_LEARNING_RATE]} must be "
      f"below max_learning_rate {bounds[MAX_LEARNING_RATE]}"
    )
  return Interface(
    feature_names=feature_names,
    action_interval=interval,
    max_log_factor=bounds[MAX_LOG_FACTOR],
    min_learning_rate=bounds[MIN_LEARNING_RATE],
    max_learning_rate=bounds[MAX_LEARNING_RATE],
  )
