"""Tests of the PPO agent: its networks, the two Adam rates and a real train step."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.drivers import dynamic_episode_driver
from tf_agents.environments import tf_py_environment
from tf_agents.replay_buffers import tf_uniform_replay_buffer

from lr_controller.control import agent as agent_lib
from lr_controller.control.env import LearningRateControlEnv
from lr_controller.errors import UserError
from lr_controller.trainee import toy_problems


def _tf_env(action_levels=None):
  py_env = LearningRateControlEnv(
    lambda seed: toy_problems.build_noisy_quadratic(seed=seed),
    num_steps=50,
    action_interval=10,
    initial_learning_rates=(0.5,),
    max_learning_rate=1.9,
    action_levels=action_levels,
  )
  return tf_py_environment.TFPyEnvironment(py_env)


def _collect(agent, tf_env):
  buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
    agent.collect_data_spec, batch_size=1, max_length=10
  )
  driver = dynamic_episode_driver.DynamicEpisodeDriver(
    tf_env, agent.collect_policy, observers=[buffer.add_batch], num_episodes=1
  )
  driver.run()
  return buffer.gather_all()


class AgentTest(tf.test.TestCase, parameterized.TestCase):
  def test_paper_networks(self):
    tf_env = _tf_env()
    agent = agent_lib.create_agent(tf_env.time_step_spec(), tf_env.action_spec())
    actor_kernels = [
      v for v in agent.actor_net.trainable_variables if "kernel" in v.name
    ]
    self.assertEqual(actor_kernels[0].shape, (7, 32))  # one hidden layer of 32
    value_kernels = [
      v for v in agent._value_net.trainable_variables if "kernel" in v.name
    ]
    self.assertEqual([k.shape for k in value_kernels], [(7, 32), (32, 1)])
    self.assertEqual(agent.train_step_counter.dtype, tf.int64)
    self.assertTrue(agent._observation_normalizer is not None)

  def test_actor_and_critic_get_their_own_adam_rates(self):
    actor = tf.Variable(np.zeros(3, np.float32))
    critic = tf.Variable(np.zeros(3, np.float32))
    optimizer = agent_lib.ActorCriticOptimizer([actor], 1e-3, 5e-3)
    grads = tf.constant([1.0, -2.0, 0.5])
    optimizer.apply_gradients([(grads, actor), (grads, critic)])
    # Adam's first step moves every coordinate by (almost exactly) its rate.
    self.assertAllClose(actor.numpy(), -1e-3 * np.sign(grads.numpy()), rtol=1e-4)
    self.assertAllClose(critic.numpy(), -5e-3 * np.sign(grads.numpy()), rtol=1e-4)
    self.assertAllClose(optimizer.learning_rate.numpy(), 1e-3)
    checkpoint = tf.train.Checkpoint(optimizer=optimizer)
    path = checkpoint.save(self.create_tempdir().full_path + "/ckpt")
    self.assertNotEmpty(tf.train.list_variables(path))
    slot_names = [name for name, _ in tf.train.list_variables(path)]
    self.assertTrue(any("actor_optimizer" in n for n in slot_names))
    self.assertTrue(any("critic_optimizer" in n for n in slot_names))

  def test_actor_rate_decays_linearly_per_epoch_and_resumes_from_a_checkpoint(self):
    tf.random.set_seed(0)
    tf_env = _tf_env()

    def make():
      return agent_lib.create_agent(
        tf_env.time_step_spec(),
        tf_env.action_spec(),
        actor_learning_rate=1e-3,
        critic_learning_rate=5e-3,
        actor_learning_rate_decay_steps=8,
        num_epochs=2,
      )

    agent = make()
    actor_adam = agent._optimizer.actor_optimizer
    experience = _collect(agent, tf_env)
    agent.train(experience)  # 2 epochs: 2 of the 8 decay steps.
    self.assertEqual(int(actor_adam.iterations), 2)
    # Keras reports the rate of its last step, the second: 1e-3 x (1 - 1/8).
    self.assertAllClose(float(actor_adam.learning_rate), 1e-3 * 7 / 8)
    path = tf.train.Checkpoint(agent=agent).save(
      self.create_tempdir().full_path + "/ckpt"
    )
    resumed = make()
    tf.train.Checkpoint(agent=resumed).restore(path).assert_existing_objects_matched()
    self.assertEqual(int(resumed._optimizer.actor_optimizer.iterations), 2)
    for _ in range(3):  # 6 more epochs: the decay is over.
      resumed.train(experience)

    def weights(network):
      return [v.numpy().copy() for v in network.trainable_variables]

    actor, critic = weights(resumed.actor_net), weights(resumed._value_net)
    resumed.train(experience)
    self.assertAllClose(actor, weights(resumed.actor_net))  # rate 0
    self.assertNotAllClose(critic, weights(resumed._value_net))  # constant rate

  @parameterized.named_parameters(
    ("mlp", "mlp", "gaussian"),
    ("lstm", "lstm", "gaussian"),
    ("beta", "mlp", "beta"),
    ("categorical", "mlp", "categorical"),
    ("categorical_lstm", "lstm", "categorical"),
  )
  def test_train_step_changes_actor_weights_with_finite_losses(self, network, head):
    tf.random.set_seed(0)
    tf_env = _tf_env(action_levels=5 if head == "categorical" else None)
    agent = agent_lib.create_agent(
      tf_env.time_step_spec(),
      tf_env.action_spec(),
      actor_network=network,
      action_head=head,
      num_epochs=2,
    )
    before = [v.numpy().copy() for v in agent.actor_net.trainable_variables]
    experience = _collect(agent, tf_env)

    def adam_variables():
      optimizer = agent._optimizer
      return [
        v.ref()
        for adam in (optimizer.actor_optimizer, optimizer.critic_optimizer)
        for v in adam.variables
      ]

    # create_agent built both Adams' slots: the train step's first call
    # creates no variable, which would make TensorFlow trace it twice.
    built = adam_variables()
    self.assertGreater(len(built), 4)
    # In the order PPO's update gives them (sorted by name), as they were
    # created before create_agent built them: a checkpoint keeps an
    # optimizer's variables by position, so older checkpoints still resume.
    for adam, network in (
      (agent._optimizer.actor_optimizer, agent.actor_net),
      (agent._optimizer.critic_optimizer, agent._value_net),
    ):
      self.assertEqual(
        [v.name[len("m/") :] for v in adam.variables if v.name.startswith("m/")],
        sorted(v.name for v in network.trainable_weights),
      )
    loss = agent.train(experience)
    self.assertEqual(adam_variables(), built)
    self.assertTrue(np.isfinite(loss.loss.numpy()))
    self.assertTrue(np.isfinite(loss.extra.policy_gradient_loss.numpy()))
    self.assertTrue(np.isfinite(loss.extra.value_estimation_loss.numpy()))
    after = agent.actor_net.trainable_variables
    self.assertTrue(any(not np.allclose(b, a.numpy()) for b, a in zip(before, after)))
    self.assertGreater(int(agent.train_step_counter.numpy()), 0)
    if network == "lstm":
      self.assertNotEmpty(tf.nest.flatten(agent.policy.policy_state_spec))

  def test_beta_head_stays_inside_the_bounds_and_its_mode_is_greedy(self):
    tf.random.set_seed(0)
    tf_env = _tf_env()
    spec = tf_env.action_spec()
    agent = agent_lib.create_agent(tf_env.time_step_spec(), spec, action_head="beta")
    time_step = tf_env.reset()
    batch = tf.nest.map_structure(lambda t: tf.repeat(t, 500, axis=0), time_step)
    samples = agent.collect_policy.action(batch).action.numpy()
    self.assertTrue(np.all(samples > spec.minimum) and np.all(samples < spec.maximum))
    # Both concentrations start near 1 + softplus(0): a spread of about
    # (high - low) * 0.24 around the centre.
    self.assertAllClose(samples.std(), 0.24 * (spec.maximum - spec.minimum), rtol=0.2)
    distribution = agent.collect_policy.distribution(time_step).action
    greedy = agent.policy.action(time_step).action
    self.assertAllClose(greedy, distribution.mode(), atol=1e-6)
    log_prob = distribution.log_prob(tf.constant([spec.maximum - 1e-4], tf.float32))
    self.assertTrue(np.all(np.isfinite(log_prob.numpy())))

  def test_categorical_head_starts_near_uniform_over_the_factor_set(self):
    tf_env = _tf_env(action_levels=5)
    agent = agent_lib.create_agent(
      tf_env.time_step_spec(), tf_env.action_spec(), action_head="categorical"
    )
    time_step = tf_env.reset()
    probs = agent.collect_policy.distribution(time_step).action.probs_parameter()
    self.assertAllClose(probs.numpy(), np.full((1, 5), 0.2), atol=0.05)
    greedy = agent.policy.action(time_step).action.numpy()
    self.assertEqual(greedy.dtype, np.int32)
    self.assertEqual(int(greedy[0]), int(np.argmax(probs.numpy()[0])))

  def test_bad_arguments(self):
    tf_env = _tf_env()
    discrete = _tf_env(action_levels=5)
    for kwargs, env in (
      (dict(action_head="categorical"), tf_env),
      (dict(action_head="gaussian"), discrete),
      (dict(action_head="beta"), discrete),
    ):
      with self.assertRaisesRegex(UserError, "action_levels"):
        agent_lib.create_agent(env.time_step_spec(), env.action_spec(), **kwargs)
    for kwargs in (
      dict(actor_network="gru"),
      dict(hidden_units=0),
      dict(critic_learning_rate=0),
      dict(actor_learning_rate_decay_steps=-1),
      dict(actor_learning_rate_decay_steps="x"),
      dict(hidden_units="x"),
      dict(actor_learning_rate=float("nan")),
      dict(action_head="cauchy"),
      dict(action_head="beta", actor_network="lstm"),
    ):
      with self.assertRaises(UserError):
        agent_lib.create_agent(tf_env.time_step_spec(), tf_env.action_spec(), **kwargs)


if __name__ == "__main__":
  tf.test.main()
