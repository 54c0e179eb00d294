r"""CPU time of a controller's first export, with and without autograph.

  python benchmarks/export_trace.py [--rounds=3]

Every `train_controller` process exports its greedy policy
(`lr_controller.control.export.ControllerModule`) at least once, and the
first export traces the policy's functions. With autograph on (tf.function's
default), tracing first converts the Python source of every function the
policy calls (tf-agents' policy, network and distribution code); tf-agents
writes that code for graphs without autograph (`common.function`), so the
module traces with it off. This script measures what that saves: each round
runs one fresh process per actor network and autograph setting (autograph
caches its conversions per process, so only a fresh one pays them), builds the
toy controller's agent (`controller/noisy_quadratic.gin`), and times the
first and a second `tf.saved_model.save` of the module by the process's CPU
time. Printed: the medians over rounds, the ratio off / on, and whether both
exports' actions agree on one observation (they must: the graph is the same).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_integer(
  "rounds", 3, "Measured rounds (fresh processes each).", lower_bound=1
)
flags.DEFINE_string(
  "child", None, "Internal: run one measurement as 'ACTOR,AUTOGRAPH'."
)
FLAGS = flags.FLAGS

ACTORS = ("mlp", "lstm")


def _measure(actor: str, autograph: bool) -> dict:
  """One process's first and second export CPU seconds, and the action."""
  import numpy as np
  import tensorflow as tf

  from lr_controller import gin_utils
  from lr_controller.control import controller_training, export

  gin_utils.parse_gin(
    ["controller/noisy_quadratic.gin"],
    [f"create_agent.actor_network = '{actor}'"],
    finalize=False,
  )
  py_env, agent = controller_training.build_environment_and_agent(0)
  module = export.ControllerModule(
    agent.policy, {}, py_env.action_log_factors, autograph=autograph
  )
  seconds = []
  with tempfile.TemporaryDirectory() as tmp:
    for i in range(2):
      start = time.process_time()
      tf.saved_model.save(module, f"{tmp}/{i}", signatures=module.signatures())
      seconds.append(time.process_time() - start)
    loaded = tf.saved_model.load(f"{tmp}/0")
    num_features = int(agent.policy.time_step_spec.observation.shape[0])
    observation = tf.constant(
      np.random.default_rng(0).normal(size=(1, num_features)), tf.float32
    )
    state = loaded.get_initial_state(tf.constant(1))
    action = loaded.action(observation, tf.constant([0]), state)["action"]
  return {"first": seconds[0], "second": seconds[1], "action": float(action[0])}


def _run_child(actor: str, autograph: bool) -> dict:
  out = subprocess.run(
    [sys.executable, __file__, f"--child={actor},{int(autograph)}"],
    capture_output=True,
    text=True,
    check=True,
  )
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  if FLAGS.child:
    actor, autograph = FLAGS.child.split(",")
    print(json.dumps(_measure(actor, autograph == "1")))
    return
  print(
    f"first and second export of the toy controller, CPU s, median of {FLAGS.rounds}"
  )
  print(
    "| actor | autograph on: first | off: first | off / on | second (on, off) | same action |"
  )
  print("|---|---|---|---|---|---|")
  for actor in ACTORS:
    runs = {True: [], False: []}
    for _ in range(FLAGS.rounds):
      for autograph in (True, False):  # Alternating, so drift hits both.
        runs[autograph].append(_run_child(actor, autograph))
    first = {a: statistics.median(r["first"] for r in runs[a]) for a in runs}
    second = {a: statistics.median(r["second"] for r in runs[a]) for a in runs}
    same = all(
      abs(on["action"] - off["action"]) < 1e-6
      for on, off in zip(runs[True], runs[False])
    )
    print(
      f"| {actor} | {first[True]:.2f} | {first[False]:.2f} | "
      f"{first[False] / first[True]:.2f} | {second[True]:.2f}, {second[False]:.2f} | "
      f"{'yes' if same else 'NO'} |"
    )


if __name__ == "__main__":
  app.run(main)
