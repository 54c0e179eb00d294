"""The controller core: an exported policy, turning training states into learning rates.

One module holds the rule every user of a trained controller applies, so the
environment that trains it, the export, the Keras callback and the evaluation
apply the same one:

    observation = guard_observation(features.observation(state, names))
    action      = policy(observation)                   # a log scaling factor
    lr_next     = clip(lr * exp(clip(action, -b, b)), min_lr, max_lr)

with b = `max_log_factor` (`apply_action`). A non-finite action is applied as
0 (keep the rate). `load_policy` loads and validates a policy exported by
`lr_controller.control.export` (format `POLICY_FORMAT`, metadata as
`policy_metadata` lays it out), and `Controller` runs one:
it carries the policy's (RNN) state through a run and says "first" at the
run's first decision. TensorFlow only: no tf-agents, TFP or gin needed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np
import tensorflow as tf

from lr_controller import checks, constants, policy_metadata
from lr_controller import features as features_lib
from lr_controller.errors import UserError, first_line

POLICY_FORMAT = policy_metadata.FORMAT

# Largest absolute value an observation entry may take (a guard, not a scale).
OBSERVATION_LIMIT = 1e6


def guard_observation(observation: np.ndarray) -> np.ndarray:
  """NaN -> 0 and entries clipped to +-OBSERVATION_LIMIT; float32 [num_features]."""
  return np.clip(
    np.nan_to_num(np.asarray(observation, np.float64), nan=0.0),
    -OBSERVATION_LIMIT,
    OBSERVATION_LIMIT,
  ).astype(np.float32)


def level_log_factors(max_log_factor: float, levels: int) -> np.ndarray:
  """The log factors of a discrete action head, action i -> entry i.

  `levels` factors evenly spaced in log between 1 / max_factor and max_factor
  (5 levels of max_factor 2: 1/2, 1/sqrt(2), 1, sqrt(2), 2), float32 [levels].
  The environment applies them and the export maps the policy's choice
  through them, so an exported policy always answers with a log factor.
  """
  levels = checks.integer("action_levels", levels, 2, "an integer of at least 2")
  return np.linspace(-max_log_factor, max_log_factor, levels).astype(np.float32)


def apply_action(
  learning_rate: float,
  action: float,
  max_log_factor: float,
  min_learning_rate: float,
  max_learning_rate: float,
) -> tuple[float, float, bool]:
  """The next learning rate after `action` (a log scaling factor).

  Returns:
    (new learning rate, the log factor applied (clipped to +-max_log_factor;
    0 for a non-finite action), whether the action was finite).
  """
  action = float(action)
  finite = math.isfinite(action)
  applied = min(max(action, -max_log_factor), max_log_factor) if finite else 0.0
  new = min(
    max(learning_rate * math.exp(applied), min_learning_rate), max_learning_rate
  )
  return new, applied, finite


@dataclasses.dataclass(frozen=True)
class Policy:
  """A loaded, validated controller policy.

  Attributes:
    module: the restored SavedModel (`action`, `get_initial_state`,
      `get_metadata`; see `lr_controller.control.export`).
    path: the policy directory.
    metadata: the policy's metadata dict (`policy_metadata`).
    interface: what the policy observes and how its actions apply, read
      from the metadata; its fields are also the policy's attributes
      (`feature_names`, `action_interval`, `max_log_factor`,
      `min_learning_rate`, `max_learning_rate`).
    observation_size: length of the observation the policy takes.
  """

  module: Any
  path: str
  metadata: dict
  interface: policy_metadata.Interface
  observation_size: int

  @property
  def feature_names(self) -> tuple[str, ...]:
    """Observation features, in order."""
    return self.interface.feature_names

  @property
  def action_interval(self) -> int:
    """Trainee steps per decision in controller training."""
    return self.interface.action_interval

  @property
  def max_log_factor(self) -> float:
    """Largest |action| (log of the largest factor)."""
    return self.interface.max_log_factor

  @property
  def min_learning_rate(self) -> float:
    """Lower bound on the learning rate."""
    return self.interface.min_learning_rate

  @property
  def max_learning_rate(self) -> float:
    """Upper bound on the learning rate."""
    return self.interface.max_learning_rate


def _resolve_policy_dir(policy_dir: str | os.PathLike) -> str:
  path = os.fspath(policy_dir)
  if not os.path.isdir(path):
    raise UserError(f"policy directory not found: {path}")
  if tf.saved_model.contains_saved_model(path):
    return path
  nested = os.path.join(path, constants.POLICIES_DIR, constants.GREEDY_POLICY_DIR)
  if tf.saved_model.contains_saved_model(nested):
    return nested  # The root directory of a controller run.
  raise UserError(
    f"{path} is not a controller policy: no SavedModel there (expected "
    f"ROOT/{constants.POLICIES_DIR}/{constants.GREEDY_POLICY_DIR} of train_controller)"
  )


def _observation_size(module, path: str) -> int:
  """Length of the observation of the policy's `action` signature."""
  try:
    signature = getattr(module.action, "input_signature", None)
    if signature is None:
      signature = module.action.concrete_functions[0].structured_input_signature[0]
    size = tf.TensorShape(signature[0].shape)[-1]
  except (AttributeError, IndexError, TypeError, ValueError):
    size = None
  if size is None:
    raise UserError(f"policy {path}: its action signature has no observation size")
  return int(size)


def load_policy(policy_dir: str | os.PathLike) -> Policy:
  """Loads and validates an exported controller policy.

  Args:
    policy_dir: `ROOT/policies/greedy_policy` (or a controller run's ROOT).

  Returns:
    The policy with its parsed metadata.

  Raises:
    UserError: (one line) if the directory is missing, is not a SavedModel, is
      not of format `lr_controller.policy/1`, lacks metadata, names unknown
      features, or takes an observation of another size than its feature list.
  """
  path = _resolve_policy_dir(policy_dir)
  try:
    module = tf.saved_model.load(path)
  except Exception as e:  # Any load failure: the file is the user's.
    raise UserError(
      f"cannot load the policy SavedModel in {path}: {first_line(e)}"
    ) from None
  missing_functions = [
    name
    for name in ("get_metadata", "action", "get_initial_state")
    if not hasattr(module, name)
  ]
  if missing_functions:
    raise UserError(
      f"{path} is a SavedModel but not an lr_controller policy "
      f"(no {', '.join(missing_functions)})"
    )
  try:
    metadata = json.loads(module.get_metadata().numpy())
  except Exception as e:
    raise UserError(f"policy {path}: unreadable metadata: {first_line(e)}") from None
  interface = policy_metadata.read_interface(metadata, path)
  observation_size = _observation_size(module, path)
  if observation_size != len(interface.feature_names):
    raise UserError(
      f"policy {path}: its observation has {observation_size} entries but its "
      f"metadata names {len(interface.feature_names)} features "
      f"{list(interface.feature_names)}"
    )
  return Policy(
    module=module,
    path=path,
    metadata=metadata,
    interface=interface,
    observation_size=observation_size,
  )


class Controller:
  """A loaded policy acting on one run at a time.

  Args:
    policy: a `Policy` (`load_policy`).
  """

  def __init__(self, policy: Policy):
    self.policy = policy
    self.reset()

  def reset(self) -> None:
    """Starts a new run: the policy's initial state, next call is "first"."""
    self._state = list(self.policy.module.get_initial_state(tf.constant(1)))
    self._first = True

  def act(self, observation: np.ndarray) -> float:
    """The policy's raw action (log factor) for one observation [num_features]."""
    out = self.policy.module.action(
      tf.constant(np.asarray(observation, np.float32)[None]),
      tf.constant([0 if self._first else 1], tf.int32),
      self._state,
    )
    self._state = list(out["state"])
    self._first = False
    return float(np.asarray(out["action"]).reshape(-1)[0])

  @property
  def first(self) -> bool:
    """Whether the next `act` is the run's first decision."""
    return self._first

  def observe(self, state: features_lib.TrainingState) -> np.ndarray:
    """The guarded observation of `state`, float32 [num_features]."""
    return guard_observation(features_lib.observation(state, self.policy.feature_names))

  def apply(self, learning_rate: float, action: float) -> tuple[float, float, bool]:
    """`apply_action` with the policy's bounds."""
    p = self.policy
    return apply_action(
      learning_rate, action, p.max_log_factor, p.min_learning_rate, p.max_learning_rate
    )

  def decide(
    self, state: features_lib.TrainingState
  ) -> tuple[float, float, bool, np.ndarray]:
    """Observes `state`, acts, and returns the next learning rate.

    Returns:
      (new learning rate, applied log factor, whether the action was finite,
      the observation float32 [num_features]).
    """
    observation = self.observe(state)
    new, applied, finite = self.apply(state.learning_rate, self.act(observation))
    return new, applied, finite, observation


__all__ = [
  "Controller",
  "OBSERVATION_LIMIT",
  "POLICY_FORMAT",
  "Policy",
  "apply_action",
  "guard_observation",
  "level_log_factors",
  "load_policy",
]
