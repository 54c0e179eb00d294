"""The controller learns: PPO's greedy controller beats the frozen one.

Each test trains a controller, then runs its exported greedy policy (through
`controller.Controller`, as users run it) and, in the test itself, the frozen
controller (every action 0: the initial rate throughout) on the same
held-out trainee seeds (`learning_check.HELD_OUT_SEEDS`), and compares them.
The frozen controller's value is the reference, so the bar moves with the
machine's numerics instead of being a number from one CPU.

Seeded runs repeat bit for bit on one machine but not across CPUs (oneDNN's
kernels, thread counts): PPO then takes another path, as from another seed.
So each margin below was measured in three numerics configurations (1 and 2
intra-op threads, and 2 with `TF_ENABLE_ONEDNN_OPTS=0`), and on more
controller seeds, with `tests/learning_check.py`: a test of a learned outcome
must pass for the right reason on any machine of the kind. The bars leave
room in every one, while the frozen controller and the collapsing ones
(every action at a bound: the rate driven to the maximum or the minimum)
fail them. TensorFlow honours `TF_NUM_INTRAOP_THREADS` here
(nothing in the package or the tests sets `tf.config.threading`; checked: its
intra-op pool grows and shrinks with the variable). Op determinism is on, so
a configuration repeats its numbers.

An earlier digits test asked the late training episodes' median final
validation loss to be below 0.8 x the first ones'. It measured 0.68-0.74
here (seed 0), 0.81 on another machine of the same kind and 0.81 here with
controller seed 1, whose greedy policy still beats the frozen controller
by a wide margin (below): the exploring episodes' medians are too noisy a
measure of learning, so the test judges the greedy policy instead.
"""

import math

import learning_check
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config  # disable_op_determinism

from lr_controller import constants, gin_utils
from lr_controller.control import controller_training
from lr_controller.control import env as env_lib


def _train_and_judge(test, setting: dict, controllers: dict) -> dict:
  """Trains a controller on `setting`, then runs it and `controllers` on held-out trainees.

  Returns:
    name -> the runs' summaries; "learned" is the trained greedy policy.
  """
  tf.config.experimental.enable_op_determinism()
  # Process-wide: switch it off again for the tests that follow.
  test.addCleanup(tf_config.disable_op_determinism)
  root = test.create_tempdir().full_path
  gin_utils.parse_gin([setting["gin"]], [], finalize=False)
  result = controller_training.train_controller(
    root,
    seed=0,
    num_episodes=setting["episodes"],
    export_interval=0,  # Export once, at the end: the last policy.
    selection_runs=0,
    say=lambda s: None,
  )
  test.assertEqual(result["episodes"], setting["episodes"])
  policy_dir = f"{root}/{constants.POLICIES_DIR}/{constants.GREEDY_POLICY_DIR}"
  env = env_lib.create_environment(seed=0, evaluate_test=False)
  seeds = learning_check.HELD_OUT_SEEDS[: setting["trainees"]]
  controllers = {"learned": learning_check.greedy_controller(policy_dir), **controllers}
  return {
    name: learning_check.run_episodes(env, act, seeds)
    for name, act in controllers.items()
  }


@pytest.mark.slow
class LearningTest(tf.test.TestCase):
  def test_learned_controller_beats_a_constant_rate_on_a_noisy_quadratic(self):
    """Mean final validation loss below 0.5 x the frozen controller's.

    The noisy quadratic (float64 NumPy trainee, `controller/noisy_quadratic.gin`),
    60 episodes from controller seed 0, 16 held-out trainees. Frozen: 0.1252.
    The learned controller's mean final loss / the frozen one's:

      TF_NUM_INTRAOP_THREADS=1                           0.233
      TF_NUM_INTRAOP_THREADS=2                           0.233
      TF_NUM_INTRAOP_THREADS=2, TF_ENABLE_ONEDNN_OPTS=0  0.233

    (the same to 6 digits: the trainee is NumPy, only PPO's tiny networks
    run TensorFlow). Controller seeds 1-5 (1 thread), standing in for other
    machines' paths: 0.213, 0.160, 0.181, 0.152, 0.168; after only 30 episodes 0.36 (seed 0)
    and up to 1.06 (seed 1). Collapsing controllers: to the maximum rate
    12.3, to the minimum 0.652 (halving the rate every decision is itself a
    decay, better than the frozen rate but far from learned): both fail the
    bar, and the test checks that they do. About 30 s on 2 cores.
    """
    runs = _train_and_judge(
      self,
      learning_check.QUADRATIC,
      {
        "frozen": learning_check.FROZEN,
        "collapse_up": learning_check.COLLAPSE_UP,
        "collapse_down": learning_check.COLLAPSE_DOWN,
      },
    )

    def mean_final(name):
      return float(
        np.mean(
          [
            math.inf if s["final_val_loss"] is None else s["final_val_loss"]
            for s in runs[name]
          ]
        )
      )

    bar = 0.5 * mean_final("frozen")
    values = {name: mean_final(name) for name in runs}
    self.assertLess(values["learned"], bar, values)
    # The bar is one the trivial controllers fail.
    self.assertGreater(values["collapse_up"], bar, values)
    self.assertGreater(values["collapse_down"], bar, values)


@pytest.mark.slow
class DigitsLearningTest(tf.test.TestCase):
  def test_greedy_controller_beats_the_constant_initial_rate_on_digits(self):
    """Better than frozen on 10 of 12 held-out trainees, median ratio below 0.7.

    The default digits recipe (`controller/digits.gin`), 48 episodes from
    controller seed 0 (the last policy; no selection), 12 held-out trainees.
    Per trainee, the ratio of the greedy policy's best validation loss to the
    frozen controller's (constant rate 0.01; mean 0.262). Measured with
    `tests/learning_check.py digits`:

      run                                       median  worst  better on
      1 thread                                  0.436   0.600  12 of 12
      2 threads                                 0.408   1.589  11 of 12
      2 threads, TF_ENABLE_ONEDNN_OPTS=0        0.506   1.163  11 of 12
      controller seed 1, 1 thread               0.543   0.710  12 of 12
      controller seed 2, 1 thread               0.417   0.571  12 of 12
      controller seed 3, 1 thread               0.461   0.581  12 of 12
      controller seed 4, 1 thread               0.431   0.640  12 of 12

    (mean best validation loss 0.121, 0.141, 0.141, 0.147, 0.116, 0.120,
    0.113 against the frozen 0.262). The test used to train 96
    episodes: medians 0.448, 0.434, 0.392, 0.426, 0.453 for the first five
    runs, better on 12 of 12 in each; half the episodes keep the bar with
    room and halve the suite's longest test. Collapsing controllers:
    medians 7.5 (to the maximum rate; best losses 1.4-2.1) and 9.1 (to the
    minimum; 2.28, chance level), better on 0 of 12; the frozen controller:
    1.0, 0 of 12. A median rather than a mean: one held-out run far worse
    than frozen (the 2-thread runs' worst, 1.6; policies of 48 episodes,
    docs/experiments.md, round 5) should not decide whether PPO learned.
    1-2 minutes on 2 cores (about 30 s of it the 24 judging runs).
    """
    runs = _train_and_judge(
      self, learning_check.DIGITS, {"frozen": learning_check.FROZEN}
    )
    learned = np.array([s["best_val_loss"] for s in runs["learned"]])
    frozen = np.array([s["best_val_loss"] for s in runs["frozen"]])
    ratios = learned / frozen
    message = (
      f"ratios {np.round(ratios, 3).tolist()}, frozen {np.round(frozen, 3).tolist()}"
    )
    self.assertLess(np.median(ratios), 0.7, message)
    self.assertGreaterEqual(int(np.sum(ratios < 1.0)), 10, message)


if __name__ == "__main__":
  tf.test.main()
