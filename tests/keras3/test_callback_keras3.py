"""The callback as users run it: today's TensorFlow (Keras 3), no extras installed.

Collected only by scripts/check_keras3.sh, in a venv holding the newest
tensorflow, pytest, and `lr_controller` installed from its wheel without
extras. `LRC_KERAS3_POLICY` names a policy exported by the pinned stack
(TensorFlow 2.15), so this also checks that such an export loads and acts here.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

import lr_controller
from lr_controller import callback as callback_lib
from lr_controller import features, presets
from lr_controller.errors import UserError

POLICY_ENV = "LRC_KERAS3_POLICY"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The training stack: not installed here, never imported by the callback.
TRAINING_MODULES = ("tf_agents", "tensorflow_probability", "reverb", "gin")

_INTERVAL = 5
_BATCH = 16
_STEPS_PER_EPOCH = 7  # 112 examples / 16: decisions do not align with epochs.
_EPOCHS = 4
_NUM_BATCHES = _STEPS_PER_EPOCH * _EPOCHS
_VAL_CAP = 40


def _policy_dir() -> str:
  path = os.environ.get(POLICY_ENV)
  if not path:
    raise RuntimeError(
      f"set {POLICY_ENV} to an exported policy: run scripts/check_keras3.sh"
    )
  return path


def _data(seed=0, num_train=_BATCH * _STEPS_PER_EPOCH, num_val=100):
  """Class templates plus noise: x float32 [N, 8, 8], y int32 [N]."""
  rng = np.random.default_rng(seed)
  templates = rng.uniform(0, 1, size=(10, 8, 8)).astype(np.float32)

  def make(n):
    y = rng.integers(0, 10, size=n).astype(np.int32)
    x = templates[y] + rng.normal(0, 0.3, size=(n, 8, 8)).astype(np.float32)
    return x, y

  return make(num_train), make(num_val)


def _model(softmax=False) -> keras.Model:
  model = keras.Sequential(
    [
      keras.Input((8, 8)),
      keras.layers.Flatten(),
      keras.layers.Dense(16, activation="relu"),
      keras.layers.Dense(10, activation="softmax" if softmax else None, name="scores"),
    ]
  )
  return model


def _rate(optimizer) -> float:
  return float(np.asarray(optimizer.learning_rate))


def _cross_entropy(labels, logits) -> float:
  """Mean sparse cross-entropy of logits [N, K] in nats, with NumPy."""
  logits = np.asarray(logits, np.float64)
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  return float(-log_p[np.arange(len(labels)), labels].mean())


def _softmax(logits) -> np.ndarray:
  e = np.exp(logits - logits.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


class _Recorder(keras.callbacks.Callback):
  """Placed after the scheduler: the rate each batch trains with, and the loss
  of each batch before its update (fit must not shuffle: batch i of an epoch is
  examples [16 i, 16 i + 16)), and the outputs on `probe` after each batch."""

  def __init__(self, x, y, probe):
    super().__init__()
    self.x, self.y, self.probe = x, y, probe
    self.lrs, self.batch_losses, self.outputs = [], [], []

  def on_train_begin(self, logs=None):
    self.outputs.append(np.asarray(self.model(self.probe, training=False)))

  def on_train_batch_begin(self, batch, logs=None):
    self.lrs.append(_rate(self.model.optimizer))
    rows = slice(batch * _BATCH, (batch + 1) * _BATCH)
    logits = np.asarray(self.model(self.x[rows], training=False))
    self.batch_losses.append(_cross_entropy(self.y[rows], logits))

  def on_train_batch_end(self, batch, logs=None):
    self.outputs.append(np.asarray(self.model(self.probe, training=False)))


class _ConstantPolicy(tf.Module):
  """Our export format (as lr_controller.control.export writes it) with a constant action."""

  def __init__(self, metadata: dict, action: float):
    super().__init__()
    self._metadata_json = json.dumps(metadata)
    self._value = action
    size = len(metadata["features"])
    self.action = tf.function(
      self._action,
      input_signature=[
        tf.TensorSpec([None, size], tf.float32),
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
    return {
      "action": tf.fill([tf.shape(observation)[0]], tf.constant(self._value)),
      "state": [],
    }


class InstallTest(tf.test.TestCase):
  def test_keras_3_and_the_installed_light_package(self):
    self.assertGreaterEqual(int(keras.__version__.split(".")[0]), 3)
    # The case this file is for: the rate is a Keras variable, not a tf.Variable.
    self.assertNotIsInstance(tf.keras.optimizers.SGD(0.1).learning_rate, tf.Variable)
    # lr_controller comes from the installed wheel, not the checkout.
    package = os.path.realpath(lr_controller.__file__)
    checkout = os.path.join(REPO_ROOT, "lr_controller") + os.sep
    self.assertFalse(package.startswith(checkout), package)
    self.assertTrue(package.startswith(os.path.realpath(sys.prefix)), package)
    # Installed without extras: the training stack is absent.
    for name in TRAINING_MODULES:
      self.assertIsNone(importlib.util.find_spec(name), name)

  def test_import_leaves_out_the_training_stack(self):
    code = (
      "import json, sys; import lr_controller; "
      "lr_controller.LearnedLRScheduler, lr_controller.load_policy; "
      f"print(json.dumps([m for m in {TRAINING_MODULES!r} if m in sys.modules]))"
    )
    proc = subprocess.run(
      [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertEqual(json.loads(proc.stdout.strip().splitlines()[-1]), [])


class PolicyTest(tf.test.TestCase):
  def test_a_pinned_stack_export_loads_and_acts(self):
    policy = lr_controller.load_policy(_policy_dir())
    self.assertEqual(policy.metadata["format"], "lr_controller.policy/1")
    self.assertLen(policy.feature_names, policy.observation_size)
    module = tf.saved_model.load(policy.path)  # TensorFlow alone.
    out = module.action(
      tf.zeros([1, policy.observation_size]),
      tf.constant([0], tf.int32),
      module.get_initial_state(tf.constant(1)),
    )
    self.assertTrue(np.isfinite(np.asarray(out["action"])).all())


class PresetTest(tf.test.TestCase):
  """The pretrained preset as a user meets it: `pip install` of the wheel, nothing else."""

  def test_the_preset_ships_in_the_installed_wheel(self):
    self.assertIn("general", lr_controller.list_presets())
    path = os.path.realpath(presets.preset_path("general"))
    self.assertTrue(path.startswith(os.path.realpath(sys.prefix)), path)
    line = lr_controller.describe("general")
    self.assertIn("trained on", line)
    self.assertNotIn("\n", line)

  def test_from_preset_in_a_keras_3_fit(self):
    (x, y), validation = _data()
    keras.utils.set_random_seed(0)
    model = _model(softmax=True)
    model.compile(
      optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy"
    )
    callback = lr_controller.LearnedLRScheduler.from_preset(
      "general", validation_data=validation, restore_best_weights=True
    )
    model.fit(x, y, batch_size=_BATCH, epochs=10, verbose=0, callbacks=[callback])
    # 70 batches: a decision at the start and after every 10 (its interval).
    self.assertEqual([row["step"] for row in callback.history], list(range(0, 80, 10)))
    rates = [row["lr"] for row in callback.history]
    self.assertTrue(all(math.isfinite(r) for r in rates))
    self.assertGreater(max(abs(math.log(r / 1e-3)) for r in rates), 0.05)
    self.assertAllClose(_rate(model.optimizer), rates[-1], rtol=1e-6)
    self.assertFalse(callback.diverged)
    self.assertLess(callback.best_val_loss, math.log(10.0))


class CallbackKeras3Test(tf.test.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.policy_dir = _policy_dir()
    cls.policy = tf.saved_model.load(cls.policy_dir)
    cls.metadata = json.loads(cls.policy.get_metadata().numpy())

  def _index(self, name):
    return self.metadata["features"].index(name)

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
    lr0 = float(np.float32(lr0))
    bound = self.metadata["max_log_factor"]
    low, high = self.metadata["min_learning_rate"], self.metadata["max_learning_rate"]
    steps = [row["step"] for row in scheduler.history]
    self.assertEqual(steps, list(range(first_decision, _NUM_BATCHES + 1, _INTERVAL)))
    self.assertEqual(scheduler.step_types, [0] + [1] * (len(steps) - 1))
    self.assertLen(recorder.lrs, _NUM_BATCHES)
    for batch, lr in enumerate(recorder.lrs):
      decided = [row for row in scheduler.history if row["step"] <= batch]
      self.assertAllClose(
        lr, decided[-1]["lr"] if decided else lr0, rtol=1e-6, msg=f"batch {batch}"
      )
    replayed = self._replay(scheduler)
    actions = [row["action"] for row in scheduler.history]
    self.assertAllClose(actions, np.clip(replayed, -bound, bound), atol=1e-6)
    previous = lr0
    for row in scheduler.history:
      expected = min(max(previous * math.exp(row["action"]), low), high)
      self.assertAllClose(row["lr"], expected, rtol=1e-6)
      previous = row["lr"]
    # The policy really changed the rate the batches trained with.
    self.assertGreater(len(set(recorder.lrs)), 1)

  def test_sgd_fit_with_validation_data(self):
    (x, y), (xv, yv) = _data()
    keras.utils.set_random_seed(0)
    model = _model()
    lr0 = 0.05
    model.compile(
      keras.optimizers.SGD(lr0, momentum=0.9),
      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=["accuracy"],
    )
    initial_logits = np.asarray(model(xv[:_VAL_CAP]))
    initial_kernel = np.asarray(model.get_layer("scores").kernel)
    log_path = os.path.join(self.create_tempdir().full_path, "lr.csv")
    scheduler = lr_controller.LearnedLRScheduler(
      self.policy_dir,
      action_interval=_INTERVAL,
      validation_data=(xv, yv),
      validation_examples=_VAL_CAP,
      lr_log_path=log_path,
    )
    recorder = _Recorder(x, y, probe=xv[:_VAL_CAP])
    history = model.fit(
      x,
      y,
      batch_size=_BATCH,
      epochs=_EPOCHS,
      shuffle=False,
      validation_data=(xv, yv),
      callbacks=[scheduler, recorder],
      verbose=0,
    )
    self._check_schedule(scheduler, recorder, lr0, first_decision=0)

    # The first observation is the environment's reset observation.
    first = scheduler.observations[0]
    val0 = _cross_entropy(yv[:_VAL_CAP], initial_logits)
    self.assertAllClose(first[self._index("val_loss")], val0, rtol=1e-5)
    self.assertAllClose(first[self._index("train_loss")], val0, rtol=1e-5)
    self.assertEqual(first[self._index("prediction_change_variance")], 0.0)
    self.assertAllClose(first[self._index("output_weight_mean")], initial_kernel.mean())
    self.assertAllClose(
      first[self._index("prediction_variance")],
      _softmax(initial_logits).var(axis=0).mean(),
      rtol=1e-4,
    )
    # Later ones: the chunk's mean batch loss (from Keras 3's running mean in
    # logs), and the model on the validation cap.
    for i, obs in enumerate(scheduler.observations[1:], start=1):
      end = i * _INTERVAL
      self.assertAllClose(
        obs[self._index("train_loss")],
        np.mean(recorder.batch_losses[end - _INTERVAL : end]),
        rtol=1e-4,
      )
      val = _cross_entropy(yv[:_VAL_CAP], recorder.outputs[end])
      self.assertAllClose(obs[self._index("val_loss")], val, rtol=1e-5)
      if "budget_left" in self.metadata["features"]:
        self.assertAllClose(obs[self._index("budget_left")], 1 - end / _NUM_BATCHES)

    # History: fit's own metrics and the callback's lr, one entry per epoch.
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
      self.assertLen(history.history[key], _EPOCHS, key)
    for epoch, lr in enumerate(history.history["lr"][:-1]):
      self.assertAllClose(lr, recorder.lrs[(epoch + 1) * _STEPS_PER_EPOCH])
    self.assertAllClose(history.history["lr"][-1], scheduler.history[-1]["lr"])
    rows = callback_lib.read_lr_log(log_path)
    self.assertEqual([r["step"] for r in rows], [r["step"] for r in scheduler.history])
    for name in TRAINING_MODULES:
      self.assertNotIn(name, sys.modules)

  def test_the_new_rate_moves_the_weights(self):
    (x, y), (xv, yv) = _data(seed=3)
    bound = self.metadata["max_log_factor"]
    policy_dir = self.create_tempdir().full_path
    tf.saved_model.save(_ConstantPolicy(self.metadata, 5.0), policy_dir)
    keras.utils.set_random_seed(3)
    model = _model()
    lr0 = 0.01
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.SGD(lr0), loss)
    before = [np.asarray(w) for w in model.trainable_weights]
    with tf.GradientTape() as tape:
      batch_loss = loss(y[:_BATCH], model(x[:_BATCH], training=True))
    gradients = [
      np.asarray(g) for g in tape.gradient(batch_loss, model.trainable_weights)
    ]
    scheduler = lr_controller.LearnedLRScheduler(
      policy_dir, action_interval=_INTERVAL, validation_data=(xv, yv)
    )
    model.fit(
      x[:_BATCH],
      y[:_BATCH],
      batch_size=_BATCH,
      epochs=1,
      callbacks=[scheduler],
      verbose=0,
    )
    # The decision before the first batch scales the rate by the bound (5 is
    # clipped), and the SGD step uses the new rate, not the compiled one.
    new_lr = scheduler.history[0]["lr"]
    self.assertAllClose(new_lr, lr0 * math.exp(bound), rtol=1e-6)
    for w0, g, w1 in zip(before, gradients, model.trainable_weights):
      self.assertAllClose(np.asarray(w1), w0 - new_lr * g, rtol=1e-5, atol=1e-7)

  def test_adam_softmax_outputs_and_probe_data(self):
    (x, y), _ = _data(seed=1)
    keras.utils.set_random_seed(1)
    model = _model(softmax=True)
    lr0 = 1e-3
    model.compile(keras.optimizers.Adam(lr0), "categorical_crossentropy")
    y_one_hot = np.eye(10, dtype=np.float32)[y]
    probe = x[:32]
    scheduler = lr_controller.LearnedLRScheduler(
      self.policy_dir, action_interval=_INTERVAL, probe_data=probe
    )
    recorder = _Recorder(x, y, probe=probe)
    model.fit(
      x,
      y_one_hot,
      batch_size=_BATCH,
      epochs=_EPOCHS,
      shuffle=False,
      callbacks=[scheduler, recorder],
      verbose=0,
    )
    # No loss exists before the first step: the first decision ends the first chunk.
    self._check_schedule(scheduler, recorder, lr0, first_decision=_INTERVAL)
    for i, obs in enumerate(scheduler.observations):
      end = (i + 1) * _INTERVAL
      # Softmax outputs are the probabilities (no second softmax).
      self.assertAllClose(
        obs[self._index("prediction_variance")],
        recorder.outputs[end].var(axis=0).mean(),
        rtol=1e-4,
      )
      self.assertEqual(obs[self._index("val_loss")], obs[self._index("train_loss")])

  def test_keras_3_optimizers_by_kind(self):
    optimizers = keras.optimizers
    self.assertFalse(features.is_adaptive_optimizer(optimizers.SGD(0.1)))
    for optimizer in (
      optimizers.Adam(),
      optimizers.RMSprop(),
      optimizers.Lion(),
      optimizers.ScheduleFreeAdamW(),
    ):
      self.assertTrue(features.is_adaptive_optimizer(optimizer), type(optimizer))
    wrapped = optimizers.LossScaleOptimizer(optimizers.SGD(0.1))
    self.assertFalse(features.is_adaptive_optimizer(wrapped))
    with self.assertRaisesRegex(UserError, "Muon.*adaptive_optimizer=True or False"):
      features.is_adaptive_optimizer(optimizers.Muon())

  def test_a_schedule_fails_before_training(self):
    (x, y), (xv, yv) = _data(seed=6)
    model = _model()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    model.compile(
      keras.optimizers.SGD(schedule),
      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = model.get_weights()
    scheduler = lr_controller.LearnedLRScheduler(
      self.policy_dir, validation_data=(xv, yv)
    )
    with self.assertRaisesRegex(UserError, "ExponentialDecay"):
      model.fit(x, y, batch_size=_BATCH, epochs=1, callbacks=[scheduler], verbose=0)
    for b, a in zip(before, model.get_weights()):
      self.assertAllEqual(b, a)
    self.assertEqual(int(np.asarray(model.optimizer.iterations)), 0)


if __name__ == "__main__":
  tf.test.main()
