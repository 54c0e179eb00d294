"""Builds the lr_controller wheel from a copy of the checkout; prints its path.

    python scripts/build_wheel.py OUT_DIR

Runs `pip wheel --no-deps --no-build-isolation` with this interpreter (it needs
setuptools and wheel, as the dev venv has) on a temporary copy of the files the
build reads, so the checkout gets no `build/` folder whose stale files could
end up in a later wheel. Used by tests/test_package.py and
scripts/check_keras3.sh.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What setup.py builds from: its packages, the gin configs it maps into the
# package, and itself.
BUILD_INPUTS = (
  "setup.py",
  "pyproject.toml",
  "lr_controller",
  "official_models",
  "gin_configs",
)


def build_wheel(out_dir: str) -> str:
  """Builds the wheel into `out_dir` (created if needed).

  Returns:
    The wheel's path.

  Raises:
    subprocess.CalledProcessError: if pip fails (its output is shown).
  """
  os.makedirs(out_dir, exist_ok=True)
  with tempfile.TemporaryDirectory(prefix="lrc_wheel_src_") as source:
    for name in BUILD_INPUTS:
      path = os.path.join(REPO_ROOT, name)
      if os.path.isdir(path):
        shutil.copytree(
          path,
          os.path.join(source, name),
          ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
      else:
        shutil.copy2(path, source)
    before = set(os.listdir(out_dir))
    subprocess.run(
      [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        out_dir,
        source,
      ],
      check=True,
    )
  wheels = [
    name
    for name in os.listdir(out_dir)
    if name.startswith("lr_controller-") and name.endswith(".whl")
  ]
  new = [name for name in wheels if name not in before] or wheels
  assert len(new) == 1, f"expected one lr_controller wheel in {out_dir}, found {new}"
  return os.path.join(out_dir, new[0])


if __name__ == "__main__":
  if len(sys.argv) != 2:
    sys.exit("usage: python scripts/build_wheel.py OUT_DIR")
  print(build_wheel(os.path.abspath(sys.argv[1])))
