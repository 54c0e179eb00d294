"""The cost column's arithmetic, on hand-written records and logs."""

import os
import types

import tensorflow as tf

from lr_controller import constants, io_utils, presets
from lr_controller.errors import UserError
from lr_controller.judge import costs, evaluation


class CostsTest(tf.test.TestCase):
  def test_steps_of_a_run(self):
    self.assertEqual(costs.steps_of_run({"steps_done": 50, "trial_steps": 30}), 80)
    self.assertEqual(costs.steps_of_run({"steps": [10, 20, 30]}), 30)
    self.assertEqual(costs.steps_of_run({}, num_steps=200), 200)  # An old record.

  def test_search_and_per_run(self):
    runs = [
      {"steps_done": 200, "seconds": 1.5},
      {"steps_done": 40, "seconds": 0.5},  # Diverged early.
    ]
    self.assertEqual(
      costs.runs_cost(runs, "2-run grid"),
      {"what": "2-run grid", "runs": 2, "steps": 240, "seconds": 2.0},
    )
    self.assertEqual(costs.per_run_cost(runs), {"steps": 120.0, "seconds": 1.0})
    self.assertIsNone(costs.runs_cost([{"steps_done": 1}], "x")["seconds"])

  def test_controller_training_from_its_logs(self):
    root = self.create_tempdir().full_path
    for k in range(4):
      io_utils.append_jsonl(
        os.path.join(root, constants.EPISODES_JSONL),
        {"episode": k, "steps": 100, "reference_steps": 100 if k < 2 else 0},
      )
    for episodes in (2, 4):
      io_utils.append_jsonl(
        os.path.join(root, constants.UPDATES_JSONL),
        {"episodes": episodes, "seconds": 3.0},
      )
      io_utils.append_jsonl(
        os.path.join(root, constants.SELECTION_JSONL),
        {"episodes": episodes, "steps": 500, "seconds": 1.0},
      )
    # Exported after 2 episodes: 2 x (100 + 100) steps, one selection.
    self.assertEqual(
      costs.controller_training_cost(root, 2),
      {
        "what": "2 training episodes and 1 selection",
        "runs": 2,
        "steps": 900,
        "seconds": 4.0,
      },
    )
    whole = costs.controller_training_cost(root, 4)
    self.assertEqual(whole["steps"], 1600)
    self.assertEqual(whole["what"], "4 training episodes and 2 selections")

  def test_a_warm_started_run_adds_its_source_up_to_the_checkpoint(self):
    source, target = (self.create_tempdir().full_path for _ in range(2))
    for k in range(6):  # The source ran on after the checkpoint at 4.
      io_utils.append_jsonl(
        os.path.join(source, constants.EPISODES_JSONL), {"episode": k, "steps": 100}
      )
    for episodes in (4, 6):
      io_utils.append_jsonl(
        os.path.join(source, constants.SELECTION_JSONL),
        {"episodes": episodes, "steps": 1000, "seconds": 2.0},
      )
    io_utils.append_jsonl(
      os.path.join(target, constants.EPISODES_JSONL), {"episode": 0, "steps": 50}
    )
    io_utils.append_jsonl(
      os.path.join(target, constants.UPDATES_JSONL), {"episodes": 1, "seconds": 1.0}
    )
    io_utils.write_json(
      os.path.join(target, constants.WARM_START_JSON),
      {"source_dir": source, "checkpoint": "ckpt-2", "episodes": 4},
    )
    self.assertEqual(
      costs.controller_training_cost(target, 1),
      {
        "what": "1 training episode, warm-started from 4 training episodes "
        "and 1 selection",
        "runs": 5,
        "steps": 50 + 400 + 1000,
        "seconds": 3.0,
      },
    )
    # A source whose logs are gone is named, not counted.
    os.remove(os.path.join(source, constants.EPISODES_JSONL))
    gone = costs.controller_training_cost(target, 1)
    self.assertEqual(gone["steps"], 50)
    self.assertIn("logs are gone", gone["what"])

  def test_a_broken_or_circular_warm_start_record_is_one_user_error(self):
    a, b = (self.create_tempdir().full_path for _ in range(2))
    for root, source in ((a, b), (b, a)):
      io_utils.append_jsonl(
        os.path.join(root, constants.EPISODES_JSONL), {"episode": 0, "steps": 10}
      )
      io_utils.write_json(
        os.path.join(root, constants.WARM_START_JSON),
        {"source_dir": source, "checkpoint": "ckpt-1", "episodes": 1},
      )
    with self.assertRaisesRegex(UserError, "comes back to"):
      costs.controller_training_cost(a, 1)
    with open(os.path.join(b, constants.WARM_START_JSON), "w") as f:
      f.write("{not json")
    with self.assertRaisesRegex(UserError, "cannot read"):
      costs.controller_training_cost(a, 1)

  def test_the_chosen_policy_cost_the_whole_run_and_a_stopped_one_its_part(self):
    root = self.create_tempdir().full_path
    for k in range(4):
      io_utils.append_jsonl(
        os.path.join(root, constants.EPISODES_JSONL), {"episode": k, "steps": 100}
      )
    policies = os.path.join(root, constants.POLICIES_DIR)

    def cost(name, episodes):
      policy = types.SimpleNamespace(path=os.path.join(policies, name))
      return evaluation._controller_training_cost(policy, {"episodes": episodes})

    # Chosen after episode 1 of 4: finding it took all 4.
    self.assertEqual(cost(constants.GREEDY_POLICY_DIR, 1)["steps"], 400)
    self.assertEqual(cost(constants.GREEDY_POLICY_DIR + "_000002", 1)["steps"], 200)
    self.assertEqual(cost(constants.LAST_POLICY_DIR, 3)["steps"], 300)
    elsewhere = types.SimpleNamespace(path=self.create_tempdir().full_path)
    self.assertIsNone(evaluation._controller_training_cost(elsewhere, {"episodes": 1}))

  def test_a_shipped_preset_costs_its_user_nothing(self):
    shipped = types.SimpleNamespace(path=presets.preset_path("general"))
    self.assertEqual(
      evaluation._controller_training_cost(shipped, {"episodes": 384}),
      costs.nothing_paid("none: the shipped preset 'general'"),
    )
    self.assertEqual(
      costs.nothing_paid("none: untuned"),
      {"what": "none: untuned", "runs": 0, "steps": 0, "seconds": 0.0},
    )
    self.assertEqual(presets.preset_name(presets.preset_path("general")), "general")
    self.assertIsNone(presets.preset_name(self.create_tempdir().full_path))


if __name__ == "__main__":
  tf.test.main()
