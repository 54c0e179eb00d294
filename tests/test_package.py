"""Tests of the package as users get it: a light import and an installed wheel.

The callback's users install `lr_controller` without extras (TensorFlow only),
so importing the callback and the policy loader must not pull in the training
stack. The wheel must carry what the binaries need (the gin configs, the
`official_models` package) and work away from the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

import pytest

from lr_controller import constants

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_WHEEL = os.path.join(REPO_ROOT, "scripts", "build_wheel.py")

# The training stack: a callback user has none of it.
TRAINING_MODULES = ("tf_agents", "tensorflow_probability", "reverb", "gin")

LIGHT_IMPORT = f"""
import json, sys
import lr_controller
lr_controller.LearnedLRScheduler, lr_controller.load_policy
print(json.dumps({{
  "loaded": [m for m in {TRAINING_MODULES!r} if m in sys.modules],
  "tensorflow": "tensorflow" in sys.modules,
  "control": sorted(m for m in sys.modules if m.split(".")[:2] == ["lr_controller", "control"]),
}}))
"""


def _run(args, **kwargs) -> subprocess.CompletedProcess:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("PYTHONPATH", None)
  env.update(kwargs.pop("env", {}))
  return subprocess.run(
    args, capture_output=True, text=True, timeout=600, check=False, env=env, **kwargs
  )


def _assert_ok(proc: subprocess.CompletedProcess) -> None:
  assert proc.returncode == 0, (
    f"{proc.args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
  )


def test_callback_import_leaves_out_the_training_stack():
  proc = _run([sys.executable, "-c", LIGHT_IMPORT], cwd=REPO_ROOT)
  _assert_ok(proc)
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result == {"loaded": [], "tensorflow": True, "control": []}


def test_checkout_reads_the_one_top_level_gin_configs():
  from lr_controller import gin_utils

  assert gin_utils.GIN_CONFIGS_DIR == os.path.join(REPO_ROOT, "gin_configs")
  assert not os.path.exists(os.path.join(REPO_ROOT, "lr_controller", "gin_configs"))


@pytest.mark.slow
def test_wheel_installs_and_runs_away_from_the_checkout():
  with tempfile.TemporaryDirectory(prefix="lrc_test_package_") as tmp:
    proc = _run([sys.executable, BUILD_WHEEL, os.path.join(tmp, "dist")])
    _assert_ok(proc)
    wheel = proc.stdout.strip().splitlines()[-1]

    # What the wheel holds and requires.
    with zipfile.ZipFile(wheel) as archive:
      names = set(archive.namelist())
      metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
      metadata = archive.read(metadata_name).decode()
    for shipped in (
      "lr_controller/gin_configs/digits_lenet.gin",
      "lr_controller/gin_configs/smoke.gin",
      "lr_controller/gin_configs/controller/digits.gin",
      "lr_controller/gin_configs/tasks/digits_transfer.gin",
      "official_models/__init__.py",
      "lr_controller/bin/train_trainee.py",
    ):
      assert shipped in names, f"{shipped} missing from {os.path.basename(wheel)}"
    requires = [
      line.split(":", 1)[1].strip()
      for line in metadata.splitlines()
      if line.startswith("Requires-Dist:")
    ]
    base = sorted(r for r in requires if "extra ==" not in r)
    assert base == ["numpy", "tensorflow>=2.15"], base
    assert any(r.startswith("tf-agents") and "train" in r for r in requires)

    # A fresh venv with the wheel alone; the pinned stack is borrowed from the
    # dev venv through a path line (not `site.addsitedir`, so the dev venv's
    # editable install of the checkout stays inactive).
    venv = os.path.join(tmp, "venv")
    _assert_ok(_run([sys.executable, "-m", "venv", "--without-pip", venv]))
    python = os.path.join(venv, "bin", "python")
    _assert_ok(
      _run(
        [
          sys.executable,
          "-m",
          "pip",
          "--python",
          python,
          "install",
          "--quiet",
          "--disable-pip-version-check",
          "--no-deps",
          wheel,
        ]
      )
    )
    site_packages = _run(
      [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    with open(os.path.join(site_packages, "lr_controller_dev_stack.pth"), "w") as f:
      f.write(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = os.path.join(tmp, "elsewhere")
    os.makedirs(elsewhere)
    proc = _run(
      [
        python,
        "-c",
        "import lr_controller, official_models; from lr_controller import gin_utils; "
        "print(lr_controller.__file__); print(official_models.__file__); "
        "print(gin_utils.GIN_CONFIGS_DIR)",
      ],
      cwd=elsewhere,
    )
    _assert_ok(proc)
    for path in proc.stdout.split():
      assert path.startswith(site_packages + os.sep), proc.stdout

    root = os.path.join(tmp, "run")
    proc = _run(
      [
        os.path.join(venv, "bin", "lrc-train-trainee"),
        f"--root_dir={root}",
        "--gin_file=digits_lenet.gin",
        "--gin_file=smoke.gin",
      ],
      cwd=elsewhere,
      env={"TFDS_DATA_DIR": os.path.join(tmp, "tfds")},
    )
    _assert_ok(proc)
    assert "finished: test loss" in proc.stdout, proc.stdout
    with open(os.path.join(root, constants.METRICS_JSON)) as f:
      assert json.load(f)
    # The run read the configs shipped in the installed wheel.
    with open(os.path.join(root, constants.CONFIG_GIN)) as f:
      sources = [
        line.removeprefix("# ---- ").strip() for line in f if line.startswith("# ---- ")
      ]
    assert sources == [
      os.path.join(site_packages, "lr_controller", "gin_configs", name)
      for name in ("digits_lenet.gin", "smoke.gin")
    ], sources
