"""The Reverb actor-learner layout: its protocol in-process, then end to end.

The end-to-end tests run the real jobs as processes on loopback (1 reverb,
2 collectors, 1 learner) on the noisy quadratic task, kill a collector and the
learner mid-run, or the server, restart them, and check that training
completes with every episode exactly once and nothing left running. The jobs
are forked from one import (`subprocesses.start_forked`); `launch_local`
starts its own as plain processes. One class per layout, so
that pytest-xdist's workers can take them apart.
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import numpy as np
import pytest
import reverb
import subprocesses
import tensorflow as tf

from lr_controller import constants, gin_utils
from lr_controller.control import (
  controller_training,
  distributed,
  episode_collection,
  exploration,
)
from lr_controller.errors import UserError

_TOY_GIN = [
  "--gin_file=controller/noisy_quadratic.gin",
  "--gin_bindings=create_environment.num_steps=40",
  "--gin_bindings=create_agent.num_epochs=2",
  # No validation runs at the learner's export (train_controller's default
  # is 20): nothing here checks the selection.
  "--gin_bindings=train_controller.selection_runs=0",
]
_BINARY = "distributed"


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _error_lines(text):
  """The lines of a job's output that our binaries print for an error.

  A job stops with one `error: ...` line (`cli.run`), but its output is not
  Python's alone: Reverb's C++ threads log to the same stderr and can still
  write after that line (a writer noticing its closed stream while the
  process exits), so the error line is searched for, never taken to be the
  last one.
  """
  return [line for line in text.splitlines() if line.startswith("error: ")]


def _processes_mentioning(text):
  """Pids of live processes whose command line contains `text`."""
  found = []
  for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
      with open(f"/proc/{pid}/cmdline", "rb") as f:
        if text.encode() in f.read():
          found.append(int(pid))
    except OSError:
      continue
  return found


class ProtocolTest(tf.test.TestCase):
  """The learner's side against a scripted collector, all in this process."""

  def test_stale_and_duplicate_episodes_are_dropped_and_lost_tickets_reissued(self):
    gin_utils.parse_gin(
      ["controller/noisy_quadratic.gin"],
      ["create_environment.num_steps=40"],
      finalize=False,
    )
    server = distributed.make_server(port=_free_port(), seed=1)
    address = f"localhost:{server.port}"
    try:
      client = distributed.connect(address, timeout=10, say=print)
      config, seed = distributed.fetch_config(client)
      self.assertEqual(seed, 1)
      self.assertIn("build_noisy_quadratic", config)
      py_env, agent = controller_training.build_environment_and_agent(seed)
      said = []
      learner = distributed.ReverbCollector(
        agent, client, reissue_after_secs=2.0, say=said.append
      )
      policy = exploration.SeededPolicy(agent.collect_policy)
      # Collected up front (the learner's policy does not change during
      # `collect`), so the scripted collector answers at once and only the
      # lost ticket can run into the re-issue timeout, however slow the machine.
      collected = {
        k: episode_collection.collect_episodes([py_env], policy, [k], seed)[0]
        for k in (4, 5)
      }
      for episode in collected.values():
        episode.info["seconds"] = 0.1
      log = []

      def scripted_collector():
        tickets = [
          tuple(next(client.sample(distributed.TICKETS_TABLE, 1))[0].data[0])
          for _ in range(2)
        ]
        log.append(("lost", tickets[0]))  # This collector "dies" with ticket 0.
        version, index = tickets[1]
        # The right episode, a stale copy and a duplicate.
        for v in (version, version - 1, version):
          distributed.insert(
            client,
            distributed._encode_episode(collected[int(index)], int(v)),
            distributed.EPISODES_TABLE,
          )
        reissued = next(client.sample(distributed.TICKETS_TABLE, 1))[0].data[0]
        log.append(("reissued", tuple(reissued)))
        distributed.insert(
          client,
          distributed._encode_episode(collected[int(reissued[1])], int(reissued[0])),
          distributed.EPISODES_TABLE,
        )

      thread = threading.Thread(target=scripted_collector, daemon=True)
      thread.start()
      experience, infos = learner.collect([4, 5])
      thread.join(30)
      self.assertEqual([i["episode"] for i in infos], [4, 5])
      self.assertEqual(log, [("lost", (4, 4)), ("reissued", (4, 4))])
      self.assertTrue(any("re-issuing episodes [4]" in s for s in said), said)
      self.assertTrue(any("dropped 2 stale or duplicate" in s for s in said), said)
      self.assertEqual(experience.step_type.shape[0], 1)
      self.assertEqual(
        experience.step_type.shape[1], 2 * (py_env.decisions_per_episode + 1)
      )

      # The pushed variables carry the version; `close` tells collectors to stop.
      pulled = distributed.SharedVariables(agent)
      container = distributed.reverb_variable_container.ReverbVariableContainer(address)
      container.update(pulled.nest)
      self.assertEqual(int(pulled.version.numpy()), 4)
      self.assertFalse(bool(pulled.finished.numpy()))
      learner.close(finished=True)
      container.update(pulled.nest)
      self.assertTrue(bool(pulled.finished.numpy()))
    finally:
      server.stop()

  def test_insert_stores_what_client_insert_does_and_gives_up_on_a_lost_server(self):
    server = reverb.Server([reverb.Table.queue("q", max_size=2)], port=None)
    client = reverb.Client(f"localhost:{server.port}")
    data = [
      np.int64(3),
      np.array(b'{"return": 0.5}', dtype=object),
      np.arange(6, dtype=np.float32).reshape(3, 2),
    ]
    distributed.insert(client, data, "q")
    client.insert(data, {"q": 1.0})
    ours, theirs = [next(client.sample("q", 1))[0].data for _ in range(2)]
    self.assertLen(ours, 3)
    for a, b, want in zip(ours, theirs, data):
      self.assertEqual(a.dtype, b.dtype)
      self.assertAllEqual(a, b)
      self.assertAllEqual(a, want)
    server.stop()
    # `client.insert` would retry for ever here.
    with self.assertRaisesRegex(UserError, "lost the Reverb server at localhost"):
      with distributed._server_errors_as_user_errors(client):
        distributed.insert(client, data, "q", timeout_secs=1)

  def test_a_read_waits_while_the_server_answers_and_gives_up_when_it_is_lost(self):
    server = reverb.Server([reverb.Table.queue("q", max_size=1)], port=None)
    client = reverb.Client(f"localhost:{server.port}")

    def slow():
      time.sleep(2.5)
      return "late"

    # A live server: slower than the timeout is still an answer.
    self.assertEqual(
      distributed._unless_lost(client, slow, "slow", timeout_secs=1), "late"
    )
    with self.assertRaisesRegex(KeyError, "own"):
      distributed._unless_lost(client, lambda: {}["own"], "failing", timeout_secs=1)
    # A read that blocks (as Reverb's sampler does on an empty queue); then
    # the server goes: a lost server. The read is a Python wait released at
    # the end: a real sampler left blocked on the stopped server stays in
    # this test process and can abort it (a Reverb C++ abort) during a later
    # test's Reverb calls.
    released = threading.Event()
    try:
      with self.assertRaisesRegex(
        UserError, "lost the Reverb server.*waiting: no answer"
      ):
        with distributed._server_errors_as_user_errors(client):
          threading.Timer(1.0, server.stop).start()
          distributed._unless_lost(client, released.wait, "waiting", timeout_secs=2)
    finally:
      released.set()

  def test_a_write_cut_by_a_dying_server_is_a_lost_server(self):
    server = reverb.Server([reverb.Table.queue("q", max_size=1)], port=None)
    client = reverb.Client(f"localhost:{server.port}")
    cut = tf.errors.InternalError(
      None, None, "Error when confirming that all items written to table."
    )
    # While the server answers, an InternalError is not a lost server.
    with self.assertRaises(tf.errors.InternalError):
      with distributed._server_errors_as_user_errors(client):
        raise cut
    server.stop()
    with self.assertRaisesRegex(UserError, "lost the Reverb server at localhost"):
      with distributed._server_errors_as_user_errors(client):
        raise cut

  def test_a_lost_server_is_one_user_error(self):
    gin_utils.parse_gin(
      ["controller/noisy_quadratic.gin"],
      ["create_environment.num_steps=40"],
      finalize=False,
    )
    server = distributed.make_server(port=_free_port(), seed=0)
    client = distributed.connect(f"localhost:{server.port}", timeout=10, say=print)
    _, agent = controller_training.build_environment_and_agent(0)
    learner = distributed.ReverbCollector(
      agent, client, None, print, rpc_timeout_secs=2
    )
    server.stop()
    with self.assertRaisesRegex(UserError, "lost the Reverb server at localhost"):
      learner.collect([0, 1])


class _LayoutTest(tf.test.TestCase):
  """Starts the jobs of one layout (forked) and reads their logs."""

  def setUp(self):
    super().setUp()
    self._logs = self.create_tempdir().full_path
    self._processes = []

  def _start(self, name, args):
    log = os.path.join(self._logs, f"{name}.log")
    process = subprocesses.start_forked(_BINARY, *args, stdout=log, stderr=log)
    self._processes.append(process)
    return process

  def _wait_for_lines(self, path, count, deadline):
    while time.time() < deadline:
      if os.path.exists(path) and len(open(path).readlines()) >= count:
        return
      time.sleep(0.2)
    self.fail(f"fewer than {count} episodes in time; logs: {self._tails()}")

  def _exit_code(self, process, timeout):
    """The process's exit code; fails with every job's log if it runs on."""
    try:
      return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      self.fail(f"{process.args} still runs after {timeout} s; logs: {self._tails()}")

  def _tails(self):
    out = {}
    for name in sorted(os.listdir(self._logs)):
      with open(os.path.join(self._logs, name)) as f:
        out[name] = f.read()[-1500:]
    return json.dumps(out, indent=1)


@pytest.mark.slow
class KillAndRestartTest(_LayoutTest):
  def test_kill_and_restart_collector_and_learner_on_loopback(self):
    root = os.path.join(self.create_tempdir().full_path, "root")
    port = _free_port()
    address = f"--reverb_address=localhost:{port}"
    episodes_path = os.path.join(root, constants.EPISODES_JSONL)
    learner_args = [
      "--job=train",
      address,
      f"--root_dir={root}",
      "--num_episodes=10",
      "--reissue_after_secs=5",
    ]
    try:
      server = self._start(
        "reverb", ["--job=reverb", f"--reverb_port={port}", "--seed=4", *_TOY_GIN]
      )
      collectors = [
        self._start(f"collect{i}", ["--job=collect", address, f"--task={i}"])
        for i in range(2)
      ]
      learner = self._start("train", learner_args)
      deadline = time.time() + 300
      self._wait_for_lines(episodes_path, 2, deadline)
      # A collector dies; its replacement rejoins.
      collectors[0].send_signal(signal.SIGKILL)
      collectors[0].wait()
      collectors[0] = self._start("collect0b", ["--job=collect", address, "--task=0b"])
      self._wait_for_lines(episodes_path, 4, deadline)
      # The learner dies; restarted, it resumes from its checkpoint.
      learner.send_signal(signal.SIGKILL)
      learner.wait()
      learner = self._start("train2", learner_args)
      self.assertEqual(self._exit_code(learner, 300), 0, self._tails())
      # Collectors stop by themselves once the learner has finished.
      for c in collectors[1:] + collectors[:1]:
        self.assertEqual(self._exit_code(c, 60), 0, self._tails())
      self.assertIsNone(server.poll())  # The server serves until stopped.
      server.terminate()
      server.wait(timeout=30)
    finally:
      for p in self._processes:
        if p.poll() is None:
          p.kill()
          p.wait()
    self.assertTrue(all(p.poll() is not None for p in self._processes))
    with open(episodes_path) as f:
      rows = [json.loads(line) for line in f]
    self.assertEqual([r["episode"] for r in rows], list(range(10)), self._tails())
    self.assertEqual([r["seed"] for r in rows], [4 * 1_000_003 + k for k in range(10)])
    self.assertTrue(all(r["update"] == "ok" for r in rows))
    self.assertTrue(
      os.path.isdir(
        os.path.join(root, constants.POLICIES_DIR, constants.GREEDY_POLICY_DIR)
      )
    )
    with open(os.path.join(root, constants.CONFIG_GIN)) as f:
      self.assertIn("build_noisy_quadratic", f.read())
    train2 = open(os.path.join(self._logs, "train2.log")).read()
    self.assertIn("resuming from episode", train2)


@pytest.mark.slow
class RestartedServerTest(_LayoutTest):
  def test_a_restarted_server_and_collectors_let_the_learner_finish(self):
    root = os.path.join(self.create_tempdir().full_path, "root")
    port = _free_port()
    address = f"--reverb_address=localhost:{port}"
    episodes_path = os.path.join(root, constants.EPISODES_JSONL)
    server_args = ["--job=reverb", f"--reverb_port={port}", "--seed=5", *_TOY_GIN]
    learner_args = ["--job=train", address, f"--root_dir={root}", "--num_episodes=8"]

    def start_collectors(tag):
      return [
        self._start(f"collect{i}{tag}", ["--job=collect", address, f"--task={i}{tag}"])
        for i in range(2)
      ]

    try:
      server = self._start("reverb", server_args)
      collectors = start_collectors("")
      learner = self._start("train", learner_args)
      self._wait_for_lines(episodes_path, 2, time.time() + 300)
      # The server dies: the learner and the collectors stop with one line.
      server.send_signal(signal.SIGKILL)
      server.wait()
      self.assertNotEqual(self._exit_code(learner, 120), 0)
      for c in collectors:
        self.assertNotEqual(self._exit_code(c, 120), 0, self._tails())
      for name in ("train", "collect0", "collect1"):
        log = open(os.path.join(self._logs, f"{name}.log")).read()
        self.assertNotIn("Traceback", log, name)
        errors = _error_lines(log)
        self.assertLen(errors, 1, (name, log.splitlines()[-5:]))
        self.assertIn("Reverb server", errors[0])
      # Restarting the layout resumes from the learner's checkpoint.
      server = self._start("reverb2", server_args)
      collectors = start_collectors("b")
      learner = self._start("train2", learner_args)
      self.assertEqual(self._exit_code(learner, 300), 0, self._tails())
      for c in collectors:
        self.assertEqual(self._exit_code(c, 60), 0, self._tails())
      server.terminate()
      server.wait(timeout=30)
    finally:
      for p in self._processes:
        if p.poll() is None:
          p.kill()
          p.wait()
    with open(episodes_path) as f:
      rows = [json.loads(line) for line in f]
    self.assertEqual([r["episode"] for r in rows], list(range(8)), self._tails())
    self.assertEqual([r["seed"] for r in rows], [5 * 1_000_003 + k for k in range(8)])
    self.assertIn(
      "resuming from episode", open(os.path.join(self._logs, "train2.log")).read()
    )


class BadInputTest(tf.test.TestCase):
  def test_bad_input_is_one_line_and_non_zero(self):
    root = self.create_tempdir().full_path
    dead = f"--reverb_address=localhost:{_free_port()}"
    cases = [
      ([], "--job is required"),
      (["--job=collect", dead, *_TOY_GIN], "take their gin config from the reverb job"),
      (
        ["--job=train", dead, f"--root_dir={root}", "--connect_timeout_secs=1"],
        "no Reverb server answers",
      ),
      (["--job=reverb", "--reverb_port=70000", *_TOY_GIN], "reverb_port"),
      (["--job=reverb", "--gin_file=missing.gin"], "gin file not found"),
      (["--job=nope"], "job"),
    ]
    results = [
      subprocesses.run_forked(_BINARY, *args, timeout=120) for args, _ in cases
    ]
    for (args, needle), result in zip(cases, results):
      self.assertNotEqual(result.returncode, 0, args)
      self.assertNotIn("Traceback", result.stderr, args)
      errors = _error_lines(result.stderr)
      self.assertLen(errors, 1, (args, result.stderr.splitlines()[-3:]))
      self.assertIn(needle, errors[0], args)


@pytest.mark.slow
class LaunchLocalTest(tf.test.TestCase):
  def test_launch_local_runs_the_layout_and_stops_everything(self):
    # The first launcher is a plain process, the others are forked; every
    # launcher starts its jobs as plain processes.
    subprocesses.prepare_forks()
    root = self.create_tempdir().full_path
    args = [f"--root_dir={root}", "--num_collectors=2", "--num_episodes=4", *_TOY_GIN]
    result = subprocesses.run("launch_local", *args, timeout=300)
    self.assertEqual(
      result.returncode, 0, result.stdout[-3000:] + result.stderr[-2000:]
    )
    self.assertIn("[train] 4 episodes", result.stdout)
    self.assertIn("the learner finished", result.stdout)
    with open(os.path.join(root, constants.EPISODES_JSONL)) as f:
      self.assertEqual([json.loads(line)["episode"] for line in f], [0, 1, 2, 3])
    self.assertEqual(
      sorted(os.listdir(os.path.join(root, "logs"))),
      ["collect_0.log", "collect_1.log", "reverb.log", "train.log"],
    )
    # A launcher killed mid-run stops every job it started (one of each kind).
    port = _free_port()
    killed_root = os.path.join(root, "killed")
    launcher = subprocesses.start_forked(
      "launch_local",
      f"--root_dir={killed_root}",
      f"--reverb_port={port}",
      "--num_collectors=1",
      "--num_episodes=5000",
      *_TOY_GIN,
    )
    episodes = os.path.join(killed_root, constants.EPISODES_JSONL)
    deadline = time.time() + 240
    while time.time() < deadline and not os.path.exists(episodes):
      time.sleep(0.5)
    launcher.terminate()
    self.assertEqual(launcher.wait(timeout=120), 143)
    self.assertEqual(_processes_mentioning(str(port)), [])
    # Bad gin stops the launcher before any job starts.
    bad = subprocesses.run_forked(
      "launch_local", *args[: -len(_TOY_GIN)], "--gin_file=missing.gin", timeout=120
    )
    self.assertEqual(bad.returncode, 2)
    self.assertEqual(
      bad.stderr.strip().splitlines()[-1], "error: gin file not found: missing.gin"
    )
    self.assertNotIn("[reverb]", bad.stdout)


if __name__ == "__main__":
  tf.test.main()
