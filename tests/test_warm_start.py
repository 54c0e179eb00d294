"""A controller run warm-started from another run (train_controller.warm_start_dir),
and a failed PPO update rolled back to the last checkpoint.

In-process on the noisy quadratic task (a cheap trainee): the warm-started
agent holds the source's latest checkpoint's actor, critic and normalizer
before its first update, a resumed run ignores the warm start, and a source
that does not fit is one UserError that leaves the run's directory free for
a corrected command.
"""

import os
import shutil
import tempfile

import gin
import numpy as np
import pytest
import tensorflow as tf
from tf_agents.trajectories import time_step as ts

from lr_controller import constants, gin_utils, io_utils
from lr_controller.control import controller_training
from lr_controller.control import env as env_lib
from lr_controller.errors import UserError

_BINDINGS = ["create_environment.num_steps=40", "create_agent.num_epochs=2"]


def _parse(*bindings):
  gin.clear_config()
  gin_utils.parse_gin(
    ["controller/noisy_quadratic.gin"], _BINDINGS + list(bindings), finalize=False
  )


@pytest.mark.slow
class WarmStartTest(tf.test.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # The source run, trained once: the tests only read it.
    cls.source_root = tempfile.mkdtemp(prefix="lrc_test_warm_start_")
    cls.source = os.path.join(cls.source_root, "source")
    os.makedirs(cls.source)
    _parse()
    try:
      # Two selections of one validation run: the latest policy need not be
      # the selected one, and a warm start takes the latest.
      controller_training.train_controller(
        cls.source,
        seed=1,
        num_episodes=4,
        export_interval=2,
        selection_runs=1,
        say=lambda s: None,
      )
    finally:
      gin.clear_config()

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.source_root, ignore_errors=True)
    super().tearDownClass()

  def setUp(self):
    super().setUp()
    self.addCleanup(gin.clear_config)
    self.tmp = self.create_tempdir().full_path
    _parse()
    # Observations of the toy config's 8 features, as the normalizer sees them.
    self.observations = tf.constant(
      np.random.default_rng(0).normal(size=(5, 8)), tf.float32
    )

  def _before_first_update(self, root, seed, say, **kwargs):
    """Runs train_controller; returns (greedy actions, collect policy variables)
    as they were before any update."""
    seen = {}

    def collector_fn(agent, collector_seed):
      if "actions" not in seen:
        step = ts.restart(self.observations, batch_size=5)
        seen["actions"] = agent.policy.action(step).action.numpy()
        seen["variables"] = [v.numpy() for v in agent.collect_policy.variables()]
      env = env_lib.create_environment(seed=collector_seed)
      return controller_training.EnvironmentCollector([env], agent, collector_seed)

    controller_training.train_controller(
      root,
      seed=seed,
      num_episodes=2,
      export_interval=0,
      say=say,
      collector_fn=collector_fn,
      **kwargs,
    )
    return seen["actions"], seen["variables"]

  def test_starts_from_the_source_networks_and_a_resume_ignores_it(self):
    policies = os.path.join(self.source, constants.POLICIES_DIR)
    last = tf.saved_model.load(os.path.join(policies, constants.LAST_POLICY_DIR))
    source_actions = last.action(
      self.observations, tf.zeros([5], tf.int32), last.get_initial_state(5)
    )["action"].numpy()

    target = os.path.join(self.tmp, "target")
    os.makedirs(target)
    said = []
    warm, variables = self._before_first_update(
      target, seed=2, say=said.append, warm_start_dir=self.source
    )
    self.assertAllClose(warm, source_actions, atol=1e-6)
    self.assertTrue(any(line.startswith("warm start from") for line in said), said)
    record = io_utils.read_json(os.path.join(target, constants.WARM_START_JSON))
    self.assertEqual(record["source_dir"], os.path.abspath(self.source))
    self.assertEqual(record["episodes"], 4)
    # Every variable of actor, critic and normalizer is the source's, as its
    # latest checkpoint holds it.
    reader = tf.train.load_checkpoint(record["checkpoint"])
    saved = [
      reader.get_tensor(key)
      for key in reader.get_variable_to_shape_map()
      if key.startswith(
        ("agent/_actor_net/", "agent/_value_net/", "agent/_observation_normalizer/")
      )
      and key.endswith("VARIABLE_VALUE")
    ]
    self.assertLen(saved, len(variables))
    for value in variables:
      self.assertTrue(
        any(v.shape == value.shape and np.array_equal(v, value) for v in saved),
        value.shape,
      )

    cold_root = os.path.join(self.tmp, "cold")
    os.makedirs(cold_root)
    cold, _ = self._before_first_update(cold_root, seed=2, say=lambda s: None)
    self.assertNotAllClose(cold, source_actions)

    # Resumed: the run's own checkpoint, not the source's.
    said = []
    controller_training.train_controller(
      target,
      seed=2,
      num_episodes=4,
      export_interval=0,
      say=said.append,
      warm_start_dir=self.source,
    )
    self.assertTrue(any("resuming from episode 2" in line for line in said), said)
    self.assertFalse(any("warm start" in line for line in said), said)

  def test_a_non_finite_update_is_rolled_back(self):
    root = os.path.join(self.tmp, "poisoned")
    os.makedirs(root)
    before_collecting = []

    class PoisonFirstUpdate:
      """Collects as usual; the first update's rewards are NaN."""

      def __init__(self, agent, seed):
        self.agent = agent
        env = env_lib.create_environment(seed=seed)
        self.inner = controller_training.EnvironmentCollector([env], agent, seed)

      def collect(self, episodes):
        before_collecting.append([v.numpy() for v in self.agent.variables])
        experience, infos = self.inner.collect(episodes)
        if episodes[0] == 0:
          experience = experience._replace(reward=experience.reward * np.nan)
        return experience, infos

      def close(self, finished):
        self.inner.close(finished)

    said = []
    controller_training.train_controller(
      root,
      seed=2,
      num_episodes=4,
      episodes_per_update=2,
      export_interval=0,
      say=said.append,
      collector_fn=PoisonFirstUpdate,
    )
    self.assertTrue(any("rolled back" in line for line in said), said)
    first, second = before_collecting
    self.assertLen(second, len(first))
    for a, b in zip(first, second):
      self.assertAllEqual(a, b)
    updates = io_utils.read_jsonl(os.path.join(root, constants.UPDATES_JSONL))
    self.assertEqual([u["update"] for u in updates], ["rolled_back", "ok"])
    reader = tf.train.load_checkpoint(
      tf.train.latest_checkpoint(os.path.join(root, "train", "checkpoints"))
    )
    for key in reader.get_variable_to_shape_map():
      value = np.asarray(reader.get_tensor(key))
      if value.dtype.kind == "f":
        self.assertTrue(np.all(np.isfinite(value)), key)

  def test_a_source_that_does_not_fit_is_one_user_error(self):
    empty = os.path.join(self.tmp, "empty")
    os.makedirs(empty)
    # A copy of the source whose checkpoint data is garbage.
    broken = os.path.join(self.tmp, "broken")
    shutil.copytree(self.source, broken)
    checkpoints = os.path.join(broken, constants.TRAIN_DIR, constants.CHECKPOINTS_DIR)
    for name in os.listdir(checkpoints):
      if ".data-" in name:
        with open(os.path.join(checkpoints, name), "wb") as f:
          f.write(b"not a checkpoint")
    cases = [
      (empty, [], "holds no controller run"),
      (self.source, ["create_agent.hidden_units=16"], "other networks"),
      (
        self.source,
        ["create_environment.feature_names=%PAPER_FEATURES"],
        "other features",
      ),
      (broken, [], "cannot warm-start from"),
    ]
    for k, (source, bindings, message) in enumerate(cases):
      _parse(*bindings)
      root = os.path.join(self.tmp, f"target{k}")
      os.makedirs(root)
      with self.assertRaisesRegex(UserError, message):
        controller_training.train_controller(
          root, seed=2, num_episodes=2, say=lambda s: None, warm_start_dir=source
        )
      if k < 3:  # Refused before the run wrote anything.
        self.assertEmpty(os.listdir(root))

    # The corrected command runs in the same directory, also with optimizer
    # settings the source did not have (only the networks are read).
    _parse("create_agent.actor_learning_rate_decay_steps=10")
    controller_training.train_controller(
      os.path.join(self.tmp, "target1"),
      seed=2,
      num_episodes=2,
      export_interval=0,
      say=lambda s: None,
      warm_start_dir=self.source,
    )


if __name__ == "__main__":
  tf.test.main()
