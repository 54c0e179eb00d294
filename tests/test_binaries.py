"""End-to-end tests of the binaries `train_trainee` and `search_baseline`.

Each binary runs as a subprocess, as a user would start it, on the embedded
digits data shrunk by smoke.gin (20 steps, a 2-point grid). The tfds data
directory is a private temporary one (`lrc_digits` is prepared there once,
offline), so nothing touches ~/tensorflow_datasets.

A subprocess costs ~5 s of TensorFlow import, mostly CPU. So `setUpClass`
starts every invocation of the file at once, two at a time, and the tests
only check what each one printed and wrote; after the first run of each
binary, its runs are forked from one import (`subprocesses.run_forked`).
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
import tempfile

import pytest
import subprocesses
import tensorflow as tf

from lr_controller import constants
from lr_controller.trainee import data as data_lib

SETTING = ("--gin_file=digits_lenet.gin", "--gin_file=smoke.gin")
SMOKE_STEPS = 20  # smoke.gin's NUM_STEPS.
# smoke.gin's grid.
SMOKE_GRID = {
  "initial_learning_rates": [0.1, 0.01],
  "discount_steps": [10],
  "factors": [0.9],
}
# The step decay train_trainee is run with.
LR0, DISCOUNT_STEP, FACTOR = 0.05, 10, 0.5
TRAIN_BINDINGS = (
  f"make_schedule.initial_learning_rate={LR0}",
  f"make_schedule.discount_step={DISCOUNT_STEP}",
  f"make_schedule.factor={FACTOR}",
)
# A line of the grid's progress, e.g. "[ 1/2] lr0 0.1 every 10 ...".
GRID_PROGRESS = re.compile(r"^\[\s*\d+/\d+\]", re.MULTILINE)
# Results a failing run finds in its root_dir; it must leave them alone.
EARLIER_RESULTS = (
  constants.CONFIG_GIN,
  constants.METRICS_JSON,
  constants.SEARCH_JSON,
  constants.REPEATS_JSON,
)
SENTINEL = '{"sentinel": "written before the failing run"}\n'

TRAIN, SEARCH = "train_trainee", "search_baseline"
# Bad inputs: name -> (binary, root_dir, extra arguments, words the error line
# must contain). root_dir "new" is a fresh directory holding EARLIER_RESULTS;
# "{file}" a regular file; None leaves --root_dir out. "{scratch}" in an
# argument is the scratch directory.
BAD_INPUTS = {
  "unknown_data_set": (
    TRAIN,
    "new",
    ["--gin_bindings=load_data.name='imagenet9'"],
    ["unknown data set", "imagenet9"],
  ),
  "missing_gin_file": (
    TRAIN,
    "new",
    ["--gin_file={scratch}/missing.gin"],
    ["gin file not found", "missing.gin"],
  ),
  "unparsable_gin_file": (
    TRAIN,
    "new",
    ["--gin_file={scratch}/garbage.gin"],
    ["bad gin file", "garbage.gin"],
  ),
  "unknown_binding": (
    TRAIN,
    "new",
    ["--gin_bindings=nonexistent.x=1"],
    ["bad gin binding", "nonexistent"],
  ),
  "negative_learning_rate": (
    TRAIN,
    "new",
    ["--gin_bindings=make_schedule.initial_learning_rate=-0.1"],
    ["initial_learning_rate", "positive", "-0.1"],
  ),
  "zero_learning_rate_in_grid": (
    SEARCH,
    "new",
    ["--gin_bindings=search_step_decay.initial_learning_rates=[0.0]"],
    ["learning rate", "positive", "0.0"],
  ),
  "zero_discount_step": (
    TRAIN,
    "new",
    ["--gin_bindings=make_schedule.discount_step=0"],
    ["discount_step", "positive", "0"],
  ),
  "zero_discount_step_in_grid": (
    SEARCH,
    "new",
    ["--gin_bindings=search_step_decay.discount_steps=[0]"],
    ["discount step", "positive", "0"],
  ),
  "grid_values_not_a_list": (
    SEARCH,
    "new",
    ["--gin_bindings=search_step_decay.discount_steps=10"],
    ["discount_steps", "list", "10"],
  ),
  "bad_flag_value": (SEARCH, "new", ["--num_repeats=-1"], ["num_repeats", "-1"]),
  "root_dir_is_a_file": (TRAIN, "{file}", [], ["root_dir", "not a directory"]),
  "missing_root_dir": (TRAIN, None, [], ["--root_dir is required"]),
}


def _read_json(path: str):
  with open(path) as f:
    return json.load(f)


def _read(path: str) -> str:
  with open(path) as f:
    return f.read()


def _write(path: str, text: str) -> None:
  with open(path, "w") as f:
    f.write(text)


@pytest.mark.slow
class BinariesTest(tf.test.TestCase):
  """Runs the binaries as subprocesses and checks what they write and print."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.scratch = tempfile.mkdtemp(prefix="lrc_test_binaries_")
    cls.tfds_dir = os.path.join(cls.scratch, "tensorflow_datasets")
    # Prepared once here: concurrent first uses would race to prepare it.
    data_lib.load_data(data_dir=cls.tfds_dir)

    cls.train_root = os.path.join(cls.scratch, "train", "nested")  # Not made yet.
    cls.search_root = os.path.join(cls.scratch, "search")
    cls.a_file = os.path.join(cls.scratch, "a_file")
    _write(cls.a_file, SENTINEL)
    _write(os.path.join(cls.scratch, "garbage.gin"), "this is not ((( gin\n")

    def run_train():
      return cls.run_binary(
        TRAIN,
        f"--root_dir={cls.train_root}",
        *SETTING,
        *(f"--gin_bindings={b}" for b in TRAIN_BINDINGS),
      )

    def search_twice():
      args = (f"--root_dir={cls.search_root}", *SETTING)
      first = cls.run_binary(SEARCH, *args, "--num_repeats=2")
      # Snapshot what the first run wrote before the second one resumes.
      written = {
        name: _read(os.path.join(cls.search_root, name))
        for name in os.listdir(cls.search_root)
      }
      return first, written, cls.run_binary(SEARCH, *args, forked=True)

    def bad_input(name):
      binary, root, extra, _ = BAD_INPUTS[name]
      args = [*SETTING, *(a.format(scratch=cls.scratch) for a in extra)]
      if root == "new":
        root = os.path.join(cls.scratch, name)
        os.makedirs(root)
        for result in EARLIER_RESULTS:
          _write(os.path.join(root, result), SENTINEL)
      elif root == "{file}":
        root = cls.a_file
      if root is not None:
        args.insert(0, f"--root_dir={root}")
      return cls.run_binary(binary, *args, forked=True)

    def from_checkout():
      # A path from the checkout's root, whose include gin looks up on its
      # search paths: no "Path not found" lines on the way.
      return cls.run_binary(
        TRAIN,
        f"--root_dir={cls.scratch}/from_checkout",
        "--gin_file=gin_configs/controller/digits.gin",
        "--gin_file=smoke.gin",
        cwd=subprocesses.REPO_ROOT,
        forked=True,
      )

    # The first run of each binary is a plain `python -m`, the others are
    # forked (`subprocesses.run_forked`; its imports start now).
    subprocesses.prepare_forks()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # 2 cores.
      # The longest chain first.
      search = pool.submit(search_twice)
      train = pool.submit(run_train)
      bad = {name: pool.submit(bad_input, name) for name in BAD_INPUTS}
      checkout = pool.submit(from_checkout)
      cls.search_result = search.result()
      cls.train_result = train.result()
      cls.bad_results = {name: future.result() for name, future in bad.items()}
      cls.checkout_result = checkout.result()

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.scratch, ignore_errors=True)
    super().tearDownClass()

  @classmethod
  def run_binary(
    cls, binary: str, *args: str, cwd: str | None = None, forked: bool = False
  ) -> subprocess.CompletedProcess:
    """Runs `python -m lr_controller.bin.<binary> args...` (in the scratch dir)."""
    run = subprocesses.run_forked if forked else subprocesses.run
    return run(binary, *args, cwd=cwd or cls.scratch, tfds_dir=cls.tfds_dir)

  def assert_succeeded(self, proc: subprocess.CompletedProcess) -> None:
    self.assertEqual(
      proc.returncode, 0, f"{proc.args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    self.assertNotIn("Traceback", proc.stderr)
    self.assertNotIn("Path not found", proc.stderr)

  def test_gin_files_from_the_checkout_root_log_no_errors(self):
    self.assert_succeeded(self.checkout_result)
    self.assertNotRegex(self.checkout_result.stderr, r"(?m)^E\d{4} ")

  def test_train_trainee_writes_metrics_and_configs(self):
    proc = self.train_result
    self.assert_succeeded(proc)
    self.assertIn("finished: test loss", proc.stdout)
    root = self.train_root

    metrics = _read_json(os.path.join(root, constants.METRICS_JSON))
    self.assertFalse(metrics["diverged"])
    self.assertEqual(metrics["steps_done"], SMOKE_STEPS)
    self.assertEqual(metrics["seed"], 0)
    history = metrics["history"]
    steps = [row["step"] for row in history]
    self.assertEqual(steps, [10, 20])
    # A row's lr is the rate of the chunk's last step, step - 1 (0-based):
    # lr0 * factor ** floor((step - 1) / discount_step) = 0.05, then 0.025.
    expected_lrs = [LR0 * FACTOR ** ((s - 1) // DISCOUNT_STEP) for s in steps]
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
    schedule = metrics["schedule"]
    self.assertEqual(schedule["class"], "StepDecaySchedule")
    self.assertAllClose(
      [
        schedule["initial_learning_rate"],
        schedule["discount_step"],
        schedule["factor"],
      ],
      [LR0, DISCOUNT_STEP, FACTOR],
    )

    # config.gin: the files as given plus the bindings; operative_config.gin:
    # what gin actually used.
    config = _read(os.path.join(root, constants.CONFIG_GIN))
    self.assertIn("load_data.name = 'lrc_digits'", config)
    self.assertIn("NUM_STEPS = 20", config)
    for binding in TRAIN_BINDINGS:
      self.assertIn(binding, config)
    operative = _read(os.path.join(root, constants.OPERATIVE_GIN))
    for line in (
      f"NUM_STEPS = {SMOKE_STEPS}",
      "load_data.name = 'lrc_digits'",
      "load_data.batch_size = 32",
      f"make_schedule.discount_step = {DISCOUNT_STEP}",
      f"make_schedule.factor = {FACTOR}",
      f"make_schedule.initial_learning_rate = {LR0}",
      "train_with_schedule.num_steps = %NUM_STEPS",
    ):
      self.assertIn(line, operative)

  def test_search_baseline_repeats_best_and_resumes(self):
    first, written, again = self.search_result
    self.assert_succeeded(first)
    self.assertLen(GRID_PROGRESS.findall(first.stdout), 2, first.stdout)
    for name in (constants.CONFIG_GIN, constants.OPERATIVE_GIN):
      self.assertIn(name, written)

    search = json.loads(written[constants.SEARCH_JSON])
    self.assertEqual(
      search["grid"],
      {**SMOKE_GRID, "num_steps": SMOKE_STEPS, "eval_interval": 10, "seed": 0},
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
    best = min(converged, key=lambda r: r["best_val_loss"])
    self.assertEqual(search["best"], best)

    repeats = json.loads(written[constants.REPEATS_JSON])
    for key in ("initial_learning_rate", "discount_step", "factor"):
      self.assertEqual(repeats["setting"][key], best[key], key)
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

    # The same search again: every grid run is already done, none is re-run.
    self.assert_succeeded(again)
    self.assertIn("resuming the search", again.stdout)
    self.assertIn("2 runs already done", again.stdout)
    self.assertEmpty(GRID_PROGRESS.findall(again.stdout), again.stdout)
    self.assertNotIn("repeat seed", again.stdout)
    resumed = _read_json(os.path.join(self.search_root, constants.SEARCH_JSON))
    # Identical runs, down to their recorded durations: nothing was re-run.
    self.assertEqual(resumed["runs"], runs)
    self.assertEqual(resumed["best"], best)
    self.assertEqual(
      _read(os.path.join(self.search_root, constants.REPEATS_JSON)),
      written[constants.REPEATS_JSON],
    )

  def test_bad_inputs_fail_with_one_error_line_and_keep_existing_files(self):
    for name, proc in self.bad_results.items():
      with self.subTest(name):
        _, root, _, words = BAD_INPUTS[name]
        self.assertNotIn("Traceback", proc.stderr)
        self.assertNotIn("In call to configurable", proc.stderr)
        self.assertEqual(proc.returncode, subprocesses.EXIT_USER_ERROR, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        self.assertNotEmpty(lines)
        self.assertStartsWith(lines[-1], "error: ")
        for word in words:
          self.assertIn(word, lines[-1])
        if root == "new":
          for result in EARLIER_RESULTS:
            path = os.path.join(self.scratch, name, result)
            self.assertEqual(_read(path), SENTINEL, path)
    self.assertEqual(_read(self.a_file), SENTINEL)
