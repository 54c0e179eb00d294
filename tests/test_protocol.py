"""Tests of the one protocol: its rule, and every method that follows it.

Every user of the rule (the environment, `run_training` for step decay and
the fixed schedules, every adaptive peer and AutoLRS; the callback in
test_callback.py) is put under the same scripted conditions and must end with
the same verdict and the same tested checkpoint, computed here without the
library: a closed-form noisy quadratic whose validation loss climbs past 4x
its initial value, and a Keras trainee at a rate of 1e6.
"""

import math

import gin
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from lr_controller import testing
from lr_controller.control import env as env_lib
from lr_controller.errors import UserError
from lr_controller.judge import adaptive_peers, autolrs, baseline_search
from lr_controller.trainee import protocol
from lr_controller.trainee import toy_problems as toy
from lr_controller.trainee import trainee as trainee_lib


class DivergenceRuleTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("finite_below", 999.0, False),
    ("at_the_bound", 1000.0, False),
    ("above", 1000.5, True),
    ("nan", math.nan, True),
    ("inf", math.inf, True),
  )
  def test_training_loss(self, loss, diverged):
    self.assertEqual(protocol.DivergenceRule().train_loss_diverged(loss), diverged)

  @parameterized.named_parameters(
    ("below", 7.9, 2.0, False),
    ("at_4x", 8.0, 2.0, False),
    ("above_4x", 8.01, 2.0, True),
    ("nan", math.nan, 2.0, True),
  )
  def test_validation_loss(self, loss, first, diverged):
    rule = protocol.DivergenceRule()
    self.assertEqual(rule.val_loss_diverged(loss, first), diverged)

  def test_defaults_and_no_ratio(self):
    rule = protocol.DivergenceRule()
    self.assertEqual(rule.max_train_loss, 1e3)
    self.assertEqual(rule.max_val_loss_ratio, 4.0)
    unbounded = protocol.DivergenceRule(
      max_train_loss=math.inf, max_val_loss_ratio=None
    )
    self.assertFalse(unbounded.val_loss_diverged(1e30, 1.0))
    self.assertFalse(unbounded.train_loss_diverged(1e30))
    self.assertTrue(unbounded.train_loss_diverged(math.nan))
    self.assertIn("4 x the run's first", rule.describe())
    self.assertIn("1000 nats", rule.describe())

  @parameterized.named_parameters(
    ("zero_train", dict(max_train_loss=0.0), "max_train_loss"),
    ("nan_train", dict(max_train_loss=math.nan), "max_train_loss"),
    ("string_train", dict(max_train_loss="1e3"), "max_train_loss"),
    ("ratio_1", dict(max_val_loss_ratio=1.0), "max_val_loss_ratio"),
    ("ratio_inf", dict(max_val_loss_ratio=math.inf), "max_val_loss_ratio"),
    ("ratio_bool", dict(max_val_loss_ratio=True), "max_val_loss_ratio"),
  )
  def test_bad_bounds(self, kwargs, message):
    with self.assertRaisesRegex(UserError, message):
      protocol.DivergenceRule(**kwargs)


class RunMonitorTest(tf.test.TestCase):
  def test_scripted_run(self):
    state = {"weights": 0}
    monitor = protocol.RunMonitor(
      protocol.DivergenceRule(),
      lambda: state["weights"],
      lambda w: state.update(weights=w),
    )
    # Initial 2.0, then 1.5 (best), 1.8, 7.9 (< 8: not diverged), 9 (> 8).
    script = [(0, 2.0), (10, 1.5), (20, 1.8), (30, 7.9), (40, 9.0)]
    verdicts = []
    for step, loss in script:
      state["weights"] = step
      verdicts.append(monitor.observe_validation(loss, step))
    self.assertEqual(verdicts, [False, False, False, False, True])
    self.assertEqual(monitor.first_val_loss, 2.0)
    self.assertEqual((monitor.best_val_loss, monitor.best_step), (1.5, 10))
    # Nothing after divergence is offered, even a lower loss.
    self.assertTrue(monitor.observe_validation(0.1, 50))
    self.assertEqual(monitor.best_step, 10)
    self.assertTrue(monitor.restore_best())
    self.assertEqual(state["weights"], 10)
    monitor.start()
    self.assertFalse(monitor.diverged)
    self.assertIsNone(monitor.first_val_loss)
    self.assertFalse(monitor.restore_best())

  def test_training_loss_and_unknown_loss(self):
    monitor = protocol.RunMonitor(protocol.DivergenceRule(max_train_loss=10.0))
    self.assertFalse(monitor.observe_training(None))  # Unknown: no verdict.
    self.assertFalse(monitor.observe_training(9.0))
    self.assertTrue(monitor.observe_training(11.0))
    self.assertTrue(monitor.observe_validation(1.0, 10))
    self.assertIsNone(monitor.best_step)
    # Without a snapshot the best loss is kept, not the state.
    self.assertFalse(monitor.restore_best())

  def test_a_non_finite_first_validation_diverges(self):
    monitor = protocol.RunMonitor(protocol.DivergenceRule())
    self.assertTrue(monitor.observe_validation(math.nan, 0))
    self.assertEqual(monitor.best_val_loss, math.inf)


def _initial_test_loss(trainee, seed):
  """Mean test cross-entropy of `trainee`'s architecture at the weights of `seed`."""
  model = tf.keras.Model.from_config(trainee.model.get_config())
  model.set_weights(trainee_lib.seeded_initial_weights(model, seed))
  losses = [
    tf.keras.losses.sparse_categorical_crossentropy(
      labels, model(images, training=False), from_logits=True
    ).numpy()
    for images, labels in trainee.data.test
  ]
  return float(np.mean(np.concatenate(losses).astype(np.float64)))


class EveryMethodTest(parameterized.TestCase, tf.test.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    gin.clear_config()
    cls.trainee = testing.tiny_trainee()

  def _check_diverged_at_once(self, result, seed):
    # At 1e6 the first chunk diverges; the protocol validated the initial
    # weights first, so they are the checkpoint that is tested.
    self.assertTrue(result["diverged"])
    self.assertEqual(result["steps_done"], 10)
    self.assertEqual(result["best_step"], 0)
    self.assertAllClose(
      result["test_loss"], _initial_test_loss(self.trainee, seed), rtol=1e-5
    )

  @parameterized.parameters(*adaptive_peers.PEER_NAMES)
  def test_every_peer_at_a_huge_rate(self, name):
    result = adaptive_peers.run_peer(
      name, self.trainee, 1e6, num_steps=40, eval_interval=10, seed=3
    )
    self._check_diverged_at_once(result, 3)

  def test_step_decay_at_a_huge_rate(self):
    setting = {"initial_learning_rate": 1e6, "discount_step": 10, "factor": 0.9}
    self.trainee.reset(3, 1e6, schedule=baseline_search.step_decay(setting, 40))
    result = trainee_lib.run_training(self.trainee, num_steps=40, eval_interval=10)
    self._check_diverged_at_once(result, 3)

  def test_the_environment_at_a_huge_rate(self):
    env = env_lib.LearningRateControlEnv(
      lambda seed: self.trainee,
      num_steps=40,
      action_interval=10,
      initial_learning_rates=(1e6,),
      max_learning_rate=1e7,
    )
    env.seed_next_episode(3)
    env.reset()
    self.assertTrue(env.step(np.float32(0.0)).is_last())
    episode = env.last_episode
    self._check_diverged_at_once(
      {**episode, "steps_done": episode["steps"], "best_step": env.trainee.best_step},
      3,
    )


def _quadratic_expectation(num_steps, interval, learning_rate, seed):
  """The protocol's verdict on a noise-free noisy quadratic, in closed form.

  theta_t = (1 - lr h)^t theta_0 and L_t = 0.5 sum h theta_t^2; a chunk's
  training loss is the mean of L_t over its steps, the validation (and test)
  loss at step t is L_t.

  Returns:
    (diverged, steps done, best step, test loss).
  """
  quadratic = toy.NoisyQuadraticTrainee(seed=seed, noise_scale=0.0)
  h, theta0 = quadratic.curvatures, quadratic.theta.copy()

  def loss(t):
    return 0.5 * float(np.sum(h * ((1 - learning_rate * h) ** t * theta0) ** 2))

  first = best = loss(0)
  best_step = 0
  for end in range(interval, num_steps + 1, interval):
    train = np.mean([loss(t) for t in range(end - interval, end)])
    val = loss(end)
    if train > protocol.MAX_TRAIN_LOSS or val > protocol.MAX_VAL_LOSS_RATIO * first:
      return True, end, best_step, best
    if val < best:
      best, best_step = val, end
  return False, num_steps, best_step, best


class QuadraticTest(tf.test.TestCase):
  """A finite explosion: at 2.05 > 2 / max curvature the loss climbs slowly."""

  RATE = 2.05

  def setUp(self):
    super().setUp()
    gin.clear_config()
    self.expected = _quadratic_expectation(200, 10, self.RATE, seed=0)
    diverged, steps, best_step, _ = self.expected
    # The conditions the test is about: the validation part of the rule
    # decides, after a few chunks, with a checkpoint after step 0.
    self.assertTrue(diverged)
    self.assertBetween(steps, 30, 190)
    self.assertGreater(best_step, 0)

  def _quadratic(self):
    return toy.NoisyQuadraticTrainee(
      seed=0, noise_scale=0.0, initial_learning_rate=self.RATE
    )

  def _check(self, diverged, steps, best_step, test_loss):
    want_diverged, want_steps, want_best, want_loss = self.expected
    self.assertEqual(
      (diverged, steps, best_step), (want_diverged, want_steps, want_best)
    )
    self.assertAllClose(test_loss, want_loss, rtol=1e-9)

  def test_run_training(self):
    result = trainee_lib.run_training(
      self._quadratic(), num_steps=200, eval_interval=10
    )
    self._check(
      result["diverged"], result["steps_done"], result["best_step"], result["test_loss"]
    )
    self.assertIsNone(result["history"][-1]["val_loss"])

  def test_autolrs_with_one_candidate(self):
    # One candidate, the incumbent, in a box that holds it: a constant rate.
    result = autolrs.run_autolrs(
      self._quadratic(), self.RATE, 200, 10, num_candidates=1
    )
    self.assertTrue(all(s["learning_rate"] == self.RATE for s in result["stages"]))
    self._check(
      result["diverged"], result["steps_done"], result["best_step"], result["test_loss"]
    )

  def test_the_environment(self):
    quadratic = self._quadratic()
    env = env_lib.LearningRateControlEnv(
      lambda seed: quadratic,
      num_steps=200,
      action_interval=10,
      initial_learning_rates=(self.RATE,),
      max_learning_rate=3.0,
    )
    env.seed_next_episode(0)
    time_step = env.reset()
    while not time_step.is_last():
      time_step = env.step(np.float32(0.0))
    episode = env.last_episode
    self._check(
      episode["diverged"], episode["steps"], quadratic.best_step, episode["test_loss"]
    )


class ConfigurationTest(tf.test.TestCase):
  def tearDown(self):
    gin.clear_config()
    super().tearDown()

  def test_one_gin_binding_reaches_every_trainee(self):
    gin.parse_config(
      [
        "divergence_rule.max_train_loss = 50.0",
        "divergence_rule.max_val_loss_ratio = None",
      ]
    )
    want = protocol.DivergenceRule(max_train_loss=50.0, max_val_loss_ratio=None)
    base = testing.tiny_trainee()
    derived = trainee_lib.derived_trainee(base, adaptive_peers.HypergradientTrainee)
    for trainee in (base, derived, toy.build_noisy_quadratic()):
      self.assertEqual(trainee.rule, want)

  def test_the_removed_bindings_are_gin_errors(self):
    for binding in (
      "build_trainee.divergence_loss = 1e3",
      "build_noisy_quadratic.divergence_loss = 1e3",
    ):
      with self.assertRaisesRegex(ValueError, "divergence_loss"):
        gin.parse_config(binding)


if __name__ == "__main__":
  tf.test.main()
