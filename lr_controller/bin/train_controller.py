r"""Trains the PPO learning-rate controller (resumable).

  python -m lr_controller.bin.train_controller --root_dir=/tmp/controller \
      --gin_file=controller/digits.gin --num_episodes=150 --num_parallel_envs=2

Re-running the same command resumes from the last checkpoint; --num_episodes
is the total to reach. Every `train_controller.export_interval` episodes and at
the end, the greedy policy is exported (TensorFlow-only SavedModel) to
ROOT/policies/last_policy, judged on validation trainees, and kept as
ROOT/policies/greedy_policy if it is the best so far. --warm_start_dir
starts a new run from another run's networks (fine-tuning).
"""

import os

from absl import flags

from lr_controller import constants, gin_utils
from lr_controller.bin import cli
from lr_controller.control import controller_training
from lr_controller.errors import UserError

flags.DEFINE_integer(
  "num_episodes",
  None,
  "Total episodes to reach (overrides train_controller.num_episodes).",
)
flags.DEFINE_integer(
  "num_parallel_envs",
  None,
  "Trainee environments run in parallel processes, one episode each at a time "
  "(overrides train_controller.num_parallel_envs; default 1, in this process).",
)
flags.DEFINE_string(
  "warm_start_dir",
  None,
  "Start a new run from the networks of this controller run's latest "
  "checkpoint, e.g. one trained on another setting (overrides "
  "train_controller.warm_start_dir; ignored when resuming).",
)
FLAGS = flags.FLAGS


def main(argv):
  del argv
  if FLAGS.num_episodes is not None and FLAGS.num_episodes <= 0:
    raise UserError(f"--num_episodes must be positive, got {FLAGS.num_episodes}")
  root_dir = cli.make_root_dir(FLAGS.root_dir)
  files = cli.load_gin_from_flags()
  with gin_utils.recorded_config(root_dir, files, FLAGS.gin_bindings):
    if FLAGS.num_parallel_envs is not None and FLAGS.num_parallel_envs <= 0:
      raise UserError(
        f"--num_parallel_envs must be positive, got {FLAGS.num_parallel_envs}"
      )
    kwargs = {} if FLAGS.num_episodes is None else {"num_episodes": FLAGS.num_episodes}
    if FLAGS.num_parallel_envs is not None:
      kwargs["num_parallel_envs"] = FLAGS.num_parallel_envs
    if FLAGS.warm_start_dir is not None:
      kwargs["warm_start_dir"] = os.path.abspath(FLAGS.warm_start_dir)
    result = controller_training.train_controller(
      root_dir, seed=FLAGS.seed, say=cli.say, **kwargs
    )
  cli.say(f"{result['episodes']} episodes; greedy policy: {result['policy_dir']}")
  cli.say(f"episode log: {os.path.join(root_dir, constants.EPISODES_JSONL)}")


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
