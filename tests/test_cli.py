"""The binaries' error edge (`lr_controller.bin.cli`), run as a user runs a binary.

A plain `unittest.TestCase`: the test starts a subprocess and needs nothing of
TensorFlow's test utilities.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import unittest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A binary whose main fails with a UserError while a native-level writer
# (here an atexit hook writing straight to fd 2, as Reverb's gRPC threads do
# while a process winds down) still has something to say.
_PROGRAM = textwrap.dedent(
  """
  import atexit, os
  from lr_controller.bin import cli
  from lr_controller.errors import UserError

  def main(argv):
    print("progress line", flush=True)
    os.write(2, b"native line before the error\\n")
    atexit.register(lambda: os.write(2, b"native line after the error\\n"))
    raise UserError("lost the server\\nIn call to configurable 'x'")

  cli.run(main)
  """
)


class ErrorEdgeTest(unittest.TestCase):
  def test_a_user_error_is_the_last_line_on_stderr_and_exit_status_2(self):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    result = subprocess.run(
      [sys.executable, "-c", _PROGRAM],
      capture_output=True,
      text=True,
      env=env,
      timeout=120,
    )
    self.assertEqual(result.returncode, 2, result.stderr)
    self.assertEqual(result.stdout, "progress line\n")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    self.assertEqual(lines[-1], "error: lost the server")
    self.assertIn("native line before the error", lines)
    self.assertNotIn("native line after the error", result.stderr)
    self.assertNotIn("Traceback", result.stderr)


if __name__ == "__main__":
  unittest.main()
