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
                  # (a discrete head's choice mapped to its factor's log)
  out["state"]    # list: the next policy state (LSTM actor)
  json.loads(policy.get_metadata().numpy())              # `policy_metadata`

`observation` is float32 [B, num_features] (raw features: the policy holds the
observation normalizer), `step_type` int32 [B] (0 first, 1 mid, 2 last). The
same metadata is written beside the SavedModel as `controller.json`.

The same three functions are also the SavedModel's serving signatures, with
flat named tensors as TensorFlow Serving and `saved_model_cli show` want:
`action(observation, step_type, state_0, ...) -> {action, state_0, ...}`,
`get_initial_state(batch_size) -> {num_states, state_0, ...}` and
`get_metadata() -> {metadata}` (the JSON string).
"""

from __future__ import annotations

import functools
import json
import os

import tensorflow as tf
from tf_agents.trajectories import time_step as ts

from lr_controller import io_utils, policy_metadata

METADATA_FILE = "controller.json"
FORMAT = policy_metadata.FORMAT


class ControllerModule(tf.Module):
  """The greedy policy, wrapped with TF-only signatures (see module docstring).

  Args:
    policy: the agent's greedy policy.
    metadata: JSON-ready metadata (`policy_metadata.build`; `set_metadata`
      may replace it later).
    log_factors: float [levels], the log factor of each discrete action
      (`controller.level_log_factors`); None for a continuous head.
    autograph: convert the policy's Python code with autograph when tracing.
      Off by default: tf-agents writes its policies for graphs without it
      (`common.function`), the graph is the same, and the conversion was
      most of a first export's CPU time (benchmarks/export_trace.py).
  """

  def __init__(
    self, policy, metadata: dict | None = None, log_factors=None, autograph=False
  ):
    super().__init__(name="controller")
    self._policy = policy
    self.metadata = tf.Variable("{}", dtype=tf.string, trainable=False, name="metadata")
    if metadata is not None:
      self.set_metadata(metadata)
    num_features = int(policy.time_step_spec.observation.shape[0])
    self._state_specs = tf.nest.flatten(policy.policy_state_spec)
    action_spec = policy.action_spec
    if action_spec.dtype.is_integer != (log_factors is not None):
      raise ValueError("log_factors must be given exactly for a discrete action spec")
    if log_factors is None:
      self._log_factors = None
      self._minimum = float(action_spec.minimum)
      self._maximum = float(action_spec.maximum)
    else:
      self._log_factors = tf.constant(log_factors, tf.float32)
      self._minimum = float(min(log_factors))
      self._maximum = float(max(log_factors))
    state_signature = [
      tf.TensorSpec([None, *spec.shape], spec.dtype, name=f"state_{i}")
      for i, spec in enumerate(self._state_specs)
    ]
    function = functools.partial(tf.function, autograph=autograph)
    self.action = function(
      self._action,
      input_signature=[
        tf.TensorSpec([None, num_features], tf.float32, name="observation"),
        tf.TensorSpec([None], tf.int32, name="step_type"),
        state_signature,
      ],
    )
    self.get_initial_state = function(
      self._initial_state,
      input_signature=[tf.TensorSpec([], tf.int32, name="batch_size")],
    )
    self.get_metadata = function(self._metadata, input_signature=[])
    # Serving signatures: the same functions with flat, named tensors.
    self._serve_action = function(
      self._serving_action,
      input_signature=[
        tf.TensorSpec([None, num_features], tf.float32, name="observation"),
        tf.TensorSpec([None], tf.int32, name="step_type"),
        *state_signature,
      ],
    )
    self._serve_initial_state = function(
      self._serving_initial_state,
      input_signature=[tf.TensorSpec([], tf.int32, name="batch_size")],
    )
    self._serve_metadata = function(
      lambda: {"metadata": self._metadata()}, input_signature=[]
    )

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
    action = step.action
    if self._log_factors is not None:
      action = tf.gather(self._log_factors, tf.cast(action, tf.int32))
    action = tf.clip_by_value(tf.cast(action, tf.float32), self._minimum, self._maximum)
    return {"action": action, "state": tf.nest.flatten(step.state)}

  def _initial_state(self, batch_size):
    return tf.nest.flatten(self._policy.get_initial_state(batch_size))

  def _serving_action(self, observation, step_type, *state):
    out = self._action(observation, step_type, list(state))
    return {
      "action": out["action"],
      **{f"state_{i}": s for i, s in enumerate(out["state"])},
    }

  def _serving_initial_state(self, batch_size):
    states = self._initial_state(batch_size)
    return {
      "num_states": tf.constant(len(states), tf.int32),
      **{f"state_{i}": s for i, s in enumerate(states)},
    }

  def signatures(self) -> dict:
    """The serving signatures (see the module docstring)."""
    return {
      "action": self._serve_action.get_concrete_function(),
      "get_initial_state": self._serve_initial_state.get_concrete_function(),
      "get_metadata": self._serve_metadata.get_concrete_function(),
    }

  def _metadata(self):
    return self.metadata.read_value()

  def set_metadata(self, metadata: dict) -> None:
    self.metadata.assign(json.dumps(policy_metadata.document(metadata), sort_keys=True))


class PolicyExporter:
  """Exports one live policy repeatedly (its functions are traced once)."""

  def __init__(self, policy, log_factors=None):
    self._module = ControllerModule(policy, log_factors=log_factors)

  def export(self, metadata: dict, export_dir: str, episodes: int | None = None) -> str:
    """Saves the policy's current weights and `metadata` to `export_dir`.

    Args:
      metadata: `policy_metadata.build`'s dict.
      export_dir: where to write (replaced whole).
      episodes: the controller's training episodes so far, recorded.
    """
    document = policy_metadata.document(metadata, episodes)
    self._module.set_metadata(document)
    return _save(self._module, document, export_dir)


def _save(module: ControllerModule, metadata: dict, export_dir: str) -> str:
  def write(path: str) -> None:
    tf.saved_model.save(module, path, signatures=module.signatures())
    with open(os.path.join(path, METADATA_FILE), "w") as f:
      json.dump(metadata, f, indent=2, sort_keys=True)

  io_utils.write_dir(export_dir, write)
  return export_dir
