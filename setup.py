"""Installs lr_controller with the pinned stack (see constraints.txt)."""

import setuptools

setuptools.setup(
  name="lr_controller",
  version="0.1.0",
  description=(
    "Learned learning-rate control with PPO: a TensorFlow/Keras "
    "reimplementation of Xu et al. 2019, 'Learning an Adaptive Learning "
    "Rate Schedule'."
  ),
  packages=setuptools.find_packages(include=["lr_controller*", "official_models*"]),
  package_data={"": ["*.gin"]},
  include_package_data=True,
  python_requires=">=3.11,<3.12",
  install_requires=[
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
  ],
  extras_require={"test": ["pytest==9.2.0", "ruff==0.17.6"]},
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
