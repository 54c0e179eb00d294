"""Tests of AutoLRS: stage plan, exponential forecasts, snapshots, stage search."""

import math

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from lr_controller import testing
from lr_controller.errors import UserError
from lr_controller.judge import adaptive_peers, autolrs
from lr_controller.trainee import protocol, toy_problems
from lr_controller.trainee import trainee as trainee_lib


def _expected_loss(trainee, theta, rate, num_steps):
  """E[L(theta_T)] of constant-rate SGD on the noisy quadratic, in closed form.

  Per coordinate, E[theta_i^2] follows m <- (1 - rate h_i)^2 m + rate^2 s^2 h_i
  (gradient noise of variance s^2 h_i), from m = theta_i^2.
  """
  h, s = trainee.curvatures, trainee.noise_scale
  m = np.asarray(theta, np.float64) ** 2
  for _ in range(num_steps):
    m = (1 - rate * h) ** 2 * m + rate**2 * s**2 * h
  return 0.5 * float(np.sum(h * m))


def _constant_rate_loss(seed, rate, num_steps=200):
  quadratic = toy_problems.NoisyQuadraticTrainee(seed=seed)
  quadratic.reset(seed, rate)
  result = trainee_lib.run_training(quadratic, num_steps, 10, evaluate_test=False)
  return result["best_val_loss"]


class StagePlanTest(parameterized.TestCase):
  @parameterized.named_parameters(
    dict(
      testcase_name="digits_default",
      args=(200, 10),
      kwargs={},
      expected=[(20, 5), (40, 10), (80, 20), (60, 15)],
    ),
    dict(testcase_name="short", args=(20, 10), kwargs={}, expected=[(10, 3), (10, 3)]),
    dict(
      testcase_name="capped_with_tau_prime_ratio",
      args=(100, 5),
      kwargs=dict(first_stage_steps=10, max_stage_steps=20, first_trial_steps=2),
      expected=[(10, 2), (20, 4), (20, 4), (20, 4), (20, 4), (10, 2)],
    ),
    dict(
      testcase_name="paper_ratios",
      args=(15000, 100),
      kwargs=dict(first_stage_steps=1000, max_stage_steps=8000, first_trial_steps=100),
      expected=[(1000, 100), (2000, 200), (4000, 400), (8000, 800)],
    ),
  )
  def test_plan(self, args, kwargs, expected):
    self.assertEqual(autolrs.stage_plan(*args, **kwargs), expected)

  @parameterized.named_parameters(
    dict(testcase_name="k_0", kwargs=dict(num_candidates=0)),
    dict(testcase_name="tau_prime_above_tau", kwargs=dict(first_trial_steps=30)),
    dict(testcase_name="tau_0", kwargs=dict(first_stage_steps=0)),
    dict(testcase_name="tau_negative", kwargs=dict(first_stage_steps=-20)),
    dict(testcase_name="tau_off_the_interval", kwargs=dict(first_stage_steps=15)),
    dict(testcase_name="tau_max_below_tau", kwargs=dict(max_stage_steps=10)),
    dict(testcase_name="tau_prime_0", kwargs=dict(first_trial_steps=0)),
    dict(testcase_name="box", kwargs=dict(min_learning_rate_ratio=20.0)),
    dict(testcase_name="kappa", kwargs=dict(kappa=-1.0)),
    dict(testcase_name="loss_series", kwargs=dict(loss_series="test")),
  )
  def test_bad_settings(self, kwargs):
    quadratic = toy_problems.NoisyQuadraticTrainee(seed=0)
    settings = {"first_stage_steps": 20, **kwargs}
    with self.assertRaises(UserError):
      autolrs.run_autolrs(quadratic, 0.3, 200, 10, **settings)
    self.assertEqual(quadratic.global_step, 0)  # Rejected before training.

  def test_unsupported_trainee(self):
    with self.assertRaisesRegex(UserError, "snapshots a Trainee"):
      autolrs.run_autolrs(object(), 0.3, 200, 10)


class ForecastTest(parameterized.TestCase, tf.test.TestCase):
  @parameterized.named_parameters(
    dict(testcase_name="decaying", a=1.5, b=0.05, c=0.3),
    dict(testcase_name="fast", a=0.8, b=0.4, c=0.1),
    dict(testcase_name="rising", a=-0.5, b=0.1, c=1.0),
    dict(testcase_name="no_floor", a=2.0, b=0.02, c=0.0),
  )
  def test_recovers_exact_curves(self, a, b, c):
    steps = np.arange(0, 21, dtype=np.float64)
    losses = a * np.exp(-b * steps) + c
    fit = autolrs.fit_exponential(steps, losses)
    self.assertAllClose(fit, (a, b, c), rtol=1e-4, atol=1e-4)
    self.assertAllClose(
      autolrs.forecast_loss(steps, losses, 80), a * np.exp(-b * 80) + c, rtol=1e-4
    )

  def test_noisy_curve_forecast(self):
    rng = np.random.default_rng(0)
    steps = np.arange(1, 26, dtype=np.float64)
    truth = 1.2 * np.exp(-0.08 * steps) + 0.25
    noisy = truth + rng.normal(0, 0.01, steps.size)
    forecast = autolrs.forecast_loss(steps, noisy, 100)
    self.assertAllClose(forecast, 1.2 * np.exp(-8.0) + 0.25, atol=0.03)

  def test_too_few_points(self):
    self.assertIsNone(autolrs.fit_exponential([0, 1], [1.0, 0.5]))
    self.assertIsNone(autolrs.fit_exponential([0, 1, 2], [1.0, np.nan, 0.5]))
    self.assertEqual(autolrs.forecast_loss([0, 5], [1.0, 0.5], 20), 0.5)


class SnapshotTest(tf.test.TestCase):
  def test_keras_trainee_round_trip(self):
    trainee = testing.tiny_trainee(momentum=0.9)
    trainee.reset(0, 0.05)
    trainee.train(3)
    snapshot = autolrs.take_snapshot(trainee)
    trainee.set_learning_rate(0.5)
    trainee.train(4)
    autolrs.restore_snapshot(trainee, snapshot)
    self.assertEqual(trainee.global_step, 3)
    self.assertAllClose(trainee.learning_rate, 0.05)
    for actual, saved in zip(trainee.model.get_weights(), snapshot.weights):
      self.assertAllEqual(actual, saved)
    for variable, saved in zip(
      trainee.optimizer.variables, snapshot.optimizer_variables
    ):
      self.assertAllEqual(variable.numpy(), saved)
    self.assertEqual(int(trainee.optimizer.iterations.numpy()), 3)
    self.assertNotAllClose(snapshot.optimizer_variables[1], 0.0)  # Momentum.

  def test_noisy_quadratic_replays_the_same_noise(self):
    quadratic = toy_problems.NoisyQuadraticTrainee(seed=4)
    quadratic.train(7)
    snapshot = autolrs.take_snapshot(quadratic)
    first_loss = quadratic.train(5)
    first = quadratic.theta.copy()
    autolrs.restore_snapshot(quadratic, snapshot)
    self.assertEqual(quadratic.global_step, 7)
    self.assertEqual(quadratic.train(5), first_loss)
    self.assertAllEqual(quadratic.theta, first)

  def test_restore_clears_a_trial_divergence(self):
    quadratic = toy_problems.NoisyQuadraticTrainee(seed=0)
    snapshot = autolrs.take_snapshot(quadratic)
    quadratic.set_learning_rate(50.0)
    quadratic.train(20)
    self.assertTrue(quadratic.diverged)
    autolrs.restore_snapshot(quadratic, snapshot)
    self.assertFalse(quadratic.diverged)
    self.assertAllEqual(quadratic.theta, snapshot.weights[0])


class StageSearchTest(tf.test.TestCase):
  def test_a_trial_diverges_by_the_protocols_rule(self):
    # At rate 3 the stiffest coordinate grows 2x per step: the validation loss
    # rises past 2x the run's first long before it stops being finite.
    rule = protocol.DivergenceRule(max_train_loss=math.inf, max_val_loss_ratio=2.0)
    quadratic = toy_problems.NoisyQuadraticTrainee(seed=0, rule=rule)
    quadratic.reset(0, 0.1)
    first = quadratic.validate().loss  # The run's first: the rule's reference.
    _, (trial,) = autolrs.search_stage(
      quadratic, 3.0, (1e-3, 10.0), 16, 16, num_candidates=1
    )
    # The same steps by hand (the search restored the run; one step per chunk).
    quadratic.set_learning_rate(3.0)
    steps = 0
    while steps < 16 and quadratic.evaluate("validation").loss <= 2.0 * first:
      quadratic.train(1)
      steps += 1
    self.assertTrue(trial.diverged)
    self.assertEqual(trial.steps, steps)
    self.assertLess(steps, 16)
    self.assertFalse(quadratic.diverged)  # Trials leave the run as it was.

  def test_finds_a_near_optimal_rate_from_a_poor_incumbent(self):
    # From theta_0 the best 40-step constant rate is 0.3-0.55 (closed form);
    # the incumbent 0.01 is 8-15x worse. k = 6 candidates with kappa = 1
    # (exploiting the GP) get within 1.6x of the best expected loss.
    grid = np.geomspace(1e-3, 1.0, 200)
    for seed in range(5):
      quadratic = toy_problems.NoisyQuadraticTrainee(seed=seed)
      quadratic.reset(seed, 0.01)
      theta = quadratic.theta.copy()
      rate, trials = autolrs.search_stage(
        quadratic, 0.01, (1e-3, 1.0), 40, 10, num_candidates=6, kappa=1.0, seed=seed
      )
      self.assertAllEqual(quadratic.theta, theta)  # Left as found.
      self.assertEqual(quadratic.global_step, 0)
      self.assertLen(trials, 6)
      self.assertEqual(trials[0].learning_rate, 0.01)
      self.assertEqual(rate, min(trials, key=lambda t: t.score).learning_rate)
      losses = [_expected_loss(quadratic, theta, r, 40) for r in grid]
      best_rate, best_loss = grid[np.argmin(losses)], min(losses)
      self.assertGreater(_expected_loss(quadratic, theta, 0.01, 40), 5 * best_loss)
      self.assertLess(_expected_loss(quadratic, theta, rate, 40), 1.6 * best_loss)
      self.assertBetween(rate / best_rate, 0.4, 2.5)

  def test_run_adapts_from_a_poor_initial_rate(self):
    # Defaults (kappa = 1e6, k = 4); the box is [0.001, 1]. By the end of the
    # first stage the rate is >= 10x the initial one, and the run matches the
    # best constant rate (0.2, toy_problems' docstring) within 1.5x.
    results = [
      autolrs.run_autolrs(
        toy_problems.NoisyQuadraticTrainee(seed=seed),
        0.01,
        200,
        10,
        min_learning_rate_ratio=0.1,
        max_learning_rate_ratio=100.0,
        seed=seed,
      )
      for seed in range(5)
    ]
    for result in results:
      self.assertGreaterEqual(result["stages"][0]["learning_rate"], 0.1)
      self.assertEqual(result["steps_done"], 200)
      self.assertEqual(
        [s["steps"] for s in result["stages"]], [20, 40, 80, 60]
      )  # tau doubles.
      self.assertEqual(
        result["trial_steps"],
        sum(c["steps"] for s in result["stages"] for c in s["candidates"]),
      )
      rates = [s["learning_rate"] for s in result["stages"]]
      per_row = [r["lr"] for r in result["history"]]
      self.assertEqual(per_row, np.repeat(rates, [2, 4, 8, 6]).tolist())
    autolrs_loss = np.mean([r["best_val_loss"] for r in results])
    best_constant = np.mean([_constant_rate_loss(s, 0.2) for s in range(5)])
    poor_constant = np.mean([_constant_rate_loss(s, 0.01) for s in range(5)])
    self.assertLess(autolrs_loss, 1.5 * best_constant)
    self.assertLess(autolrs_loss, 0.2 * poor_constant)

  def test_training_loss_series(self):
    result = autolrs.run_autolrs(
      toy_problems.NoisyQuadraticTrainee(seed=0), 0.3, 100, 10, loss_series="training"
    )
    self.assertEqual(result["steps_done"], 100)
    self.assertFalse(result["diverged"])


class PeerTest(tf.test.TestCase):
  def test_registered_peer_on_a_keras_trainee(self):
    trainee = testing.tiny_trainee(momentum=0.9)
    runs = [
      adaptive_peers.run_peer(
        "autolrs", trainee, 0.1, num_steps=40, eval_interval=10, seed=1
      )
      for _ in range(2)
    ]
    result = runs[0]
    self.assertEqual(set(result), testing.RUN_KEYS | set(autolrs.EXTRA_KEYS))
    self.assertEqual(result["steps_done"], 40)
    self.assertEqual(trainee.global_step, 40)  # Trials are not counted.
    self.assertEqual([r["step"] for r in result["history"]], [10, 20, 30, 40])
    self.assertEqual([s["steps"] for s in result["stages"]], [10, 20, 10])
    self.assertEqual([s["trial_steps"] for s in result["stages"]], [3, 6, 3])
    self.assertEqual(
      result["trial_steps"],
      sum(c["steps"] for s in result["stages"] for c in s["candidates"]),
    )
    self.assertGreater(result["trial_steps"], 0)
    self.assertIn(result["best_step"], (10, 20, 30, 40))
    self.assertAllClose(
      result["best_val_loss"], min(r["val_loss"] for r in result["history"])
    )
    self.assertIsNotNone(result["test_loss"])
    for key in ("history", "stages", "best_val_loss", "test_loss", "trial_steps"):
      self.assertEqual(runs[1][key], result[key])  # Deterministic for a seed.


if __name__ == "__main__":
  tf.test.main()
