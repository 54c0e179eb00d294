"""Every shipped gin config parses, and the paper's controller configs share one base."""

import os

import gin
import pytest

from lr_controller import gin_utils

CONFIGS = sorted(
  os.path.relpath(os.path.join(folder, name), gin_utils.GIN_CONFIGS_DIR)
  for folder, _, names in os.walk(gin_utils.GIN_CONFIGS_DIR)
  for name in names
  if name.endswith(".gin")
)
PAPER_SETTINGS = (
  "fashion_mnist_lenet",
  "fashion_mnist_resnet18",
  "cifar10_lenet",
  "cifar10_resnet18",
)


@pytest.fixture(autouse=True)
def _clear_gin():
  yield
  gin.clear_config()


def test_configs_are_found():
  assert "controller/digits.gin" in CONFIGS
  assert "controller/paper.gin" in CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_every_shipped_config_parses(name):
  gin_utils.parse_gin([name], finalize=False)


@pytest.mark.parametrize("setting", PAPER_SETTINGS)
def test_paper_controller_configs_are_their_setting_plus_the_paper_base(setting):
  gin_utils.parse_gin([f"controller/{setting}.gin"], finalize=False)
  combined = gin.config_str()
  gin_utils.parse_gin([f"{setting}.gin", "controller/paper.gin"], finalize=False)
  assert combined == gin.config_str()
  assert gin.query_parameter("create_environment.reward") == "neg_val_loss"
  assert gin.query_parameter("train_controller.num_episodes") == 1000
