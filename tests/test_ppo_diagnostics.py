"""PPO's health diagnostics, against direct computations."""

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from lr_controller import gin_utils
from lr_controller.control import agent as agent_lib
from lr_controller.control import env as env_lib
from lr_controller.control import episode_collection, exploration, ppo_diagnostics


class NoiseCorrelationTest(tf.test.TestCase):
  def _layout(self, episodes):
    noise, valid = [], []
    for e in episodes:
      noise.extend(e)
      valid.extend([True] * len(e))
      noise.append(0.0)  # The boundary step.
      valid.append(False)
    return np.asarray(noise), np.asarray(valid)

  def test_frozen_noise_correlates_fully_and_fresh_noise_does_not(self):
    rng = np.random.default_rng(0)
    frozen = rng.normal(size=20)
    self.assertAllClose(
      ppo_diagnostics.noise_correlation(*self._layout([frozen] * 4)), 1.0
    )
    fresh = [rng.normal(size=20) for _ in range(8)]
    expected = np.mean(np.abs(np.corrcoef(fresh)[np.triu_indices(8, k=1)]))
    got = ppo_diagnostics.noise_correlation(*self._layout(fresh))
    self.assertAllClose(got, expected)
    self.assertLess(got, 0.4)
    self.assertIsNone(ppo_diagnostics.noise_correlation(*self._layout([frozen])))


class UpdateDiagnosticsTest(tf.test.TestCase):
  def test_diagnostics_of_one_update(self):
    gin_utils.parse_gin(
      ["controller/noisy_quadratic.gin"],
      ["create_environment.num_steps=100"],
      finalize=False,
    )
    env = env_lib.create_environment(seed=0)
    tf.keras.utils.set_random_seed(0)
    agent = agent_lib.create_agent(
      tensor_spec.from_spec(env.time_step_spec()),
      tensor_spec.from_spec(env.action_spec()),
      initial_action_stddev=0.5,
      squash_mean=False,
    )
    policy = exploration.SeededPolicy(agent.collect_policy)
    episodes = [
      episode_collection.collect_episodes([env], policy, [k], seed=0)[0]
      for k in range(3)
    ]
    experience = episode_collection.to_experience(episodes, agent.collect_data_spec)
    before = ppo_diagnostics.before_update(agent, experience)
    loss_info = agent.train(experience)
    got = ppo_diagnostics.after_update(
      agent, experience, before, loss_info, env.max_log_factor
    )
    self.assertCountEqual(got, ppo_diagnostics.NAMES)
    actions = np.concatenate([e.trajectory.action[:-1] for e in episodes])
    self.assertAllClose(
      got["at_bound_share"], np.mean(np.abs(actions) >= env.max_log_factor)
    )
    locs = np.concatenate(
      [e.trajectory.policy_info["dist_params"]["loc"][:-1] for e in episodes]
    )
    self.assertAllClose(got["policy_mean"], locs.mean(), atol=1e-5)
    self.assertAllClose(got["policy_std"], 0.5, atol=1e-5)  # Before the update.
    self.assertGreaterEqual(got["approx_kl"], 0.0)
    self.assertBetween(got["clip_fraction"], 0.0, 1.0)
    self.assertLessEqual(got["explained_variance"], 1.0)
    self.assertLess(got["noise_correlation"], 0.6)
    self.assertTrue(np.all(np.isfinite(before["return"][before["valid"]])))

  def test_a_categorical_head_reports_moments_of_its_log_factors(self):
    gin_utils.parse_gin(
      ["controller/noisy_quadratic.gin"],
      ["create_environment.num_steps=100", "create_environment.action_levels=5"],
      finalize=False,
    )
    env = env_lib.create_environment(seed=0)
    tf.keras.utils.set_random_seed(0)
    agent = agent_lib.create_agent(
      tensor_spec.from_spec(env.time_step_spec()),
      tensor_spec.from_spec(env.action_spec()),
      action_head="categorical",
    )
    policy = exploration.SeededPolicy(agent.collect_policy)
    episodes = [
      episode_collection.collect_episodes([env], policy, [k], seed=0)[0]
      for k in range(3)
    ]
    experience = episode_collection.to_experience(episodes, agent.collect_data_spec)
    table = env.action_log_factors
    before = ppo_diagnostics.before_update(agent, experience, table)
    loss_info = agent.train(experience)
    got = ppo_diagnostics.after_update(
      agent, experience, before, loss_info, env.max_log_factor
    )
    indices = np.concatenate([e.trajectory.action[:-1] for e in episodes])
    self.assertAllClose(
      got["at_bound_share"], np.mean((indices == 0) | (indices == len(table) - 1))
    )
    logits = np.concatenate(
      [e.trajectory.policy_info["dist_params"]["logits"][:-1] for e in episodes]
    )
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    mean = probs @ table
    std = np.sqrt(probs @ table**2 - mean**2)
    self.assertAllClose(got["policy_mean"], mean.mean(), atol=1e-5)
    self.assertAllClose(got["policy_std"], std.mean(), atol=1e-5)
    self.assertBetween(got["entropy"], 0.0, np.log(5) + 1e-6)
    self.assertLess(got["noise_correlation"], 0.6)


if __name__ == "__main__":
  tf.test.main()
