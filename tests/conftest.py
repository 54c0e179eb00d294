"""Test-wide set-up: quiet TensorFlow logs, clean gin state around every test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _clear_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def pytest_configure(config):
  # `tf.test.TestCase.create_tempdir` reads absl flags; pytest does not parse them.
  from absl import flags

  flags.FLAGS.mark_as_parsed()
  # pytest-xdist's `--dist loadscope` hands out scopes (a class, or a module's
  # functions) with the most tests first, so the slow end-to-end classes, of
  # one to four tests each, came late and a long one could run alone at the
  # end. Hand them out in collection order instead, slow first (below).
  if hasattr(config.option, "loadscopereorder"):
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
  # `tf.test.TestCase.test_session` is a deprecated context manager, not a
  # test; pytest collects it and reports it skipped. Drop it.
  items[:] = [item for item in items if item.name != "test_session"]
  # The slow tests first (stable: otherwise in collection order), so that
  # two workers start on the long ones and the short ones fill the end.
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)
