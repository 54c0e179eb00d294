"""Exploration noise: fresh in every episode, reproducible from the seeds."""

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from lr_controller import gin_utils
from lr_controller.control import agent as agent_lib
from lr_controller.control import env as env_lib
from lr_controller.control import episode_collection, exploration

_TOY = ["controller/noisy_quadratic.gin"]
_BINDINGS = ["create_environment.num_steps=200"]


def _standardised_noise(episode):
  """(sampled action - policy mean) / policy spread, float [decisions]."""
  trajectory = episode.trajectory
  params = trajectory.policy_info["dist_params"]
  noise = (trajectory.action - params["loc"]) / params["scale"]
  return noise[:-1]  # The boundary step's action is never applied.


class ActionSeedsTest(tf.test.TestCase):
  def test_seeds_are_a_function_of_seed_episode_and_decision(self):
    a = exploration.action_seeds(0, [3, 4], 5)
    self.assertEqual(a.shape, (2, 2))
    self.assertEqual(a.dtype, np.int32)
    self.assertTrue((a >= 0).all())
    self.assertAllEqual(a, exploration.action_seeds(0, [3, 4], 5))
    self.assertAllEqual(a[1], exploration.action_seeds(0, [4], 5)[0])
    others = [
      exploration.action_seeds(1, [3], 5)[0],
      exploration.action_seeds(0, [3], 6)[0],
      a[1],
    ]
    for other in others:
      self.assertNotAllEqual(a[0], other)


class ExplorationTest(tf.test.TestCase):
  def setUp(self):
    super().setUp()
    gin_utils.parse_gin(_TOY, _BINDINGS, finalize=False)
    self.env = env_lib.create_environment(seed=0)
    tf.keras.utils.set_random_seed(0)
    self.agent = agent_lib.create_agent(
      tensor_spec.from_spec(self.env.time_step_spec()),
      tensor_spec.from_spec(self.env.action_spec()),
    )
    self.policy = exploration.SeededPolicy(self.agent.collect_policy)

  def test_noise_of_different_episodes_is_uncorrelated(self):
    # Reseeding TensorFlow's global generator between episodes (what froze
    # exploration before) must not matter any more.
    noises = []
    for episode in range(6):
      tf.random.set_seed(123)
      [collected] = episode_collection.collect_episodes(
        [self.env], self.policy, [episode], seed=0
      )
      noises.append(_standardised_noise(collected))
    noises = np.stack(noises)  # [episodes, decisions]
    self.assertEqual(noises.shape, (6, 20))
    # Standard normal draws: mean 0 and spread 1 over the 120 of them.
    self.assertAllClose(noises.mean(), 0.0, atol=0.35)
    self.assertAllClose(noises.std(), 1.0, atol=0.25)
    correlations = np.corrcoef(noises)[np.triu_indices(6, k=1)]
    # Frozen noise gave correlations of 1; independent draws of 20 decisions
    # have a standard deviation of about 0.23 around 0.
    self.assertLess(np.abs(correlations).max(), 0.75)
    self.assertLess(np.abs(correlations).mean(), 0.35)

  def test_same_episode_explores_with_the_same_noise(self):
    runs = []
    for _ in range(2):
      [collected] = episode_collection.collect_episodes(
        [self.env], self.policy, [7], seed=0
      )
      runs.append(collected.trajectory.action)
    self.assertAllEqual(runs[0], runs[1])
    [other_seed] = episode_collection.collect_episodes(
      [self.env], self.policy, [7], seed=1
    )
    self.assertNotAllClose(runs[0], other_seed.trajectory.action)

  def test_greedy_policy_ignores_the_seeds(self):
    greedy = exploration.SeededPolicy(self.agent.policy)
    actions = [
      episode_collection.collect_episodes([self.env], greedy, [2], seed=s)[
        0
      ].trajectory.action
      for s in (0, 1)
    ]
    self.assertAllEqual(actions[0], actions[1])


if __name__ == "__main__":
  tf.test.main()
