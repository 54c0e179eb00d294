"""Pretrained controllers that ship with the package, loaded by name.

In the Keras convention (KerasHub's `from_preset`): a preset is a trained
controller policy stored in the package (`lr_controller/preset_policies/NAME`,
an exported policy as `train_controller` writes it), so that a user applies
one without training anything:

  callback = lr_controller.LearnedLRScheduler.from_preset(
      "general", validation_data=(x_val, y_val))
  lr_controller.list_presets()      # ["general"]
  lr_controller.describe("general") # one line: what it observes, what it was trained on

From a shell: `python -m lr_controller.presets` prints one line per shipped
preset; `python -m lr_controller.presets NAME_OR_POLICY_DIR` describes one.

| preset  | trained on (gin_configs/controller/pretrained.gin)                      |
|---------|-------------------------------------------------------------------------|
| general | 7 settings: digits and MNIST-1D; LeNet-5, an MLP, a 1-D CNN; SGD with    |
|         | momentum and Adam; initial rates 3e-4 to 0.3; batches 50 and 100;       |
|         | 200 to 1,000 steps. It observes the paper's 7 features and the budget.  |

TensorFlow only, like the callback.
"""

from __future__ import annotations

import importlib.resources
import os
import sys

from lr_controller import policy_metadata
from lr_controller.errors import UserError

# Where the presets live inside the package.
PRESET_PACKAGE = "lr_controller"
PRESET_FOLDER = "preset_policies"


def _preset_root() -> str:
  return os.fspath(importlib.resources.files(PRESET_PACKAGE) / PRESET_FOLDER)


def list_presets() -> list[str]:
  """Names of the presets this installation ships, sorted."""
  root = _preset_root()
  if not os.path.isdir(root):
    return []
  return sorted(
    name
    for name in os.listdir(root)
    if os.path.isfile(os.path.join(root, name, "saved_model.pb"))
  )


def preset_path(name: str) -> str:
  """The policy directory of preset `name`.

  Raises:
    UserError: (one line, naming the shipped presets) for an unknown name.
  """
  available = list_presets()
  if not isinstance(name, str) or name not in available:
    raise UserError(
      f"unknown preset {name!r}; this installation ships: "
      f"{', '.join(available) or 'none'}"
    )
  return os.path.join(_preset_root(), name)


def preset_name(policy_dir: str | os.PathLike) -> str | None:
  """The name of the shipped preset stored at `policy_dir`; None for any other path."""
  path = os.path.realpath(os.fspath(policy_dir))
  for name in list_presets():
    if os.path.realpath(os.path.join(_preset_root(), name)) == path:
      return name
  return None


def describe(policy: str | os.PathLike) -> str:
  """One line about a controller: a preset's name or a policy directory.

  Says what it observes and when it acts, and what it was trained on (data
  sets, models, optimizers, initial rates, steps, episodes, the commit), from
  the policy's metadata (`policy_metadata.describe`).

  Raises:
    UserError: (one line) for an unknown preset or an unusable policy.
  """
  from lr_controller import controller  # TensorFlow, only when used.

  if isinstance(policy, str) and not os.path.exists(policy) and os.sep not in policy:
    path = preset_path(policy)  # A name: a preset (or an error naming them).
  else:
    path = os.fspath(policy)
  return policy_metadata.describe(controller.load_policy(path).metadata)


def main(argv: list[str]) -> int:
  """`python -m lr_controller.presets [NAME_OR_POLICY_DIR]`: one line per controller."""
  from lr_controller.errors import first_line

  names = argv[1:] or list_presets()
  if not names:
    print("no presets ship with this installation")
  try:
    for name in names:
      print(f"{name}: {describe(name)}")
  except UserError as e:
    print(f"error: {first_line(e)}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
