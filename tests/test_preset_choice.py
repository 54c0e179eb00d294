"""Tests of the preset's choice in units of noise (judge/preset_choice.py)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats
import subprocesses
import tensorflow as tf

from lr_controller import presets
from lr_controller.errors import UserError
from lr_controller.judge import preset_choice


class PresetChoiceTest(tf.test.TestCase):
  def test_reference_is_the_lowest_mean(self):
    methods = {"step_decay": [1.0, 1.2], "one_cycle": [0.9, 1.2], "cosine": [1.0, 1.0]}
    self.assertEqual(preset_choice.reference(methods), "cosine")
    with self.assertRaises(UserError):
      preset_choice.reference({})

  def test_gap_is_the_paired_t_statistic(self):
    rng = np.random.default_rng(0)
    reference = rng.normal(1.0, 0.05, size=10)
    candidate = reference + rng.normal(0.02, 0.01, size=10)
    expected = scipy.stats.ttest_rel(candidate, reference).statistic
    self.assertAllClose(preset_choice.gap(candidate, reference), expected)
    # A diverged run, or no noise to measure against.
    self.assertEqual(preset_choice.gap([math.inf, 1.0], [1.0, 1.0]), math.inf)
    self.assertEqual(preset_choice.gap([1.5, 2.5], [1.0, 2.0]), math.inf)
    self.assertEqual(preset_choice.gap([0.5, 1.5], [1.0, 2.0]), -math.inf)
    self.assertEqual(preset_choice.gap([1.0, 2.0], [1.0, 2.0]), 0.0)
    with self.assertRaisesRegex(UserError, "same trainees"):
      preset_choice.gap([1.0, 1.1, 1.2], [1.0, 1.1])

  def test_choose_minimizes_the_worst_setting(self):
    rng = np.random.default_rng(1)
    noise = {s: rng.normal(0, 0.01, size=8) for s in ("cnn", "rmsprop")}
    peers = {
      "one_cycle": {"cnn": 1.00 + noise["cnn"], "rmsprop": 0.09 + noise["rmsprop"]},
      "step_decay": {"cnn": 1.05 + noise["cnn"], "rmsprop": 0.08 + noise["rmsprop"]},
    }
    jitter = rng.normal(0, 0.005, size=8)
    candidates = {
      # Best on the CNN by far, clearly behind on RMSprop.
      "sharp": {
        "cnn": 0.95 + noise["cnn"],
        "rmsprop": 0.12 + noise["rmsprop"] + jitter,
      },
      # Slightly behind on both.
      "even": {
        "cnn": 1.005 + noise["cnn"] + jitter,
        "rmsprop": 0.081 + noise["rmsprop"] + jitter,
      },
    }
    chosen, table = preset_choice.choose(candidates, peers)
    self.assertEqual(chosen, "even")
    self.assertEqual(
      table["even"]["references"], {"cnn": "one_cycle", "rmsprop": "step_decay"}
    )
    for entry in table.values():
      self.assertEqual(entry["score"], max(entry["gaps"].values()))
    self.assertGreater(table["sharp"]["gaps"]["rmsprop"], table["even"]["score"])
    with self.assertRaisesRegex(UserError, "no validation runs on rmsprop"):
      preset_choice.choose({"cnn only": {"cnn": [1.0] * 8}}, peers)
    with self.assertRaisesRegex(UserError, "no candidate"):
      preset_choice.choose({}, peers)
    with self.assertRaisesRegex(UserError, "with --peers"):
      preset_choice.choose(candidates, {})
    extra = {"even": {**candidates["even"], "resnet": [1.0] * 8}}
    with self.assertRaisesRegex(UserError, "no tuned method was scored on resnet"):
      preset_choice.choose(extra, peers)
    diverged = {
      m: {s: [math.inf, *v[1:]] for s, v in by.items()} for m, by in peers.items()
    }
    with self.assertRaisesRegex(UserError, "no reference"):
      preset_choice.choose(candidates, diverged)

  def test_split_scores(self):
    general = "/p/general"
    setting = "a|b setting"  # A separator in a name does not confuse it.
    scores = {
      preset_choice.score_key(general, setting, 2): {
        "policy": general,
        "setting": setting,
        "best_val": [1.0, 1.1],
      },
      preset_choice.score_key(general, setting, 3): {
        "policy": general,
        "setting": setting,
        "best_val": [1.0, 1.1, 1.2],
      },
      preset_choice.score_key("/p/other", setting, 2): {
        "policy": "/p/other",
        "setting": setting,
        "best_val": [0.9, 1.0],
      },
      preset_choice.score_key("cosine", setting, 2, tuned=True): {
        "method": "cosine",
        "setting": setting,
        "best_val": [0.8, 0.9],
      },
    }
    candidates, methods = preset_choice.split_scores(scores, [general], 2)
    self.assertEqual(candidates, {general: {setting: [1.0, 1.1]}})
    self.assertEqual(methods, {"cosine": {setting: [0.8, 0.9]}})
    with self.assertRaisesRegex(UserError, "not a record"):
      preset_choice.split_scores({"k": {"best_val": [1.0, 1.1]}}, [general], 2)


@pytest.mark.slow
class ValidationPeersTest(tf.test.TestCase):
  def test_preset_heldout_scores_the_tuned_methods_on_the_same_trainees(self):
    # The shipped preset and two tuned methods on RMSprop's validation
    # trainees, 20-step runs (smoke.gin): what build_preset chooses from.
    root = self.create_tempdir().full_path
    command = [
      sys.executable,
      os.path.join(subprocesses.REPO_ROOT, "benchmarks", "preset_heldout.py"),
      "--mode=validation",
      f"--root_dir={root}",
      "--settings=rmsprop",
      "--num_runs=2",
      "--peers",
      "--gin_file=smoke.gin",
      "--gin_bindings=evaluate.peers = ['cosine']",
    ]
    done = subprocess.run(
      command,
      env=subprocesses.environment(self.create_tempdir().full_path),
      capture_output=True,
      text=True,
      timeout=600,
    )
    self.assertEqual(done.returncode, 0, done.stderr[-2000:])
    self.assertIn("| tuned cosine |", done.stdout)
    with open(os.path.join(root, "validation.json")) as f:
      scores = json.load(f)
    general = presets.preset_path("general")
    candidates, methods = preset_choice.split_scores(scores, [general], 2)
    self.assertEqual(set(methods), {"step_decay", "cosine"})
    setting = "digits/lenet/rmsprop lr0=0.001"
    for by_setting in [*candidates.values(), *methods.values()]:
      self.assertLen(by_setting[setting], 2)
    for entry in scores.values():  # Validation losses only, never a test loss.
      self.assertEqual(set(entry) - {"policy", "method"}, {"setting", "best_val"})
    chosen, table = preset_choice.choose(candidates, methods)
    self.assertEqual(chosen, general)
    self.assertIn(table[general]["references"][setting], methods)
