"""End-to-end tests of the binaries `train_trainee` and `search_baseline`.

Each binary runs as a subprocess, as a user would start it, on the embedded
digits data shrunk by smoke.gin (20 steps, a 2-point grid). The tfds data
directory is a private temporary one (`lrc_digits` prepares itself there,
offline), so nothing touches ~/tensorflow_datasets. Every subprocess pays the
TensorFlow import (~5 s), so checks are grouped per invocation and the
bad-input invocations run concurrently.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

import tensorflow as tf

from lr_controller import constants

SETTING = ("--gin_file=digits_lenet.gin", "--gin_file=smoke.gin")
SMOKE_STEPS = 20  # smoke.gin's NUM_STEPS.
EVAL_INTERVAL = 10  # digits_lenet.gin's run_training.eval_interval.
# smoke.gin's grid.
SMOKE_GRID = {
  "initial_learning_rates": [0.1, 0.01],
  "discount_steps": [10],
  "factors": [0.9],
}
EXIT_USER_ERROR = 2
# A line of the grid's progress, e.g. "[ 1/2] lr0 0.1 every 10 ...".
GRID_PROGRESS = re.compile(r"^\[\s*\d+/\d+\]", re.MULTILINE)
SENTINEL = '{"sentinel": "written before the failing run"}\n'


def _read_json(path: str):
  with open(path) as f:
    return json.load(f)


def _read(path: str) -> str:
  with open(path) as f:
    return f.read()


class BinariesTest(tf.test.TestCase):
  """Runs the binaries as subprocesses and checks what they write and print."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._scratch = tempfile.mkdtemp(prefix="lrc_test_binaries_")
    cls._tfds_dir = os.path.join(cls._scratch, "tensorflow_datasets")

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls._scratch, ignore_errors=True)
    super().tearDownClass()

  def _run(self, binary: str, *args: str) -> subprocess.CompletedProcess:
    """Runs `python -m lr_controller.bin.<binary> args...`; returns the result."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFDS_DATA_DIR=self._tfds_dir)
    return subprocess.run(
      [sys.executable, "-m", f"lr_controller.bin.{binary}", *args],
      env=env,
      cwd=self._scratch,
      capture_output=True,
      text=True,
      timeout=600,
      check=False,
    )

  def _assert_succeeded(self, proc: subprocess.CompletedProcess) -> None:
    self.assertEqual(
      proc.returncode, 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    self.assertNotIn("Traceback", proc.stderr)

  def test_train_trainee_writes_metrics_and_configs(self):
    lr0, discount_step, factor = 0.05, 10, 0.5
    bindings = (
      f"make_schedule.initial_learning_rate={lr0}",
      f"make_schedule.discount_step={discount_step}",
      f"make_schedule.factor={factor}",
    )
    # A nested root_dir that does not exist yet: the binary creates it.
    root = os.path.join(self.create_tempdir().full_path, "nested", "run")
    proc = self._run(
      "train_trainee",
      f"--root_dir={root}",
      *SETTING,
      *(f"--gin_bindings={b}" for b in bindings),
    )
    self._assert_succeeded(proc)
    self.assertIn("finished: test loss", proc.stdout)

    metrics = _read_json(os.path.join(root, constants.METRICS_JSON))
    self.assertFalse(metrics["diverged"])
    self.assertEqual(metrics["steps_done"], SMOKE_STEPS)
    self.assertEqual(metrics["seed"], 0)
    history = metrics["history"]
    steps = [row["step"] for row in history]
    self.assertEqual(steps, [10, 20])
    # A row's lr is the rate of the chunk's last step, step - 1 (0-based):
    # lr0 * factor ** floor((step - 1) / discount_step) = 0.05, then 0.025.
    expected_lrs = [lr0 * factor ** ((s - 1) // discount_step) for s in steps]
    self.assertAllClose(expected_lrs, [0.05, 0.025])
    self.assertAllClose([row["lr"] for row in history], expected_lrs, rtol=1e-6)
    for row in history:
      for key in ("train_loss", "val_loss"):
        self.assertIsInstance(row[key], float, f"{key} of {row}")
        self.assertTrue(math.isfinite(row[key]) and row[key] > 0, row)
      self.assertBetween(row["val_accuracy"], 0.0, 1.0)
    # The best checkpoint is the row of least validation loss.
    best_row = min(history, key=lambda row: row["val_loss"])
    self.assertEqual(metrics["best_step"], best_row["step"])
    self.assertAlmostEqual(metrics["best_val_loss"], best_row["val_loss"])
    self.assertIsInstance(metrics["test_loss"], float)
    self.assertTrue(math.isfinite(metrics["test_loss"]) and metrics["test_loss"] > 0)
    self.assertBetween(metrics["test_accuracy"], 0.0, 1.0)
    self.assertEqual(metrics["schedule"]["class"], "StepDecaySchedule")
    self.assertAllClose(
      [
        metrics["schedule"]["initial_learning_rate"],
        metrics["schedule"]["discount_step"],
        metrics["schedule"]["factor"],
      ],
      [lr0, discount_step, factor],
    )

    # config.gin: the files as given plus the bindings; operative_config.gin:
    # what gin actually used.
    config = _read(os.path.join(root, constants.CONFIG_GIN))
    self.assertIn("load_data.name = 'lrc_digits'", config)
    self.assertIn("NUM_STEPS = 20", config)
    for binding in bindings:
      self.assertIn(binding, config)
    operative = _read(os.path.join(root, constants.OPERATIVE_GIN))
    for line in (
      "load_data.name = 'lrc_digits'",
      "load_data.batch_size = 32",
      f"make_schedule.discount_step = {discount_step}",
      f"make_schedule.factor = {factor}",
      f"make_schedule.initial_learning_rate = {lr0}",
      f"run_training.num_steps = {SMOKE_STEPS}",
    ):
      self.assertIn(line, operative)

  def test_search_baseline_repeats_best_and_resumes(self):
    root = self.create_tempdir().full_path
    proc = self._run(
      "search_baseline", f"--root_dir={root}", *SETTING, "--num_repeats=2"
    )
    self._assert_succeeded(proc)
    self.assertLen(GRID_PROGRESS.findall(proc.stdout), 2, proc.stdout)
    for name in (constants.CONFIG_GIN, constants.OPERATIVE_GIN):
      self.assertTrue(os.path.isfile(os.path.join(root, name)), name)

    search = _read_json(os.path.join(root, constants.SEARCH_JSON))
    self.assertEqual(
      search["grid"], {**SMOKE_GRID, "num_steps": SMOKE_STEPS, "seed": 0}
    )
    runs = search["runs"]
    self.assertCountEqual(
      [(r["initial_learning_rate"], r["discount_step"], r["factor"]) for r in runs],
      itertools.product(*SMOKE_GRID.values()),
    )
    for run in runs:
      self.assertIsInstance(run["diverged"], bool)
      self.assertTrue(math.isfinite(run["best_val_loss"]), run)
      self.assertIn(run["best_step"], (10, 20))
    # The best: least best-validation loss among runs that did not diverge.
    converged = [r for r in runs if not r["diverged"]]
    self.assertNotEmpty(converged)
    self.assertEqual(search["best"], min(converged, key=lambda r: r["best_val_loss"]))

    repeats_path = os.path.join(root, constants.REPEATS_JSON)
    repeats = _read_json(repeats_path)
    best = search["best"]
    self.assertEqual(
      repeats["setting"]["initial_learning_rate"], best["initial_learning_rate"]
    )
    self.assertEqual(repeats["setting"]["discount_step"], best["discount_step"])
    self.assertEqual(repeats["setting"]["factor"], best["factor"])
    self.assertEqual(repeats["seeds"], [0, 1])
    self.assertLen(repeats["runs"], 2)
    self.assertEqual([r["seed"] for r in repeats["runs"]], [0, 1])
    for run in repeats["runs"]:
      self.assertEqual(run["steps_done"], SMOKE_STEPS)
      self.assertEqual([row["step"] for row in run["history"]], [10, 20])
      self.assertTrue(math.isfinite(run["test_loss"]), run)
    test_losses = [r["test_loss"] for r in repeats["runs"]]
    test_accuracies = [r["test_accuracy"] for r in repeats["runs"]]
    self.assertAlmostEqual(repeats["test_loss_mean"], statistics.fmean(test_losses))
    self.assertAlmostEqual(repeats["test_loss_std"], statistics.stdev(test_losses))
    self.assertAlmostEqual(
      repeats["test_accuracy_mean"], statistics.fmean(test_accuracies)
    )
    self.assertEqual(repeats["num_diverged"], 0)
    repeats_text = _read(repeats_path)

    # The same search again: every grid run is already done, none is re-run.
    again = self._run("search_baseline", f"--root_dir={root}", *SETTING)
    self._assert_succeeded(again)
    self.assertIn("resuming the search", again.stdout)
    self.assertIn("2 runs already done", again.stdout)
    self.assertEmpty(GRID_PROGRESS.findall(again.stdout), again.stdout)
    self.assertNotIn("repeat seed", again.stdout)
    resumed = _read_json(os.path.join(root, constants.SEARCH_JSON))
    # Identical runs, down to their recorded durations: nothing was re-run.
    self.assertEqual(resumed["runs"], runs)
    self.assertEqual(resumed["best"], best)
    self.assertEqual(_read(repeats_path), repeats_text)

  def test_bad_inputs_fail_with_one_error_line_and_keep_existing_files(self):
    scratch = self.create_tempdir().full_path
    garbage_gin = os.path.join(scratch, "garbage.gin")
    with open(garbage_gin, "w") as f:
      f.write("this is not ((( gin\n")
    a_file = os.path.join(scratch, "a_file")
    with open(a_file, "w") as f:
      f.write(SENTINEL)
    missing_gin = os.path.join(scratch, "missing.gin")

    # name -> (binary, root_dir argument or None, extra args, words the error
    # line must contain). The root given as "new" is a fresh directory holding
    # earlier results that the failing run must leave alone.
    train, search = "train_trainee", "search_baseline"
    cases = {
      "unknown_data_set": (
        train,
        "new",
        ["--gin_bindings=load_data.name='imagenet9'"],
        ["unknown data set", "imagenet9"],
      ),
      "missing_gin_file": (
        train,
        "new",
        [f"--gin_file={missing_gin}"],
        ["gin file not found", "missing.gin"],
      ),
      "unparsable_gin_file": (
        train,
        "new",
        [f"--gin_file={garbage_gin}"],
        ["bad gin file", "garbage.gin"],
      ),
      "unknown_binding": (
        train,
        "new",
        ["--gin_bindings=nonexistent.x=1"],
        ["bad gin binding", "nonexistent"],
      ),
      "negative_learning_rate": (
        train,
        "new",
        ["--gin_bindings=make_schedule.initial_learning_rate=-0.1"],
        ["initial_learning_rate", "positive", "-0.1"],
      ),
      "zero_learning_rate_search": (
        search,
        "new",
        ["--gin_bindings=search_step_decay.initial_learning_rates=[0.0]"],
        ["learning rate", "positive", "0.0"],
      ),
      "zero_discount_step": (
        train,
        "new",
        ["--gin_bindings=make_schedule.discount_step=0"],
        ["discount_step", "positive", "0"],
      ),
      "zero_discount_step_search": (
        search,
        "new",
        ["--gin_bindings=search_step_decay.discount_steps=[0]"],
        ["discount step", "positive", "0"],
      ),
      "discount_steps_not_a_list": (
        search,
        "new",
        ["--gin_bindings=search_step_decay.discount_steps=10"],
        ["discount_steps", "list"],
      ),
      "negative_num_repeats_flag": (
        search,
        "new",
        ["--num_repeats=-1"],
        ["num_repeats", "-1"],
      ),
      "root_dir_is_a_file": (train, a_file, [], ["root_dir", "not a directory"]),
      "missing_root_dir": (train, None, [], ["--root_dir is required"]),
    }

    def start(name):
      binary, root, extra, _ = cases[name]
      args = [*SETTING, *extra]
      if root == "new":
        root = os.path.join(scratch, name)
        os.makedirs(root)
        for result in (
          constants.METRICS_JSON,
          constants.SEARCH_JSON,
          constants.REPEATS_JSON,
        ):
          with open(os.path.join(root, result), "w") as f:
            f.write(SENTINEL)
      if root is not None:
        args.insert(0, f"--root_dir={root}")
      return self._run(binary, *args)

    # Each invocation is mostly the TensorFlow import: run them side by side.
    workers = min(len(cases), max(2, min(4, os.cpu_count() or 2)))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      results = dict(zip(cases, pool.map(start, cases)))

    for name, proc in results.items():
      with self.subTest(name):
        _, root, _, words = cases[name]
        self.assertNotIn("Traceback", proc.stderr)
        self.assertNotIn("In call to configurable", proc.stderr)
        self.assertEqual(proc.returncode, EXIT_USER_ERROR, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        self.assertNotEmpty(lines)
        self.assertStartsWith(lines[-1], "error: ")
        for word in words:
          self.assertIn(word, lines[-1])
        if root == "new":
          for result in (
            constants.METRICS_JSON,
            constants.SEARCH_JSON,
            constants.REPEATS_JSON,
          ):
            self.assertEqual(_read(os.path.join(scratch, name, result)), SENTINEL)
    self.assertEqual(_read(a_file), SENTINEL)
