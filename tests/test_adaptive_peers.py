"""Tests of the online/adaptive peers against independent computations."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from lr_controller import testing
from lr_controller.errors import UserError
from lr_controller.judge import adaptive_peers, autolrs
from lr_controller.trainee import protocol
from lr_controller.trainee import trainee as trainee_lib

ROW_KEYS = {"step", "lr", "train_loss", "val_loss", "val_accuracy"}


def _one_batch_data():
  return testing.tiny_data(repeat_one_batch=True, batch_size=8)


def _gradient(model, weights, images, labels):
  """Mean cross-entropy gradient at `weights`, flattened to float64 [P]."""
  model.set_weights(weights)
  with tf.GradientTape() as tape:
    logits = model(images, training=True)
    loss = tf.reduce_mean(
      tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    )
  grads = tape.gradient(loss, model.trainable_variables)
  return [g.numpy().astype(np.float64) for g in grads]


def _flat(arrays):
  return np.concatenate([a.ravel() for a in arrays])


class _StubTrainee(protocol.MonitoredRun):
  """Duck-typed trainee whose validation losses follow a given sequence.

  The sequence starts after the initial weights' validation (loss
  `initial_val_loss`); divergence and the best loss follow the protocol.
  """

  def __init__(self, val_losses, initial_val_loss=1.0):
    self.optimizer = tf.keras.optimizers.SGD(1.0)
    self._val_losses = [initial_val_loss, *val_losses]
    self.monitor = protocol.RunMonitor(protocol.DivergenceRule())

  def reset(self, seed, learning_rate, schedule=None):
    del seed
    assert schedule is None
    self.optimizer.learning_rate.assign(learning_rate)
    self.global_step, self._evals = 0, 0
    self.monitor.start()

  @property
  def learning_rate(self):
    return float(self.optimizer.learning_rate.numpy())

  def train(self, num_steps):
    self.global_step += num_steps
    return 1.0

  def validate(self):
    loss = self._val_losses[self._evals]
    self._evals += 1
    self.monitor.observe_validation(loss, self.global_step)
    return trainee_lib.EvalResult(loss=loss, accuracy=0.5)

  def restore_best(self):
    return False


class ReduceOnPlateauTest(parameterized.TestCase, tf.test.TestCase):
  # Expected rates worked out by hand from Keras' documented rule (a reduction
  # at the `patience`-th evaluation without an improvement of `min_delta`);
  # row k shows the rate chunk k used, i.e. before evaluation k's reduction.
  @parameterized.named_parameters(
    dict(
      testcase_name="patience_2",
      losses=[1.0, 0.995, 0.99, 0.5, 0.6, 0.6, 0.495, 0.2],
      kwargs=dict(factor=0.5, patience=2, min_delta=0.01),
      expected=[1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25],
    ),
    dict(
      testcase_name="cooldown_2_skips_one_evaluation",
      losses=[1.0] * 6,
      kwargs=dict(factor=0.5, patience=1, min_delta=0.0, cooldown=2),
      expected=[1, 1, 0.5, 0.5, 0.25, 0.25],
    ),
    dict(
      testcase_name="floor",
      losses=[1.0] * 5,
      kwargs=dict(factor=0.1, patience=1, min_learning_rate=0.05),
      expected=[1, 1, 0.1, 0.05, 0.05],
    ),
  )
  def test_synthetic_losses(self, losses, kwargs, expected):
    stub = _StubTrainee(losses)
    result = adaptive_peers.run_reduce_on_plateau(
      stub, 1.0, num_steps=10 * len(losses), eval_interval=10, **kwargs
    )
    self.assertAllClose([r["lr"] for r in result["history"]], expected, rtol=1e-6)

  def test_tiny_rate_plateaus_on_a_real_trainee(self):
    # At lr 1e-6 the validation loss moves far less than min_delta per chunk:
    # evaluation 1 improves on inf, then every `patience` evaluations reduce.
    result = adaptive_peers.run_reduce_on_plateau(
      testing.tiny_trainee(),
      1e-6,
      num_steps=60,
      eval_interval=10,
      factor=0.1,
      patience=2,
      min_learning_rate=1e-12,
    )
    expected = [1e-6, 1e-6, 1e-6, 1e-7, 1e-7, 1e-8]
    self.assertAllClose([r["lr"] for r in result["history"]], expected, rtol=1e-5)
    self.assertEqual(set(result), testing.RUN_KEYS)
    self.assertIsNotNone(result["test_loss"])

  def test_bad_factor(self):
    with self.assertRaises(UserError):
      adaptive_peers.run_reduce_on_plateau(_StubTrainee([1.0]), 1.0, 10, factor=1.0)


class HypergradientTest(parameterized.TestCase, tf.test.TestCase):
  # Momentum 0.9 gives the same first two rates: the first momentum step is
  # -alpha0 * g0, and the hypergradient uses raw gradients.
  @parameterized.parameters(0.0, 0.9)
  def test_rate_after_two_steps(self, momentum):
    alpha0, beta = 0.05, 1e-3
    data = _one_batch_data()
    hd = adaptive_peers.HypergradientTrainee.from_trainee(
      testing.tiny_trainee(momentum=momentum, data=data), hypergradient_lr=beta
    )
    hd.reset(3, alpha0)
    images, labels = next(iter(data.train))
    reference = tf.keras.Model.from_config(hd.model.get_config())
    theta0 = hd.model.get_weights()
    g0 = _gradient(reference, theta0, images, labels)
    theta1 = [w - alpha0 * g for w, g in zip(theta0, g0)]
    g1 = _gradient(reference, theta1, images, labels)
    hypergradient = float(_flat(g1) @ _flat(g0))
    hd.train(1)
    self.assertAllClose(hd.learning_rate, alpha0)  # g_{-1} = 0.
    hd.train(1)
    self.assertAllClose(hd.learning_rate - alpha0, beta * hypergradient, rtol=1e-3)
    if momentum == 0:
      alpha1 = alpha0 + beta * hypergradient
      theta2 = [w - alpha1 * g for w, g in zip(theta1, g1)]
      for expected, actual in zip(theta2, hd.model.get_weights()):
        self.assertAllClose(actual, expected, atol=1e-6)

  def test_rate_stays_above_the_floor(self):
    data = _one_batch_data()
    hd = adaptive_peers.HypergradientTrainee.from_trainee(
      testing.tiny_trainee(data=data), hypergradient_lr=1.0, min_learning_rate=1e-4
    )
    hd.reset(0, 0.05)
    images, labels = next(iter(data.train))
    reference = tf.keras.Model.from_config(hd.model.get_config())
    theta0 = hd.model.get_weights()
    g0 = _gradient(reference, theta0, images, labels)
    # A huge negative hypergradient: g_{-1} = -1000 g0.
    for previous, g in zip(hd.previous_gradients, g0):
      previous.assign(-1e3 * g)
    hd.train(1)
    self.assertAllClose(hd.learning_rate, 1e-4)
    for w, g, actual in zip(theta0, g0, hd.model.get_weights()):
      self.assertAllClose(actual, w - 1e-4 * g, atol=1e-7)
    # Reset clears g_{t-1}: the first step keeps alpha0 again.
    hd.reset(0, 0.05)
    for previous in hd.previous_gradients:
      self.assertAllEqual(previous.numpy(), np.zeros(previous.shape))
    hd.train(1)
    self.assertAllClose(hd.learning_rate, 0.05)

  def test_runs_reuse_the_cached_graph(self):
    base = testing.tiny_trainee()
    first = adaptive_peers.run_hypergradient(
      base, 0.05, num_steps=20, hypergradient_lr=1e-3, seed=0
    )
    hd = trainee_lib.derived_trainee(base, adaptive_peers.HypergradientTrainee)
    second = adaptive_peers.run_hypergradient(
      base, 0.1, num_steps=20, hypergradient_lr=1e-2, seed=1
    )
    self.assertIs(
      trainee_lib.derived_trainee(base, adaptive_peers.HypergradientTrainee), hd
    )
    self.assertEqual(hd._train_loop.experimental_get_tracing_count(), 1)
    self.assertEqual(base.global_step, 0)  # The base trainee is not trained.
    # The rows show the adapted rate (not the initial one).
    for result, alpha0 in ((first, 0.05), (second, 0.1)):
      self.assertNotAllClose([r["lr"] for r in result["history"]], [alpha0] * 2)


class RefinedScheduleTest(parameterized.TestCase, tf.test.TestCase):
  def test_hand_made_norms(self):
    # w = g^-2 = [1, 1/4, 1, 4, 1]; tails sum_{p>t} w_p = [6.25, 6, 5, 1, 0].
    rates = adaptive_peers.refined_learning_rates([1, 2, 1, 0.5, 1], 0.3)
    expected = 0.3 * np.array([6.25, 1.5, 5.0, 4.0, 0.0]) / 6.25
    self.assertAllClose(rates, expected)

  @parameterized.named_parameters(
    dict(testcase_name="constant", norms=[2.0] * 6, window=1),
    dict(testcase_name="spike", norms=[1, 1, 10, 1, 1, 1], window=3),
    dict(testcase_name="spike_at_end", norms=[1, 1, 1, 1, 1, 5], window=3),
    dict(testcase_name="even_window", norms=[1, 1, 10, 1, 1, 1], window=2),
  )
  def test_constant_norms_give_linear_decay(self, norms, window):
    # A median filter of width 3 removes an isolated spike, also at the end.
    rates = adaptive_peers.refined_learning_rates(norms, 0.1, window)
    self.assertAllClose(rates, 0.1 * np.array([5, 4, 3, 2, 1, 0]) / 5)

  def test_schedule_object(self):
    schedule = adaptive_peers.refined_schedule([1, 2, 1, 0.5, 1], 0.3)
    expected = 0.3 * np.array([6.25, 1.5, 5.0, 4.0, 0.0, 0.0]) / 6.25
    self.assertAllClose(schedule(tf.range(6, dtype=tf.int64)), expected)
    self.assertAllClose(schedule(1), expected[1])
    config = tf.keras.optimizers.schedules.serialize(schedule)
    again = tf.keras.optimizers.schedules.deserialize(config)
    self.assertAllClose(again(tf.range(6)), expected)

  @parameterized.parameters([[1.0]], [[1.0, 0.0]], [[1.0, np.nan]])
  def test_bad_norms(self, norms):
    with self.assertRaises(UserError):
      adaptive_peers.refined_learning_rates(norms, 0.1)

  def test_recorded_norms_match_gradient_tape(self):
    lr = 0.1
    data = _one_batch_data()
    recorder = adaptive_peers.GradientNormRecordingTrainee.from_trainee(
      testing.tiny_trainee(data=data), max_steps=3
    )
    recorder.reset(0, lr)
    images, labels = next(iter(data.train))
    reference = tf.keras.Model.from_config(recorder.model.get_config())
    theta = recorder.model.get_weights()
    expected = []
    for _ in range(3):
      g = _gradient(reference, theta, images, labels)
      expected.append(np.linalg.norm(_flat(g)))
      theta = [w - lr * x for w, x in zip(theta, g)]
    recorder.train(5)  # Steps past max_steps train but are not recorded.
    self.assertEqual(recorder.global_step, 5)
    self.assertAllClose(recorder.gradient_norms, expected, rtol=1e-5)
    recorder.reset(0, lr)
    self.assertEqual(recorder.gradient_norms.shape, (0,))


class PeersTest(parameterized.TestCase, tf.test.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.base = testing.tiny_trainee()

  def test_names(self):
    self.assertEqual(tuple(adaptive_peers.PEERS), adaptive_peers.PEER_NAMES)
    self.assertCountEqual(
      adaptive_peers.PEER_NAMES,
      [
        "cosine",
        "linear",
        "rex",
        "uba",
        "one_cycle",
        "exponential",
        "reduce_on_plateau",
        "hypergradient",
        "refined",
        "schedule_free",
        "autolrs",
      ],
    )
    with self.assertRaises(UserError):
      adaptive_peers.run_peer("step", self.base, 0.1, num_steps=10)

  @parameterized.parameters(*adaptive_peers.PEER_NAMES)
  def test_peer_returns_the_run_training_dict(self, name):
    result = adaptive_peers.run_peer(
      name,
      self.base,
      initial_learning_rate=0.1,
      num_steps=20,
      eval_interval=10,
      seed=1,
      evaluate_test=True,
    )
    extra = set(autolrs.EXTRA_KEYS) if name == "autolrs" else set()
    self.assertEqual(set(result), testing.RUN_KEYS | extra)
    self.assertFalse(result["diverged"])
    self.assertEqual(result["steps_done"], 20)
    self.assertEqual([r["step"] for r in result["history"]], [10, 20])
    for row in result["history"]:
      self.assertEqual(set(row), ROW_KEYS)
      self.assertGreaterEqual(row["lr"], 0.0)  # Refined ends at exactly 0.
    self.assertGreater(result["history"][0]["lr"], 0.0)
    self.assertIsNotNone(result["test_loss"])
    self.assertIn(result["best_step"], (10, 20))
    self.assertAllClose(
      result["best_val_loss"], min(r["val_loss"] for r in result["history"])
    )

  def test_search_picks_the_lowest_validation_loss(self):
    rates = [1e-4, 1e6, 0.3, 0.03]
    best, runs = adaptive_peers.search_peer_learning_rate(
      "linear", self.base, rates, num_steps=20, eval_interval=10, seed=0
    )
    self.assertEqual([r["initial_learning_rate"] for r in runs], rates)
    self.assertTrue(runs[1]["diverged"])
    for run in runs:
      self.assertIsNone(run["test_loss"])  # Never tested.
    converged = {
      r["initial_learning_rate"]: r["best_val_loss"] for r in runs if not r["diverged"]
    }
    self.assertLen(converged, 3)
    self.assertEqual(best, min(converged, key=converged.get))


if __name__ == "__main__":
  tf.test.main()
