r"""The end-to-end demo behind `./run.sh`: learn a controller on a setting and judge it.

  python -m lr_controller.bin.demo                         # digits: runs/demo, about 10-15 min on 2 cores
  python -m lr_controller.bin.demo --setting=mnist1d_mlp   # MNIST-1D's MLP: runs/demo_mnist1d_mlp
  python -m lr_controller.bin.demo --gin_file=smoke.gin    # seconds, for a quick look

On an offline setting (`SETTINGS`: the embedded digits default,
`controller/digits.gin`, or MNIST-1D's MLP, `controller/mnist1d_mlp.gin`):
trains the PPO controller (resumable), then evaluates its greedy policy
against the paper's grid-searched step decay, its own replayed mean rate path
and today's schedules over `--num_runs` seeds (the evaluation runs the
baseline search itself), and prints the table and where the report and
figures are. Re-running resumes the controller and reuses its finished
episodes.
"""

import inspect
import os
import time

from absl import flags

from lr_controller import checks, constants, gin_utils
from lr_controller.bin import cli
from lr_controller.errors import UserError

flags.DEFINE_integer(
  "num_episodes", None, "Controller episodes (default: the config's)."
)
# Setting name -> the controller config that defines it (data, trainee, recipe).
SETTINGS = {
  "digits": "controller/digits.gin",
  "mnist1d_mlp": "controller/mnist1d_mlp.gin",
}
DEFAULT_SETTING = "digits"

flags.DEFINE_integer(
  "num_runs",
  None,
  "Seeds per method in the evaluation (overrides evaluate.num_runs; default: "
  "the config's, else 10).",
)
flags.DEFINE_enum(
  "setting", DEFAULT_SETTING, sorted(SETTINGS), "The offline setting to run."
)
FLAGS = flags.FLAGS


def default_root(setting: str) -> str:
  """`runs/demo` for the default setting, `runs/demo_<setting>` for another."""
  suffix = "" if setting == DEFAULT_SETTING else f"_{setting}"
  return os.path.join("runs", f"demo{suffix}")


def main(argv):
  del argv
  from lr_controller.control import controller_training
  from lr_controller.judge import evaluation, report

  if FLAGS.num_runs is not None and FLAGS.num_runs < 2:
    raise UserError(
      f"--num_runs must be at least 2 for the t-tests, got {FLAGS.num_runs}"
    )
  gin_files = [SETTINGS[FLAGS.setting], *FLAGS.gin_file]
  files = gin_utils.parse_gin(gin_files, FLAGS.gin_bindings, finalize=False)
  # Runs per method: the flag, else gin's evaluate.num_runs, which then takes
  # effect (the flag alone overrides it).
  eval_kwargs = {} if FLAGS.num_runs is None else {"num_runs": FLAGS.num_runs}
  num_runs = FLAGS.num_runs or gin_utils.bound_value(
    "evaluate.num_runs",
    inspect.signature(evaluation.evaluate).parameters["num_runs"].default,
  )
  checks.integer(
    "evaluate.num_runs", num_runs, minimum=2, what="at least 2 for the t-tests"
  )
  root_dir = cli.make_root_dir(FLAGS.root_dir or default_root(FLAGS.setting))
  with gin_utils.recorded_config(root_dir, files, FLAGS.gin_bindings):
    start = time.perf_counter()

    cli.say(
      f"[1/2] training the PPO controller on {FLAGS.setting} in {root_dir}/controller"
    )
    controller_dir = cli.make_root_dir(os.path.join(root_dir, "controller"))
    kwargs = {} if FLAGS.num_episodes is None else {"num_episodes": FLAGS.num_episodes}
    trained = controller_training.train_controller(
      controller_dir, seed=FLAGS.seed, say=cli.say, **kwargs
    )

    cli.say(f"[2/2] evaluating against step decay and peers ({num_runs} seeds each)")
    eval_dir = cli.make_root_dir(os.path.join(root_dir, constants.EVAL_DIR))
    setting = evaluation.Setting(
      name=FLAGS.setting,
      gin_files=tuple(gin_files),
      gin_bindings=tuple(FLAGS.gin_bindings),
    )
    results = evaluation.evaluate(
      eval_dir,
      trained["policy_dir"],
      seed=FLAGS.seed,
      setting=setting,
      say=cli.say,
      **eval_kwargs,
    )
    gin_utils.write_operative_config(root_dir)
  cli.say("")
  cli.say(report.tables(results))
  cli.say("")
  cli.say(f"done in {(time.perf_counter() - start) / 60:.1f} min")
  cli.say(f"report: {os.path.join(eval_dir, constants.REPORT_MD)}")
  cli.say(
    f"figures: {eval_dir}/{constants.FIGURE1_PNG}, {eval_dir}/{constants.FIGURE2_PNG}"
  )
  cli.say(f"controller: {trained['policy_dir']}")


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
