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
`action_levels`, `episodes`, and `training`: the settings its episodes drew
from, each a dict of `scope`, `data`, `model`, `optimizer`, `batch_size`,
`num_steps` and `initial_learning_rates`, and the source `commit`) and is
recorded, not needed to run it; `describe` says it in one line. Controller
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
TRAINING = "training"

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
  settings: list[dict] | None = None,
  commit: str | None = None,
) -> dict:
  """The metadata controller training exports with every policy (without format).

  Args:
    interface: the environment's interface (`Interface.of_environment`).
    reward: the reward's name.
    actor_network: the actor network's JSON description.
    action_levels: levels of a discrete head; None for a continuous one.
    settings: the settings training episodes drew from
      (`LearningRateControlEnv.training_settings`); None: not recorded.
    commit: the source revision that trained it (None: unknown).
  """
  return {
    **interface.fields(),
    REWARD: reward,
    ACTOR_NETWORK: actor_network,
    ACTION_LEVELS: action_levels,
    TRAINING: {"settings": list(settings or []), "commit": commit},
  }


def _span(values: list[float]) -> str:
  low, high = min(values), max(values)
  return f"{low:g}" if low == high else f"{low:g}-{high:g}"


def describe(metadata: dict) -> str:
  """One line: what a policy observes and what it was trained on (from its metadata)."""
  settings = (metadata.get(TRAINING) or {}).get("settings") or []
  parts = []
  if settings:

    def names(key: str) -> str:
      return ", ".join(dict.fromkeys(str(s.get(key)) for s in settings))

    rates = [float(r) for s in settings for r in s.get("initial_learning_rates", [])]
    steps = [float(s["num_steps"]) for s in settings if s.get("num_steps")]
    parts.append(
      f"trained on {len(settings)} setting{'s' * (len(settings) != 1)} "
      f"(data {names('data')}; models {names('model')}; optimizers "
      f"{names('optimizer')}; initial rates {_span(rates) if rates else '?'}; "
      f"{_span(steps) if steps else '?'} steps)"
    )
  else:
    parts.append("training settings not recorded")
  if metadata.get(EPISODES) is not None:
    parts.append(f"{metadata[EPISODES]} episodes")
  features = metadata.get(FEATURES) or []
  parts.append(
    f"observes {', '.join(features)}; decides every "
    f"{metadata.get(ACTION_INTERVAL, '?')} steps"
  )
  commit = (metadata.get(TRAINING) or {}).get("commit")
  if commit:
    parts.append(f"commit {commit}")
  return "; ".join(parts)


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
