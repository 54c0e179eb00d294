"""Exports a trained controller as a SavedModel that runs with TensorFlow alone.

tf-agents' `PolicySaver` stores TensorFlow Probability type specs in its
signatures, so loading its output needs `tensorflow_probability` (and in
practice tf_agents) imported first. Users apply the controller inside their own
`model.fit` (`lr_controller.callback`), so `policies/greedy_policy` holds a
plain `tf.Module` instead, whose functions call the trained greedy policy and
return plain tensors:

  policy = tf.saved_model.load(path)
  state = policy.get_initial_state(batch_size)           # list of tensors ([] for MLP)
  out = policy.action(observation, step_type, state)     # dict
  out["action"]   # float32 [B]: log scaling factor, clipped to the action bounds
  out["state"]    # list: the next policy state (LSTM actor)
  json.loads(policy.get_metadata().numpy())              # feature names, bounds, ...

`observation` is float32 [B, num_features] (raw features: the policy holds the
observation normalizer), `step_type` int32 [B] (0 first, 1 mid, 2 last). The
same metadata is written beside the SavedModel as `controller.json`.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf
from tf_agents.trajectories import time_step as ts

from lr_controller import controller as controller_lib
from lr_controller import io_utils

METADATA_FILE = "controller.json"
FORMAT = controller_lib.POLICY_FORMAT


class ControllerModule(tf.Module):
  """The greedy policy, wrapped with TF-only signatures (see module docstring)."""

  def __init__(self, policy, metadata: dict | None = None):
    super().__init__(name="controller")
    self._policy = policy
    self.metadata = tf.Variable("{}", dtype=tf.string, trainable=False, name="metadata")
    if metadata is not None:
      self.set_metadata(metadata)
    num_features = int(policy.time_step_spec.observation.shape[0])
    self._state_specs = tf.nest.flatten(policy.policy_state_spec)
    action_spec = policy.action_spec
    self._minimum = float(action_spec.minimum)
    self._maximum = float(action_spec.maximum)
    state_signature = [
      tf.TensorSpec([None, *spec.shape], spec.dtype, name=f"state_{i}")
      for i, spec in enumerate(self._state_specs)
    ]
    self.action = tf.function(
      self._action,
      input_signature=[
        tf.TensorSpec([None, num_features], tf.float32, name="observation"),
        tf.TensorSpec([None], tf.int32, name="step_type"),
        state_signature,
      ],
    )
    self.get_initial_state = tf.function(
      self._initial_state,
      input_signature=[tf.TensorSpec([], tf.int32, name="batch_size")],
    )
    self.get_metadata = tf.function(self._metadata, input_signature=[])

  def _action(self, observation, step_type, state):
    batch = tf.shape(observation)[0]
    time_step = ts.TimeStep(
      step_type=step_type,
      reward=tf.zeros([batch], tf.float32),
      discount=tf.ones([batch], tf.float32),
      observation=observation,
    )
    policy_state = tf.nest.pack_sequence_as(self._policy.policy_state_spec, list(state))
    step = self._policy.action(time_step, policy_state)
    action = tf.clip_by_value(
      tf.cast(step.action, tf.float32), self._minimum, self._maximum
    )
    return {"action": action, "state": tf.nest.flatten(step.state)}

  def _initial_state(self, batch_size):
    return tf.nest.flatten(self._policy.get_initial_state(batch_size))

  def _metadata(self):
    return self.metadata.read_value()

  def set_metadata(self, metadata: dict) -> None:
    self.metadata.assign(json.dumps({"format": FORMAT, **metadata}, sort_keys=True))


class PolicyExporter:
  """Exports one live policy repeatedly (its functions are traced once)."""

  def __init__(self, policy):
    self._module = ControllerModule(policy)

  def export(self, metadata: dict, export_dir: str) -> str:
    """Saves the policy's current weights and `metadata` to `export_dir`."""
    self._module.set_metadata(metadata)
    return _save(self._module, {"format": FORMAT, **metadata}, export_dir)


def _save(module: ControllerModule, metadata: dict, export_dir: str) -> str:
  def write(path: str) -> None:
    tf.saved_model.save(module, path)
    with open(os.path.join(path, METADATA_FILE), "w") as f:
      json.dump(metadata, f, indent=2, sort_keys=True)

  io_utils.write_dir(export_dir, write)
  return export_dir
