"""Tests of the noisy-quadratic toy trainee."""

import math

import gin
import numpy as np
import tensorflow as tf

from lr_controller.errors import UserError
from lr_controller.trainee import protocol, schedules
from lr_controller.trainee import toy_problems as toy
from lr_controller.trainee import trainee as trainee_lib


def _final_loss(seed, learning_rate, schedule=None, num_steps=200):
  trainee = toy.build_noisy_quadratic(
    seed=seed, initial_learning_rate=learning_rate, schedule=schedule
  )
  while trainee.global_step < num_steps:
    trainee.train(10)
  return trainee.exact_loss()


class NoisyQuadraticTraineeTest(tf.test.TestCase):
  def test_same_seed_same_run_and_chunking_does_not_matter(self):
    a = toy.build_noisy_quadratic(seed=5)
    b = toy.build_noisy_quadratic(seed=5)
    losses_a = [a.train(10), a.train(10)]
    losses_b = [b.train(20)]
    self.assertAllClose(np.mean(losses_a), losses_b[0], rtol=1e-12)
    self.assertAllEqual(a.theta, b.theta)
    self.assertAllEqual(
      a.validate(keep_probabilities=True).probabilities,
      b.validate(keep_probabilities=True).probabilities,
    )
    c = toy.build_noisy_quadratic(seed=6)
    c.train(20)
    self.assertNotAllClose(a.theta, c.theta)

  def test_zero_noise_is_exact_gradient_descent(self):
    trainee = toy.build_noisy_quadratic(seed=2, noise_scale=0.0)
    h = np.geomspace(toy.DEFAULT_MIN_CURVATURE, toy.DEFAULT_MAX_CURVATURE, 16)
    self.assertAllClose(trainee.curvatures, h)
    theta = trainee.theta.copy()
    for lr in (0.3, 1.5, 0.01):
      trainee.set_learning_rate(lr)
      self.assertEqual(trainee.learning_rate, lr)
      expected_losses = []
      for _ in range(4):
        expected_losses.append(0.5 * np.sum(h * theta**2))
        theta = theta - lr * h * theta
      loss = trainee.train(4)
      self.assertAllClose(trainee.theta, theta, rtol=1e-12, atol=0)
      self.assertAllClose(loss, np.mean(expected_losses), rtol=1e-12)
    self.assertEqual(trainee.global_step, 12)
    self.assertAllClose(trainee.exact_loss(), 0.5 * np.sum(h * theta**2))

  def test_constant_rate_noise_floor_is_proportional_to_rate(self):
    # Stationary E[L] = 0.5 * sum_i h_i * lr * s^2 / (2 - lr * h_i).
    for lr in (0.05, 0.5):
      values = []
      for seed in range(3):
        trainee = toy.NoisyQuadraticTrainee(seed=seed, initial_learning_rate=lr)
        trainee.theta = np.zeros(trainee.dim)
        trainee.train(1000)
        for _ in range(200):
          trainee.train(10)
          values.append(trainee.exact_loss())
      h = trainee.curvatures
      expected = 0.5 * np.sum(h * lr * toy.DEFAULT_NOISE_SCALE**2 / (2 - lr * h))
      self.assertAllClose(np.mean(values), expected, rtol=0.1)

  def test_huge_rate_diverges_and_run_training_reports_it(self):
    trainee = toy.build_noisy_quadratic(initial_learning_rate=1e3)
    result = trainee_lib.run_training(trainee, num_steps=100, eval_interval=10)
    self.assertTrue(result["diverged"])
    self.assertTrue(trainee.diverged)
    self.assertLess(result["steps_done"], 100)
    self.assertIsNone(result["history"][-1]["val_loss"])
    for row in result["history"]:
      for value in row.values():
        self.assertFalse(isinstance(value, float) and not math.isfinite(value))
    with self.assertRaises(RuntimeError):
      trainee.train(1)

  def test_stability_edge_is_two_over_max_curvature(self):
    # The dynamics' edge: only the training-loss part of the protocol's rule
    # (at 1.9 the noise floor's swings exceed 4x this seed's initial loss,
    # which the default rule calls divergence).
    training_loss_only = protocol.DivergenceRule(max_val_loss_ratio=None)
    for lr, diverges in ((1.9, False), (2.5, True)):
      trainee = toy.NoisyQuadraticTrainee(
        seed=0, initial_learning_rate=lr, rule=training_loss_only
      )
      result = trainee_lib.run_training(
        trainee, num_steps=200, eval_interval=10, evaluate_test=False
      )
      self.assertEqual(result["diverged"], diverges, msg=f"lr={lr}")

  def test_non_finite_theta_gives_nan_evaluation(self):
    trainee = toy.build_noisy_quadratic(initial_learning_rate=1e6)
    trainee.train(100)
    self.assertTrue(trainee.diverged)
    result = trainee.validate(keep_probabilities=True)
    self.assertTrue(math.isnan(result.loss))
    self.assertTrue(math.isnan(result.accuracy))
    self.assertIsNone(trainee.best_step)
    self.assertFalse(trainee.restore_best())

  def test_divergence_bound_on_a_finite_loss(self):
    trainee = toy.NoisyQuadraticTrainee(
      rule=protocol.DivergenceRule(max_train_loss=1e-9)
    )
    self.assertTrue(math.isfinite(trainee.train(1)))
    self.assertTrue(trainee.diverged)

  def test_run_training_keeps_and_tests_the_best_theta(self):
    trainee = toy.build_noisy_quadratic(seed=1, initial_learning_rate=1.0)
    result = trainee_lib.run_training(trainee, num_steps=60, eval_interval=10)
    self.assertFalse(result["diverged"])
    self.assertEqual([r["step"] for r in result["history"]], [10, 20, 30, 40, 50, 60])
    val_losses = [r["val_loss"] for r in result["history"]]
    best = int(np.argmin(val_losses))
    self.assertEqual(result["best_step"], result["history"][best]["step"])
    self.assertAllClose(result["best_val_loss"], val_losses[best])
    # Validation and test share the exact loss: the restored theta's test loss
    # is the best validation loss.
    self.assertAllClose(result["test_loss"], val_losses[best])
    self.assertAllClose(trainee.exact_loss(), val_losses[best])
    self.assertBetween(result["test_accuracy"], 0.0, 1.0)

  def test_step_decay_beats_every_constant_rate(self):
    seeds = range(5)
    constants = np.geomspace(1e-3, 1.9, 13)
    constant_losses = {
      lr: np.mean([_final_loss(seed, lr) for seed in seeds]) for lr in constants
    }
    best_constant = min(constant_losses.values())
    decay = schedules.make_schedule(
      "step_decay",
      initial_learning_rate=1.0,
      total_steps=200,
      discount_step=50,
      factor=0.3,
    )
    decay_loss = np.mean([_final_loss(seed, 1.0, schedule=decay) for seed in seeds])
    # Measured: best constant (0.15) 0.027, step decay 0.0065, constant 1.0 0.12.
    self.assertLess(decay_loss, 0.5 * best_constant)
    self.assertLess(decay_loss, 0.1 * np.mean([_final_loss(s, 1.0) for s in seeds]))
    best_rate = min(constant_losses, key=constant_losses.get)
    self.assertBetween(best_rate, 0.05, 0.6)

  def test_schedule_sets_each_steps_rate(self):
    sched = schedules.make_schedule(
      "step_decay",
      initial_learning_rate=0.8,
      total_steps=40,
      discount_step=10,
      factor=0.5,
    )
    trainee = toy.build_noisy_quadratic(schedule=sched, noise_scale=0.0)
    theta = trainee.theta.copy()
    trainee.train(15)
    self.assertAllClose(trainee.learning_rate, 0.4)  # rate of step 14
    h = trainee.curvatures
    for step in range(15):
      theta = theta - (0.8 if step < 10 else 0.4) * h * theta
    self.assertAllClose(trainee.theta, theta, rtol=1e-6)
    # A scalar-only Python callable works too.
    trainee.reset(0, 0.1, schedule=lambda step: 0.2 if int(step) < 3 else 0.05)
    trainee.train(5)
    self.assertAllClose(trainee.learning_rate, 0.05)

  def test_reset_restarts_the_run(self):
    trainee = toy.build_noisy_quadratic(seed=3, initial_learning_rate=5.0)
    trainee_lib.run_training(trainee, num_steps=50, eval_interval=10)
    self.assertTrue(trainee.diverged)
    trainee.reset(seed=4, learning_rate=0.2)
    fresh = toy.build_noisy_quadratic(seed=4, initial_learning_rate=0.2)
    self.assertAllEqual(trainee.theta, fresh.theta)
    self.assertEqual(trainee.global_step, 0)
    self.assertFalse(trainee.diverged)
    self.assertEqual(trainee.best_val_loss, math.inf)
    self.assertIsNone(trainee.best_step)
    self.assertFalse(trainee.restore_best())
    self.assertEqual(trainee.learning_rate, 0.2)
    self.assertEqual(trainee.train(10), fresh.train(10))
    self.assertAllEqual(trainee.theta, fresh.theta)
    with self.assertRaises(UserError):
      trainee.reset(seed=0, learning_rate=0.0)

  def test_interface_members(self):
    trainee = toy.build_noisy_quadratic(seed=0, dim=12)
    for name in (
      "train",
      "diverged",
      "global_step",
      "learning_rate",
      "set_learning_rate",
      "validate",
      "evaluate",
      "restore_best",
      "best_val_loss",
      "best_step",
      "first_val_loss",
      "rule",
      "final_layer",
      "reset",
    ):
      self.assertTrue(hasattr(trainee, name), msg=name)
    kernel = trainee.final_layer.kernel
    self.assertEqual(kernel.shape, (12, 1))
    self.assertEqual(kernel.dtype, np.float32)
    self.assertAllClose(kernel[:, 0], trainee.theta)
    validation = trainee.evaluate("validation", keep_probabilities=True)
    test = trainee.evaluate("test", keep_probabilities=True)
    self.assertIsInstance(validation, trainee_lib.EvalResult)
    self.assertEqual(validation.loss, trainee.exact_loss())
    self.assertEqual(test.loss, validation.loss)
    self.assertIsInstance(validation.accuracy, float)
    self.assertBetween(validation.accuracy, 0.0, 1.0)
    for probs in (validation.probabilities, test.probabilities):
      self.assertEqual(probs.shape, (toy.DEFAULT_NUM_PROBES, 12))
      self.assertEqual(probs.dtype, np.float32)
      self.assertAllClose(probs.sum(axis=1), np.ones(toy.DEFAULT_NUM_PROBES))
    self.assertNotAllClose(validation.probabilities, test.probabilities)
    self.assertIsNone(trainee.evaluate("test").probabilities)
    with self.assertRaises(ValueError):
      trainee.evaluate("train")
    # At the optimum every probe is classified correctly.
    trainee.theta = np.zeros(12)
    self.assertEqual(trainee.evaluate().accuracy, 1.0)

  def test_validate_tracks_the_best_theta(self):
    trainee = toy.build_noisy_quadratic(seed=0, initial_learning_rate=0.5)
    trainee.train(30)
    first = trainee.validate()
    best_theta = trainee.theta.copy()
    self.assertEqual(trainee.best_step, 30)
    self.assertEqual(trainee.best_val_loss, first.loss)
    trainee.theta = best_theta + 10.0  # much worse
    trainee.validate()
    self.assertEqual(trainee.best_step, 30)
    self.assertTrue(trainee.restore_best())
    self.assertAllEqual(trainee.theta, best_theta)

  def test_gin_configures_the_factory(self):
    gin.parse_config(
      ["build_noisy_quadratic.dim = 8", "build_noisy_quadratic.noise_scale = 0.0"]
    )
    trainee = toy.build_noisy_quadratic(seed=1)
    self.assertEqual(trainee.dim, 8)
    self.assertEqual(trainee.noise_scale, 0.0)

  def test_bad_constants_raise_user_error(self):
    for kwargs in (
      {"dim": 0},
      {"min_curvature": 0.0},
      {"min_curvature": 2.0, "max_curvature": 1.0},
      {"noise_scale": -1.0},
      {"init_scale": 0.0},
      {"num_probes": 0},
      {"initial_learning_rate": -0.1},
    ):
      with self.assertRaises(UserError, msg=str(kwargs)):
        toy.build_noisy_quadratic(**kwargs)


if __name__ == "__main__":
  tf.test.main()
