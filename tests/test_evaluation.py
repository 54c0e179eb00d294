"""Tests of the evaluation protocol, its report and the `evaluate` binary.

`setUpClass` trains a tiny real controller (one PPO episode on the digits
smoke setting) and exports it, runs `evaluation.evaluate` once (3 runs per
method, 2 peers) and `evaluation.transfer` once (a task set with one held-out
setting, 2 runs, reusing that baseline search); the tests check what they wrote against
independent computations (NumPy, scipy). Binary error cases run as
subprocesses alongside. The tfds data directory is a private temporary one.
"""

from __future__ import annotations

import concurrent.futures
import csv
import os
import shutil
import tempfile

import gin
import numpy as np
import pytest
import scipy.stats
import subprocesses
import tensorflow as tf

from lr_controller import constants, gin_utils, io_utils, testing
from lr_controller.control import controller_training
from lr_controller.control import env as env_lib
from lr_controller.errors import UserError
from lr_controller.judge import (
  adaptive_peers,
  comparison,
  costs,
  evaluation,
  method_runs,
  replay,
  report,
)
from lr_controller.trainee import schedules
from lr_controller.trainee import trainee as trainee_lib

SMOKE = ["controller/digits.gin", "smoke.gin"]
SMOKE_BINDINGS = ["create_agent.num_epochs=2"]
NUM_RUNS = 3
PEERS = ("cosine", "reduce_on_plateau")
PEER_LEARNING_RATES = (0.1, 0.01)
UNTUNED = ("constant", "cosine")
UNTUNED_NAMES = [evaluation.UNTUNED_PREFIX + name for name in UNTUNED]
# One held-out setting (the shipped tasks/digits_transfer.gin has two; its
# parsing is tested on its own): another optimizer, batch size and initial lr,
# and another controller interface than the policy's, which the transfer
# ignores (the policy's metadata defines it).
TASK_SET = """
task_set.name = 'test_transfer'
task_set.train = [{'name': 'digits/lenet/sgd', 'gin_files': ['controller/digits.gin']}]
task_set.test = [
  {
    'name': 'digits/lenet/adam',
    'gin_files': ['controller/digits.gin'],
    'gin_bindings': [
      "make_optimizer.name = 'adam'",
      'load_data.batch_size = 50',
      'create_environment.initial_learning_rates = [0.001]',
      "create_environment.feature_names = ['train_loss', 'val_loss']",
      'create_environment.action_interval = 5',
      'create_environment.max_factor = 3.0',
    ],
  },
]
"""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _parse(extra_bindings=()):
  gin_utils.parse_gin(SMOKE, [*SMOKE_BINDINGS, *extra_bindings], finalize=False)


def _quiet(message: str) -> None:
  del message


def _table_rows(markdown: str) -> dict[str, list[str]]:
  """Method name -> cells of the first table's rows in report.md."""
  rows = {}
  for line in markdown.splitlines():
    if line.startswith("| ") and not line.startswith(("| Method", "|---")):
      cells = [c.strip() for c in line.strip("|").split("|")]
      rows.setdefault(cells[0], cells)
  return rows


class DivergedRunsTest(tf.test.TestCase):
  """A diverging run of every method is a record marked diverged, never a crash."""

  def _trainee(self):
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8, 8, 1))
    x = tf.keras.layers.Flatten()(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(10, name="logits")(x))
    optimizer = trainee_lib.make_optimizer("sgd", learning_rate=0.1)
    return trainee_lib.Trainee(model, optimizer, testing.tiny_data())

  def _check(self, record):
    self.assertTrue(record["diverged"], record)
    self.assertTrue(
      all(lr is None or np.isfinite(lr) for lr in record["learning_rates"])
    )
    io_utils.write_json(os.path.join(self.create_tempdir().full_path, "r.json"), record)

  def test_every_method_records_a_diverged_run(self):
    trainee = self._trainee()
    setting = {"initial_learning_rate": 1e7, "discount_step": 10, "factor": 0.5}
    self._check(evaluation.run_step_decay(trainee, setting, 0, 30, 10))
    for name in adaptive_peers.PEER_NAMES:
      with self.subTest(name):
        self._check(
          evaluation.run_peer(
            name, trainee, 1e7, seed=0, num_steps=30, eval_interval=10
          )
        )

  def test_a_non_finite_rate_is_recorded_as_none(self):
    record = method_runs._run_record(
      0,
      0.1,
      steps=[10, 20],
      val_losses=[1.0, None],
      learning_rates=[0.1, float("nan")],
      diverged=True,
    )
    self.assertEqual(record["learning_rates"], [0.1, None])


@pytest.mark.slow
class EvaluationTest(tf.test.TestCase):
  """One real evaluation and one transfer on the smoke setting (~60 s)."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.scratch = tempfile.mkdtemp(prefix="lrc_test_evaluation_")
    cls.tfds_dir = os.path.join(cls.scratch, "tensorflow_datasets")
    cls._old_tfds = os.environ.get("TFDS_DATA_DIR")
    os.environ["TFDS_DATA_DIR"] = cls.tfds_dir
    pool = concurrent.futures.ThreadPoolExecutor(2)
    kwargs = dict(cwd=cls.scratch, tfds_dir=cls.tfds_dir, timeout=300)
    # A plain process (it fails before importing TensorFlow), then a forked one.
    missing = pool.submit(
      subprocesses.run, "evaluate", f"--root_dir={cls.scratch}/no_policy", **kwargs
    )
    not_a_policy = pool.submit(
      subprocesses.run_forked,
      "evaluate",
      f"--root_dir={cls.scratch}/bad_policy",
      f"--policy_dir={cls.scratch}",
      *(f"--gin_file={f}" for f in SMOKE),
      **kwargs,
    )
    try:
      _parse()
      controller_root = os.path.join(cls.scratch, "controller")
      os.makedirs(controller_root)
      trained = controller_training.train_controller(
        controller_root, seed=0, num_episodes=1, selection_runs=2, say=_quiet
      )
      cls.policy_dir = trained["policy_dir"]

      _parse()
      cls.eval_root = os.path.join(cls.scratch, "eval")
      os.makedirs(cls.eval_root)
      cls.progress = []
      cls.results = evaluation.evaluate(
        cls.eval_root,
        cls.policy_dir,
        seed=0,
        num_runs=NUM_RUNS,
        peers=PEERS,
        peer_learning_rates=PEER_LEARNING_RATES,
        say=cls.progress.append,
        untuned_schedules=UNTUNED,
      )

      cls.transfer_root = os.path.join(cls.scratch, "transfer")
      os.makedirs(cls.transfer_root)
      task_file = os.path.join(cls.scratch, "task_set.gin")
      with open(task_file, "w") as f:
        f.write(TASK_SET)
      cls.transfer_results = evaluation.transfer(
        cls.transfer_root,
        cls.policy_dir,
        task_file,
        extra_gin_files=["smoke.gin"],
        extra_gin_bindings=SMOKE_BINDINGS,
        num_runs=2,
        baseline_search_path=os.path.join(cls.eval_root, constants.BASELINE_SEARCH_DIR),
        peers=(),
        say=_quiet,
      )
      cls.missing_policy = missing.result()
      cls.not_a_policy = not_a_policy.result()
    finally:
      pool.shutdown(wait=True)
      gin.clear_config()

  @classmethod
  def tearDownClass(cls):
    if cls._old_tfds is None:
      os.environ.pop("TFDS_DATA_DIR", None)
    else:
      os.environ["TFDS_DATA_DIR"] = cls._old_tfds
    shutil.rmtree(cls.scratch, ignore_errors=True)
    super().tearDownClass()

  def methods(self, results=None) -> dict[str, dict]:
    setting = (results or self.results)["settings"][0]
    return {m["name"]: m for m in setting["methods"]}

  # ---- Outputs. ----

  def test_writes_report_results_and_figures(self):
    for name in (constants.REPORT_MD, constants.RESULTS_JSON, constants.RESULTS_CSV):
      path = os.path.join(self.eval_root, name)
      self.assertTrue(os.path.isfile(path), path)
      self.assertGreater(os.path.getsize(path), 0, path)
    for name in (constants.FIGURE1_PNG, constants.FIGURE2_PNG):
      with open(os.path.join(self.eval_root, name), "rb") as f:
        content = f.read()
      self.assertTrue(content.startswith(PNG_MAGIC), name)
      self.assertGreater(len(content), 5000, name)
    stored = io_utils.read_json(os.path.join(self.eval_root, constants.RESULTS_JSON))
    self.assertEqual(stored["mode"], "evaluate")
    self.assertEqual(
      [m["name"] for m in stored["settings"][0]["methods"]],
      [
        evaluation.BASELINE,
        evaluation.CONTROLLER,
        replay.REPLAY,
        *UNTUNED_NAMES,
        *PEERS,
      ],
    )
    markdown = _read(os.path.join(self.eval_root, constants.REPORT_MD))
    self.assertEqual(
      set(_table_rows(markdown)),
      {
        evaluation.BASELINE,
        evaluation.CONTROLLER,
        replay.REPLAY,
        *UNTUNED_NAMES,
        *PEERS,
      },
    )
    self.assertIn("**Controller or schedule?**", markdown)
    self.assertIn("**Against no tuning.**", markdown)
    for words in ("N = 3", "ttest_ind", "equal_var=True", "500000..500002"):
      self.assertIn(words, markdown)
    self.assertIn("| Method | Paid once | Steps |", markdown)

  def test_cost_of_every_method(self):
    methods = self.methods()
    search = io_utils.read_json(
      os.path.join(self.eval_root, constants.BASELINE_SEARCH_DIR, constants.SEARCH_JSON)
    )
    baseline = methods[evaluation.BASELINE]["cost"]["setup"]
    self.assertEqual(baseline["runs"], len(search["runs"]))
    self.assertEqual(baseline["steps"], sum(r["steps_done"] for r in search["runs"]))
    self.assertAlmostEqual(
      baseline["seconds"], sum(r["seconds"] for r in search["runs"]), places=2
    )
    for peer in PEERS:
      setup = methods[peer]["cost"]["setup"]
      self.assertEqual(setup["runs"], len(PEER_LEARNING_RATES))
      self.assertGreater(setup["steps"], 0)
    # One training episode of 20 steps, then one selection on 2 validation
    # trainees at the end.
    controller = methods[evaluation.CONTROLLER]["cost"]["setup"]
    self.assertEqual(controller["runs"], 1)
    self.assertEqual(controller["steps"], 20 + 2 * 20)
    self.assertGreater(controller["seconds"], 0)
    for method in methods.values():
      per_run = method["cost"]["per_run"]
      self.assertEqual(
        per_run["steps"], np.mean([r["steps"][-1] for r in method["runs"]])
      )
      self.assertAlmostEqual(
        per_run["seconds"], np.mean([r["seconds"] for r in method["runs"]]), places=2
      )

  def test_replay_plays_the_controllers_geometric_mean_path(self):
    methods = self.methods()
    controller = methods[evaluation.CONTROLLER]
    replayed = methods[replay.REPLAY]
    self.assertEqual(replayed["kind"], "replay")
    self.assertEqual(
      replayed["cost"]["setup"], costs.nothing_paid("none: the controller's mean path")
    )
    self.assertEqual(replayed["seeds"], controller["seeds"])
    rates = np.array([r["learning_rates"] for r in controller["runs"]], np.float64)
    expected = np.exp(np.log(rates).mean(axis=0))  # Per decision, over runs.
    for run in replayed["runs"]:
      # The replay validates every 10 steps; each chunk is one decision's.
      self.assertAllClose(run["learning_rates"][-len(expected) :], expected, rtol=1e-5)
    spread = controller["rate_path_spread"]
    self.assertAlmostEqual(
      spread["log_rate_std_mean"], np.log(rates).std(axis=0, ddof=1).mean(), places=6
    )
    paired = replayed["vs_controller"]["test_loss"]["paired"]
    self.assertEqual(paired["n_pairs"], NUM_RUNS)

  def test_untuned_schedules_start_where_each_controller_run_starts(self):
    # The setting keeps its own name (a loop over the untuned schedules once
    # renamed it after the last one).
    self.assertEqual(self.results["settings"][0]["name"], "lrc_digits/lenet5/sgd")
    methods = self.methods()
    controller = methods[evaluation.CONTROLLER]
    starts = [r["initial_learning_rate"] for r in controller["runs"]]
    for name, untuned in zip(UNTUNED_NAMES, UNTUNED):
      method = methods[name]
      self.assertEqual(method["kind"], "untuned")
      self.assertEqual(method["seeds"], controller["seeds"])
      # Nothing searched.
      self.assertEqual(method["cost"]["setup"], costs.nothing_paid("none: untuned"))
      for run, lr0 in zip(method["runs"], starts):
        # The schedule from where the controller began; a record holds the
        # rate of the last step of each 10-step chunk.
        expected = schedules.schedule_values(
          schedules.make_schedule(untuned, lr0, 20), 20
        )[9::10]
        self.assertAllClose(run["learning_rates"], expected, rtol=1e-5)
      paired = method["vs_controller"]["test_loss"]["paired"]
      self.assertEqual(paired["n_pairs"], NUM_RUNS)
    # The controller against the tuned peer of lowest mean test loss.
    versus = controller["vs_best_peer"]
    best = min(PEERS, key=lambda p: methods[p]["test_loss_mean"])
    self.assertEqual(versus["name"], best)
    self.assertEqual(versus["test_loss"]["paired"]["n_pairs"], NUM_RUNS)

  def test_progress_names_method_and_seed(self):
    lines = [line for line in self.progress if "seed 2/3" in line]
    # Step decay, controller, its replay, the untuned schedules, the peers.
    self.assertLen(lines, 3 + len(UNTUNED) + len(PEERS))
    self.assertTrue(any(evaluation.CONTROLLER in line for line in lines))

  # ---- Protocol. ----

  def test_every_method_uses_the_same_evaluation_seeds(self):
    expected = [evaluation.EVAL_SEED_OFFSET + i for i in range(NUM_RUNS)]
    self.assertEqual(self.results["settings"][0]["seeds"], expected)
    # What else sets the runs' numbers is recorded with them.
    numerics = self.results["protocol"]["numerics"]
    self.assertEqual(numerics["tensorflow"], tf.__version__)
    self.assertIn("intra_op_threads", numerics)
    for name, method in self.methods().items():
      self.assertEqual([r["seed"] for r in method["runs"]], expected, name)
    # Disjoint from every seed controller training uses (episode k of seed s).
    training = {s * 1_000_003 + k for s in range(100) for k in range(10_000)}
    self.assertFalse(training & set(expected))

  def test_runs_are_complete_and_controller_is_greedy(self):
    num_steps = self.results["settings"][0]["num_steps"]
    for name, method in self.methods().items():
      for run in method["runs"]:
        self.assertEqual(run["steps"][-1], num_steps, name)
        self.assertIsInstance(run["test_loss"], float, name)
        self.assertBetween(run["test_accuracy"], 0.0, 1.0)
    # The greedy policy is deterministic: the same seed gives the same schedule.
    controller = self.methods()[evaluation.CONTROLLER]
    _parse()
    policy, metadata = evaluation.load_policy(self.policy_dir)
    env = evaluation.make_environment(
      metadata,
      trainee_fn=lambda seed: evaluation.build_evaluation_trainee(
        evaluation.EVAL_SEED_OFFSET
      ),
    )
    again = evaluation.run_controller(env, policy, controller["runs"][0]["seed"])
    self.assertAllClose(
      again["learning_rates"], controller["runs"][0]["learning_rates"]
    )

  def test_evaluation_trainees_share_weights_and_mini_batches(self):
    _parse()
    tf.random.set_seed(123)
    second = evaluation.build_evaluation_trainee(7)
    tf.random.uniform([3])  # Whatever ran in between.
    third = evaluation.build_evaluation_trainee(7)
    for trainee in (second, third):
      trainee.reset(500_000, 0.05)
      trainee.train(4)
    self.assertAllClose(second.model.get_weights(), third.model.get_weights())
    # The global seed at load time no longer matters; the run's seed does.
    tf.random.set_seed(99)
    other = trainee_lib.build_trainee(seed=7)
    other.reset(500_000, 0.05)
    other.train(4)
    self.assertAllClose(second.model.get_weights(), other.model.get_weights())
    other.reset(500_001, 0.05)
    other.train(4)
    self.assertNotAllClose(second.model.get_weights(), other.model.get_weights())

  def test_mean_and_sample_std(self):
    for name, method in self.methods().items():
      for metric in comparison.METRICS:
        values = [r[metric] for r in method["runs"]]
        self.assertAlmostEqual(method[f"{metric}_mean"], np.mean(values), msg=name)
        self.assertAlmostEqual(
          method[f"{metric}_std"], np.std(values, ddof=1), msg=name
        )

  def test_p_values_are_scipy_ttest_on_stored_runs(self):
    stored = io_utils.read_json(os.path.join(self.eval_root, constants.RESULTS_JSON))
    methods = {m["name"]: m for m in stored["settings"][0]["methods"]}
    baseline = methods.pop(evaluation.BASELINE)
    self.assertIsNone(baseline["vs_baseline"])
    with open(os.path.join(self.eval_root, constants.RESULTS_CSV)) as f:
      rows = {row["method"]: row for row in csv.DictReader(f)}
    for name, method in methods.items():
      for metric in comparison.METRICS:
        expected = scipy.stats.ttest_ind(
          [r[metric] for r in method["runs"]],
          [r[metric] for r in baseline["runs"]],
          equal_var=True,
        )
        test = method["vs_baseline"][metric]
        self.assertAlmostEqual(test["p"], expected.pvalue, places=12, msg=name)
        self.assertAlmostEqual(test["t"], expected.statistic, places=12, msg=name)
        self.assertEqual(test["significant"], expected.pvalue < 0.05)
        self.assertAlmostEqual(float(rows[name][f"{metric}_p"]), expected.pvalue)
        self.assertEqual(rows[name][f"{metric}_significant"], str(test["significant"]))

  def test_verdict_iff_p_below_005_in_report(self):
    markdown = _read(os.path.join(self.eval_root, constants.REPORT_MD))
    rows = _table_rows(markdown)
    for name, method in self.methods().items():
      loss_cell, accuracy_cell = rows[name][2], rows[name][4]
      for cell, metric in ((loss_cell, "test_loss"), (accuracy_cell, "test_accuracy")):
        test = (method["vs_baseline"] or {}).get(metric, {})
        significant = test.get("p") is not None and test["p"] < 0.05
        marked = cell.endswith(("(better)", "(worse)"))
        self.assertEqual(marked, significant, f"{name} {metric}: {cell}")

  def test_better_and_worse_on_synthetic_significant_differences(self):
    def runs(losses):
      return [
        {"seed": i, "test_loss": x, "test_accuracy": 1 - x / 10, "diverged": False}
        for i, x in enumerate(losses)
      ]

    baseline = runs([1.00, 1.10, 1.05, 0.95])
    better = runs([0.50, 0.55, 0.45, 0.52])
    similar = runs([1.02, 1.08, 0.97, 1.01])
    worse = runs([2.00, 2.10, 1.90, 2.05])
    methods = [
      evaluation.summarize_method("step_decay", "baseline", baseline, None),
      evaluation.summarize_method("better", "peer", better, baseline),
      evaluation.summarize_method("similar", "peer", similar, baseline),
      evaluation.summarize_method("worse", "peer", worse, baseline),
    ]
    p_better = scipy.stats.ttest_ind(
      [r["test_loss"] for r in better], [r["test_loss"] for r in baseline]
    ).pvalue
    self.assertLess(p_better, 0.05)
    rows = _table_rows(report.method_table({"methods": methods}))
    # Lower loss and higher accuracy are better.
    self.assertTrue(rows["better"][2].endswith("(better)"))
    self.assertTrue(rows["better"][4].endswith("(better)"))
    self.assertTrue(rows["worse"][2].endswith("(worse)"))
    self.assertTrue(rows["worse"][4].endswith("(worse)"))
    for name in ("similar", "step_decay"):
      self.assertFalse(rows[name][2].endswith(")"), rows[name])
    self.assertEqual(rows["better"][3], report.format_p(p_better))

  def test_too_few_runs_give_no_p_value(self):
    test = comparison.t_test([1.0], [2.0, 2.1])
    self.assertIsNone(test["p"])
    self.assertFalse(test["significant"])

  # ---- Transfer. ----

  def test_transfer_applies_the_held_out_setting(self):
    results = self.transfer_results
    self.assertEqual(results["mode"], "transfer")
    self.assertEqual(results["task_set"]["source"], "digits/lenet/sgd")
    (adam,) = results["settings"]
    self.assertEqual(adam["name"], "digits/lenet/adam")
    self.assertEqual(adam["description"]["optimizer"], "adam")
    self.assertEqual(adam["description"]["batch_size"], 50)
    self.assertEqual(adam["description"]["controller_initial_learning_rates"], [0.001])
    # The SOURCE setting's baseline, reused, not searched again.
    self.assertEqual(
      results["baseline"], {**self.results["baseline"], "tuned_on": "digits/lenet/sgd"}
    )
    self.assertFalse(
      os.path.exists(os.path.join(self.transfer_root, constants.BASELINE_SEARCH_DIR))
    )
    methods = {m["name"]: m for m in adam["methods"]}
    # The policy's decision interval (10), not the setting's (5); a 2-feature
    # observation would not have fitted the policy at all.
    for run in methods[evaluation.CONTROLLER]["runs"]:
      self.assertEqual(run["steps"], [10, 20])
    self.assertEqual(
      set(methods), {evaluation.BASELINE, evaluation.CONTROLLER, replay.REPLAY}
    )
    baseline, controller = methods[evaluation.BASELINE], methods[evaluation.CONTROLLER]
    self.assertEqual(controller["seeds"], baseline["seeds"])
    self.assertEqual({r["initial_learning_rate"] for r in controller["runs"]}, {0.001})
    self.assertEqual(
      {r["initial_learning_rate"] for r in baseline["runs"]},
      {self.results["baseline"]["setting"]["initial_learning_rate"]},
    )
    operative = _read(os.path.join(self.transfer_root, constants.OPERATIVE_GIN))
    self.assertIn("# ==== setting digits/lenet/adam", operative)
    self.assertIn("'adam'", operative)
    for name in (constants.REPORT_MD, constants.FIGURE1_PNG, constants.FIGURE2_PNG):
      self.assertIn(name, os.listdir(self.transfer_root))

  # ---- Errors. ----

  def test_another_interface_in_gin_runs_the_policys(self):
    # Trained on the paper's features, a decision every 10 steps and factors
    # up to 2; the gin config binds others, which the policy's metadata
    # overrides.
    _parse(
      [
        "create_environment.feature_names = ['train_loss', 'val_loss']",
        "create_environment.action_interval = 5",
        "create_environment.max_factor = 3.0",
        "create_environment.max_learning_rate = 0.5",
      ]
    )
    policy, metadata = evaluation.load_policy(self.policy_dir)
    env = evaluation.make_environment(metadata)
    self.assertEqual(env.feature_names, policy.feature_names)
    self.assertLen(env.feature_names, 8)
    self.assertEqual(env.action_interval, 10)
    self.assertAlmostEqual(env.max_log_factor, np.log(2.0))
    self.assertEqual(env.max_learning_rate, policy.max_learning_rate)
    # Choosing between controllers on validation runs leaves the test split unread.
    unread = evaluation.make_environment(metadata, evaluate_test=False)
    run = evaluation.run_controller(unread, policy, seed=3)
    self.assertIsNone(run["test_loss"])
    self.assertIsNotNone(run["best_val_loss"])
    root = self.create_tempdir().full_path
    results = evaluation.evaluate(
      root,
      self.policy_dir,
      num_runs=1,
      baseline_search_path=os.path.join(self.eval_root, constants.BASELINE_SEARCH_DIR),
      peers=(),
      say=_quiet,
    )
    (record,) = results["settings"]
    self.assertEqual(record["eval_interval"], 10)
    controller = {m["name"]: m for m in record["methods"]}[evaluation.CONTROLLER]
    self.assertEqual(controller["runs"][0]["steps"], [10, 20])
    # The same greedy schedule as under the policy's own configuration.
    self.assertAllClose(
      controller["runs"][0]["learning_rates"],
      self.methods()[evaluation.CONTROLLER]["runs"][0]["learning_rates"],
    )

  def test_a_setting_that_cannot_run_the_policy_is_a_one_line_error(self):
    # 25 steps cannot be cut into the policy's decisions of 10 steps.
    _parse(["create_environment.num_steps = 25"])
    root = self.create_tempdir().full_path
    with self.assertRaises(UserError) as raised:
      evaluation.evaluate(root, self.policy_dir, num_runs=2, peers=(), say=_quiet)
    # gin appends "In call to configurable ..." lines; binaries print the first.
    message = str(raised.exception).splitlines()[0]
    self.assertIn("cannot run the controller (a decision every 10 steps", message)
    self.assertIn("num_steps (25) must be a multiple of action_interval (10)", message)
    self.assertEqual(os.listdir(root), [])  # Before any training.

  def test_a_bound_trainee_fn_is_a_one_line_error_before_any_training(self):
    # The evaluation trains Keras trainees for every method: the noisy
    # quadratic of a bound trainee_fn would be silently replaced.
    _parse(["create_environment.trainee_fn = @build_noisy_quadratic"])
    root = self.create_tempdir().full_path
    with self.assertRaises(UserError) as raised:
      evaluation.evaluate(root, self.policy_dir, num_runs=2, peers=(), say=_quiet)
    # gin appends "In call to configurable ..." lines; binaries print the first.
    self.assertEqual(
      str(raised.exception).splitlines()[0],
      "create_environment.trainee_fn is bound to @build_noisy_quadratic, but the "
      "evaluation trains the gin-configured Keras trainee (build_trainee) for "
      "every method: judge on a Keras setting's gin file, without that binding",
    )
    self.assertEqual(os.listdir(root), [])

  def test_bad_arguments_are_user_errors(self):
    _parse()
    root = self.create_tempdir().full_path
    with self.assertRaisesRegex(UserError, "is not a controller policy"):
      evaluation.evaluate(root, root, say=_quiet)
    with self.assertRaisesRegex(UserError, "unknown peer"):
      evaluation.evaluate(root, self.policy_dir, peers=("sgdr",), say=_quiet)
    with self.assertRaisesRegex(UserError, "unknown untuned schedule"):
      evaluation.evaluate(
        root, self.policy_dir, untuned_schedules=("sgdr",), say=_quiet
      )
    with self.assertRaisesRegex(UserError, "num_runs"):
      evaluation.evaluate(root, self.policy_dir, num_runs=0, say=_quiet)
    with self.assertRaisesRegex(UserError, "not found"):
      evaluation.evaluate(
        root, self.policy_dir, baseline_search_path=f"{root}/nope.json", say=_quiet
      )
    task = os.path.join(root, "task.gin")
    with open(task, "w") as f:
      f.write("task_set.name = 'broken'\ntask_set.train = []\ntask_set.test = []\n")
    with self.assertRaisesRegex(UserError, "at least one setting"):
      evaluation.load_task_set(task)

  def test_binary_without_policy_dir_fails_in_one_line(self):
    proc = self.missing_policy
    self.assertEqual(proc.returncode, subprocesses.EXIT_USER_ERROR, proc.stderr)
    self.assertNotIn("Traceback", proc.stderr)
    lines = proc.stderr.strip().splitlines()
    self.assertLen(lines, 1, proc.stderr)
    self.assertRegex(lines[0], r"^error: --policy_dir is required")

  def test_binary_with_a_directory_that_is_no_policy_fails_in_one_line(self):
    proc = self.not_a_policy
    self.assertEqual(proc.returncode, subprocesses.EXIT_USER_ERROR, proc.stderr)
    self.assertNotIn("Traceback", proc.stderr)
    lines = proc.stderr.strip().splitlines()
    self.assertTrue(lines and "is not a controller policy" in lines[-1], lines[-1:])
    self.assertTrue(lines[-1].startswith("error: "))
    self.assertLen([line for line in lines if line.startswith("error")], 1)


def test_evaluation_seeds_avoid_training_seeds():
  seeds = evaluation.evaluation_seeds(3, 10)
  assert seeds == [3 * 1_000_003 + 500_000 + i for i in range(10)]
  # Training seed 3's episodes are 3 * 1_000_003 + k: k would need to be 500,000+.
  assert all(s % 1_000_003 >= 500_000 for s in seeds)
  with pytest.raises(UserError):
    evaluation.evaluation_seeds(-1, 10)


def _read(path: str) -> str:
  with open(path) as f:
    return f.read()


@pytest.mark.parametrize(
  "path, source_data, held_out",
  [
    (
      "tasks/digits_transfer.gin",
      "lrc_digits",
      {
        "digits/lenet/adam lr0=0.001": ("adam", 100),
        "digits/lenet/sgd batch=50 lr0=0.003": ("sgd", 50),
      },
    ),
    (
      "tasks/digits_optimizers.gin",
      "lrc_digits",
      {
        "digits/lenet/rmsprop lr0=0.001": ("rmsprop", 100),
        "digits/lenet/adam lr0=0.001": ("adam", 100),
      },
    ),
    (
      "tasks/paper_transfer.gin",
      "cifar10",
      {
        "fashion_mnist/lenet/sgd": ("sgd", 1000),
        "fashion_mnist/resnet18/sgd": ("sgd", 1000),
      },
    ),
  ],
)
def test_shipped_task_sets_apply_their_settings(path, source_data, held_out):
  tasks = evaluation.load_task_set(path)
  evaluation.apply_setting(tasks.train[0], tasks)
  assert gin.query_parameter("load_data.name") == source_data
  assert [s.name for s in tasks.test] == list(held_out)
  for setting in tasks.test:
    evaluation.apply_setting(setting, tasks)
    optimizer, batch_size = held_out[setting.name]
    assert gin.query_parameter("make_optimizer.name") == optimizer
    assert gin.query_parameter("load_data.batch_size") == batch_size
    # Every setting's environment is configured (decisions every 10 steps).
    assert env_lib.create_environment().action_interval == 10
