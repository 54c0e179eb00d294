"""Command-line binaries (absl flags + gin), thin wrappers of library functions."""

import os

# Keep TensorFlow's C++ start-up chatter (CUDA probing, CPU features) off the
# console of our binaries; set TF_CPP_MIN_LOG_LEVEL=0 to see it again.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# tf_agents imports gym 0.23, whose import prints a deprecation notice on
# stderr; it would precede every line our binaries print there, one-line
# errors included. Import it once, quietly.
import contextlib  # noqa: E402
import io  # noqa: E402

with contextlib.redirect_stderr(io.StringIO()):
  try:
    import gym  # noqa: F401
  except ImportError:  # gym comes with tf-agents; nothing to silence without it.
    pass
