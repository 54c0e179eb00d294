"""Command-line binaries (absl flags + gin), thin wrappers of library functions."""

import os

# Keep TensorFlow's C++ start-up chatter (CUDA probing, CPU features) off the
# console of our binaries; set TF_CPP_MIN_LOG_LEVEL=0 to see it again.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
