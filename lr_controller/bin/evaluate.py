r"""Evaluates a learned controller against the paper's step-decay baseline (and peers).

  python -m lr_controller.bin.evaluate --root_dir=/tmp/eval \
      --policy_dir=/tmp/controller/policies/greedy_policy \
      --gin_file=controller/digits.gin

On the gin-configured setting (the paper's Table 1): the best step-decay
schedule (searched into ROOT/baseline_search/, or reused with
--baseline_search=PATH/search.json), the controller's greedy policy and the
peers are each run --num_runs times with the same seeds, and compared with
t-tests. With --task_set=tasks/digits_transfer.gin (the paper's Table 2) the
controller is applied without retraining to the task set's held-out settings,
against the baseline tuned on its training setting; --gin_file and
--gin_bindings then apply on top of every setting (e.g. smoke.gin).

Writes ROOT/report.md, results.json, results.csv, figure1_val_loss.png,
figure2_lr_schedules.png, config.gin and operative_config.gin.
"""

import os

from absl import flags

from lr_controller import constants, gin_utils
from lr_controller.bin import cli
from lr_controller.errors import UserError
from lr_controller.judge import report

flags.DEFINE_string(
  "policy_dir",
  None,
  "The exported controller: ROOT/policies/greedy_policy of train_controller.",
)
flags.DEFINE_integer(
  "num_runs",
  None,
  "Runs per method, all with the same seeds (overrides gin; paper: 10).",
  lower_bound=1,
)
flags.DEFINE_string(
  "baseline_search",
  None,
  "Reuse this search.json of search_baseline (or its directory) instead of "
  "searching the step-decay baseline again.",
)
flags.DEFINE_string(
  "task_set",
  None,
  "A task-set gin file (e.g. tasks/digits_transfer.gin): evaluate the transfer "
  "from its training setting to its held-out settings.",
)
FLAGS = flags.FLAGS


def main(argv):
  del argv
  if not FLAGS.policy_dir:
    raise UserError("--policy_dir is required (e.g. ROOT/policies/greedy_policy)")
  from lr_controller.judge import evaluation

  root_dir = cli.make_root_dir(FLAGS.root_dir)
  files = cli.load_gin_from_flags()
  kwargs = {"seed": FLAGS.seed, "say": cli.say}
  if FLAGS.num_runs is not None:
    kwargs["num_runs"] = FLAGS.num_runs
  if FLAGS.baseline_search is not None:
    kwargs["baseline_search_path"] = FLAGS.baseline_search
  task_set = gin_utils.resolve_gin_file(FLAGS.task_set) if FLAGS.task_set else None
  recorded = [*files, task_set] if task_set else files
  with gin_utils.recorded_config(root_dir, recorded, FLAGS.gin_bindings):
    if task_set:
      # Writes ROOT/operative_config.gin itself, one section per setting.
      results = evaluation.transfer(
        root_dir,
        FLAGS.policy_dir,
        task_set,
        extra_gin_files=FLAGS.gin_file,
        extra_gin_bindings=FLAGS.gin_bindings,
        **kwargs,
      )
    else:
      setting = evaluation.Setting(
        name="",
        gin_files=tuple(FLAGS.gin_file),
        gin_bindings=tuple(FLAGS.gin_bindings),
      )
      results = evaluation.evaluate(
        root_dir, FLAGS.policy_dir, setting=setting, **kwargs
      )
      gin_utils.write_operative_config(root_dir)
  cli.say("")
  cli.say(report.tables(results))
  cli.say("")
  cli.say(f"report: {os.path.join(root_dir, constants.REPORT_MD)}")


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
