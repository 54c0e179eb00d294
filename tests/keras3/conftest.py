"""Set-up for the Keras 3 tests: quiet TensorFlow logs, absl flags for tf.test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
  # `tf.test.TestCase.create_tempdir` reads absl flags; pytest does not parse them.
  from absl import flags

  flags.FLAGS.mark_as_parsed()


def pytest_collection_modifyitems(config, items):
  # `tf.test.TestCase.test_session` is a deprecated context manager, not a test.
  items[:] = [item for item in items if item.name != "test_session"]
