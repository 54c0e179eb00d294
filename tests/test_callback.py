"""Tests of the Keras callback that applies an exported controller in `fit`."""

import json
import math
import os
import shutil
import tempfile

import gin
import numpy as np
import tensorflow as tf

import lr_controller
from lr_controller import callback as callback_lib
from lr_controller import controller as controller_lib
from lr_controller import gin_utils
from lr_controller.control import controller_training
from lr_controller.errors import UserError
from lr_controller.trainee import protocol

_INTERVAL = 5
_BATCH = 16
_STEPS_PER_EPOCH = 7  # 112 examples / 16: decisions do not align with epochs.
_EPOCHS = 4
_NUM_BATCHES = _STEPS_PER_EPOCH * _EPOCHS
_VAL_CAP = 40


def _data(seed=0, num_train=_BATCH * _STEPS_PER_EPOCH, num_val=100):
  """Class templates plus noise: x float32 [N, 8, 8], y int32 [N]."""
  rng = np.random.default_rng(seed)
  templates = rng.uniform(0, 1, size=(10, 8, 8)).astype(np.float32)

  def make(n):
    y = rng.integers(0, 10, size=n).astype(np.int32)
    x = templates[y] + rng.normal(0, 0.3, size=(n, 8, 8)).astype(np.float32)
    return x, y

  return make(num_train), make(num_val)


def _layers(softmax=False):
  return [
    tf.keras.layers.Flatten(),
    tf.keras.layers.Dense(16, activation="relu"),
    tf.keras.layers.Dense(10, activation="softmax" if softmax else None, name="scores"),
  ]


class _LossRecordingModel(tf.keras.Sequential):
  """Flatten-Dense(16)-Dense(10) logits that also keeps each batch's training loss."""

  def __init__(self):
    super().__init__(_layers())
    self.batch_loss = tf.Variable(0.0, trainable=False)

  def train_step(self, data):
    x, y = data
    with tf.GradientTape() as tape:
      y_pred = self(x, training=True)
      loss = self.compute_loss(x, y, y_pred)
    self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
    self.batch_loss.assign(loss)
    return self.compute_metrics(x, y, y_pred, None)


class _Recorder(tf.keras.callbacks.Callback):
  """Records the learning rate each batch trains with, and state after each batch.

  Placed after the scheduler, it sees the rate the scheduler set.
  """

  def __init__(self, probe=None):
    super().__init__()
    self.probe = probe
    self.lrs, self.batch_losses, self.outputs = [], [], []

  def on_train_begin(self, logs=None):
    if self.probe is not None:
      self.outputs.append(self.model(self.probe, training=False).numpy())

  def on_train_batch_begin(self, batch, logs=None):
    self.lrs.append(
      float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))
    )

  def on_train_batch_end(self, batch, logs=None):
    if hasattr(self.model, "batch_loss"):
      self.batch_losses.append(float(self.model.batch_loss.numpy()))
    if self.probe is not None:
      self.outputs.append(self.model(self.probe, training=False).numpy())


class _FakePolicy(tf.Module):
  """Our export format with a constant action and a chosen observation size."""

  def __init__(self, metadata: dict, observation_size: int, action: float = 0.0):
    super().__init__()
    self._metadata_json = json.dumps(metadata)
    self._value = action
    self.action = tf.function(
      self._action,
      input_signature=[
        tf.TensorSpec([None, observation_size], tf.float32),
        tf.TensorSpec([None], tf.int32),
        [],
      ],
    )
    self.get_initial_state = tf.function(
      lambda batch_size: [], input_signature=[tf.TensorSpec([], tf.int32)]
    )
    self.get_metadata = tf.function(
      lambda: tf.constant(self._metadata_json), input_signature=[]
    )

  def _action(self, observation, step_type, state):
    del step_type, state
    batch = tf.shape(observation)[0]
    return {
      "action": tf.fill([batch], tf.constant(self._value, tf.float32)),
      "state": [],
    }


class LearnedLRSchedulerTest(tf.test.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._tmp = tempfile.mkdtemp(prefix="test_callback_")
    cls._old_tfds = os.environ.get("TFDS_DATA_DIR")
    os.environ["TFDS_DATA_DIR"] = os.path.join(cls._tmp, "tfds")
    root = os.path.join(cls._tmp, "controller")
    os.makedirs(root)
    try:
      gin_utils.parse_gin(
        ["controller/digits.gin", "smoke.gin"],
        ["create_agent.num_epochs=2"],
        finalize=False,
      )
      controller_training.train_controller(
        root, seed=0, num_episodes=1, say=lambda s: None
      )
    finally:
      gin.clear_config()
    cls.root = root
    cls.policy_dir = os.path.join(root, "policies", "greedy_policy")
    cls.policy = tf.saved_model.load(cls.policy_dir)
    cls.metadata = json.loads(cls.policy.get_metadata().numpy())

  @classmethod
  def tearDownClass(cls):
    if cls._old_tfds is None:
      os.environ.pop("TFDS_DATA_DIR", None)
    else:
      os.environ["TFDS_DATA_DIR"] = cls._old_tfds
    shutil.rmtree(cls._tmp, ignore_errors=True)
    super().tearDownClass()

  def _index(self, name):
    return self.metadata["features"].index(name)

  def _fake_policy_dir(self, metadata=None, observation_size=None, action=0.0):
    metadata = dict(self.metadata if metadata is None else metadata)
    size = len(metadata["features"]) if observation_size is None else observation_size
    path = self.create_tempdir().full_path
    tf.saved_model.save(_FakePolicy(metadata, size, action), path)
    return path

  def _replay(self, scheduler):
    """The exported policy's actions on the scheduler's observations."""
    state = self.policy.get_initial_state(tf.constant(1))
    actions = []
    for observation, step_type in zip(scheduler.observations, scheduler.step_types):
      out = self.policy.action(
        tf.constant(observation[None]), tf.constant([step_type], tf.int32), state
      )
      state = out["state"]
      actions.append(float(out["action"][0]))
    return actions

  def _check_schedule(self, scheduler, recorder, lr0, first_decision):
    """The rate changes only at decisions, by the clipped factor of the policy."""
    lr0 = float(np.float32(lr0))  # The optimizer holds it as float32.
    bound = self.metadata["max_log_factor"]
    low, high = self.metadata["min_learning_rate"], self.metadata["max_learning_rate"]
    steps = [row["step"] for row in scheduler.history]
    self.assertEqual(steps, list(range(first_decision, _NUM_BATCHES + 1, _INTERVAL)))
    self.assertEqual(scheduler.step_types, [0] + [1] * (len(steps) - 1))
    # Each batch trains at the rate of the last decision before it.
    self.assertLen(recorder.lrs, _NUM_BATCHES)
    for batch, lr in enumerate(recorder.lrs):
      decided = [row for row in scheduler.history if row["step"] <= batch]
      self.assertEqual(lr, decided[-1]["lr"] if decided else lr0, f"batch {batch}")
    # ... so it is constant within a chunk and changes at decisions.
    for batch in range(1, _NUM_BATCHES):
      if batch % _INTERVAL:
        self.assertEqual(recorder.lrs[batch], recorder.lrs[batch - 1])
    # The applied action is the policy's, clipped, on the callback's observation.
    replayed = self._replay(scheduler)
    actions = [row["action"] for row in scheduler.history]
    self.assertAllClose(actions, np.clip(replayed, -bound, bound), atol=1e-6)
    previous = lr0
    for row in scheduler.history:
      expected = min(max(previous * math.exp(row["action"]), low), high)
      self.assertAllClose(row["lr"], expected, rtol=1e-6)
      previous = row["lr"]
    # The observation's log rate is the rate of the chunk before the decision.
    log_lrs = [obs[self._index("log_learning_rate")] for obs in scheduler.observations]
    self.assertAllClose(
      log_lrs, np.log([lr0] + [row["lr"] for row in scheduler.history[:-1]]), atol=1e-5
    )

  def test_sgd_with_validation_data(self):
    (x, y), (xv, yv) = _data()
    tf.keras.utils.set_random_seed(0)
    model = _LossRecordingModel()
    lr0 = 0.05
    model.compile(
      tf.keras.optimizers.SGD(lr0),
      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.build((None, 8, 8))
    initial_logits = model(xv[:_VAL_CAP]).numpy()
    initial_kernel = model.get_layer("scores").kernel.numpy()
    log_path = os.path.join(self.create_tempdir().full_path, "lr.csv")
    scheduler = lr_controller.LearnedLRScheduler(
      self.policy_dir,
      action_interval=_INTERVAL,
      validation_data=(xv, yv),
      validation_examples=_VAL_CAP,
      lr_log_path=log_path,
    )
    recorder = _Recorder(probe=xv[:_VAL_CAP])
    history = model.fit(
      x,
      y,
      batch_size=_BATCH,
      epochs=_EPOCHS,
      callbacks=[scheduler, recorder],
      verbose=0,
    )
    self._check_schedule(scheduler, recorder, lr0, first_decision=0)

    # The first observation is the environment's reset observation.
    first = scheduler.observations[0]
    val0 = float(
      tf.reduce_mean(
        tf.keras.losses.sparse_categorical_crossentropy(
          yv[:_VAL_CAP], initial_logits, from_logits=True
        )
      )
    )
    self.assertAllClose(first[self._index("val_loss")], val0, rtol=1e-5)
    self.assertAllClose(first[self._index("train_loss")], val0, rtol=1e-5)
    self.assertEqual(first[self._index("prediction_change_variance")], 0.0)
    self.assertAllClose(first[self._index("output_weight_mean")], initial_kernel.mean())
    self.assertAllClose(
      first[self._index("output_weight_variance")], initial_kernel.var()
    )
    p0 = tf.nn.softmax(initial_logits).numpy()
    self.assertAllClose(
      first[self._index("prediction_variance")], p0.var(axis=0).mean(), rtol=1e-4
    )
    # Later ones: the chunk's mean batch loss, and the model on the validation cap.
    for i, obs in enumerate(scheduler.observations[1:], start=1):
      end = i * _INTERVAL
      self.assertAllClose(
        obs[self._index("train_loss")],
        np.mean(recorder.batch_losses[end - _INTERVAL : end]),
        rtol=1e-4,
      )
      logits = recorder.outputs[end]
      val = tf.reduce_mean(
        tf.keras.losses.sparse_categorical_crossentropy(
          yv[:_VAL_CAP], logits, from_logits=True
        )
      )
      self.assertAllClose(obs[self._index("val_loss")], val, rtol=1e-5)
      p, p_prev = (
        tf.nn.softmax(recorder.outputs[k]).numpy() for k in (end, end - _INTERVAL)
      )
      self.assertAllClose(
        obs[self._index("prediction_change_variance")],
        (p - p_prev).var(axis=0).mean(),
        rtol=1e-3,
        atol=1e-9,
      )
      self.assertAllClose(scheduler.history[i]["val_loss"], val, rtol=1e-5)

    # logs["lr"] reaches History: the rate set at the end of each epoch.
    self.assertLen(history.history["lr"], _EPOCHS)
    for epoch, lr in enumerate(history.history["lr"][:-1]):
      self.assertEqual(lr, recorder.lrs[(epoch + 1) * _STEPS_PER_EPOCH])
    self.assertEqual(history.history["lr"][-1], scheduler.history[-1]["lr"])
    # The LR path file holds the history.
    rows = callback_lib.read_lr_log(log_path)
    self.assertEqual([r["step"] for r in rows], [r["step"] for r in scheduler.history])
    self.assertAllClose(
      [[r[k] for k in callback_lib.LOG_FIELDS] for r in rows],
      [[r[k] for k in callback_lib.LOG_FIELDS] for r in scheduler.history],
    )

  def test_adam_softmax_outputs_and_one_hot_labels(self):
    (x, y), (xv, yv) = _data(seed=1)
    tf.keras.utils.set_random_seed(1)
    model = tf.keras.Sequential(_layers(softmax=True))
    lr0 = 1e-3
    model.compile(tf.keras.optimizers.Adam(lr0), "categorical_crossentropy")
    model.build((None, 8, 8))
    y_one_hot, yv_one_hot = (tf.one_hot(t, 10).numpy() for t in (y, yv))
    initial = model(xv[:_VAL_CAP]).numpy()
    log_path = os.path.join(self.create_tempdir().full_path, "lr.jsonl")
    scheduler = lr_controller.LearnedLRScheduler(
      self.policy_dir,
      action_interval=_INTERVAL,
      validation_data=tf.data.Dataset.from_tensor_slices((xv, yv_one_hot)).batch(16),
      validation_examples=_VAL_CAP,
      lr_log_path=log_path,
    )
    recorder = _Recorder()
    history = model.fit(
      x,
      y_one_hot,
      batch_size=_BATCH,
      epochs=_EPOCHS,
      callbacks=[scheduler, recorder],
      verbose=0,
    )
    self._check_schedule(scheduler, recorder, lr0, first_decision=0)
    # Softmax outputs are used as probabilities (no second softmax).
    val0 = tf.reduce_mean(
      tf.keras.losses.categorical_crossentropy(yv_one_hot[:_VAL_CAP], initial)
    )
    first = scheduler.observations[0]
    self.assertAllClose(first[self._index("val_loss")], val0, rtol=1e-5)
    self.assertAllClose(
      first[self._index("prediction_variance")], initial.var(axis=0).mean(), rtol=1e-4
    )
    self.assertIn("lr", history.history)
    self.assertEqual(callback_lib.read_lr_log(log_path), scheduler.history)

  def test_probe_data_without_validation_data(self):
    (x, y), _ = _data(seed=2)
    tf.keras.utils.set_random_seed(2)
    model = tf.keras.Sequential(_layers())
    lr0 = 0.02
    model.compile(
      tf.keras.optimizers.SGD(lr0, momentum=0.9),
      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    probe = x[:32]
    scheduler = lr_controller.LearnedLRScheduler(
      self.policy_dir, action_interval=_INTERVAL, probe_data=(probe, y[:32])
    )
    recorder = _Recorder(probe=probe)
    model.fit(
      x,
      y,
      batch_size=_BATCH,
      epochs=_EPOCHS,
      callbacks=[scheduler, recorder],
      verbose=0,
    )
    # No loss exists before the first step: the first decision ends the first chunk.
    self._check_schedule(scheduler, recorder, lr0, first_decision=_INTERVAL)
    for i, obs in enumerate(scheduler.observations):
      self.assertEqual(obs[self._index("val_loss")], obs[self._index("train_loss")])
      end = (i + 1) * _INTERVAL
      p, p_prev = (
        tf.nn.softmax(recorder.outputs[k]).numpy() for k in (end, end - _INTERVAL)
      )
      self.assertAllClose(
        obs[self._index("prediction_variance")], p.var(axis=0).mean(), rtol=1e-4
      )
      self.assertAllClose(
        obs[self._index("prediction_change_variance")],
        (p - p_prev).var(axis=0).mean(),
        rtol=1e-3,
        atol=1e-9,
      )

  def _fit_at(self, lr, scheduler, validation=None):
    """Fits a fresh logits model with SGD(lr); returns (model, initial weights, recorder)."""
    (x, y), _ = _data()
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(_layers())
    model.compile(
      tf.keras.optimizers.SGD(lr),
      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.build((None, 8, 8))
    initial = model.get_weights()
    recorder = _Recorder()
    model.fit(
      x,
      y,
      batch_size=_BATCH,
      epochs=_EPOCHS,
      callbacks=[scheduler, recorder],
      verbose=0,
    )
    return model, initial, recorder

  def test_a_huge_rate_diverges_stops_fit_and_restores_the_initial_weights(self):
    # The scripted condition every method of the protocol meets
    # (test_protocol.py): at 1e6 the first chunk diverges, and the one
    # checkpoint is the initial weights, validated at on_train_begin.
    _, (xv, yv) = _data()
    policy_dir = self._fake_policy_dir(
      metadata={**self.metadata, "max_learning_rate": 1e7}
    )
    scheduler = lr_controller.LearnedLRScheduler(
      policy_dir,
      action_interval=_INTERVAL,
      validation_data=(xv, yv),
      validation_examples=_VAL_CAP,
      restore_best_weights=True,
    )
    model, initial, recorder = self._fit_at(1e6, scheduler)
    self.assertTrue(scheduler.diverged)
    self.assertLen(recorder.lrs, _INTERVAL)  # Stopped after the first chunk.
    self.assertEqual([row["step"] for row in scheduler.history], [0, _INTERVAL])
    self.assertIsNone(scheduler.history[-1]["action"])  # No policy call.
    self.assertLen(scheduler.observations, 1)
    self.assertEqual(scheduler.best_step, 0)
    for restored, weights in zip(model.get_weights(), initial):
      self.assertAllEqual(restored, weights)
    # Without restore_best_weights the last (diverged) weights stay.
    keep_last = lr_controller.LearnedLRScheduler(
      policy_dir,
      action_interval=_INTERVAL,
      validation_data=(xv, yv),
      validation_examples=_VAL_CAP,
    )
    model, initial, recorder = self._fit_at(1e6, keep_last)
    self.assertTrue(keep_last.diverged)
    self.assertLen(recorder.lrs, _INTERVAL)
    self.assertNotAllClose(model.get_weights()[0], initial[0])

  def test_a_validation_loss_above_the_ratio_stops_fit(self):
    # Validating on shifted labels: the better the model learns y, the worse
    # its validation loss, which crosses 1.05 x its first value while the
    # training loss stays finite and small.
    _, (xv, yv) = _data()
    ratio = 1.05
    scheduler = lr_controller.LearnedLRScheduler(
      self._fake_policy_dir(),
      action_interval=_INTERVAL,
      validation_data=(xv, (yv + 1) % 10),
      validation_examples=_VAL_CAP,
      max_val_loss_ratio=ratio,
      restore_best_weights=True,
    )
    model, _, recorder = self._fit_at(0.5, scheduler)
    self.assertTrue(scheduler.diverged)
    val_losses = [row["val_loss"] for row in scheduler.history]
    first, last = val_losses[0], val_losses[-1]
    # The rule, recomputed: only the last decision is above the ratio, and
    # training stopped there.
    self.assertGreater(last, ratio * first)
    self.assertTrue(all(v <= ratio * first for v in val_losses[:-1]))
    self.assertLen(recorder.lrs, scheduler.history[-1]["step"])
    self.assertLess(len(recorder.lrs), _NUM_BATCHES)
    # The restored weights are the best decision's: validating them again
    # gives the lowest loss before divergence.
    best = int(np.argmin(val_losses[:-1]))
    self.assertEqual(scheduler.best_step, scheduler.history[best]["step"])
    restored = float(
      tf.reduce_mean(
        tf.keras.losses.sparse_categorical_crossentropy(
          (yv[:_VAL_CAP] + 1) % 10, model(xv[:_VAL_CAP]), from_logits=True
        )
      )
    )
    self.assertAllClose(restored, val_losses[best], rtol=1e-5)

  def test_divergence_arguments(self):
    _, (xv, yv) = _data()
    scheduler = lr_controller.LearnedLRScheduler(
      self.policy_dir, validation_data=(xv, yv)
    )
    self.assertEqual(scheduler.rule, protocol.DivergenceRule())  # The library's.
    with self.assertRaisesRegex(UserError, "max_val_loss_ratio"):
      lr_controller.LearnedLRScheduler(
        self.policy_dir, validation_data=(xv, yv), max_val_loss_ratio=0.5
      )
    with self.assertRaisesRegex(UserError, "max_train_loss"):
      lr_controller.LearnedLRScheduler(
        self.policy_dir, validation_data=(xv, yv), max_train_loss=-1.0
      )
    with self.assertRaisesRegex(UserError, "restore_best_weights.*validation_data"):
      lr_controller.LearnedLRScheduler(
        self.policy_dir, probe_data=xv, restore_best_weights=True
      )

  def test_verbose_is_checked(self):
    _, (xv, yv) = _data()
    for verbose, expected in ((True, 1), (False, 0), (1, 1), (0.0, 0)):
      scheduler = lr_controller.LearnedLRScheduler(
        self.policy_dir, validation_data=(xv, yv), verbose=verbose
      )
      self.assertEqual(scheduler.verbose, expected)
    for bad in (-1, 0.5, "yes", None):
      with self.assertRaisesRegex(UserError, r"^verbose must be an integer >= 0"):
        lr_controller.LearnedLRScheduler(
          self.policy_dir, validation_data=(xv, yv), verbose=bad
        )

  def test_no_data_is_an_error_for_probability_features(self):
    with self.assertRaisesRegex(UserError, "validation_data.*probe_data"):
      lr_controller.LearnedLRScheduler(self.policy_dir)

  def test_root_directory_and_policy_interval(self):
    # A controller run's root directory works; the interval defaults to the policy's.
    scheduler = lr_controller.LearnedLRScheduler(
      self.root, probe_data=np.zeros((2, 8, 8), np.float32)
    )
    self.assertEqual(scheduler.policy.path, self.policy_dir)
    self.assertEqual(scheduler.action_interval, self.metadata["action_interval"])

  def test_fake_policy_actions_are_clipped_and_nonfinite_kept(self):
    (x, y), (xv, yv) = _data(seed=4)
    bound = self.metadata["max_log_factor"]
    model = tf.keras.Sequential(_layers())
    model.compile(  # A legacy optimizer works too.
      tf.keras.optimizers.legacy.SGD(0.01),
      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    cases = ((5.0, math.exp(bound)), (-5.0, math.exp(-bound)), (math.nan, 1.0))
    for action, factor in cases:
      model.optimizer.learning_rate.assign(0.01)
      scheduler = lr_controller.LearnedLRScheduler(
        self._fake_policy_dir(action=action),
        action_interval=2,
        validation_data=(xv, yv),
      )
      model.fit(x, y, batch_size=_BATCH, epochs=1, callbacks=[scheduler], verbose=0)
      # Decisions at steps 0, 2, 4, 6: factors beyond the bound are clipped, and
      # the rate to [min_learning_rate, max_learning_rate].
      lrs = [0.01] + [row["lr"] for row in scheduler.history]
      expected = [
        min(max(0.01 * factor**k, self.metadata["min_learning_rate"]), 1.0)
        for k in range(len(lrs))
      ]
      self.assertLen(lrs, 5)
      self.assertAllClose(lrs, expected, rtol=1e-5)
      self.assertEqual(scheduler.nonfinite_actions, 4 if math.isnan(action) else 0)

  def test_relative_rate_feature_is_over_the_rate_fit_began_with(self):
    (x, y), (xv, yv) = _data(seed=6)
    metadata = dict(
      self.metadata, features=["log_learning_rate", "log_learning_rate_change"]
    )
    model = tf.keras.Sequential(_layers())
    model.compile(
      tf.keras.optimizers.Adam(0.001),
      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    scheduler = lr_controller.LearnedLRScheduler(
      self._fake_policy_dir(metadata, action=0.25),
      action_interval=2,
      validation_data=(xv, yv),
    )
    model.fit(x, y, batch_size=_BATCH, epochs=1, callbacks=[scheduler], verbose=0)
    # Decisions at steps 0, 2, 4, 6, each observing the rate of the chunk
    # before it: 0.001 x e^(0.25 k).
    observations = np.array(scheduler.observations)
    self.assertLen(observations, 4)
    k = np.arange(4)
    self.assertAllClose(observations[:, 1], 0.25 * k, atol=1e-5)
    self.assertAllClose(observations[:, 0], np.log(0.001) + 0.25 * k, atol=1e-5)

  def test_stall_features_follow_the_validation_loss_fit_sees(self):
    (x, y), (xv, yv) = _data(seed=7)
    metadata = dict(
      self.metadata,
      features=["val_loss", "log_val_loss_over_best", "decisions_since_best"],
    )
    model = tf.keras.Sequential(_layers())
    model.compile(
      tf.keras.optimizers.SGD(0.5),  # Large: the validation loss goes up and down.
      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    scheduler = lr_controller.LearnedLRScheduler(
      self._fake_policy_dir(metadata), action_interval=1, validation_data=(xv, yv)
    )
    model.fit(x, y, batch_size=_BATCH, epochs=2, callbacks=[scheduler], verbose=0)
    observations = np.array(scheduler.observations)
    val = observations[:, 0].astype(np.float64)
    best = np.minimum.accumulate(val)
    since = [0]
    for k in range(1, len(val)):
      since.append(0 if val[k] < best[k - 1] else since[-1] + 1)
    self.assertGreater(max(since), 0, val)  # The fixture stalls at least once.
    self.assertAllClose(observations[:, 1], np.log(val / best), atol=1e-5)
    self.assertAllEqual(observations[:, 2], since)
    # A new fit starts a new run.
    model.fit(x, y, batch_size=_BATCH, epochs=1, callbacks=[scheduler], verbose=0)
    self.assertEqual(scheduler.observations[0][1:].tolist(), [0.0, 0.0])

  def test_budget_left(self):
    (x, y), _ = _data(seed=5)
    metadata = dict(self.metadata, features=["train_loss", "budget_left"])
    policy_dir = self._fake_policy_dir(metadata)

    model = tf.keras.Sequential(_layers())
    model.compile(
      tf.keras.optimizers.SGD(0.01),
      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )

    def fit(scheduler, data, **kwargs):
      model.fit(data, callbacks=[scheduler], verbose=0, **kwargs)

    # No probability features: runs without any data; total = epochs * steps.
    scheduler = lr_controller.LearnedLRScheduler(policy_dir, action_interval=_INTERVAL)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(_BATCH)
    fit(scheduler, batches, epochs=2)
    total = 2 * _STEPS_PER_EPOCH
    self.assertAllClose(
      [obs[1] for obs in scheduler.observations],
      [1 - s / total for s in range(_INTERVAL, total + 1, _INTERVAL)],
    )
    # Unknown steps per epoch: a clear error before training.
    unknown = batches.filter(lambda a, b: True)
    scheduler = lr_controller.LearnedLRScheduler(policy_dir)
    with self.assertRaisesRegex(UserError, "budget_left.*total_steps"):
      fit(scheduler, unknown, epochs=1)
    scheduler = lr_controller.LearnedLRScheduler(
      policy_dir, action_interval=_INTERVAL, total_steps=20
    )
    fit(scheduler, unknown, epochs=1)
    self.assertAllClose(scheduler.observations[0][1], 1 - _INTERVAL / 20)

  def test_adaptive_optimizer_is_read_from_the_compiled_optimizer(self):
    (x, y), _ = _data(seed=8)
    metadata = dict(self.metadata, features=["train_loss", "adaptive_optimizer"])
    policy_dir = self._fake_policy_dir(metadata)

    class PlainStep(tf.keras.optimizers.Optimizer):
      """A custom optimizer (no known base): w <- w - lr * g."""

      def __init__(self, learning_rate):
        super().__init__(name="plain_step")
        self._learning_rate = self._build_learning_rate(learning_rate)

      def update_step(self, gradient, variable):
        variable.assign_sub(tf.cast(self.learning_rate, variable.dtype) * gradient)

    def observed(optimizer, **kwargs):
      model = tf.keras.Sequential(_layers())
      model.compile(
        optimizer, tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
      )
      scheduler = lr_controller.LearnedLRScheduler(
        policy_dir, action_interval=_INTERVAL, **kwargs
      )
      model.fit(x, y, batch_size=_BATCH, epochs=1, callbacks=[scheduler], verbose=0)
      return sorted({float(obs[1]) for obs in scheduler.observations})

    self.assertEqual(observed(tf.keras.optimizers.Adam(1e-3)), [1.0])
    self.assertEqual(observed(tf.keras.optimizers.SGD(0.01)), [0.0])
    # Mixed precision's wrapper is judged by the optimizer it wraps.
    wrapped = tf.keras.mixed_precision.LossScaleOptimizer(tf.keras.optimizers.RMSprop())
    self.assertEqual(observed(wrapped), [1.0])
    # A custom optimizer: a one-line error before training, unless told.
    with self.assertRaisesRegex(
      UserError, "PlainStep.*adaptive_optimizer=True or False"
    ):
      observed(PlainStep(0.01))
    self.assertEqual(observed(PlainStep(0.01), adaptive_optimizer=False), [0.0])
    # The argument overrides the class.
    self.assertEqual(
      observed(tf.keras.optimizers.SGD(0.01), adaptive_optimizer=True), [1.0]
    )
    with self.assertRaisesRegex(UserError, "adaptive_optimizer"):
      lr_controller.LearnedLRScheduler(policy_dir, adaptive_optimizer=1)

  def test_schedule_learning_rate_fails_before_training(self):
    (x, y), (xv, yv) = _data(seed=6)
    model = tf.keras.Sequential(_layers())
    schedule = tf.keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    model.compile(
      tf.keras.optimizers.SGD(schedule),
      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.build((None, 8, 8))
    before = model.get_weights()
    scheduler = lr_controller.LearnedLRScheduler(
      self.policy_dir, validation_data=(xv, yv)
    )
    with self.assertRaisesRegex(UserError, "ExponentialDecay"):
      model.fit(x, y, batch_size=_BATCH, epochs=1, callbacks=[scheduler], verbose=0)
    for b, a in zip(before, model.get_weights()):
      self.assertAllEqual(b, a)
    self.assertEqual(int(model.optimizer.iterations.numpy()), 0)

  def test_bad_policy_directories(self):
    with self.assertRaisesRegex(UserError, "not found"):
      lr_controller.LearnedLRScheduler(
        "/nonexistent/policy", probe_data=np.zeros((1, 8, 8))
      )
    empty = self.create_tempdir().full_path
    with self.assertRaisesRegex(UserError, "not a controller policy"):
      lr_controller.LearnedLRScheduler(empty)
    plain = self.create_tempdir().full_path
    module = tf.Module()
    module.f = tf.function(lambda: tf.constant(1.0), input_signature=[])
    tf.saved_model.save(module, plain)
    with self.assertRaisesRegex(UserError, "not an lr_controller policy"):
      lr_controller.LearnedLRScheduler(plain)
    other = self._fake_policy_dir(dict(self.metadata, format="something/2"))
    with self.assertRaisesRegex(UserError, "format"):
      lr_controller.LearnedLRScheduler(other)
    missing = dict(self.metadata)
    del missing["max_log_factor"]
    with self.assertRaisesRegex(UserError, "max_log_factor"):
      lr_controller.LearnedLRScheduler(self._fake_policy_dir(missing))
    unknown = dict(self.metadata, features=["train_loss", "gradient_norm"])
    with self.assertRaisesRegex(UserError, "gradient_norm"):
      lr_controller.LearnedLRScheduler(self._fake_policy_dir(unknown))
    mismatch = self._fake_policy_dir(observation_size=3)
    with self.assertRaisesRegex(UserError, "3 entries.*8 features"):
      lr_controller.LearnedLRScheduler(mismatch, probe_data=np.zeros((1, 8, 8)))

  def test_exported_policies_carry_the_core_format(self):
    self.assertEqual(self.metadata["format"], controller_lib.POLICY_FORMAT)


if __name__ == "__main__":
  tf.test.main()
