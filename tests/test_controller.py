"""The controller core: the action rule, the observation guard, and one path for users.

The last test is the one that matters to users: the Keras callback in a real
`model.fit` and the evaluation's controller run give the same learning-rate
path for the same trainee seed and policy.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.trajectories import time_step as ts

import lr_controller
from lr_controller import constants, gin_utils
from lr_controller import controller as controller_lib
from lr_controller.control import controller_training, export
from lr_controller.judge import evaluation
from lr_controller.trainee import trainee as trainee_lib

SMOKE = ["controller/digits.gin", "smoke.gin"]
# Six decisions per run, a policy trained for one update.
BINDINGS = ["NUM_STEPS = 60", "create_agent.num_epochs = 2"]


def _train_toy_controller(test, bindings, selection_runs):
  """Trains 2 episodes on the noisy quadratic (40 steps), one export at the end.

  Returns:
    The exported greedy policy's directory.
  """
  gin_utils.parse_gin(
    ["controller/noisy_quadratic.gin"],
    ["create_environment.num_steps=40", "create_agent.num_epochs=2", *bindings],
    finalize=False,
  )
  trained = controller_training.train_controller(
    test.create_tempdir().full_path,
    seed=0,
    num_episodes=2,
    export_interval=0,
    selection_runs=selection_runs,
    say=lambda _: None,
  )
  return trained["policy_dir"]


class ActionRuleTest(tf.test.TestCase):
  def test_apply_action(self):
    bound = math.log(2.0)
    rule = lambda lr, a: controller_lib.apply_action(lr, a, bound, 1e-4, 1.0)  # noqa: E731
    self.assertAllClose(rule(0.01, bound), (0.02, bound, True))
    self.assertAllClose(rule(0.01, 5.0), (0.02, bound, True))  # Clipped to x2.
    self.assertAllClose(rule(0.01, -5.0), (0.005, -bound, True))
    self.assertEqual(rule(0.01, float("nan")), (0.01, 0.0, False))
    self.assertEqual(rule(0.01, float("inf")), (0.01, 0.0, False))
    self.assertAllClose(rule(0.8, bound)[0], 1.0)  # The largest rate.
    self.assertAllClose(rule(1.5e-4, -bound)[0], 1e-4)  # The smallest.

  def test_guard_observation(self):
    got = controller_lib.guard_observation([np.nan, 1e9, -1e9, 0.5])
    self.assertEqual(got.dtype, np.float32)
    self.assertAllClose(got, [0.0, 1e6, -1e6, 0.5])


class DiscreteHeadTest(tf.test.TestCase):
  def test_a_categorical_policy_exports_log_factors_of_its_factor_set(self):
    policy_dir = _train_toy_controller(
      self,
      ["create_environment.action_levels=5", "create_agent.action_head='categorical'"],
      selection_runs=1,
    )
    policy = controller_lib.load_policy(policy_dir)
    self.assertEqual(policy.metadata["action_levels"], 5)
    table = controller_lib.level_log_factors(policy.max_log_factor, 5)
    controller = controller_lib.Controller(policy)
    rng = np.random.default_rng(0)
    for _ in range(5):
      action = controller.act(rng.normal(size=policy.observation_size))
      self.assertTrue(np.any(np.isclose(action, table, atol=1e-6)), action)
    # The evaluation's environment takes the exported log factors.
    env = evaluation.make_environment(policy.metadata)
    self.assertIsNone(env.action_log_factors)
    record = evaluation.run_controller(env, policy, seed=7)
    steps = np.diff(
      np.log([record["initial_learning_rate"], *record["learning_rates"]])
    )
    for step in steps:
      self.assertTrue(np.any(np.isclose(step, table, atol=1e-5)), step)


class ExportTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.named_parameters(
    ("gaussian", []),
    ("beta", ["create_agent.action_head = 'beta'"]),
    (
      "categorical",
      [
        "create_agent.action_head = 'categorical'",
        "create_environment.action_levels = 5",
      ],
    ),
    ("lstm", ["create_agent.actor_network = 'lstm'"]),
  )
  def test_the_export_acts_as_the_live_greedy_policy(self, bindings):
    # The module traces without autograph (export.ControllerModule): for
    # every head, its saved graph must compute what the live policy does.
    gin_utils.parse_gin(["controller/noisy_quadratic.gin"], bindings, finalize=False)
    py_env, agent = controller_training.build_environment_and_agent(0)
    path = self.create_tempdir().full_path
    metadata = {"features": list(py_env.feature_names)}
    export.PolicyExporter(agent.policy, py_env.action_log_factors).export(
      metadata, path
    )
    loaded = tf.saved_model.load(path)
    rng = np.random.default_rng(0)
    batch = 3
    observation = tf.constant(
      rng.normal(size=(batch, len(py_env.feature_names))) * 3, tf.float32
    )
    step_type = tf.constant([0, 1, 1])
    live = agent.policy.action(
      ts.TimeStep(
        step_type=step_type,
        reward=tf.zeros([batch]),
        discount=tf.ones([batch]),
        observation=observation,
      ),
      agent.policy.get_initial_state(batch),
    ).action
    if py_env.action_log_factors is not None:
      live = tf.gather(py_env.action_log_factors, live)
    live = np.clip(live.numpy(), -py_env.max_log_factor, py_env.max_log_factor)
    state = loaded.get_initial_state(tf.constant(batch))
    saved = loaded.action(observation, step_type, state)["action"].numpy()
    self.assertAllClose(saved, live, atol=1e-6)


class ServingSignaturesTest(tf.test.TestCase):
  def test_an_lstm_policy_serves_what_its_functions_compute(self):
    # One export at the end, nothing to choose between: no selection runs.
    path = _train_toy_controller(
      self, ["create_agent.actor_network='lstm'"], selection_runs=0
    )
    module = tf.saved_model.load(path)
    self.assertCountEqual(
      module.signatures, ["action", "get_initial_state", "get_metadata"]
    )
    initial = module.signatures["get_initial_state"](batch_size=tf.constant(2))
    num_states = int(initial["num_states"])
    self.assertEqual(num_states, 2)  # An LSTM's h and c.
    states = [initial[f"state_{i}"] for i in range(num_states)]
    observation = tf.constant(np.linspace(-1, 1, 2 * 8, dtype=np.float32).reshape(2, 8))
    step_type = tf.constant([0, 0], tf.int32)
    served = module.signatures["action"](
      observation=observation,
      step_type=step_type,
      **{f"state_{i}": s for i, s in enumerate(states)},
    )
    direct = module.action(observation, step_type, states)
    self.assertAllClose(served["action"], direct["action"])
    for i in range(num_states):
      self.assertAllClose(served[f"state_{i}"], direct["state"][i])
    metadata = module.signatures["get_metadata"]()["metadata"]
    self.assertEqual(metadata.numpy(), module.get_metadata().numpy())
    shown = subprocess.run(
      [
        sys.executable,
        "-m",
        "tensorflow.python.tools.saved_model_cli",
        "show",
        "--dir",
        path,
        "--all",
      ],
      capture_output=True,
      text=True,
      timeout=120,
      check=True,
    ).stdout
    for name in ("action", "get_initial_state", "get_metadata"):
      self.assertIn(f"signature_def['{name}']", shown)


@pytest.mark.slow
class ScopedSettingsTest(tf.test.TestCase):
  def test_training_draws_scoped_trainees_and_evaluation_runs_the_unscoped_one(self):
    # The smoke setting's 20 steps (two decisions) per run: what is checked is
    # which trainee each run builds, not what the controller learns.
    bindings = [
      "create_agent.num_epochs = 2",
      "create_environment.scoped_initial_learning_rates = {'adam': [0.003]}",
      "create_environment.scoped_reward_scales = {'adam': 2.0}",
      "adam/make_optimizer.name = 'adam'",
    ]
    gin_utils.parse_gin(SMOKE, bindings, finalize=False)
    root = self.create_tempdir().full_path
    # Seed 0's episodes 0 and 1 draw the adam and the SGD setting: one round
    # of the two spawned environments trains both. The selection run builds
    # both settings' trainees in this process too (the operative config).
    trained = controller_training.train_controller(
      root,
      seed=0,
      num_episodes=2,
      num_parallel_envs=2,
      export_interval=0,
      selection_runs=1,
      say=lambda _: None,
    )
    with open(os.path.join(root, constants.EPISODES_JSONL)) as f:
      episodes = [json.loads(line) for line in f]
    rates = {(e["trainee_scope"], e["initial_learning_rate"]) for e in episodes}
    self.assertEqual(rates, {("", 0.01), ("adam", 0.003)})
    scales = {e["trainee_scope"]: e["reward_scale"] for e in episodes}
    self.assertEqual(scales["adam"], 2.0)
    self.assertNotEqual(scales[""], 2.0)  # The unscoped trainee keeps reward_scale.
    with open(os.path.join(root, constants.OPERATIVE_GIN)) as f:
      self.assertIn("adam/make_optimizer.name = 'adam'", f.read())
    # Evaluation runs the unscoped setting (SGD from 0.01) on every seed; the
    # training's scoped bindings (scoped_reward_scales among them) are left out.
    policy, metadata = evaluation.load_policy(trained["policy_dir"])
    env = evaluation.make_environment(metadata)
    for seed in evaluation.evaluation_seeds(0, 4):
      record = evaluation.run_controller(env, policy, seed)
      self.assertEqual(record["initial_learning_rate"], 0.01)
      self.assertNotIn("trainee_scope", env.last_episode)
      self.assertIsInstance(env.trainee.optimizer, tf.keras.optimizers.SGD)


class OnePathTest(tf.test.TestCase):
  """A real exported policy on the digits smoke setting (~40 s)."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(prefix="lrc_test_controller_")
    gin_utils.parse_gin(SMOKE, BINDINGS, finalize=False)
    # One export at the end, nothing to choose between: no selection runs.
    trained = controller_training.train_controller(
      os.path.join(cls.root),
      seed=0,
      num_episodes=2,
      selection_runs=0,
      say=lambda _: None,
    )
    cls.policy_dir = trained["policy_dir"]

  def setUp(self):
    super().setUp()
    gin_utils.parse_gin(SMOKE, BINDINGS, finalize=False)

  def test_controller_acts_as_the_exported_module(self):
    policy = controller_lib.load_policy(self.policy_dir)
    controller = controller_lib.Controller(policy)
    observation = np.linspace(-1, 1, len(policy.feature_names)).astype(np.float32)
    self.assertTrue(controller.first)
    action = controller.act(observation)
    self.assertFalse(controller.first)
    expected = policy.module.action(
      tf.constant(observation[None]),
      tf.constant([0]),
      list(policy.module.get_initial_state(tf.constant(1))),
    )["action"]
    self.assertAllClose(action, float(expected[0]))
    controller.reset()
    self.assertTrue(controller.first)

  def test_callback_in_fit_and_evaluation_give_the_same_learning_rates(self):
    seed = evaluation.evaluation_seeds(0, 1)[0]
    policy, metadata = evaluation.load_policy(self.policy_dir)
    env = evaluation.make_environment(metadata)
    run = evaluation.run_controller(env, policy, seed)

    # The user's side: the same trainee (weights, batches, rate) in `fit`.
    trainee = trainee_lib.build_trainee(seed=seed)
    num_steps = env.num_steps
    model = trainee.model
    model.compile(
      tf.keras.optimizers.SGD(run["initial_learning_rate"], momentum=0.9),
      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    validation = tuple(
      tf.concat(part, 0) for part in zip(*[(x, y) for x, y in trainee.data.validation])
    )
    scheduler = lr_controller.LearnedLRScheduler(
      self.policy_dir,
      validation_data=validation,
      validation_examples=int(validation[0].shape[0]),
      total_steps=num_steps,
    )
    model.fit(
      trainee.data.train_stream(seed).take(num_steps),
      epochs=1,
      callbacks=[scheduler],
      verbose=0,
    )
    fit_rates = [row["lr"] for row in scheduler.history]
    # The environment records the rate of each chunk it trained; the callback
    # also records the rate it set after the last chunk, which no step uses.
    self.assertLen(fit_rates, len(run["learning_rates"]) + 1)
    self.assertAllClose(fit_rates[:-1], run["learning_rates"], rtol=1e-4)
    self.assertGreater(len(set(np.round(run["learning_rates"], 8))), 1)


if __name__ == "__main__":
  tf.test.main()
