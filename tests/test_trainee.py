"""Tests of the chunked trainee run and the paper's protocol."""

import math

import gin
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import official_models
from lr_controller import features, testing
from lr_controller.errors import UserError
from lr_controller.trainee import data as data_lib
from lr_controller.trainee import protocol, schedules
from lr_controller.trainee import trainee as trainee_lib


def _tiny_model(seed=0, num_classes=10):
  tf.keras.utils.set_random_seed(seed)
  inputs = tf.keras.Input((8, 8, 1))
  x = tf.keras.layers.Flatten()(inputs)
  x = tf.keras.layers.Dense(16, activation="relu")(x)
  outputs = tf.keras.layers.Dense(num_classes, name="logits")(x)
  return tf.keras.Model(inputs, outputs)


def _seeded_data(batch_size=16):
  """Mock 8x8 digits through `load_data`: 64 examples a split, per-seed streams."""
  with tfds.testing.mock_data(num_examples=64):
    return data_lib.load_data(batch_size=batch_size, eval_batch_size=16)


def _sgd_replay(weights, batches, lr):
  """Weights after plain SGD steps on `batches` from `weights`, in eager TF."""
  model = _tiny_model()
  model.set_weights(weights)
  for images, labels in batches:
    with tf.GradientTape() as tape:
      logits = model(images, training=True)
      loss = tf.reduce_mean(
        tf.keras.losses.sparse_categorical_crossentropy(labels, logits, True)
      )
    grads = tape.gradient(loss, model.trainable_variables)
    for v, g in zip(model.trainable_variables, grads):
      v.assign_sub(lr * g)
  return model.get_weights()


def _trainee(lr=0.05, momentum=0.0, schedule=None, data=None, seed=0, **kwargs):
  data = data or testing.tiny_data()
  optimizer = trainee_lib.make_optimizer("sgd", learning_rate=lr, momentum=momentum)
  return trainee_lib.Trainee(
    _tiny_model(seed), optimizer, data, schedule=schedule, **kwargs
  )


class TraineeTest(tf.test.TestCase):
  def test_train_advances_steps_and_lowers_loss(self):
    trainee = _trainee(lr=0.1)
    first = trainee.evaluate().loss
    losses = [trainee.train(10) for _ in range(5)]
    self.assertEqual(trainee.global_step, 50)
    self.assertTrue(all(math.isfinite(x) for x in losses))
    self.assertLess(trainee.evaluate().loss, first)
    self.assertFalse(trainee.diverged)

  def test_set_learning_rate_is_the_rate_of_the_next_sgd_step(self):
    data = testing.tiny_data(repeat_one_batch=True, batch_size=8)
    trainee = _trainee(lr=0.01, data=data)
    images, labels = next(iter(data.train))
    for lr in (0.3, 0.6):
      trainee.set_learning_rate(lr)
      self.assertAllClose(trainee.learning_rate, lr)
      before = [v.numpy() for v in trainee.model.trainable_variables]
      with tf.GradientTape() as tape:
        logits = trainee.model(images, training=True)
        loss = tf.reduce_mean(
          tf.keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
          )
        )
      grads = tape.gradient(loss, trainee.model.trainable_variables)
      trainee.train(1)
      for b, g, v in zip(before, grads, trainee.model.trainable_variables):
        self.assertAllClose(v.numpy(), b - lr * g.numpy(), atol=1e-6)

  def test_schedule_sets_each_steps_rate_without_retracing(self):
    sched = schedules.make_schedule(
      "step_decay",
      initial_learning_rate=0.1,
      total_steps=40,
      discount_step=10,
      factor=0.5,
    )
    trainee = _trainee(schedule=sched)
    trainee.train(10)
    self.assertAllClose(trainee.learning_rate, 0.1)  # rate of step 9
    trainee.train(10)
    self.assertAllClose(trainee.learning_rate, 0.05)  # rate of step 19
    trainee.train(5)
    self.assertAllClose(trainee.learning_rate, 0.025)  # rate of step 24
    other = schedules.make_schedule("cosine", initial_learning_rate=0.2, total_steps=40)
    trainee.reset(1, 0.2, schedule=other)
    trainee.train(10)
    self.assertAllClose(trainee.learning_rate, float(other(9)), rtol=1e-5)
    trainee.reset(2, 0.07)
    trainee.train(3)
    self.assertAllClose(trainee.learning_rate, 0.07)
    self.assertEqual(trainee._train_loop.experimental_get_tracing_count(), 1)

  def test_run_of_a_seed_does_not_depend_on_what_ran_before(self):
    data = _seeded_data()
    fresh = _trainee(data=data, seed=0)
    used = _trainee(data=data, seed=1)
    used.reset(5, 0.3)  # Another episode first: it reads 13 batches.
    used.train(6)
    used.validate()
    used.train(7)
    runs = []
    for trainee in (fresh, used):
      trainee.reset(seed=2, learning_rate=0.05)
      initial = trainee.model.get_weights()
      losses = [trainee.train(3), trainee.train(5)]
      runs.append((losses, trainee.model.get_weights()))
    self.assertEqual(runs[0][0], runs[1][0])
    for a, b in zip(runs[0][1], runs[1][1]):
      np.testing.assert_array_equal(a, b)
    # Independently: SGD on the first 8 batches of the seed's own stream.
    expected = _sgd_replay(initial, data.train_stream(2).take(8), lr=0.05)
    for a, b in zip(runs[0][1], expected):
      self.assertAllClose(a, b, atol=1e-6)

  def test_build_trainee_of_a_seed_is_the_run_reset_starts(self):
    data = _seeded_data()
    built = trainee_lib.build_trainee(seed=4, data=data, initial_learning_rate=0.05)
    other = trainee_lib.build_trainee(seed=0, data=data, initial_learning_rate=0.05)
    other.train(3)
    other.reset(seed=4, learning_rate=0.05)
    for trainee in (built, other):
      trainee.train(4)
    for a, b in zip(built.model.get_weights(), other.model.get_weights()):
      np.testing.assert_array_equal(a, b)

  def test_seeds_give_different_batch_orders(self):
    data = _seeded_data()
    trainee = _trainee(data=data)
    start = trainee.model.get_weights()
    weights = []
    for seed in (1, 2, 1):
      trainee.reset(seed=seed, learning_rate=0.05)
      trainee.model.set_weights(start)  # Same weights: only the batches differ.
      trainee.train(2)
      weights.append(trainee.model.get_weights())
    self.assertNotAllClose(weights[0][0], weights[1][0])
    for a, b in zip(weights[0], weights[2]):
      np.testing.assert_array_equal(a, b)

  def test_one_trace_across_resets_with_different_seeds(self):
    trainee = _trainee(data=_seeded_data())
    for seed in (3, 1, 4, 1, 5):
      trainee.reset(seed=seed, learning_rate=0.05)
      trainee.train(seed)
      trainee.validate(keep_probabilities=True)
    self.assertEqual(trainee._train_loop.experimental_get_tracing_count(), 1)
    self.assertEqual(trainee._eval_pass.experimental_get_tracing_count(), 1)

  def test_divergence_is_reported_not_raised(self):
    trainee = _trainee(lr=1e6)
    result = trainee_lib.run_training(trainee, num_steps=100, eval_interval=10)
    self.assertTrue(result["diverged"])
    self.assertLess(result["steps_done"], 100)
    last = result["history"][-1]
    self.assertIsNone(last["val_loss"])
    for row in result["history"]:
      for value in row.values():
        self.assertFalse(isinstance(value, float) and not math.isfinite(value))

  def test_divergence_bound_on_a_finite_loss(self):
    trainee = _trainee(lr=0.01, rule=protocol.DivergenceRule(max_train_loss=1e-9))
    trainee.train(1)
    self.assertTrue(trainee.diverged)
    with self.assertRaises(RuntimeError):
      trainee.train(1)

  def test_best_checkpoint_is_tested(self):
    trainee = _trainee(lr=0.1)
    result = trainee_lib.run_training(trainee, num_steps=60, eval_interval=10)
    val_losses = [r["val_loss"] for r in result["history"]]
    best = int(np.argmin(val_losses))
    self.assertEqual(result["best_step"], result["history"][best]["step"])
    self.assertAllClose(result["best_val_loss"], val_losses[best])
    # The restored weights are the best ones: validating them again gives the best loss.
    self.assertAllClose(
      trainee.evaluate("validation").loss, val_losses[best], rtol=1e-5
    )
    self.assertAllClose(trainee.evaluate("test").loss, result["test_loss"], rtol=1e-5)
    self.assertEqual(len(result["history"]), 6)
    self.assertEqual([r["step"] for r in result["history"]], [10, 20, 30, 40, 50, 60])

  def test_evaluate_matches_keras(self):
    trainee = _trainee()
    trainee.train(5)
    result = trainee.evaluate("validation", keep_probabilities=True)
    images = np.concatenate([x for x, _ in trainee.data.validation.as_numpy_iterator()])
    labels = np.concatenate([y for _, y in trainee.data.validation.as_numpy_iterator()])
    logits = trainee.model(images, training=False).numpy()
    probs = tf.nn.softmax(logits).numpy()
    loss = tf.keras.losses.sparse_categorical_crossentropy(
      labels, logits, from_logits=True
    )
    self.assertAllClose(result.loss, float(np.mean(loss)), rtol=1e-5)
    self.assertAllClose(
      result.accuracy, float(np.mean(np.argmax(logits, -1) == labels))
    )
    self.assertAllClose(result.probabilities, probs, atol=1e-6)
    self.assertEqual(result.probabilities.shape, (32, 10))

  def test_reset_gives_the_initial_weights_of_the_seed(self):
    trainee = _trainee(seed=3)
    trainee.train(10)
    # Reseeding TensorFlow's global generator would restart this traced op's
    # stream (and so the controller's exploration noise) at every reset.
    draw = tf.function(lambda: tf.random.normal([4]))
    before = draw()
    trainee.reset(seed=3, learning_rate=0.02)
    self.assertNotAllClose(draw(), before)
    expected = trainee_lib.seeded_initial_weights(_tiny_model(seed=11), 3)
    for a, b in zip(trainee.model.get_weights(), expected):
      self.assertAllClose(a, b)
    other = trainee_lib.seeded_initial_weights(trainee.model, 4)
    self.assertNotAllClose(other[0], expected[0])
    self.assertEqual(trainee.global_step, 0)
    self.assertAllClose(trainee.learning_rate, 0.02)
    for v in trainee.optimizer.variables:
      self.assertAllClose(v.numpy(), np.zeros_like(v.numpy()))

  def test_final_dense_found_by_name_or_position(self):
    model = _tiny_model()
    self.assertEqual(features.find_final_dense(model).name, "logits")
    self.assertEqual(features.find_final_dense(model, "logits").name, "logits")
    with self.assertRaises(UserError):
      features.find_final_dense(model, "nope")

  def test_bad_learning_rates(self):
    for bad in (0.0, -0.1, float("nan"), "x"):
      with self.assertRaises(UserError):
        trainee_lib.make_optimizer("sgd", learning_rate=bad)
    with self.assertRaises(UserError):
      trainee_lib.make_optimizer("lion", learning_rate=0.1)

  def test_build_trainee_with_official_lenet(self):
    gin.clear_config()
    data = testing.tiny_data()
    trainee = trainee_lib.build_trainee(seed=0, data=data)  # The default.
    self.assertEqual(trainee.final_layer.name, official_models.FINAL_LAYER_NAME)
    self.assertTrue(math.isfinite(trainee.train(2)))
    lenet = official_models.build_model("lenet", data.input_shape, data.num_classes)
    self.assertEqual(trainee.model.count_params(), lenet.count_params())

  def test_build_trainee_builds_the_model_gin_names(self):
    data = testing.tiny_data()
    gin.parse_config(["build_model.name = 'mlp'", "mlp.hidden_units = [7]"])
    try:
      trainee = trainee_lib.build_trainee(seed=0, data=data)
    finally:
      gin.clear_config()
    # 8x8x1 -> 7 -> 10, as the binding says.
    self.assertEqual(trainee.model.count_params(), 64 * 7 + 7 + 7 * 10 + 10)


if __name__ == "__main__":
  tf.test.main()
