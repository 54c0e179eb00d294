"""Tests of the features, rewards and the learning-rate control environment."""

import math

import gin
import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from tf_agents.environments import utils as env_utils

from lr_controller import features, testing
from lr_controller.control import env as env_lib
from lr_controller.control import rewards
from lr_controller.errors import UserError
from lr_controller.trainee import protocol, toy_problems
from lr_controller.trainee import trainee as trainee_lib


def _model(seed=0):
  tf.keras.utils.set_random_seed(seed)
  inputs = tf.keras.Input((8, 8, 1))
  x = tf.keras.layers.Flatten()(inputs)
  x = tf.keras.layers.Dense(12, activation="relu")(x)
  return tf.keras.Model(inputs, tf.keras.layers.Dense(10, name="logits")(x))


def _trainee_fn(data, momentum=0.0):
  def build(seed):
    optimizer = trainee_lib.make_optimizer("sgd", learning_rate=0.01, momentum=momentum)
    return trainee_lib.Trainee(_model(seed), optimizer, data)

  return build


def _env(**kwargs):
  data = kwargs.pop("data", None) or testing.tiny_data()
  defaults = dict(
    num_steps=40, action_interval=10, initial_learning_rates=(0.05,), seed=0
  )
  defaults.update(kwargs)
  return env_lib.LearningRateControlEnv(_trainee_fn(data), **defaults)


class _ScriptedTrainee(protocol.MonitoredRun):
  """A trainee whose validation losses follow a script (initial one first).

  Divergence and the best loss follow the protocol, as every trainee's do.
  """

  def __init__(self, val_losses, rule=None):
    self._script = list(val_losses)
    self.final_layer = tf.keras.layers.Dense(3)
    self.final_layer.build((None, 2))
    self.monitor = protocol.RunMonitor(rule or protocol.DivergenceRule())

  def reset(self, seed, learning_rate):
    del seed
    self.learning_rate = learning_rate
    self.global_step = 0
    self.monitor.start()
    self._losses = iter(self._script)

  def set_learning_rate(self, learning_rate):
    self.learning_rate = learning_rate

  def train(self, num_steps):
    self.global_step += num_steps
    return 1.0

  def validate(self, keep_probabilities=False):
    loss = next(self._losses)
    self.monitor.observe_validation(loss, self.global_step)
    return trainee_lib.EvalResult(loss, 0.5, np.full((4, 3), 1 / 3, np.float32))

  def restore_best(self):
    return False


class _RateTrainee(_ScriptedTrainee):
  """Each chunk multiplies the validation loss by (1 - learning rate)."""

  def __init__(self):
    super().__init__([])
    self.train_calls = 0

  def reset(self, seed, learning_rate):
    super().reset(seed, learning_rate)
    self._loss = 1.0 + seed  # The trainee's seed sets its initial loss.

  def train(self, num_steps):
    self.train_calls += 1
    self._loss *= 1.0 - self.learning_rate
    return super().train(num_steps)

  def validate(self, keep_probabilities=False):
    self.monitor.observe_validation(self._loss, self.global_step)
    return trainee_lib.EvalResult(self._loss, 0.5, np.full((4, 3), 1 / 3, np.float32))


def _bind_scope(test: tf.test.TestCase, scope: str) -> None:
  """Gives gin scope `scope` a binding (any), so that scoped settings may name it."""
  with gin.unlock_config():
    gin.bind_parameter(f"{scope}/make_optimizer.name", "adam")
  test.addCleanup(gin.clear_config)


def _steps_to_end(env, action: float = 0.0) -> list:
  """Steps a reset environment with a constant `action` to the episode's end."""
  steps = [env.step(np.float32(action))]
  while not steps[-1].is_last():
    steps.append(env.step(np.float32(action)))
  return steps


def _softmax(logits):
  e = np.exp(logits - logits.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


class FeaturesTest(tf.test.TestCase):
  def test_features_equal_numpy(self):
    rng = np.random.default_rng(0)
    probs = _softmax(rng.normal(size=(20, 5)))
    previous = _softmax(rng.normal(size=(20, 5)))
    kernel = rng.normal(size=(7, 5))
    state = features.TrainingState(
      train_loss=1.25,
      val_loss=1.5,
      probabilities=probs,
      previous_probabilities=previous,
      final_kernel=kernel,
      learning_rate=0.02,
      budget_left=0.25,
      initial_learning_rate=0.005,
      best_val_loss=1.2,
      decisions_since_best=3,
      adaptive_optimizer=True,
    )
    obs = features.observation(state, list(features.FEATURES))
    expected = [
      1.25,
      1.5,
      np.mean(np.var(probs, axis=0)),
      np.mean(np.var(probs - previous, axis=0)),
      np.mean(kernel),
      np.var(kernel),
      np.log(0.02),
      0.25,
      np.log(0.02 / 0.005),
      np.log(1.5 / 1.2),
      3.0,
      1.0,
    ]
    self.assertEqual(obs.dtype, np.float32)
    self.assertAllClose(obs, expected, rtol=1e-5, atol=1e-7)

  def test_relative_rate_features_swap_the_absolute_rate(self):
    self.assertLen(features.RELATIVE_RATE_FEATURES, len(features.BUDGET_AWARE_FEATURES))
    self.assertNotIn("log_learning_rate", features.RELATIVE_RATE_FEATURES)
    self.assertEqual(
      features.RELATIVE_RATE_FEATURES.index("log_learning_rate_change"),
      features.BUDGET_AWARE_FEATURES.index("log_learning_rate"),
    )

  def test_stall_tracker_keeps_the_best_loss_and_the_decisions_since(self):
    tracker = features.StallTracker()
    seen = []
    for loss in (2.0, 1.5, 1.7, 1.5, 1.4):
      tracker.observe(loss)
      seen.append((tracker.best_val_loss, tracker.decisions_since_best))
    # A loss equal to the best is no new best: the stall goes on.
    self.assertEqual(seen, [(2.0, 0), (1.5, 0), (1.5, 1), (1.5, 2), (1.4, 0)])
    self.assertEqual(
      features.STALL_FEATURES,
      features.BUDGET_AWARE_FEATURES
      + ("log_val_loss_over_best", "decisions_since_best"),
    )

  def test_adaptive_optimizer_by_class(self):
    optimizers = tf.keras.optimizers

    class MySGD(optimizers.SGD):
      pass

    class MyOwn(optimizers.Optimizer):
      pass

    adaptive = features.is_adaptive_optimizer
    self.assertFalse(adaptive(optimizers.SGD(0.1, momentum=0.9)))
    self.assertFalse(adaptive(MySGD(0.1)))  # A subclass: its nearest known base.
    self.assertFalse(adaptive(optimizers.legacy.SGD(0.1)))
    for optimizer in (
      optimizers.Adam(),
      optimizers.RMSprop(),
      optimizers.Adagrad(),
      optimizers.AdamW(),
      optimizers.legacy.Adam(),
    ):
      self.assertTrue(adaptive(optimizer), type(optimizer))
    # Mixed precision's wrapper: the optimizer it wraps.
    loss_scale = tf.keras.mixed_precision.LossScaleOptimizer
    self.assertTrue(adaptive(loss_scale(optimizers.Adam())))
    self.assertFalse(adaptive(loss_scale(optimizers.SGD())))
    with self.assertRaisesRegex(UserError, "MyOwn.*adaptive_optimizer=True or False"):
      adaptive(MyOwn(name="my_own"))
    self.assertEqual(
      features.OPTIMIZER_AWARE_FEATURES,
      features.BUDGET_AWARE_FEATURES + ("adaptive_optimizer",),
    )

  def test_paper_features_are_seven(self):
    self.assertLen(features.PAPER_FEATURES, 7)
    with self.assertRaises(UserError):
      features.check_feature_names(["val_loss", "nope"])
    with self.assertRaises(UserError):
      features.check_feature_names(["val_loss", "val_loss"])

  def test_rewards(self):
    self.assertAllClose(rewards.REWARDS["neg_val_loss"].fn(2.0, 1.5), -1.5)
    self.assertAllClose(
      rewards.REWARDS["neg_log_val_loss"].fn(2.0, 1.5), -math.log(1.5)
    )
    self.assertAllClose(rewards.REWARDS["val_loss_improvement"].fn(2.0, 1.5), 0.5)
    with self.assertRaises(UserError):
      rewards.get_reward("accuracy")


class EnvironmentTest(tf.test.TestCase, parameterized.TestCase):
  def test_specs_and_validation(self):
    env = _env()
    self.assertEqual(env.observation_spec().shape, (7,))
    self.assertEqual(env.observation_spec().dtype, np.float32)
    spec = env.action_spec()
    self.assertEqual(spec.shape, ())
    self.assertAllClose([spec.minimum, spec.maximum], [-math.log(2), math.log(2)])
    self.assertEqual(env.decisions_per_episode, 4)
    env_utils.validate_py_environment(env, episodes=2)
    budget = _env(feature_names=features.PAPER_FEATURES + ("budget_left",))
    self.assertEqual(budget.observation_spec().shape, (8,))

  def test_observation_equals_direct_numpy_computation(self):
    data = testing.tiny_data()
    env = _env(data=data)
    first = env.reset()
    trainee = env.trainee
    images = np.concatenate([x for x, _ in data.validation.as_numpy_iterator()])
    labels = np.concatenate([y for _, y in data.validation.as_numpy_iterator()])

    def probs_and_loss():
      logits = trainee.model(images, training=False).numpy().astype(np.float64)
      p = _softmax(logits)
      return p, float(np.mean(-np.log(p[np.arange(len(labels)), labels])))

    p0, loss0 = probs_and_loss()
    kernel0 = trainee.final_layer.kernel.numpy()
    self.assertAllClose(
      first.observation,
      [
        loss0,
        loss0,
        np.mean(np.var(p0, 0)),
        0.0,
        kernel0.mean(),
        kernel0.var(),
        np.log(0.05),
      ],
      rtol=1e-4,
      atol=1e-6,
    )
    step = env.step(np.float32(0.0))
    p1, loss1 = probs_and_loss()
    kernel1 = trainee.final_layer.kernel.numpy()
    obs = step.observation
    self.assertAllClose(obs[1], loss1, rtol=1e-5)
    self.assertAllClose(obs[2], np.mean(np.var(p1, 0)), rtol=1e-4)
    self.assertAllClose(obs[3], np.mean(np.var(p1 - p0, 0)), rtol=1e-3, atol=1e-9)
    self.assertAllClose(obs[4:6], [kernel1.mean(), kernel1.var()], rtol=1e-4, atol=1e-7)
    self.assertAllClose(obs[6], np.log(0.05), rtol=1e-6)
    self.assertAllClose(step.reward, -loss1, rtol=1e-5)
    # The train loss is the chunk's mean and comes from the trainee.
    self.assertAllClose(obs[0], env._episode["train_losses"][-1], rtol=1e-6)

  def test_scaling_action_doubles_the_optimizer_rate(self):
    env = _env()
    env.reset()
    optimizer = env.trainee.optimizer
    self.assertAllClose(optimizer.learning_rate.numpy(), 0.05)
    env.step(np.float32(math.log(2.0)))
    self.assertAllClose(optimizer.learning_rate.numpy(), 0.1, rtol=1e-6)
    env.step(np.float32(-math.log(2.0)))
    self.assertAllClose(optimizer.learning_rate.numpy(), 0.05, rtol=1e-6)

  @parameterized.named_parameters(
    ("above", 5.0, 0.1),
    ("below", -5.0, 0.025),
    ("nan", float("nan"), 0.05),
    ("inf", float("inf"), 0.05),
  )
  def test_actions_are_clipped_and_nan_keeps_the_rate(self, action, expected_lr):
    env = _env()
    env.reset()
    env.step(np.float32(action))
    self.assertAllClose(env.trainee.learning_rate, expected_lr, rtol=1e-6)
    self.assertEqual(env.nonfinite_actions, 0 if math.isfinite(action) else 1)

  def test_discrete_actions_choose_evenly_spaced_factors(self):
    env = _env(action_levels=5)
    spec = env.action_spec()
    self.assertEqual((spec.dtype, spec.minimum, spec.maximum), (np.int32, 0, 4))
    self.assertAllClose(
      np.exp(env.action_log_factors), [0.5, 2**-0.5, 1.0, 2**0.5, 2.0], rtol=1e-6
    )
    env.reset()
    for index, expected in ((4, 0.1), (2, 0.1), (0, 0.05), (1, 0.05 / 2**0.5)):
      env.step(np.int32(index))
      self.assertAllClose(env.trainee.learning_rate, expected, rtol=1e-6)
    with self.assertRaisesRegex(UserError, "action_levels"):
      _env(action_levels=1)

  def test_relative_rate_feature_is_the_log_rate_over_the_episode_start(self):
    env = env_lib.LearningRateControlEnv(
      lambda seed: _RateTrainee(),
      num_steps=30,
      action_interval=10,
      initial_learning_rates=(0.1,),
      feature_names=["log_learning_rate", "log_learning_rate_change"],
      evaluate_test=False,
    )
    observations = [env.reset().observation]
    for _ in range(2):
      observations.append(env.step(np.float32(math.log(2.0))).observation)
    self.assertAllClose(
      np.array(observations),
      [[math.log(0.1 * 2**k), k * math.log(2.0)] for k in range(3)],
      rtol=1e-5,
    )

  def test_stall_features_follow_the_runs_best_validation_loss(self):
    losses = [2.0, 1.5, 1.7, 1.6, 1.4]  # The initial one first.
    env = env_lib.LearningRateControlEnv(
      lambda seed: _ScriptedTrainee(losses),
      num_steps=40,
      action_interval=10,
      initial_learning_rates=(0.1,),
      feature_names=["val_loss", "log_val_loss_over_best", "decisions_since_best"],
      evaluate_test=False,
    )
    observations = [env.reset().observation]
    for _ in range(4):
      observations.append(env.step(np.float32(0.0)).observation)
    self.assertAllClose(
      np.array(observations),
      [
        [2.0, 0.0, 0],
        [1.5, 0.0, 0],
        [1.7, math.log(1.7 / 1.5), 1],
        [1.6, math.log(1.6 / 1.5), 2],
        [1.4, 0.0, 0],
      ],
      rtol=1e-5,
    )

  def test_adaptive_optimizer_is_the_episode_trainees(self):
    def trainee_fn(optimizer):
      def build(seed):
        trainee = _ScriptedTrainee([2.0, 1.5, 1.4])
        trainee.optimizer = optimizer
        return trainee

      return build

    for optimizer, expected in (
      (tf.keras.optimizers.Adam(), 1.0),
      (tf.keras.optimizers.SGD(), 0.0),
    ):
      env = env_lib.LearningRateControlEnv(
        trainee_fn(optimizer),
        num_steps=20,
        action_interval=10,
        initial_learning_rates=(0.1,),
        feature_names=["val_loss", "adaptive_optimizer"],
        evaluate_test=False,
      )
      observations = [env.reset().observation]
      observations.append(env.step(np.float32(0.0)).observation)
      self.assertAllClose(np.array(observations)[:, 1], [expected] * 2)
    # Not observed: a trainee without a Keras optimizer is never asked.
    env = env_lib.LearningRateControlEnv(
      lambda seed: _ScriptedTrainee([2.0, 1.5, 1.4]),
      num_steps=20,
      action_interval=10,
      initial_learning_rates=(0.1,),
      feature_names=["val_loss"],
      evaluate_test=False,
    )
    self.assertAllClose(env.reset().observation, [2.0])
    # Observed: such a trainee is a one-line error.
    env = env_lib.LearningRateControlEnv(
      lambda seed: toy_problems.NoisyQuadraticTrainee(seed=seed),
      num_steps=20,
      action_interval=10,
      initial_learning_rates=(0.1,),
      feature_names=["adaptive_optimizer"],
      evaluate_test=False,
    )
    with self.assertRaisesRegex(UserError, "NoisyQuadraticTrainee has none"):
      env.reset()

  def test_adaptive_optimizer_follows_the_episodes_setting(self):
    _bind_scope(self, "adam")

    def build(seed):  # Called inside the setting's gin scope.
      trainee = _ScriptedTrainee([2.0] * 3)
      adam = gin.current_scope_str() == "adam"
      trainee.optimizer = (
        tf.keras.optimizers.Adam() if adam else tf.keras.optimizers.SGD()
      )
      return trainee

    env = env_lib.LearningRateControlEnv(
      build,
      num_steps=20,
      action_interval=10,
      initial_learning_rates=(0.1,),
      scoped_initial_learning_rates={"adam": (0.01,)},
      feature_names=["adaptive_optimizer"],
      evaluate_test=False,
    )
    seen = {}
    for _ in range(8):
      observation = env.reset().observation
      _steps_to_end(env)
      seen.setdefault(env.last_episode["trainee_scope"], set()).add(
        float(observation[0])
      )
    self.assertEqual(seen, {"": {0.0}, "adam": {1.0}})

  def test_reference_reward_compares_with_the_cached_constant_rate_run(self):
    trainee = _RateTrainee()
    env = env_lib.LearningRateControlEnv(
      lambda seed: trainee,
      num_steps=30,
      action_interval=10,
      initial_learning_rates=(0.1,),
      feature_names=["log_learning_rate", "budget_left"],
      reward="log_val_loss_vs_reference",
      reward_scale=0.5,
      evaluate_test=False,
    )
    env.seed_next_episode(3)
    env.reset()
    self.assertEqual(trainee.train_calls, 3)  # The reference ran first.
    rewards_got = [float(env.step(np.float32(math.log(2.0))).reward) for _ in range(3)]
    # Reference: loss 4 x 0.9^k; controller: rates 0.2, 0.4, 0.8.
    controller = 4.0 * np.cumprod([0.8, 0.6, 0.2])
    reference = 4.0 * 0.9 ** np.arange(1, 4)
    self.assertAllClose(rewards_got, 0.5 * np.log(reference / controller), rtol=1e-5)
    self.assertAllClose(env.last_episode["reference_val_losses"], reference)
    # The same seed again: the cached curve, no second reference run; doing
    # nothing earns nothing.
    env.seed_next_episode(3)
    env.reset()
    self.assertEqual(trainee.train_calls, 6)
    rewards_got = [float(env.step(np.float32(0.0)).reward) for _ in range(3)]
    self.assertEqual(trainee.train_calls, 9)
    self.assertAllClose(rewards_got, [0.0, 0.0, 0.0], atol=1e-6)

  def test_reference_reward_penalty_sits_at_the_initial_loss(self):
    reward = rewards.get_reward("log_val_loss_vs_reference")
    self.assertTrue(reward.needs_reference)
    self.assertAllClose(reward.fn(2.0, 1.0, 0.5), math.log(0.5))
    self.assertAllClose(
      reward.penalty(2.0, 1.0, 2, [1.0, 0.5]), math.log(1.0 / 2.0) + math.log(0.5 / 2.0)
    )

  def test_learning_rate_bounds(self):
    env = _env(min_learning_rate=0.04, max_learning_rate=0.06)
    env.reset()
    env.step(np.float32(math.log(2.0)))
    self.assertAllClose(env.trainee.learning_rate, 0.06)
    env.step(np.float32(-math.log(2.0)))
    env.step(np.float32(-math.log(2.0)))
    self.assertAllClose(env.trainee.learning_rate, 0.04)

  def test_divergence_ends_the_episode_with_the_penalty(self):
    env = _env(initial_learning_rates=(1e5,), max_learning_rate=1e6)
    first = env.reset()
    initial_val = float(first.observation[1])
    step = env.step(np.float32(0.0))
    self.assertTrue(step.is_last())
    self.assertAllClose(step.reward, -initial_val * 4, rtol=1e-5)  # 4 decisions left
    self.assertTrue(np.all(np.isfinite(step.observation)))
    self.assertAllEqual(step.observation, first.observation)
    self.assertTrue(env.last_episode["diverged"])
    explicit = _env(
      initial_learning_rates=(1e5,), max_learning_rate=1e6, divergence_penalty=-123.0
    )
    explicit.reset()
    self.assertAllClose(explicit.step(np.float32(0.0)).reward, -123.0)
    # The next reset starts a healthy episode on the same trainee.
    self.assertFalse(env.reset().is_last())
    self.assertFalse(env.trainee.diverged)

  def test_exploding_finite_val_loss_counts_as_divergence(self):
    # The validation loss grows tenfold per decision without going NaN:
    # without the bound one episode's return would be -(2 + 20 + 200 + ...).
    def trainee_fn(seed, rule=None):
      del seed
      return _ScriptedTrainee([2.0, 3.0, 30.0, 300.0, 3000.0], rule)

    # The trainee's rule (the protocol's default: 4 x the initial loss) decides.
    env = env_lib.LearningRateControlEnv(trainee_fn, num_steps=40, action_interval=10)
    env.reset()
    self.assertAllClose(env.step(np.float32(0.0)).reward, -3.0)
    last = env.step(np.float32(0.0))  # 30 > 4 x 2: diverged, 3 decisions left.
    self.assertTrue(last.is_last())
    self.assertAllClose(last.reward, -2.0 * 3)
    self.assertTrue(env.last_episode["diverged"])
    self.assertAllClose(env.last_episode["return"], -3.0 - 6.0)
    unbounded = env_lib.LearningRateControlEnv(
      lambda seed: trainee_fn(seed, protocol.DivergenceRule(max_val_loss_ratio=None)),
      num_steps=40,
      action_interval=10,
    )
    unbounded.reset()
    rewards_seen = [float(unbounded.step(np.float32(0.0)).reward) for _ in range(4)]
    self.assertAllClose(rewards_seen, [-3.0, -30.0, -300.0, -3000.0])
    # reward_scale multiplies every reward, the penalty included.
    scaled = env_lib.LearningRateControlEnv(
      trainee_fn, num_steps=40, action_interval=10, reward_scale=0.25
    )
    scaled.reset()
    self.assertAllClose(scaled.step(np.float32(0.0)).reward, -3.0 * 0.25)
    self.assertAllClose(scaled.step(np.float32(0.0)).reward, -2.0 * 3 * 0.25)
    self.assertAllClose(scaled.last_episode["return"], (-3.0 - 6.0) * 0.25)
    with self.assertRaisesRegex(UserError, "reward_scale"):
      env_lib.LearningRateControlEnv(trainee_fn, reward_scale=0.0)

  def test_best_log_improvement_rewards_telescope_to_the_log_of_the_best_loss(self):
    def env_of(losses, **kwargs):
      env = env_lib.LearningRateControlEnv(
        lambda seed: _ScriptedTrainee(losses),
        num_steps=40,
        action_interval=10,
        reward="best_log_val_loss_improvement",
        reward_scale=0.5,
        **kwargs,
      )
      env.reset()
      return env

    # Initial 2.0, then 1.0 (a new best), 1.5 (worse: 0), 0.5, 0.8.
    env = env_of([2.0, 1.0, 1.5, 0.5, 0.8])
    got = [float(env.step(np.float32(0.0)).reward) for _ in range(4)]
    self.assertAllClose(got, [0.5 * math.log(2.0), 0.0, 0.5 * math.log(2.0), 0.0])
    self.assertAllClose(env.last_episode["return"], 0.5 * math.log(2.0 / 0.5))
    # A loss above the initial one is no progress either.
    self.assertAllClose(
      env_of([2.0, 2.5, 1.0, 1.0, 1.0]).step(np.float32(0.0)).reward, 0
    )
    # A diverged episode gives back all its progress, the best so far (0.5,
    # not the previous 1.0): its return is 0.
    diverged = env_of([2.0, 0.5, 1.0, 30.0, 1.0])
    while not diverged.step(np.float32(0.0)).is_last():
      pass
    self.assertTrue(diverged.last_episode["diverged"])
    self.assertAllClose(diverged.last_episode["return"], 0.0, atol=1e-6)
    reward = rewards.REWARDS["best_log_val_loss_improvement"]
    self.assertAllClose(reward.fn(1.0, 0.25, None, 0.5), math.log(2.0))
    self.assertAllClose(reward.penalty(2.0, 1.0, 3, None, 0.5), math.log(0.25))

  def test_setback_weight_charges_every_decision_above_the_best_loss(self):
    env = env_lib.LearningRateControlEnv(
      lambda seed: _ScriptedTrainee([2.0, 1.0, 1.5, 0.5, 0.8]),
      num_steps=40,
      action_interval=10,
      reward="best_log_val_loss_improvement",
      setback_weight=0.25,
      reward_scale=0.5,
    )
    env.reset()
    got = [float(env.step(np.float32(0.0)).reward) for _ in range(4)]
    # New lows earn the best-loss reward; 1.5 after 1.0 and 0.8 after 0.5
    # are setbacks, charged 0.25 * log(loss / best).
    want = [math.log(2.0), -0.25 * math.log(1.5), math.log(2.0), -0.25 * math.log(1.6)]
    self.assertAllClose(got, [0.5 * w for w in want])
    self.assertAllClose(env.last_episode["return"], 0.5 * sum(want))
    self.assertAllClose(rewards.setback(1.5, 1.0), math.log(1.5))
    self.assertAllClose(rewards.setback(0.5, 1.0), 0.0)
    self.assertAllClose(rewards.setback(1.0, 1.0), 0.0)

  def test_episode_seeds_advance_and_reset_reuses_the_graph(self):
    env = _env()
    env.reset()
    weights0 = [w.copy() for w in env.trainee.model.get_weights()]
    while not env.step(np.float32(0.0)).is_last():
      pass
    env.reset()
    self.assertEqual(env.episode_index, 2)
    self.assertNotAllClose(env.trainee.model.get_weights()[0], weights0[0])
    self.assertEqual(env.trainee._train_loop.experimental_get_tracing_count(), 1)
    env.seed_next_episode(0)
    env.reset()
    self.assertAllClose(env.trainee.model.get_weights()[0], weights0[0])

  def test_last_episode_record(self):
    env = _env()
    env.reset()
    total = sum(float(step.reward) for step in _steps_to_end(env, 0.1))
    record = env.last_episode
    self.assertLen(record["learning_rates"], 4)
    self.assertAllClose(record["return"], total, rtol=1e-5)
    self.assertEqual(record["steps"], 40)
    self.assertIsNotNone(record["test_loss"])
    self.assertAllClose(record["learning_rates"][0], 0.05 * math.exp(0.1), rtol=1e-5)

  def test_scoped_settings_train_their_own_trainee_at_their_own_rates(self):
    data = testing.tiny_data()

    def build(seed):  # The optimizer as gin configures it.
      return trainee_lib.Trainee(_model(seed), trainee_lib.make_optimizer(), data)

    _bind_scope(self, "adam")
    env = env_lib.LearningRateControlEnv(
      build,
      num_steps=20,
      action_interval=10,
      initial_learning_rates=(0.05, 0.02),
      scoped_initial_learning_rates={"adam": (0.003,)},
      evaluate_test=False,
    )
    trainees = {}
    for _ in range(12):
      env.reset()
      while not env.step(np.float32(0.0)).is_last():
        pass
      record = env.last_episode
      scope = record["trainee_scope"]
      trainees.setdefault(scope, env.trainee)
      self.assertIs(env.trainee, trainees[scope])  # Built once per scope.
      expected = {"": ("SGD", (0.05, 0.02)), "adam": ("Adam", (0.003,))}[scope]
      self.assertEqual(type(env.trainee.optimizer).__name__, expected[0])
      self.assertIn(record["initial_learning_rate"], expected[1])
    self.assertCountEqual(trainees, ["", "adam"])
    # Without scoped settings the record has no scope (episode files unchanged).
    plain = _env(data=data, evaluate_test=False)
    plain.reset()
    while not plain.step(np.float32(0.0)).is_last():
      pass
    self.assertNotIn("trainee_scope", plain.last_episode)

  def test_reference_curves_are_kept_per_scope(self):
    _bind_scope(self, "other")
    built = []

    def build(seed):
      del seed
      built.append(_RateTrainee())
      return built[-1]

    env = env_lib.LearningRateControlEnv(
      build,
      num_steps=20,
      action_interval=10,
      initial_learning_rates=(0.1,),
      scoped_initial_learning_rates={"other": (0.1,)},
      reward="log_val_loss_vs_reference",
      evaluate_test=False,
    )
    home = env.reference_curve(3, 0.1)
    other = env.reference_curve(3, 0.1, "other")
    self.assertLen(built, 2)
    self.assertAllClose(home, other)  # Same kind of trainee, run separately.
    self.assertEqual([t.train_calls for t in built], [2, 2])
    env.reference_curve(3, 0.1, "other")  # Cached.
    self.assertEqual([t.train_calls for t in built], [2, 2])

  def test_scoped_episode_lengths(self):
    _bind_scope(self, "long")
    env = env_lib.LearningRateControlEnv(
      lambda seed: _RateTrainee(),
      num_steps=20,
      action_interval=10,
      initial_learning_rates=(0.1,),
      scoped_initial_learning_rates={"long": (0.1,)},
      scoped_num_steps={"long": 50},
      feature_names=("budget_left",),
      reward="log_val_loss_vs_reference",
      evaluate_test=False,
    )
    self.assertEqual((env.episode_steps(), env.episode_steps("long")), (20, 50))
    seen = set()
    for _ in range(8):
      budgets = [float(env.reset().observation[0])]
      decisions = env.decisions_per_episode
      budgets += [float(step.observation[0]) for step in _steps_to_end(env)]
      record = env.last_episode
      steps = {"": 20, "long": 50}[record["trainee_scope"]]
      seen.add(record["trainee_scope"])
      self.assertEqual(record["num_steps"], steps)
      self.assertEqual(record["steps"], steps)
      self.assertEqual(decisions, steps // 10)
      self.assertLen(record["reference_val_losses"], steps // 10)
      # The budget runs from 1 to 0 over the scope's own length.
      self.assertAllClose(budgets, np.linspace(1.0, 0.0, steps // 10 + 1))
    self.assertEqual(seen, {"", "long"})

  def test_scoped_reward_scales(self):
    _bind_scope(self, "long")

    def rewards_by_scope(**kwargs):
      env = env_lib.LearningRateControlEnv(
        lambda seed: _RateTrainee(),
        num_steps=20,
        action_interval=10,
        initial_learning_rates=(0.1,),
        scoped_initial_learning_rates={"long": (0.1,)},
        scoped_num_steps={"long": 30},
        feature_names=("budget_left",),
        reward_scale=0.5,
        evaluate_test=False,
        **kwargs,
      )
      got = []
      for _ in range(6):
        env.reset()
        rewards_got = [float(step.reward) for step in _steps_to_end(env)]
        got.append((env.last_episode["trainee_scope"], rewards_got))
      return got

    plain = rewards_by_scope()
    scaled = rewards_by_scope(scoped_reward_scales={"long": 2.0})
    self.assertEqual({scope for scope, _ in plain}, {"", "long"})
    for (scope, a), (same_scope, b) in zip(plain, scaled):
      self.assertEqual(scope, same_scope)
      self.assertAllClose(b, np.array(a) * (4.0 if scope == "long" else 1.0))
    for scales, message in (
      ({"other": 1.0}, "not a scope of scoped_initial_learning_rates"),
      ({"long": 0.0}, "scoped_reward_scales\\['long'\\]"),
      ({"long": float("nan")}, "finite"),
      ({"long": "2"}, "finite"),
      ({"": 1.0}, "not a scope"),
      ([1.0], "must map gin scopes to reward scales"),
    ):
      with self.assertRaisesRegex(UserError, message, msg=str(scales)):
        rewards_by_scope(scoped_reward_scales=scales)

  def test_training_settings_describe_every_scope(self):
    _bind_scope(self, "long")
    env = env_lib.LearningRateControlEnv(
      lambda seed: toy_problems.NoisyQuadraticTrainee(seed=seed),
      num_steps=20,
      action_interval=10,
      initial_learning_rates=(0.1, 0.01),
      scoped_initial_learning_rates={"long": (0.3,)},
      scoped_num_steps={"long": 50},
      evaluate_test=False,
    )
    quadratic = {
      "data": "noisy_quadratic",
      "model": f"quadratic_{toy_problems.DEFAULT_DIM}d",
      "optimizer": "sgd",
      "batch_size": None,
    }
    self.assertEqual(
      env.training_settings(),
      [
        {
          "scope": "",
          **quadratic,
          "num_steps": 20,
          "initial_learning_rates": [0.1, 0.01],
        },
        {
          "scope": "long",
          **quadratic,
          "num_steps": 50,
          "initial_learning_rates": [0.3],
        },
      ],
    )

  def test_bad_scoped_episode_lengths(self):
    _bind_scope(self, "adam")
    for steps, message in (
      ({"other": 20}, "not a scope of scoped_initial_learning_rates"),
      ({"": 20}, "not a scope"),
      ({"adam": 25}, "multiple of action_interval"),
      ({"adam": 0}, "integer >= 1"),
      ({"adam": "20"}, "integer"),
      ([20], "must map gin scopes"),
    ):
      with self.assertRaisesRegex(UserError, message, msg=str(steps)):
        _env(scoped_initial_learning_rates={"adam": (0.1,)}, scoped_num_steps=steps)

  def test_bad_arguments(self):
    for kwargs in (
      dict(num_steps=45),
      dict(max_factor=1.0),
      dict(min_learning_rate=1.0, max_learning_rate=0.5),
      dict(initial_learning_rates=(0.0,)),
      dict(reward="accuracy"),
      dict(setback_weight=-0.1),
      dict(setback_weight=float("nan")),
      dict(setback_weight="0.25"),
    ):
      with self.assertRaises(UserError, msg=str(kwargs)):
        _env(**kwargs)

  def test_bad_scoped_settings(self):
    _bind_scope(self, "adam")
    for scoped, message in (
      ({"1x": (0.1,)}, "not a gin scope"),
      ({"adma": (0.1,)}, "no binding in scope 'adma'"),  # A typo.
      ({"adam": ()}, "non-empty list"),
      ({"adam": 0.1}, "non-empty list"),
      ({"adam": (-1.0,)}, "positive"),
      (["adam"], "must map gin scopes"),
    ):
      with self.assertRaisesRegex(UserError, message, msg=str(scoped)):
        _env(scoped_initial_learning_rates=scoped)


if __name__ == "__main__":
  tf.test.main()
