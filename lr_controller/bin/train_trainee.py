r"""Trains one trainee with a fixed learning-rate schedule.

  python -m lr_controller.bin.train_trainee --root_dir=/tmp/run \
      --gin_file=digits_lenet.gin \
      --gin_bindings="make_schedule.name='cosine'"

Writes ROOT/metrics.json (test loss/accuracy of the best-validation
checkpoint, best_step, diverged, history every eval_interval steps),
ROOT/config.gin and ROOT/operative_config.gin.
"""

import os

from lr_controller import constants, gin_utils
from lr_controller.bin import cli
from lr_controller.trainee import fixed_schedule_runs

FLAGS = cli.FLAGS


def main(argv):
  del argv
  root_dir = cli.make_root_dir(FLAGS.root_dir)
  files = cli.load_gin_from_flags()
  with gin_utils.recorded_config(root_dir, files, FLAGS.gin_bindings):
    metrics = fixed_schedule_runs.train_with_schedule(
      root_dir, seed=FLAGS.seed, say=cli.say
    )
    gin_utils.write_operative_config(root_dir)
  status = "diverged" if metrics["diverged"] else "finished"
  cli.say(
    f"{status}: test loss {metrics['test_loss']}, test accuracy {metrics['test_accuracy']}, "
    f"best step {metrics['best_step']}"
  )
  cli.say(f"results: {os.path.join(root_dir, constants.METRICS_JSON)}")


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
