"""End-to-end test of the demo binary (`./run.sh`, `./run.sh demo --setting=...`).

The demo runs as a subprocess, as a user starts it, on MNIST-1D's MLP shrunk
by smoke.gin (20 steps, 2 controller episodes, a 2-point grid, 2 seeds), with
a private tfds data directory where `lrc_mnist1d` is generated offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

import pytest
import subprocesses
import tensorflow as tf

from lr_controller import constants


def _demo(cwd: str, *flags: str) -> subprocess.CompletedProcess:
  tfds_dir = os.path.join(cwd, "tensorflow_datasets")
  return subprocesses.run("demo", *flags, cwd=cwd, tfds_dir=tfds_dir, timeout=900)


def _user_error_line(test: tf.test.TestCase, cwd: str, *flags: str) -> str:
  """Runs the demo, checks it failed as a user error in one line; returns the line."""
  done = _demo(cwd, *flags)
  test.assertEqual(done.returncode, subprocesses.EXIT_USER_ERROR)
  lines = done.stderr.strip().splitlines()
  test.assertLen(lines, 1, done.stderr)
  return lines[0]


@pytest.mark.slow
class DemoTest(tf.test.TestCase):
  def test_mnist1d_setting_runs_the_whole_pipeline(self):
    cwd = tempfile.mkdtemp(prefix="lrc_test_demo_")
    done = _demo(
      cwd,
      "--setting=mnist1d_mlp",
      "--gin_file=smoke.gin",
      "--num_runs=2",
      # One peer keeps the test short; the peers are tested in test_evaluation.
      "--gin_bindings=evaluate.peers=['cosine']",
      "--gin_bindings=evaluate.peer_learning_rates=[0.1]",
    )
    self.assertEqual(done.returncode, 0, done.stderr[-3000:])
    root = os.path.join(cwd, "runs", "demo_mnist1d_mlp")
    self.assertIn("training the PPO controller on mnist1d_mlp", done.stdout)
    with open(os.path.join(root, constants.EVAL_DIR, constants.RESULTS_JSON)) as f:
      results = json.load(f)
    (setting,) = results["settings"]
    self.assertEqual(setting["name"], "mnist1d_mlp")
    self.assertEqual(setting["description"]["data"], "lrc_mnist1d")
    self.assertEqual(setting["description"]["model"], "mlp")
    names = [m["name"] for m in setting["methods"]]
    self.assertEqual(names, ["step_decay", "controller", "controller_replay", "cosine"])
    for method in setting["methods"][1:]:
      paired = method["vs_baseline"]["test_loss"]["paired"]
      self.assertEqual(paired["n_pairs"], 2, method["name"])
    with open(os.path.join(root, "controller", "operative_config.gin")) as f:
      self.assertIn("lrc_mnist1d", f.read())

  def test_unknown_setting_is_a_one_line_error(self):
    cwd = tempfile.mkdtemp(prefix="lrc_test_demo_")
    self.assertIn("imagenet", _user_error_line(self, cwd, "--setting=imagenet"))
    self.assertFalse(os.path.exists(os.path.join(cwd, "runs")))

  def test_a_bound_number_of_runs_takes_effect(self):
    # Without --num_runs the evaluation's runs are gin's evaluate.num_runs.
    cwd = tempfile.mkdtemp(prefix="lrc_test_demo_")
    self.assertEqual(
      _user_error_line(self, cwd, "--gin_bindings=evaluate.num_runs=1"),
      "error: evaluate.num_runs must be at least 2 for the t-tests, got 1",
    )
    self.assertFalse(os.path.exists(os.path.join(cwd, "runs")))


if __name__ == "__main__":
  tf.test.main()
