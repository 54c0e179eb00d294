"""The policy metadata's one layout: written by training, read by every loader."""

from __future__ import annotations

import math
import types

import pytest

from lr_controller import features, policy_metadata
from lr_controller.errors import UserError

INTERFACE = policy_metadata.Interface(
  feature_names=features.BUDGET_AWARE_FEATURES,
  action_interval=10,
  max_log_factor=math.log(2.0),
  min_learning_rate=1e-6,
  max_learning_rate=1.0,
)


SETTING = {
  "scope": "",
  "data": "lrc_digits",
  "model": "lenet5",
  "optimizer": "sgd",
  "batch_size": 100,
  "num_steps": 200,
  "initial_learning_rates": [0.01],
}


def _document(**changes):
  metadata = policy_metadata.build(
    INTERFACE,
    reward="neg_val_loss",
    actor_network={"kind": "mlp"},
    action_levels=None,
    settings=[SETTING],
    commit="0123456789ab",
  )
  return {**policy_metadata.document(metadata, episodes=50), **changes}


def test_what_training_writes_is_what_loaders_read():
  document = _document()
  assert document == {
    "format": "lr_controller.policy/1",
    "features": list(features.BUDGET_AWARE_FEATURES),
    "action_interval": 10,
    "max_log_factor": math.log(2.0),
    "min_learning_rate": 1e-6,
    "max_learning_rate": 1.0,
    "reward": "neg_val_loss",
    "actor_network": {"kind": "mlp"},
    "action_levels": None,
    "training": {"settings": [SETTING], "commit": "0123456789ab"},
    "episodes": 50,
  }
  assert policy_metadata.read_interface(document, "p") == INTERFACE
  assert policy_metadata.describe(document) == (
    "trained on 1 setting (data lrc_digits; models lenet5; optimizers sgd; "
    "initial rates 0.01; 200 steps); 50 episodes; observes "
    + ", ".join(features.BUDGET_AWARE_FEATURES)
    + "; decides every 10 steps; commit 0123456789ab"
  )


def test_interface_of_an_environment_and_its_differences():
  env = types.SimpleNamespace(
    feature_names=["val_loss"],
    action_interval=5,
    max_log_factor=math.log(2.0) * (1 + 1e-12),  # Rounding: no difference.
    min_learning_rate=1e-6,
    max_learning_rate=0.5,
  )
  other = policy_metadata.Interface.of_environment(env)
  assert other.feature_names == ("val_loss",)
  assert INTERFACE.differences(other) == [
    "features",
    "action_interval",
    "max_learning_rate",
  ]
  assert INTERFACE.differences(INTERFACE) == []


@pytest.mark.parametrize(
  "changes, message",
  [
    ({"format": "other/2"}, "not an lr_controller policy: metadata format 'other/2'"),
    ({"features": "val_loss"}, "features must be a list of names"),
    ({"features": ["val_loss", "nope"]}, r"unknown feature\(s\) \['nope'\]"),
    ({"action_interval": 0}, "action_interval must be an integer >= 1, got 0"),
    ({"action_interval": True}, "action_interval must be an integer >= 1"),
    ({"max_log_factor": "big"}, "max_log_factor must be a finite number > 0"),
    ({"min_learning_rate": -1.0}, "min_learning_rate must be a finite number > 0"),
    ({"min_learning_rate": 2.0}, "min_learning_rate 2.0 must be below"),
  ],
)
def test_bad_metadata_is_a_one_line_error_naming_the_policy(changes, message):
  with pytest.raises(UserError, match=message) as raised:
    policy_metadata.read_interface(_document(**changes), "/x/greedy_policy")
  assert str(raised.value).startswith(("policy /x/greedy_policy", "/x/greedy_policy"))
  assert len(str(raised.value).splitlines()) == 1


def test_a_missing_field_is_named():
  document = _document()
  del document["max_log_factor"]
  with pytest.raises(UserError, match="metadata lacks max_log_factor"):
    policy_metadata.read_interface(document, "p")
