"""Parallel episode collection: the experience layout, seeds and processes."""

import tensorflow as tf
from tf_agents.drivers import dynamic_episode_driver
from tf_agents.environments import tf_py_environment
from tf_agents.replay_buffers import tf_uniform_replay_buffer

from lr_controller import gin_utils
from lr_controller.control import agent as agent_lib
from lr_controller.control import env as env_lib
from lr_controller.control import episode_collection, exploration

_TOY = ["controller/noisy_quadratic.gin"]
_BINDINGS = ["create_environment.num_steps=40"]


def _agent(py_env):
  tf_env = tf_py_environment.TFPyEnvironment(py_env)
  tf.keras.utils.set_random_seed(0)
  return tf_env, agent_lib.create_agent(
    tf_env.time_step_spec(),
    tf_env.action_spec(),
    train_step_counter=tf.Variable(0, dtype=tf.int64),
  )


class EpisodeCollectionTest(tf.test.TestCase):
  def setUp(self):
    super().setUp()
    gin_utils.parse_gin(_TOY, _BINDINGS, finalize=False)

  def test_layout_matches_tf_agents_episode_driver(self):
    # The greedy policy is deterministic, so both collections must agree on
    # every field: what the driver leaves in a replay buffer for two episodes
    # (0 and 1), and two episodes collected at once and laid end to end.
    driver_env = env_lib.create_environment(seed=3)
    tf_env, agent = _agent(driver_env)
    policy = agent.policy
    buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
      policy.trajectory_spec, batch_size=1, max_length=100
    )
    driver = dynamic_episode_driver.DynamicEpisodeDriver(
      tf_env, policy, observers=[buffer.add_batch], num_episodes=1
    )
    time_step = tf_env.reset()
    for _ in range(2):
      time_step, _ = driver.run(time_step=time_step)
    expected = buffer.gather_all()

    envs = [env_lib.create_environment(seed=3) for _ in range(2)]
    episodes = episode_collection.collect_episodes(
      envs, exploration.SeededPolicy(policy), [0, 1], seed=3
    )
    got = episode_collection.to_experience(episodes, policy.trajectory_spec)

    decisions = envs[0].decisions_per_episode
    self.assertEqual([e.index for e in episodes], [0, 1])
    self.assertEqual(got.step_type.shape, (1, 2 * (decisions + 1)))
    for name in (
      "step_type",
      "next_step_type",
      "observation",
      "action",
      "reward",
      "discount",
    ):
      self.assertAllClose(getattr(got, name), getattr(expected, name), msg=name)
    self.assertTrue(got.is_boundary()[0, decisions].numpy())
    self.assertEqual(
      [e.info["seed"] for e in episodes], [envs[0].episode_seed(k) for k in (0, 1)]
    )

  def test_spawned_environments_run_the_episodes_they_are_given(self):
    # With the collect policy: episode 4 explores with the same noise in a
    # spawned batch of two as alone in this process.
    local = env_lib.create_environment(seed=5)
    _, agent = _agent(local)
    policy = exploration.SeededPolicy(agent.collect_policy)
    envs = episode_collection.spawn_environments(2, seed=5)
    try:
      episodes = episode_collection.collect_episodes(envs, policy, [7, 4], seed=5)
    finally:
      for env in envs:
        env.close()
    self.assertFalse(any(env._process.is_alive() for env in envs))
    self.assertEqual([e.info["episode"] for e in episodes], [7, 4])
    self.assertEqual(
      [e.info["seed"] for e in episodes], [5 * 1_000_003 + k for k in (7, 4)]
    )
    # The same episode in this process gives the same trainee and run.
    [same] = episode_collection.collect_episodes([local], policy, [4], seed=5)
    self.assertAllClose(same.trajectory.action, episodes[1].trajectory.action)
    self.assertAllClose(same.trajectory.observation, episodes[1].trajectory.observation)
    self.assertAllClose(same.info["val_losses"], episodes[1].info["val_losses"])

  def test_more_episodes_than_environments_is_an_error(self):
    env = env_lib.create_environment(seed=0)
    _, agent = _agent(env)
    with self.assertRaisesRegex(ValueError, "need as many environments"):
      episode_collection.collect_episodes(
        [env], exploration.SeededPolicy(agent.policy), [0, 1], seed=0
      )


if __name__ == "__main__":
  tf.test.main()
