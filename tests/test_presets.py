"""The shipped preset: found by name, describes its training, acts in a user's fit."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

import lr_controller
from lr_controller import features, policy_metadata, presets
from lr_controller.errors import UserError

PRESET = "general"


def _data(num_train=96, num_val=64):
  """Class templates plus noise: ((x [N, 8, 8], y [N]) train, the same validation)."""
  rng = np.random.default_rng(0)
  templates = rng.uniform(0, 1, size=(10, 8, 8)).astype(np.float32)

  def make(n):
    y = rng.integers(0, 10, size=n).astype(np.int32)
    return templates[y] + rng.normal(0, 0.3, size=(n, 8, 8)).astype(np.float32), y

  return make(num_train), make(num_val)


def _model():
  tf.keras.utils.set_random_seed(0)
  return tf.keras.Sequential(
    [
      tf.keras.Input((8, 8)),
      tf.keras.layers.Flatten(),
      tf.keras.layers.Dense(16, activation="relu"),
      tf.keras.layers.Dense(10, activation="softmax"),
    ]
  )


class PresetTest(tf.test.TestCase):
  def test_the_package_ships_the_general_preset(self):
    self.assertIn(PRESET, lr_controller.list_presets())
    path = presets.preset_path(PRESET)
    self.assertTrue(tf.saved_model.contains_saved_model(path))
    size = sum(
      os.path.getsize(os.path.join(folder, name))
      for folder, _, names in os.walk(path)
      for name in names
    )
    self.assertLess(size, 1_000_000)  # The wheel stays under 2 MB.

  def test_metadata_says_what_it_was_trained_on(self):
    policy = lr_controller.load_policy(presets.preset_path(PRESET))
    metadata = policy.metadata
    self.assertEqual(list(policy.feature_names), list(features.BUDGET_AWARE_FEATURES))
    training = metadata[policy_metadata.TRAINING]
    settings = training["settings"]
    self.assertEqual({s["data"] for s in settings}, {"lrc_digits", "lrc_mnist1d"})
    self.assertEqual({s["model"] for s in settings}, {"lenet5", "mlp", "cnn1d"})
    self.assertEqual({s["optimizer"] for s in settings}, {"sgd", "adam"})
    self.assertEqual({s["batch_size"] for s in settings}, {50, 100})
    self.assertEqual(
      {s["num_steps"] for s in settings}, {200, 400, 500, 1000}
    )  # controller/pretrained.gin's budgets.
    self.assertRegex(training["commit"], r"^[0-9a-f]{12}$")  # A clean checkout's.
    self.assertGreater(metadata[policy_metadata.EPISODES], 0)
    # The JSON beside the SavedModel is the same document.
    with open(os.path.join(presets.preset_path(PRESET), "controller.json")) as f:
      self.assertEqual(json.load(f), metadata)

  def test_describe_is_one_line(self):
    line = lr_controller.describe(PRESET)
    self.assertNotIn("\n", line)
    for words in (
      "trained on 7 settings",
      "lrc_digits, lrc_mnist1d",
      "lenet5, mlp, cnn1d",
      "sgd, adam",
      "initial rates 0.0003-0.3",
      "200-1000 steps",
      "log_learning_rate,",
      "decides every 10 steps",
      "commit ",
    ):
      self.assertIn(words, line)
    self.assertEqual(line, lr_controller.describe(presets.preset_path(PRESET)))

  def test_the_command_line_lists_and_describes(self):
    def run(*args):
      return subprocess.run(
        [sys.executable, "-m", "lr_controller.presets", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
      )

    listed = run()
    self.assertEqual(listed.returncode, 0, listed.stderr)
    self.assertEqual(listed.stdout, f"{PRESET}: {lr_controller.describe(PRESET)}\n")
    bad = run("generl")
    self.assertEqual(bad.returncode, 2)
    self.assertEqual(bad.stdout, "")
    # One line, the last (TensorFlow may log before it).
    self.assertRegex(bad.stderr.splitlines()[-1], r"^error: unknown preset 'generl'; ")

  def test_describe_without_training_settings(self):
    line = policy_metadata.describe(
      {"features": ["val_loss"], "action_interval": 5, "episodes": 3}
    )
    self.assertEqual(
      line,
      "training settings not recorded; 3 episodes; observes val_loss; decides every 5 steps",
    )

  def test_unknown_preset_is_a_one_line_error_naming_the_shipped_ones(self):
    for name in ("generl", "", None):
      with self.assertRaisesRegex(UserError, f"unknown preset .*ships: .*{PRESET}"):
        lr_controller.LearnedLRScheduler.from_preset(name)
    with self.assertRaisesRegex(UserError, "unknown preset 'generl'"):
      lr_controller.describe("generl")
    with self.assertRaisesRegex(UserError, "takes a preset name"):
      lr_controller.LearnedLRScheduler.from_preset(PRESET, policy_dir="x")

  def test_the_preset_acts_in_a_users_fit(self):
    (x, y), validation = _data()
    model = _model()
    model.compile(
      optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy"
    )
    callback = lr_controller.LearnedLRScheduler.from_preset(
      PRESET, validation_data=validation, restore_best_weights=True
    )
    model.fit(x, y, batch_size=16, epochs=10, verbose=0, callbacks=[callback])
    # 60 batches: a decision at the start and after every 10.
    self.assertEqual([row["step"] for row in callback.history], list(range(0, 70, 10)))
    rates = [row["lr"] for row in callback.history]
    self.assertTrue(all(np.isfinite(rates)))
    # It moves the rate, within its bounds.
    self.assertGreater(max(abs(np.log(r / 1e-3)) for r in rates), 0.05)
    policy = callback.policy
    self.assertTrue(
      all(policy.min_learning_rate <= r <= policy.max_learning_rate for r in rates)
    )
    self.assertFalse(callback.diverged)
    self.assertLess(callback.best_val_loss, np.log(10.0))


if __name__ == "__main__":
  tf.test.main()
