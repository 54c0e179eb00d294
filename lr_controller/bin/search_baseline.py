r"""Grid-searches the paper's step-decay baseline, then optionally repeats the best.

  python -m lr_controller.bin.search_baseline --root_dir=/tmp/search \
      --gin_file=digits_lenet.gin --num_repeats=10

Writes ROOT/search.json (every run and the best, chosen by validation loss),
ROOT/repeats.json with --num_repeats, ROOT/config.gin and
ROOT/operative_config.gin. Re-running the same command resumes the grid.
"""

import os

from absl import flags

from lr_controller import constants, gin_utils
from lr_controller.bin import cli
from lr_controller.judge import baseline_search

flags.DEFINE_integer(
  "num_repeats",
  None,
  "Repeat the best setting for this many seeds (overrides gin).",
  lower_bound=0,
)
FLAGS = flags.FLAGS


def main(argv):
  del argv
  root_dir = cli.make_root_dir(FLAGS.root_dir)
  files = cli.load_gin_from_flags()
  with gin_utils.recorded_config(root_dir, files, FLAGS.gin_bindings):
    kwargs = {} if FLAGS.num_repeats is None else {"num_repeats": FLAGS.num_repeats}
    record = baseline_search.search_step_decay(
      root_dir, seed=FLAGS.seed, say=cli.say, **kwargs
    )
    gin_utils.write_operative_config(root_dir)
  if "repeats" in record:
    r = record["repeats"]
    cli.say(
      f"best setting over {len(r['seeds'])} seeds: test loss {r['test_loss_mean']:.4f} "
      f"+- {r['test_loss_std']:.4f}, accuracy {r['test_accuracy_mean']:.4f}"
    )
  cli.say(f"results: {os.path.join(root_dir, constants.SEARCH_JSON)}")


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
