"""The controller learns: on a noisy quadratic, where a decaying rate is known to
win, PPO's greedy controller must beat keeping the initial learning rate; on
the digits default, training episodes late in training must end with lower
validation losses than the first ones.

Measured when written (60 episodes, 5 held-out seeds, the budget-aware toy
config): greedy final loss 0.009, 0.024 and 0.035 for training seeds 0, 1 and
2, against 0.129 for the constant rate. PPO on CPU is not bit-reproducible
without op determinism, so the test turns it on.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config  # disable_op_determinism

from lr_controller import constants, gin_utils
from lr_controller.control import controller_training
from lr_controller.control import env as env_lib

_EVAL_SEEDS = [10**6 + i for i in range(5)]


def _final_loss(env, act):
  losses = []
  for seed in _EVAL_SEEDS:
    env.seed_next_episode(seed)
    time_step = env.reset()
    state, first = None, True
    while not time_step.is_last():
      action, state = act(time_step.observation, first, state)
      first = False
      time_step = env.step(action)
    losses.append(env.last_episode["final_val_loss"])
  return float(np.mean(losses))


class LearningTest(tf.test.TestCase):
  def test_learned_controller_beats_a_constant_rate_on_a_noisy_quadratic(self):
    tf.config.experimental.enable_op_determinism()
    # Process-wide: switch it off again for the tests that follow.
    self.addCleanup(tf_config.disable_op_determinism)
    root = self.create_tempdir().full_path
    gin_utils.parse_gin(["controller/noisy_quadratic.gin"], [], finalize=False)
    result = controller_training.train_controller(
      root, seed=0, num_episodes=60, say=lambda s: None
    )
    self.assertEqual(result["episodes"], 60)
    policy = tf.saved_model.load(
      f"{root}/{constants.POLICIES_DIR}/{constants.GREEDY_POLICY_DIR}"
    )
    env = env_lib.create_environment(seed=0)

    def greedy(observation, first, state):
      if state is None:
        state = policy.get_initial_state(tf.constant(1))
      out = policy.action(
        tf.constant(observation[None]), tf.constant([0 if first else 1]), state
      )
      return out["action"].numpy()[0], out["state"]

    learned = _final_loss(env, greedy)
    constant = _final_loss(env, lambda obs, first, state: (np.float32(0.0), None))
    self.assertLess(learned, constant)
    self.assertLess(learned, 0.5 * constant)


@pytest.mark.slow
class DigitsLearningTest(tf.test.TestCase):
  def test_training_episodes_improve_on_digits(self):
    # The default digits recipe, 96 episodes (about 3 minutes on 2 cores).
    # With exploration frozen (the same noise in every episode) or PPO
    # drifting, the late episodes were no better than the first (or worse).
    root = self.create_tempdir().full_path
    gin_utils.parse_gin(["controller/digits.gin"], [], finalize=False)
    controller_training.train_controller(
      root, seed=0, num_episodes=96, export_interval=0, say=lambda s: None
    )
    with open(f"{root}/{constants.EPISODES_JSONL}") as f:
      rows = [json.loads(line) for line in f]
    final = np.array(
      [r["final_val_loss"] if r["final_val_loss"] is not None else 10.0 for r in rows]
    )
    early, late = np.median(final[:24]), np.median(final[-24:])
    self.assertLess(late, 0.8 * early, f"early {early:.3f}, late {late:.3f}")
    self.assertLess(late, 0.5)  # Far from chance (2.3 nats).


if __name__ == "__main__":
  tf.test.main()
