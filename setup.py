"""Installs lr_controller.

  pip install .                 # the callback and policy loader: TensorFlow only
  pip install -c constraints.txt ".[train]"   # + the pinned training stack (TF 2.15, tf-agents, Reverb)
  pip install -c constraints.txt -e ".[train,test]"   # the dev venv (./run.sh setup)

`python_requires` is the base install's: Python 3.10 on (the callback uses
`isinstance(x, A | B)`), with whichever TensorFlow >= 2.15 has wheels for it
(2.15 covers 3.9-3.11, newer releases newer Pythons). The `train` extra's pins
(TensorFlow 2.15.1, dm-reverb 0.14.0, scipy 1.17.1, ...) resolve on Python 3.11
only.

The gin configs live once, in the top-level `gin_configs/`; the build maps them
into the package as `lr_controller/gin_configs` (package data of a package
without code), where `gin_utils.GIN_CONFIGS_DIR` finds them in an installed wheel.
"""

import setuptools

# The user's surface (`lr_controller.LearnedLRScheduler`, `load_policy`) needs
# TensorFlow alone, any version from the pinned one on (Keras 2 or 3).
CALLBACK_REQUIRES = ["tensorflow>=2.15", "numpy"]

# Controller training, evaluation and the binaries: the pinned stack.
TRAIN_REQUIRES = [
  "tensorflow==2.15.1",
  "tf-agents[reverb]==0.19.0",
  "dm-reverb==0.14.0",
  "rlds==0.1.8",
  "tensorflow-probability==0.23.0",
  "tensorflow-datasets==4.9.4",
  "tensorflow-metadata<1.15",
  "gin-config==0.5.0",
  "absl-py==1.4.0",
  "numpy==1.26.4",
  "scipy==1.17.1",
  "matplotlib==3.11.2",
  "scikit-learn==1.9.1",
  "mnist1d==0.0.2.post1",
]

setuptools.setup(
  name="lr_controller",
  version="0.1.0",
  description=(
    "Learned learning-rate control with PPO: a TensorFlow/Keras "
    "reimplementation of Xu et al. 2019, 'Learning an Adaptive Learning "
    "Rate Schedule'."
  ),
  packages=[
    *setuptools.find_packages(include=["lr_controller*", "official_models*"]),
    "lr_controller.gin_configs",
  ],
  package_dir={"lr_controller.gin_configs": "gin_configs"},
  package_data={
    "lr_controller.gin_configs": ["*.gin", "*/*.gin"],
    # The pretrained controllers (`lr_controller.presets`): exported policies.
    "lr_controller": [
      "preset_policies/*/*.pb",
      "preset_policies/*/*.json",
      "preset_policies/*/variables/*",
    ],
  },
  python_requires=">=3.10",
  install_requires=CALLBACK_REQUIRES,
  extras_require={
    "train": TRAIN_REQUIRES,
    "test": ["pytest==9.2.0", "pytest-xdist==3.8.0", "ruff==0.17.6"],
  },
  entry_points={
    "console_scripts": [
      "lrc-train-trainee=lr_controller.bin.train_trainee:run",
      "lrc-search-baseline=lr_controller.bin.search_baseline:run",
      "lrc-evaluate=lr_controller.bin.evaluate:run",
      "lrc-train-controller=lr_controller.bin.train_controller:run",
      "lrc-distributed=lr_controller.bin.distributed:run",
      "lrc-launch-local=lr_controller.bin.launch_local:run",
    ],
  },
)
