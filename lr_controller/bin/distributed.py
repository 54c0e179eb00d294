r"""One job of the distributed (Reverb actor-learner) controller training.

Start one reverb job with the configuration, then any number of collect jobs
and one train job pointing at it (see `lr_controller.control.distributed`):

  python -m lr_controller.bin.distributed --job=reverb --reverb_port=8008 \
      --gin_file=controller/digits.gin --seed=0
  python -m lr_controller.bin.distributed --job=collect \
      --reverb_address=HOST:8008 --task=0          # on every collector machine
  python -m lr_controller.bin.distributed --job=train \
      --reverb_address=HOST:8008 --root_dir=/tmp/controller --num_episodes=1000

Collect and train jobs take the gin config and seed from the reverb job, so
they cannot disagree with it. Any job may be restarted: a collector rejoins, the
learner resumes from its checkpoint. `lr_controller.bin.launch_local` starts
the whole layout on this machine.
"""

import os

from absl import flags

from lr_controller import constants, gin_utils
from lr_controller.bin import cli
from lr_controller.control import controller_training, distributed
from lr_controller.errors import UserError

flags.DEFINE_enum("job", None, ["reverb", "collect", "train"], "Which job to run.")
flags.DEFINE_integer("reverb_port", 8008, "Port of the reverb job's server.")
flags.DEFINE_string(
  "reverb_address", "localhost:8008", "host:port of the reverb job (collect, train)."
)
flags.DEFINE_string("task", "0", "Name of this collect job in its progress lines.")
flags.DEFINE_integer(
  "num_episodes", None, "Total episodes to reach (train job; overrides gin)."
)
flags.DEFINE_float(
  "connect_timeout_secs", 600, "How long to wait for the reverb job to answer."
)
flags.DEFINE_float(
  "reissue_after_secs",
  None,
  "Train job: re-issue the episodes still missing after this long without one "
  "(default: 3x the slowest episode, at least 60 s).",
)
FLAGS = flags.FLAGS


def _reverb_job() -> None:
  if FLAGS.reverb_port <= 0 or FLAGS.reverb_port > 65535:
    raise UserError(f"--reverb_port must be in 1..65535, got {FLAGS.reverb_port}")
  cli.load_gin_from_flags()
  server = distributed.make_server(FLAGS.reverb_port, seed=FLAGS.seed)
  cli.say(f"reverb server listening on port {server.port}")
  server.wait()


def _connect_with_config():
  """Connects to the reverb job and adopts its gin config and seed."""
  if FLAGS.gin_file or FLAGS.gin_bindings:
    raise UserError(
      "collect and train jobs take their gin config from the reverb job: "
      "give --gin_file/--gin_bindings to --job=reverb"
    )
  client = distributed.connect(
    FLAGS.reverb_address, FLAGS.connect_timeout_secs, cli.say
  )
  config, seed = distributed.fetch_config(client)
  if FLAGS["seed"].present and FLAGS.seed != seed:
    raise UserError(
      f"--seed={FLAGS.seed} differs from the reverb job's seed {seed} (drop --seed)"
    )
  gin_utils.parse_gin_string(config)
  return client, config, seed


def _collect_job() -> None:
  client, _, seed = _connect_with_config()
  distributed.run_collector(client, seed, name=f"collector {FLAGS.task}", say=cli.say)


def _train_job() -> None:
  if FLAGS.num_episodes is not None and FLAGS.num_episodes <= 0:
    raise UserError(f"--num_episodes must be positive, got {FLAGS.num_episodes}")
  if FLAGS.reissue_after_secs is not None and FLAGS.reissue_after_secs <= 0:
    raise UserError(
      f"--reissue_after_secs must be positive, got {FLAGS.reissue_after_secs}"
    )
  root_dir = cli.make_root_dir(FLAGS.root_dir)
  client, config, seed = _connect_with_config()
  with open(os.path.join(root_dir, constants.CONFIG_GIN), "w") as f:
    f.write(f"# ---- from the reverb job at {FLAGS.reverb_address}\n{config}")
  kwargs = {} if FLAGS.num_episodes is None else {"num_episodes": FLAGS.num_episodes}

  def collector_fn(agent, unused_seed):
    return distributed.ReverbCollector(
      agent, client, FLAGS.reissue_after_secs, say=cli.say
    )

  result = controller_training.train_controller(
    root_dir, seed=seed, say=cli.say, collector_fn=collector_fn, **kwargs
  )
  cli.say(f"{result['episodes']} episodes; greedy policy: {result['policy_dir']}")


def main(argv):
  del argv
  if FLAGS.job is None:
    raise UserError("--job is required (reverb, collect or train)")
  {"reverb": _reverb_job, "collect": _collect_job, "train": _train_job}[FLAGS.job]()


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
