"""End-to-end tests of controller training: resume after a kill, export, bad input.

These run `train_controller` as a subprocess on the noisy quadratic task (a
cheap trainee), so each run costs mostly TensorFlow start-up, tracing and
the export. One run is a plain `python -m`; the others are forked from one
import (`subprocesses.run_forked`). Three classes, so that pytest-xdist's
workers can take them apart.
"""

import concurrent.futures
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest
import subprocesses
import tensorflow as tf

from lr_controller import constants
from lr_controller import controller as controller_lib

_TOY = [
  "--gin_file=controller/noisy_quadratic.gin",
  "--gin_bindings=create_environment.num_steps=40",
  "--gin_bindings=create_agent.num_epochs=2",
  # No validation runs (train_controller's default is 20): every export is
  # greedy_policy. The run that tests selection binds its own.
  "--gin_bindings=train_controller.selection_runs=0",
]
_BINARY = "train_controller"


def _run(root_dir, *args, forked=True):
  """Runs train_controller in `root_dir`: forked, or as a plain process."""
  run = subprocesses.run_forked if forked else subprocesses.run
  return run(_BINARY, f"--root_dir={root_dir}", *args, timeout=300)


def _episodes(root_dir):
  path = os.path.join(root_dir, constants.EPISODES_JSONL)
  with open(path) as f:
    return [json.loads(line) for line in f]


@pytest.mark.slow
class KillAndResumeTest(tf.test.TestCase):
  def test_kill_mid_run_then_resume_never_repeats_or_loses_an_episode(self):
    root = self.create_tempdir().full_path
    process = subprocesses.start_forked(
      _BINARY, f"--root_dir={root}", *_TOY, "--num_episodes=50"
    )
    path = os.path.join(root, constants.EPISODES_JSONL)
    deadline = time.time() + 240
    try:
      while time.time() < deadline:
        if os.path.exists(path) and len(open(path).readlines()) >= 2:
          break
        time.sleep(0.2)
      else:
        self.fail("no two episodes within the deadline")
    finally:
      process.send_signal(signal.SIGKILL)
      process.wait()
    killed_at = len(_episodes(root))
    self.assertGreaterEqual(killed_at, 2)
    # Lines are appended before the checkpoint of their update: a kill between
    # the two leaves lines that the resumed run drops and runs again.
    had_checkpoint = bool(
      glob.glob(os.path.join(root, "train", "checkpoints", "ckpt-*.index"))
    )
    # Beyond the kill whenever it happened, so the resumed run has work to do.
    target = killed_at + 2
    result = _run(root, *_TOY, f"--num_episodes={target}")
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    rows = _episodes(root)
    self.assertEqual([r["episode"] for r in rows], list(range(target)))
    if had_checkpoint:
      self.assertIn("resuming from episode", result.stdout)
    self.assertIn(f"episode {target}/{target}", result.stdout)
    for row in rows:
      self.assertTrue(all(0 < lr <= 1.9 for lr in row["learning_rates"]))
    self.assertTrue(
      os.path.isdir(os.path.join(root, constants.TRAIN_DIR, constants.CHECKPOINTS_DIR))
    )
    self.assertTrue(os.path.exists(os.path.join(root, constants.OPERATIVE_GIN)))
    summaries = [
      f for f in os.listdir(os.path.join(root, constants.TRAIN_DIR)) if "tfevents" in f
    ]
    self.assertNotEmpty(summaries)

    # The exported greedy policy loads in a fresh process without tf_agents.
    policy_dir = os.path.join(root, constants.POLICIES_DIR, constants.GREEDY_POLICY_DIR)
    script = textwrap.dedent(
      f"""
        import json, sys
        import numpy as np
        import tensorflow as tf
        policy = tf.saved_model.load({policy_dir!r})
        meta = json.loads(policy.get_metadata().numpy())
        state = policy.get_initial_state(tf.constant(3))
        obs = tf.constant(np.random.default_rng(0).normal(size=(3, 8)) * 100, tf.float32)
        out = policy.action(obs, tf.constant([0, 1, 1]), state)
        assert "tf_agents" not in sys.modules, "tf_agents was imported"
        assert "tensorflow_probability" not in sys.modules, "tfp was imported"
        print(json.dumps({{"meta": meta, "action": out["action"].numpy().tolist()}}))
        """
    )
    loaded = subprocess.run(
      [sys.executable, "-c", script],
      capture_output=True,
      text=True,
      timeout=120,
      env=subprocesses.environment(),
    )
    self.assertEqual(loaded.returncode, 0, loaded.stderr[-2000:])
    out = json.loads(loaded.stdout.strip().splitlines()[-1])
    self.assertEqual(out["meta"]["episodes"], target)
    self.assertLen(out["meta"]["features"], 8)  # budget-aware toy config
    bound = out["meta"]["max_log_factor"]
    self.assertLen(out["action"], 3)
    self.assertTrue(all(-bound <= a <= bound for a in out["action"]))

    # An incompatible configuration in the same root_dir is refused, nothing lost.
    before = open(os.path.join(root, constants.EPISODES_JSONL)).read()
    other = _run(
      root,
      *_TOY,
      "--gin_bindings=create_agent.actor_network='lstm'",
      f"--num_episodes={target + 1}",
    )
    self.assertNotEqual(other.returncode, 0)
    self.assertIn("different configuration", other.stderr)
    self.assertNotIn("Traceback", other.stderr)
    self.assertEqual(open(os.path.join(root, constants.EPISODES_JSONL)).read(), before)

    # The finished run asked again: nothing to train, and the operative config
    # keeps the trainee's parameters (this call builds no trainee).
    operative_path = os.path.join(root, constants.OPERATIVE_GIN)
    operative = open(operative_path).read()
    self.assertIn("build_noisy_quadratic.", operative)
    again = _run(root, *_TOY, f"--num_episodes={target}")
    self.assertEqual(again.returncode, 0, again.stderr[-2000:])
    self.assertIn(f"{target} episodes already done", again.stdout)
    self.assertEqual(open(operative_path).read(), operative)


@pytest.mark.slow
class SameSeedTest(tf.test.TestCase):
  """Runs of one seed: again, resumed, on parallel environments, with exports."""

  # Keras initializers without a seed draw from NumPy's global generator:
  # unseeded, two runs of one command used to differ from the first action.
  # Exploration is seeded per (seed, episode, decision), so a run stopped
  # after its first update and resumed, collected on two parallel
  # environments, or exporting and selecting between updates, collects the
  # same episodes and trains the same updates. "a" runs as a plain process,
  # the others are forked (`subprocesses.run_forked`): a == b is also the
  # forked run being the run a user gets.
  RUNS = {
    # The plain process first: it starts while the forking process imports.
    "a": [["--num_episodes=4"]],
    "resumed": [["--num_episodes=2"], ["--num_episodes=4"]],
    # No episodes_per_update configured: one episode per environment, 2 like
    # the toy config's. Then resumed in this process, with 6 episodes.
    "parallel": [
      [
        "--num_episodes=4",
        "--num_parallel_envs=2",
        "--gin_bindings=train_controller.episodes_per_update=None",
      ],
      ["--num_episodes=6"],
    ],
    "b": [["--num_episodes=4"]],
    # Export, selection runs, checkpoints and summaries after every update
    # must not change what is trained.
    "exports": [
      [
        "--num_episodes=4",
        "--gin_bindings=train_controller.export_interval=2",
        "--gin_bindings=train_controller.selection_runs=2",
      ]
    ],
  }
  SEED = 3

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp(prefix="lrc_test_controller_training_")

    def run(name):
      """Each command's CompletedProcess and the episodes it left, up to a failure."""
      root = os.path.join(cls.tmp, name)
      done = []
      for flags in cls.RUNS[name]:
        result = _run(
          root,
          *_TOY,
          f"--seed={cls.SEED}",
          *flags,
          forked=name != "a",
        )
        done.append((result, None if result.returncode else _episodes(root)))
        if result.returncode:
          break
      return done

    # Two commands at a time (2 cores), the chains of two early.
    subprocesses.prepare_forks()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
      cls.done = dict(zip(cls.RUNS, pool.map(run, cls.RUNS)))

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp, ignore_errors=True)
    super().tearDownClass()

  def results(self, name):
    """The run's commands' (CompletedProcess, episodes after it), all succeeded."""
    done = self.done[name]
    for result, _ in done:
      self.assertEqual(result.returncode, 0, f"{name}: {result.stderr[-2000:]}")
    self.assertLen(done, len(self.RUNS[name]))
    return done

  def four_episodes(self, name):
    """(stdout, episodes) of the run's command that reached 4 episodes."""
    for (result, episodes), flags in zip(self.results(name), self.RUNS[name]):
      if "--num_episodes=4" in flags:
        return result.stdout, episodes
    raise AssertionError(f"{name} has no command of 4 episodes")

  def test_same_seed_gives_the_same_run_resumed_or_parallel(self):
    done = {name: self.four_episodes(name) for name in self.RUNS}
    said = {name: stdout for name, (stdout, _) in done.items()}
    rows = {name: episodes for name, (_, episodes) in done.items()}
    self.assertIn("resuming from episode 2", said["resumed"])

    def key(name):
      return [(r["learning_rates"], r["ppo_loss"]) for r in rows[name]]

    self.assertEqual(key("a"), key("b"))
    self.assertEqual(key("a"), key("resumed"))
    self.assertEqual(key("a"), key("exports"))
    for mine, theirs in zip(rows["a"], rows["parallel"]):
      self.assertAllClose(mine["learning_rates"], theirs["learning_rates"], rtol=1e-5)
    # Different episodes explore differently (frozen noise repeated one
    # sequence of factors in every episode of a run).
    first_factors = {tuple(r["learning_rates"][:3]) for r in rows["a"]}
    self.assertLen(first_factors, 4)

    # Every judged policy is kept (last_policy_NNNNNN), and greedy_policy is
    # the judged one with the lowest selection score.
    root = os.path.join(self.tmp, "exports")
    policies = os.path.join(root, constants.POLICIES_DIR)
    self.assertEqual(
      sorted(os.listdir(policies)),
      [
        constants.GREEDY_POLICY_DIR,
        constants.GREEDY_POLICY_DIR + "_000002",
        constants.LAST_POLICY_DIR,
        constants.LAST_POLICY_DIR + "_000002",
        constants.LAST_POLICY_DIR + "_000004",
      ],
    )
    with open(os.path.join(root, constants.SELECTION_JSONL)) as f:
      selections = [json.loads(line) for line in f]
    self.assertEqual([s["episodes"] for s in selections], [2, 4])
    best = min(selections, key=lambda s: s["mean_best_val_loss"])["episodes"]

    def episodes_of(name):
      return controller_lib.load_policy(os.path.join(policies, name)).metadata[
        "episodes"
      ]

    self.assertEqual(episodes_of(constants.LAST_POLICY_DIR + "_000002"), 2)
    self.assertEqual(episodes_of(constants.LAST_POLICY_DIR), 4)
    self.assertEqual(episodes_of(constants.LAST_POLICY_DIR + "_000004"), 4)
    self.assertEqual(episodes_of(constants.GREEDY_POLICY_DIR), best)
    # The names read back to their episodes (what the selection study uses).
    copies = {
      name: constants.policy_copy_episode(name, constants.LAST_POLICY_DIR)
      for name in os.listdir(policies)
    }
    self.assertEqual(
      {name: e for name, e in copies.items() if e is not None},
      {
        constants.LAST_POLICY_DIR + "_000002": 2,
        constants.LAST_POLICY_DIR + "_000004": 4,
      },
    )

  def test_parallel_environments_train_on_every_episode_once(self):
    (parallel, rows), (resumed, after) = self.results("parallel")
    self.assertIn("2 environments in parallel processes", parallel.stdout)
    self.assertEqual([r["episode"] for r in rows], [0, 1, 2, 3])
    seed = self.SEED
    self.assertEqual(
      [r["seed"] for r in rows], [seed * 1_000_003 + k for k in range(4)]
    )
    self.assertTrue(all(r["update"] == "ok" for r in rows))
    self.assertEqual(len({r["ppo_loss"] for r in rows}), 2)  # Two updates.
    policy_dir = os.path.join(
      self.tmp, "parallel", constants.POLICIES_DIR, constants.GREEDY_POLICY_DIR
    )
    self.assertTrue(os.path.isdir(policy_dir))
    # Resuming with another number of environments goes on from the checkpoint.
    self.assertIn("resuming from episode 4", resumed.stdout)
    self.assertEqual([r["episode"] for r in after], list(range(6)))


class BadInputTest(tf.test.TestCase):
  def test_bad_input_is_one_line_and_non_zero(self):
    root = self.create_tempdir().full_path
    garbage = os.path.join(root, "bad.gin")
    with open(garbage, "w") as f:
      f.write("this is = = not gin\n")
    cases = [
      (["--gin_file=missing.gin"], "gin file not found"),
      ([f"--gin_file={garbage}"], "bad gin file"),
      (_TOY + ["--gin_bindings=nonexistent.x=1"], "nonexistent"),
      (_TOY + ["--num_episodes=0"], "num_episodes"),
      (_TOY + ["--num_parallel_envs=0"], "num_parallel_envs"),
      (
        _TOY
        + [
          "--num_parallel_envs=2",
          "--gin_bindings=train_controller.episodes_per_update=3",
        ],
        "must be a multiple of num_parallel_envs",
      ),
      (
        _TOY + ["--gin_bindings=create_environment.feature_names=['val_loss', 'nope']"],
        "nope",
      ),
      (_TOY + [f"--warm_start_dir={root}/nowhere"], "holds no controller run"),
    ]
    results = [_run(f"{root}/out{k}", *args) for k, (args, _) in enumerate(cases)]
    for (args, needle), result in zip(cases, results):
      self.assertNotEqual(result.returncode, 0, args)
      self.assertNotIn("Traceback", result.stderr, args)
      lines = [line for line in result.stderr.splitlines() if line.strip()]
      self.assertTrue(lines[-1].startswith("error:"), (args, lines[-3:]))
      self.assertIn(needle, lines[-1], args)


if __name__ == "__main__":
  tf.test.main()
