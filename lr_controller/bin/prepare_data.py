r"""Downloads and prepares a tfds data set (needs internet, except for lrc_digits).

  python -m lr_controller.bin.prepare_data --dataset=fashion_mnist \
      --data_dir=~/tensorflow_datasets

On a machine without internet, run this where there is one and copy the
data_dir folder over; `load_data(data_dir=...)` then finds it.
"""

from absl import flags

from lr_controller.bin import cli
from lr_controller.errors import UserError, first_line
from lr_controller.trainee import data as data_lib

flags.DEFINE_string("dataset", None, f"One of: {', '.join(sorted(data_lib.SPLITS))}.")
flags.DEFINE_string(
  "data_dir",
  None,
  "tfds data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).",
)
FLAGS = flags.FLAGS


def main(argv):
  del argv
  import tensorflow_datasets as tfds

  name = FLAGS.dataset
  if name not in data_lib.SPLITS:
    raise UserError(
      f"unknown --dataset {name!r} (known: {', '.join(sorted(data_lib.SPLITS))})"
    )
  data_dir = data_lib.resolve_data_dir(FLAGS.data_dir)
  if data_lib.is_prepared(name, data_dir):
    cli.say(f"{name} is already prepared in {data_dir}")
    return
  cli.say(f"preparing {name} in {data_dir} ...")
  try:
    tfds.builder(name, data_dir=data_dir, try_gcs=False).download_and_prepare()
  except Exception as e:  # noqa: BLE001 - any download failure becomes one line.
    first = first_line(e)
    raise UserError(f"could not prepare {name} in {data_dir}: {first}") from None
  cli.say(f"done: {name} is prepared in {data_dir}")


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
