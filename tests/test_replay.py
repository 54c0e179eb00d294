"""Tests of `lr_controller.judge.replay`: the controller's mean rate path, replayed."""

import math

import numpy as np
import tensorflow as tf

from lr_controller.judge import comparison, replay, report


def _run(seed, rates, test_loss=1.0):
  return {"seed": seed, "learning_rates": rates, "test_loss": test_loss}


class MeanRatePathTest(tf.test.TestCase):
  def test_geometric_mean_per_decision_and_held_after_the_last(self):
    runs = [_run(0, [0.01, 0.04, 0.02]), _run(1, [0.04, 0.01, None])]
    path = replay.mean_rate_path(runs, num_decisions=5)
    # Decision 2: only run 0 reached it (run 1 diverged); then held.
    self.assertAllClose(path, [0.02, 0.02, 0.02, 0.02, 0.02])
    runs = [_run(0, [0.1, 0.001]), _run(1, [0.001, 0.1]), _run(2, [0.01, 0.01])]
    self.assertAllClose(replay.mean_rate_path(runs, 2), [0.01, 0.01])

  def test_no_decision_at_all_raises(self):
    with self.assertRaisesRegex(ValueError, "nothing to replay"):
      replay.mean_rate_path([_run(0, [None]), _run(1, [])], 3)


class RatePathSpreadTest(tf.test.TestCase):
  def test_identical_paths_have_no_spread(self):
    runs = [_run(s, [0.01, 0.02, 0.03]) for s in range(4)]
    spread = replay.rate_path_spread(runs)
    self.assertEqual(spread["log_rate_std_mean"], 0.0)
    self.assertEqual(spread["relative_spread_mean"], 0.0)
    self.assertEqual(spread["decisions"], 3)

  def test_spread_is_the_std_of_log_rates_averaged_over_decisions(self):
    runs = [_run(0, [0.01, 0.01]), _run(1, [0.02, 0.04]), _run(2, [0.04, None])]
    first = np.std(np.log([0.01, 0.02, 0.04]), ddof=1)
    second = np.std(np.log([0.01, 0.04]), ddof=1)
    spread = replay.rate_path_spread(runs)
    self.assertAlmostEqual(spread["log_rate_std_mean"], (first + second) / 2)
    self.assertAlmostEqual(spread["log_rate_std_max"], max(first, second))
    self.assertAlmostEqual(
      spread["relative_spread_mean"], math.exp((first + second) / 2) - 1
    )

  def test_a_single_run_has_no_spread_to_measure(self):
    spread = replay.rate_path_spread([_run(0, [0.01, 0.02])])
    self.assertIsNone(spread["log_rate_std_mean"])
    self.assertEqual(spread["decisions"], 0)


class ReplayScheduleTest(tf.test.TestCase):
  def test_rate_of_every_step_vector_and_scalar(self):
    rates = [0.1, 0.05, 0.2]
    schedule = replay.ReplaySchedule(rates, interval=10)
    steps = np.arange(0, 45)
    expected = [rates[min(s // 10, 2)] for s in steps]
    self.assertAllClose(schedule(tf.constant(steps, tf.int64)), expected)
    self.assertAllClose(schedule(19), 0.05)
    self.assertAllClose(schedule(tf.constant(20)), 0.2)

  def test_config_round_trip(self):
    schedule = replay.ReplaySchedule([0.1, 0.2], interval=5)
    clone = replay.ReplaySchedule.from_config(schedule.get_config())
    self.assertAllClose(clone(tf.range(12)), schedule(tf.range(12)))


class AdaptationTextTest(tf.test.TestCase):
  def _setting(self, controller_losses, replay_losses):
    controller_runs = [
      {
        "seed": s,
        "test_loss": x,
        "test_accuracy": 0.5,
        "learning_rates": [0.01 * (1 + s)],
      }
      for s, x in enumerate(controller_losses)
    ]
    replay_runs = [
      {"seed": s, "test_loss": x, "test_accuracy": 0.5}
      for s, x in enumerate(replay_losses)
    ]
    controller = comparison.summarize_method(
      "controller",
      "controller",
      controller_runs,
      None,
      rate_path_spread=replay.rate_path_spread(controller_runs),
    )
    replayed = comparison.summarize_method(
      replay.REPLAY,
      "replay",
      replay_runs,
      None,
      vs_controller={
        m: comparison.compare(replay_runs, controller_runs, m) for m in ("test_loss",)
      },
    )
    return {"methods": [controller, replayed]}

  def test_verdicts(self):
    base = [1.0, 1.2, 0.9, 1.1, 1.05]
    offsets = [0.04, 0.06, 0.05, 0.045, 0.055]
    adapts = report.adaptation_text(
      self._setting(base, [x + d for x, d in zip(base, offsets)])
    )
    self.assertIn("beats its own replay: it adapts", adapts)
    schedule = report.adaptation_text(
      self._setting(base, [x + d for x, d in zip(base, [0.01, -0.01, 0.02, -0.02, 0])])
    )
    self.assertIn("within noise", schedule)
    worse = report.adaptation_text(
      self._setting(base, [x - d for x, d in zip(base, offsets)])
    )
    self.assertIn("its replay beats the controller", worse)
    self.assertIsNone(report.adaptation_text({"methods": []}))


if __name__ == "__main__":
  tf.test.main()
