"""Tests of schedule-free SGD against a NumPy computation of the paper's update."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from lr_controller import testing
from lr_controller.errors import UserError
from lr_controller.judge import schedule_free
from lr_controller.trainee import trainee as trainee_lib


def _mean_validation_loss(model, data, split="validation"):
  """Mean cross-entropy (nats) of `model` over a split, float64."""
  losses = []
  for images, labels in getattr(data, split):
    logits = model(images, training=False)
    losses.append(
      tf.keras.losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True
      ).numpy()
    )
  return float(np.mean(np.concatenate(losses).astype(np.float64)))


class ScheduleFreeSGDTest(parameterized.TestCase, tf.test.TestCase):
  @parameterized.named_parameters(
    dict(testcase_name="warmup_3", beta=0.9, warmup=3, rates=[0.1] * 6),
    dict(
      testcase_name="changing_rate_no_warmup",
      beta=0.5,
      warmup=0,
      rates=[0.2, 0.2, 0.05, 0.05, 0.1],
    ),
    dict(testcase_name="beta_0_is_averaged_sgd", beta=0.0, warmup=2, rates=[0.3] * 4),
    dict(testcase_name="beta_1", beta=1.0, warmup=0, rates=[0.3] * 4),
  )
  def test_matches_the_closed_form_on_a_quadratic(self, beta, warmup, rates):
    # f(w) = 0.5 w'Aw - b'w, grad = Aw - b; the paper's update in float64.
    a = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.5]])
    b = np.array([1.0, -2.0, 0.5])
    w0 = np.array([0.3, -0.7, 1.2])
    w = tf.Variable(w0, dtype=tf.float32)
    optimizer = schedule_free.ScheduleFreeSGD(rates[0], beta=beta, warmup_steps=warmup)
    a32, b32 = tf.constant(a, tf.float32), tf.constant(b, tf.float32)
    z, x, y, weight_sum = w0.copy(), w0.copy(), w0.copy(), 0.0
    for t, lr in enumerate(rates, start=1):
      optimizer.learning_rate.assign(lr)
      with tf.GradientTape() as tape:
        loss = 0.5 * tf.tensordot(w, tf.linalg.matvec(a32, w), 1) - tf.tensordot(
          b32, w, 1
        )
      optimizer.apply_gradients([(tape.gradient(loss, w), w)])
      gamma = lr * min(1.0, t / warmup) if warmup else lr
      z = z - gamma * (a @ y - b)
      weight_sum += gamma**2
      c = gamma**2 / weight_sum
      x = (1 - c) * x + c * z
      y = (1 - beta) * z + beta * x
      self.assertAllClose(w.numpy(), y, rtol=1e-5, atol=1e-7)
    self.assertAllClose(optimizer.weight_sum, weight_sum, rtol=1e-6)
    self.assertFalse(optimizer.is_at_x)
    for _ in range(2):  # Swaps are idempotent.
      optimizer.swap_to_x([w])
      self.assertTrue(optimizer.is_at_x)
      self.assertAllClose(w.numpy(), x, rtol=1e-5, atol=1e-7)
    before = w.numpy()
    optimizer.swap_to_y([w])
    optimizer.swap_to_y([w])
    self.assertAllClose(w.numpy(), y, rtol=1e-5, atol=1e-7)
    optimizer.swap_to_x([w])
    self.assertAllEqual(w.numpy(), before)

  def test_swaps_before_the_first_step_keep_the_weights(self):
    w = tf.Variable([1.0, 2.0])
    optimizer = schedule_free.ScheduleFreeSGD(0.1)
    optimizer.build([w])
    optimizer.swap_to_x([w])
    self.assertAllEqual(w.numpy(), [1.0, 2.0])
    optimizer.swap_to_y([w])
    self.assertAllEqual(w.numpy(), [1.0, 2.0])

  def test_training_at_x_fails(self):
    w = tf.Variable([1.0, 2.0])
    optimizer = schedule_free.ScheduleFreeSGD(0.1)
    optimizer.apply_gradients([(tf.constant([1.0, 1.0]), w)])
    optimizer.swap_to_x([w])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "swap_to_y"):
      optimizer.apply_gradients([(tf.constant([1.0, 1.0]), w)])

  def test_config_round_trip(self):
    optimizer = schedule_free.ScheduleFreeSGD(0.3, beta=0.8, warmup_steps=7)
    config = tf.keras.optimizers.serialize(optimizer)
    again = tf.keras.optimizers.deserialize(config)
    self.assertIsInstance(again, schedule_free.ScheduleFreeSGD)
    self.assertAllClose(again.learning_rate.numpy(), 0.3)
    self.assertAllClose(again.beta, 0.8)
    self.assertEqual(again.warmup_steps, 7)

  @parameterized.named_parameters(
    dict(testcase_name="beta", kwargs=dict(beta=1.5)),
    dict(testcase_name="warmup", kwargs=dict(warmup_steps=-1)),
    dict(testcase_name="fractional_warmup", kwargs=dict(warmup_steps=2.5)),
    dict(testcase_name="rate", kwargs=dict(learning_rate=0.0)),
    dict(testcase_name="weight_decay", kwargs=dict(weight_decay=1e-4)),
    dict(testcase_name="ema", kwargs=dict(use_ema=True)),
  )
  def test_bad_arguments(self, kwargs):
    with self.assertRaises(UserError):
      schedule_free.ScheduleFreeSGD(**{"learning_rate": 0.1, **kwargs})


class ScheduleFreeTraineeTest(tf.test.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.base = testing.tiny_trainee(momentum=0.9)

  def test_validation_and_best_checkpoint_use_x(self):
    sf = schedule_free.ScheduleFreeTrainee.from_trainee(self.base, warmup_steps=2)
    sf.reset(0, 0.1)
    sf.train(10)
    y10 = sf.model.get_weights()
    with sf.weights_at_x():
      x10 = sf.model.get_weights()
    self.assertNotAllClose(x10[0], y10[0])
    reference = tf.keras.Model.from_config(sf.model.get_config())
    reference.set_weights(x10)
    result = sf.validate()
    expected = _mean_validation_loss(reference, sf.data)
    self.assertAllClose(result.loss, expected, rtol=1e-5)
    for actual, y in zip(sf.model.get_weights(), y10):  # Back at y.
      self.assertAllEqual(actual, y)
    sf.train(10)  # Not validated: step 10 stays the best checkpoint.
    self.assertTrue(sf.restore_best())
    self.assertEqual(sf.best_step, 10)
    for actual, x in zip(sf.model.get_weights(), x10):
      self.assertAllEqual(actual, x)
    self.assertAllClose(sf.evaluate("validation").loss, sf.best_val_loss, rtol=1e-6)
    sf.train(1)  # Training resumes from the checkpoint's y.
    self.assertEqual(sf.global_step, 21)
    self.assertFalse(sf.optimizer.is_at_x)

  def test_schedules_are_rejected(self):
    sf = schedule_free.schedule_free_trainee(self.base)
    with self.assertRaises(UserError):
      sf.reset(0, 0.1, schedule=lambda step: 0.1)

  def test_runs_are_deterministic_and_reuse_the_graph(self):
    first = schedule_free.run_schedule_free(
      self.base, 0.1, num_steps=20, eval_interval=10, seed=3
    )
    other = schedule_free.run_schedule_free(
      self.base, 0.03, num_steps=30, eval_interval=10, seed=4, beta=0.5
    )
    again = schedule_free.run_schedule_free(
      self.base, 0.1, num_steps=20, eval_interval=10, seed=3
    )
    self.assertEqual(set(first), testing.RUN_KEYS)
    self.assertFalse(first["diverged"])
    self.assertEqual([r["step"] for r in first["history"]], [10, 20])
    self.assertEqual(other["steps_done"], 30)
    self.assertIsNotNone(first["test_loss"])
    self.assertAllClose(
      first["best_val_loss"], min(r["val_loss"] for r in first["history"])
    )
    for key in ("test_loss", "test_accuracy", "best_step", "best_val_loss"):
      self.assertEqual(first[key], again[key])
    self.assertEqual(first["history"], again["history"])
    sf = schedule_free.schedule_free_trainee(self.base)
    self.assertIs(schedule_free.schedule_free_trainee(self.base), sf)
    self.assertEqual(sf._train_loop.experimental_get_tracing_count(), 1)
    self.assertEqual(self.base.global_step, 0)  # The base trainee is not trained.

  def test_a_huge_rate_diverges_without_a_crash(self):
    result = schedule_free.run_schedule_free(
      self.base, 1e6, num_steps=40, eval_interval=10, seed=0
    )
    self.assertTrue(result["diverged"])
    self.assertLess(result["steps_done"], 40)
    self.assertIsNone(result["history"][-1]["val_loss"])
    # The protocol validated the initial weights (x = y then): the only
    # checkpoint, tested once.
    self.assertEqual(result["best_step"], 0)
    sf = schedule_free.schedule_free_trainee(self.base)
    initial = tf.keras.Model.from_config(sf.model.get_config())
    initial.set_weights(trainee_lib.seeded_initial_weights(initial, 0))
    self.assertAllClose(
      result["test_loss"], _mean_validation_loss(initial, sf.data, "test"), rtol=1e-5
    )

  def test_bad_warmup_fraction(self):
    with self.assertRaises(UserError):
      schedule_free.run_schedule_free(self.base, 0.1, 10, warmup_fraction=2.0)


if __name__ == "__main__":
  tf.test.main()
