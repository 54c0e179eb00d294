"""Every shipped gin config parses, the paper's controller configs share one base,
and every binding a user can write takes effect or is an error."""

import ast
import inspect
import json
import math
import os
import subprocess
import sys

import gin
import numpy as np
import pytest

import official_models
from lr_controller import gin_utils
from lr_controller.control import env as env_lib
from lr_controller.errors import UserError
from lr_controller.judge import adaptive_peers, baseline_search
from lr_controller.trainee import fixed_schedule_runs, schedules
from lr_controller.trainee import trainee as trainee_lib

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


def test_includes_resolve_beside_a_folder_named_like_theirs(tmp_path, monkeypatch):
  # A run's output folder `controller/` in the working directory: gin's
  # package reader took it for the package of `include 'controller/recipe.gin'`
  # and raised TypeError.
  (tmp_path / "controller").mkdir()
  (tmp_path / "tasks").mkdir()
  monkeypatch.chdir(tmp_path)
  monkeypatch.syspath_prepend(str(tmp_path))
  gin_utils.parse_gin(["controller/digits.gin"], finalize=False)
  assert gin.query_parameter("create_environment.action_interval") == 10
  gin_utils.parse_gin(["controller/mnist1d_mlp.gin"], finalize=False)
  assert gin.query_parameter("load_data.name") == "lrc_mnist1d"


@pytest.mark.parametrize("setting", PAPER_SETTINGS)
def test_paper_controller_configs_are_their_setting_plus_the_paper_base(setting):
  gin_utils.parse_gin([f"controller/{setting}.gin"], finalize=False)
  combined = gin.config_str()
  gin_utils.parse_gin([f"{setting}.gin", "controller/paper.gin"], finalize=False)
  assert combined == gin.config_str()
  assert gin.query_parameter("create_environment.reward") == "neg_val_loss"
  assert gin.query_parameter("train_controller.num_episodes") == 1000


# ---- Every binding a user can write takes effect or is an error.

PACKAGE_ROOTS = ("lr_controller", "official_models")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_GIN_REGISTRARS = {"configurable", "external_configurable", "constant", "register"}


def _modules_registering_with_gin() -> list[str]:
  """Modules of the package whose code calls gin.configurable (and kin)."""
  found = []
  for root in PACKAGE_ROOTS:
    for folder, _, names in os.walk(os.path.join(REPO_ROOT, root)):
      for name in names:
        if not name.endswith(".py"):
          continue
        path = os.path.join(folder, name)
        with open(path) as f:
          tree = ast.parse(f.read())
        if any(
          isinstance(node, ast.Attribute)
          and node.attr in _GIN_REGISTRARS
          and isinstance(node.value, ast.Name)
          and node.value.id == "gin"
          for node in ast.walk(tree)
        ):
          module = os.path.relpath(path, REPO_ROOT)[: -len(".py")].replace(os.sep, ".")
          found.append(module.removesuffix(".__init__"))
  return sorted(found)


def test_every_module_with_configurables_is_registered():
  modules = _modules_registering_with_gin()
  assert "lr_controller.judge.adaptive_peers" in modules  # The scan sees them.
  assert "lr_controller.gin_utils" not in modules  # Docstrings do not count.
  # Each is in the one list, or imported by a listed package (official_models'
  # builders by `official_models`); checked in a fresh process.
  probe = (
    "import json, sys\n"
    "from lr_controller import gin_utils\n"
    "gin_utils.register_configurables()\n"
    f"print(json.dumps([m for m in {modules!r} if m not in sys.modules]))\n"
  )
  proc = subprocess.run(
    [sys.executable, "-c", probe],
    capture_output=True,
    text=True,
    cwd=REPO_ROOT,
    timeout=600,
    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    check=False,
  )
  assert proc.returncode == 0, proc.stderr
  assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
  listed = set(gin_utils.CONFIGURABLE_MODULES)
  for module in modules:
    assert module in listed or module.split(".")[0] in listed, module


@pytest.mark.parametrize(
  "binding",
  [
    # Set by the caller, never by gin.
    "run_training.num_steps = 5",
    "run_training.eval_interval = 5",
    "make_optimizer.learning_rate = 0.5",
    "build_model.input_shape = (8, 8, 1)",
    "build_model.num_classes = 3",
    "create_environment.seed = 3",
    "train_with_schedule.seed = 3",
    "search_step_decay.root_dir = '/tmp'",
    # Removed: the model is build_model.name, divergence is divergence_rule.
    "build_trainee.model_name = 'lenet'",
    "create_environment.max_val_loss_ratio = 4.0",
    # Misspelt.
    "create_environment.num_step = 10",
    "divergence_rule.max_val_loss = 4.0",
  ],
)
def test_bindings_a_caller_would_override_are_errors(binding):
  with pytest.raises(UserError, match="bad gin binding"):
    gin_utils.parse_gin(["digits_lenet.gin"], [binding], finalize=False)


# Configurable -> the parameters its callers always set (denylisted), by group.
CALLERS_SET = {
  # The peers' runs: `adaptive_peers.run_peer` passes the run's arguments.
  **{
    name: trainee_lib.RUN_ARGUMENTS
    for name in (
      "run_reduce_on_plateau",
      "run_hypergradient",
      "run_refined",
      "run_schedule_free",
      "run_autolrs",
    )
  },
  # The model builders: `build_model` passes the data's shapes.
  **{name: ("input_shape", "num_classes") for name in official_models.MODEL_BUILDERS},
  "build_model": ("input_shape", "num_classes"),
  # Run control: the binaries' flags.
  "train_controller": ("root_dir", "seed", "say"),
  "evaluate": ("root_dir", "policy_dir", "seed", "say", "setting"),
  "transfer": (
    "root_dir",
    "policy_dir",
    "task_set_path",
    "extra_gin_files",
    "extra_gin_bindings",
    "seed",
    "say",
  ),
  "search_step_decay": ("root_dir", "seed", "say"),
  "train_with_schedule": ("root_dir", "seed", "say"),
  # A trainee's seed, rate and schedule: set by every caller, reset every run.
  "build_trainee": ("seed", "initial_learning_rate", "schedule"),
  "build_noisy_quadratic": ("seed", "initial_learning_rate", "schedule"),
  "make_optimizer": ("learning_rate",),
  "create_environment": ("seed",),
  "create_agent": ("time_step_spec", "action_spec", "train_step_counter"),
}


@pytest.mark.parametrize(
  "configurable, parameter",
  [(c, p) for c, parameters in CALLERS_SET.items() for p in parameters],
)
def test_binding_what_the_caller_sets_is_a_one_line_error(
  configurable, parameter, tmp_path
):
  binding = f"{configurable}.{parameter} = 1"
  reason = (
    f"{configurable}.{parameter} cannot be bound: the caller always sets it "
    "(a flag of the binary, or the code that calls it)"
  )
  with pytest.raises(UserError) as caught:
    gin_utils.parse_gin(["digits_lenet.gin"], [binding], finalize=False)
  assert str(caught.value) == f"bad gin binding '{binding}': {reason}"
  # In a file: the same reason, with the line.
  path = tmp_path / "user.gin"
  path.write_text(f"include 'digits_lenet.gin'\n{binding}\n")
  with pytest.raises(UserError) as caught:
    gin_utils.parse_gin([str(path)], finalize=False)
  assert str(caught.value) == f"bad gin file {path}: {reason} (line 2)"


def test_the_peers_are_called_with_the_denylisted_arguments():
  for name, run in adaptive_peers.PEERS.items():
    parameters = list(inspect.signature(run).parameters)
    assert parameters == ["trainee", *trainee_lib.RUN_ARGUMENTS], name


def test_create_environment_takes_every_environment_argument_with_its_default():
  env_parameters = inspect.signature(env_lib.LearningRateControlEnv).parameters
  factory = inspect.signature(env_lib.create_environment).parameters
  assert set(env_parameters) == set(factory)
  for name, parameter in env_parameters.items():
    if name != "trainee_fn":
      assert factory[name].default == parameter.default, name


def test_create_environment_defaults_reach_the_operative_config():
  gin_utils.parse_gin(
    ["digits_lenet.gin"], ["create_environment.max_factor = 3.0"], finalize=False
  )
  env = env_lib.create_environment(seed=4)
  assert env.max_log_factor == pytest.approx(math.log(3.0))
  operative = gin.operative_config_str()
  assert "create_environment.max_factor = 3.0" in operative
  assert "create_environment.reward = 'neg_val_loss'" in operative  # A default.
  assert "create_environment.num_steps = 1000" in operative


def test_bound_run_length_and_model_take_effect(tmp_path):
  gin_utils.parse_gin(
    ["digits_lenet.gin", "smoke.gin"],
    [
      "train_with_schedule.num_steps = 30",
      "train_with_schedule.eval_interval = 15",
      "build_model.name = 'mlp'",
      "mlp.hidden_units = [7]",
    ],
    finalize=False,
  )
  metrics = fixed_schedule_runs.train_with_schedule(
    str(tmp_path), seed=0, say=lambda s: None
  )
  assert metrics["steps_done"] == 30
  assert [row["step"] for row in metrics["history"]] == [15, 30]
  operative = gin.operative_config_str()
  assert "build_model.name = 'mlp'" in operative


@pytest.mark.parametrize(
  "binding, message",
  [
    # Another run length than the evaluated runs' (20 steps).
    ("search_step_decay.num_steps = 30", r"search_step_decay.num_steps \(30\).*\(20\)"),
    # Repeats the evaluation would not use.
    (
      "search_step_decay.num_repeats = 3",
      r"search_step_decay.num_repeats \(3\) is not",
    ),
  ],
)
def test_evaluation_refuses_a_search_binding_it_would_not_honour(
  binding, message, tmp_path
):
  from lr_controller.judge import evaluation

  gin_utils.parse_gin(["digits_lenet.gin", "smoke.gin"], [binding], False)
  with pytest.raises(UserError, match=message):
    evaluation.run_baseline_search(str(tmp_path), None, 0, 20, say=lambda s: None)
  assert not os.listdir(os.path.join(tmp_path, "baseline_search"))


def test_make_schedule_bindings_reach_the_users_schedule_alone():
  gin_utils.parse_gin(
    ["digits_lenet.gin"],  # Binds make_schedule.total_steps = %NUM_STEPS (200).
    [
      "make_schedule.name = 'uba'",
      "make_schedule.initial_learning_rate = 0.5",
      "make_schedule.phi = 2.0",
    ],
    finalize=False,
  )
  # train_trainee's schedule takes every binding ...
  assert np.array_equal(
    schedules.schedule_values(schedules.make_schedule(), 250),
    schedules.schedule_values(schedules.build_schedule("uba", 0.5, 200, phi=2.0), 250),
  )
  # ... the library's schedules none: step decay of the grid, by its formula.
  decay = baseline_search.step_decay(
    {"initial_learning_rate": 0.1, "discount_step": 10, "factor": 0.5}, 30
  )
  np.testing.assert_allclose(
    schedules.schedule_values(decay, 30),
    0.1 * 0.5 ** np.floor(np.arange(30) / 10),
    rtol=1e-6,
  )


def test_bound_value_resolves_macros():
  gin_utils.parse_gin(["digits_lenet.gin", "smoke.gin"], finalize=False)
  assert gin_utils.bound_value("search_step_decay.num_steps", None) == 20
  assert gin_utils.bound_value("search_step_decay.factors", None) == [0.9]
  assert gin_utils.bound_value("search_step_decay.eval_interval", 10) == 10


def test_operative_config_has_one_writer(tmp_path):
  for root in PACKAGE_ROOTS:
    for folder, _, names in os.walk(os.path.join(REPO_ROOT, root)):
      for name in names:
        if name.endswith(".py") and name not in ("gin_utils.py", "constants.py"):
          with open(os.path.join(folder, name)) as f:
            assert "OPERATIVE_GIN" not in f.read(), name
  path = gin_utils.write_operative_config(
    str(tmp_path), [("source a", "X = 1\n"), ("setting b", "X = 2\n")]
  )
  with open(path) as f:
    assert f.read() == "# ==== source a\nX = 1\n\n# ==== setting b\nX = 2\n"


@pytest.mark.parametrize(
  "binding", ["create_environment.initial_learning_rates = [0.1, 0.2", "x = (1,"]
)
def test_an_unclosed_bracket_is_a_one_line_error(binding):
  # gin's tokenizer raises tokenize.TokenError, no ValueError.
  with pytest.raises(UserError, match="bad gin binding") as caught:
    gin_utils.parse_gin(["digits_lenet.gin"], [binding], finalize=False)
  assert "\n" not in str(caught.value)
