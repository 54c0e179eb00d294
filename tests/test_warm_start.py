"""A controller run warm-started from another run (train_controller.warm_start_dir).

In-process on the noisy quadratic task (a cheap trainee): the warm-started
agent acts as the source run's final greedy policy before its first update,
a resumed run ignores the warm start, and a source that does not fit is one
UserError.
"""

import os

import gin
import numpy as np
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


class WarmStartTest(tf.test.TestCase):
  def setUp(self):
    super().setUp()
    self.addCleanup(gin.clear_config)
    self.tmp = self.create_tempdir().full_path
    self.source = os.path.join(self.tmp, "source")
    os.makedirs(self.source)
    _parse()
    controller_training.train_controller(
      self.source, seed=1, num_episodes=2, export_interval=0, say=lambda s: None
    )
    # Observations of the toy config's 8 features, as the normalizer sees them.
    self.observations = tf.constant(
      np.random.default_rng(0).normal(size=(5, 8)), tf.float32
    )

  def _greedy_before_first_update(self, root, seed, say, **kwargs):
    """Runs train_controller; returns the greedy actions before any update."""
    seen = {}

    def collector_fn(agent, collector_seed):
      if "actions" not in seen:
        step = ts.restart(self.observations, batch_size=5)
        seen["actions"] = agent.policy.action(step).action.numpy()
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
    return seen.get("actions")

  def test_starts_from_the_source_policy_and_a_resume_ignores_it(self):
    exported = tf.saved_model.load(
      os.path.join(self.source, constants.POLICIES_DIR, constants.GREEDY_POLICY_DIR)
    )
    source_actions = exported.action(
      self.observations, tf.zeros([5], tf.int32), exported.get_initial_state(5)
    )["action"].numpy()

    target = os.path.join(self.tmp, "target")
    os.makedirs(target)
    said = []
    warm = self._greedy_before_first_update(
      target, seed=2, say=said.append, warm_start_dir=self.source
    )
    self.assertAllClose(warm, source_actions, atol=1e-6)
    self.assertTrue(any(line.startswith("warm start from") for line in said), said)
    record = io_utils.read_json(os.path.join(target, constants.WARM_START_JSON))
    self.assertEqual(record["source_dir"], os.path.abspath(self.source))
    self.assertEqual(record["episodes"], 2)

    cold_root = os.path.join(self.tmp, "cold")
    os.makedirs(cold_root)
    cold = self._greedy_before_first_update(cold_root, seed=2, say=lambda s: None)
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

  def test_a_source_that_does_not_fit_is_one_user_error(self):
    empty = os.path.join(self.tmp, "empty")
    os.makedirs(empty)
    cases = [
      (empty, [], "holds no controller run"),
      (self.source, ["create_agent.hidden_units=16"], "other networks"),
      (
        self.source,
        ["create_environment.feature_names=%PAPER_FEATURES"],
        "other features",
      ),
    ]
    for k, (source, bindings, message) in enumerate(cases):
      _parse(*bindings)
      root = os.path.join(self.tmp, f"target{k}")
      os.makedirs(root)
      with self.assertRaisesRegex(UserError, message):
        controller_training.train_controller(
          root, seed=2, num_episodes=2, say=lambda s: None, warm_start_dir=source
        )


if __name__ == "__main__":
  tf.test.main()
