"""The selection's rules: the score of a set of greedy runs and which policy is kept."""

import math

import tensorflow as tf

from lr_controller.control import selection


def _run(best_val_loss, diverged=False):
  return {"best_val_loss": best_val_loss, "diverged": diverged}


class SelectionTest(tf.test.TestCase):
  def test_score_is_the_mean_and_a_failed_run_counts(self):
    self.assertAllClose(selection.score([_run(0.1), _run(0.3)]), 0.2)
    # A run stuck at chance level weighs in with its loss.
    self.assertAllClose(selection.score([_run(0.1)] * 3 + [_run(2.3)]), 0.65)
    self.assertEqual(selection.score([_run(0.1), _run(0.2, diverged=True)]), math.inf)
    self.assertEqual(selection.score([_run(0.1), _run(None)]), math.inf)

  def test_the_lowest_score_is_kept_and_the_earliest_on_a_tie(self):
    self.assertEqual(selection.kept_episode({48: 0.2, 96: 0.1, 144: 0.3}), 96)
    self.assertEqual(selection.kept_episode({144: 0.1, 48: 0.1, 96: 0.2}), 48)
    self.assertEqual(selection.kept_episode({48: math.inf, 96: 0.5}), 96)
    self.assertEqual(selection.kept_episode({48: math.inf, 96: math.inf}), 48)
    self.assertTrue(selection.improves(0.1, 0.2))
    self.assertFalse(selection.improves(0.2, 0.2))
    self.assertTrue(selection.improves(0.5, math.inf))
    with self.assertRaises(ValueError):
      selection.kept_episode({})

  def test_validation_trainees_are_apart_from_training_and_evaluation(self):
    from lr_controller.control import env as env_lib
    from lr_controller.judge import evaluation

    episodes = selection.selection_episodes(20)
    self.assertEqual(episodes, list(range(900_000, 900_020)))
    self.assertLess(episodes[-1], env_lib.SEED_STRIDE)
    self.assertGreater(episodes[0], evaluation.EVAL_SEED_OFFSET + 10_000)


if __name__ == "__main__":
  tf.test.main()
