"""Tests of `lr_controller.judge.comparison`: Student's and the paired t-test."""

import numpy as np
import scipy.stats
import tensorflow as tf

from lr_controller.judge import comparison


def _runs(losses, seeds=None):
  seeds = range(len(losses)) if seeds is None else seeds
  return [
    {"seed": s, "test_loss": x, "test_accuracy": None if x is None else 1 - x / 10}
    for s, x in zip(seeds, losses)
  ]


class PairedTTestTest(tf.test.TestCase):
  def test_matches_scipy_on_pairs_matched_by_seed(self):
    baseline = _runs([1.0, 1.2, 0.9, 1.1], seeds=[3, 1, 2, 0])
    method = _runs([0.95, 1.0, 1.18, 0.88], seeds=[0, 1, 2, 3])
    # Seed order: baseline 0 -> 1.1, 1 -> 1.2, 2 -> 0.9, 3 -> 1.0.
    expected = scipy.stats.ttest_rel([0.95, 1.0, 1.18, 0.88], [1.1, 1.2, 0.9, 1.0])
    test = comparison.paired_t_test(method, baseline, "test_loss")
    self.assertAlmostEqual(test["p"], expected.pvalue, places=12)
    self.assertAlmostEqual(test["t"], expected.statistic, places=12)
    self.assertEqual(test["n_pairs"], 4)
    self.assertAlmostEqual(test["mean_difference"], np.mean([-0.15, -0.2, 0.28, -0.12]))

  def test_pairing_removes_the_seeds_own_variance(self):
    # Seeds differ a lot; the method is 0.02 better on every seed.
    seed_effect = np.array([0.5, 1.5, 0.8, 1.2, 1.0, 0.7])
    noise = np.array([0.001, -0.002, 0.0, 0.002, -0.001, 0.001])
    baseline = _runs(list(seed_effect))
    method = _runs(list(seed_effect - 0.02 + noise))
    student = comparison.compare(method, baseline, "test_loss")
    self.assertGreater(student["p"], 0.5)
    self.assertLess(student["paired"]["p"], 1e-4)
    self.assertTrue(student["paired"]["significant"])
    self.assertLess(student["paired"]["t"], 0)

  def test_missing_values_drop_their_pair(self):
    baseline = _runs([1.0, None, 0.9, float("nan"), 1.3])
    method = _runs([0.9, 0.8, 0.85, 0.7, 1.0])
    test = comparison.paired_t_test(method, baseline, "test_loss")
    self.assertEqual(test["n_pairs"], 3)
    expected = scipy.stats.ttest_rel([0.9, 0.85, 1.0], [1.0, 0.9, 1.3])
    self.assertAlmostEqual(test["p"], expected.pvalue, places=12)

  def test_too_few_pairs_or_constant_differences_give_no_p(self):
    one = comparison.paired_t_test(_runs([1.0]), _runs([2.0]), "test_loss")
    self.assertIsNone(one["p"])
    self.assertFalse(one["significant"])
    constant = comparison.paired_t_test(
      _runs([1.0, 2.0, 3.0]), _runs([1.5, 2.5, 3.5]), "test_loss"
    )
    self.assertIsNone(constant["p"])
    self.assertEqual(constant["n_pairs"], 3)

  def test_summarize_method_keeps_both_tests_per_metric(self):
    baseline = _runs([1.0, 1.1, 0.9])
    record = comparison.summarize_method("m", "peer", _runs([0.8, 1.0, 0.85]), baseline)
    for metric in comparison.METRICS:
      test = record["vs_baseline"][metric]
      self.assertIn("p", test)
      self.assertEqual(test["paired"]["n_pairs"], 3)
    self.assertIsNone(
      comparison.summarize_method("b", "baseline", baseline, None)["vs_baseline"]
    )


if __name__ == "__main__":
  tf.test.main()
