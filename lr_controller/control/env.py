"""The learning-rate control environment (Xu et al. 2019, Sec. 3.1).

One episode is one whole trainee training run (paper: 1,000 steps). Every
`action_interval` trainee steps (paper: 10) the controller observes the
features of `lr_controller.features`, is rewarded by `lr_controller.control.rewards`,
and answers with an action `a`; the learning rate of the next chunk is

    lr_t = clip(lr_{t-1} * exp(a), min_learning_rate, max_learning_rate),

with `a` a log scaling factor bounded to [-log(max_factor), log(max_factor)]
(paper-like default: factors in [0.5, 2]). Sampled actions may leave these
bounds (tf-agents' PPO does not clip its samples), so the environment clips
what it applies. With `action_levels=n` the action is instead an integer
i in [0, n) choosing the log factor `controller.level_log_factors(...)[i]`
(a discrete factor set for a categorical policy head). A non-finite action is applied as 0 (keep the rate) and
counted in `nonfinite_actions`. Observation guard and action rule are the
controller core's (`lr_controller.controller`), as in the callback.

An episode follows the protocol of every method (`lr_controller.trainee.protocol`):
the trainee validates its initial weights at reset, and a trainee that
diverges by the one rule (non-finite or too large training loss, or a
validation loss above `divergence_rule.max_val_loss_ratio` times the
episode's initial one) ends the episode with the reward's divergence penalty,
which keeps every return bounded; NaN never reaches the agent: the terminal
observation repeats the last finite one. At the end, the best-validation
checkpoint is tested once (`protocol.finish`).

Like DACBench's SGD environment, its description lives in one table, `INFO`.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence

import gin
import numpy as np
from tf_agents.environments import py_environment
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from lr_controller import checks, io_utils
from lr_controller import controller as controller_lib
from lr_controller import features as features_lib
from lr_controller.control import rewards as rewards_lib
from lr_controller.errors import UserError
from lr_controller.trainee import protocol
from lr_controller.trainee import trainee as trainee_lib

# `%PAPER_FEATURES`, `%BUDGET_AWARE_FEATURES`, `%RELATIVE_RATE_FEATURES`,
# `%STALL_FEATURES` and `%OPTIMIZER_AWARE_FEATURES` in gin files (registered
# here, on the training side, so that `features` and the callback need no gin).
gin.constant("PAPER_FEATURES", features_lib.PAPER_FEATURES)
gin.constant("BUDGET_AWARE_FEATURES", features_lib.BUDGET_AWARE_FEATURES)
gin.constant("RELATIVE_RATE_FEATURES", features_lib.RELATIVE_RATE_FEATURES)
gin.constant("STALL_FEATURES", features_lib.STALL_FEATURES)
gin.constant("OPTIMIZER_AWARE_FEATURES", features_lib.OPTIMIZER_AWARE_FEATURES)

INFO = {
  "identifier": "LearningRateControl",
  "reward": "per decision, by name from lr_controller.control.rewards.REWARDS (paper: neg_val_loss)",
  "state_description": "features by name from lr_controller.features.FEATURES (paper: PAPER_FEATURES)",
  "action": "log scaling factor a in [-log(max_factor), log(max_factor)] (or, with "
  "action_levels, an index into evenly spaced ones); lr <- lr * exp(a)",
  "episode": "one trainee run of num_steps steps; a decision every action_interval steps",
  "crash": "divergence by lr_controller.trainee.protocol's rule (non-finite or too "
  "large training loss, or validation loss above divergence_rule.max_val_loss_ratio "
  "x its initial value) ends the episode with a penalty",
}

# Episode k of base seed s trains the trainee of seed s * SEED_STRIDE + k.
SEED_STRIDE = 1_000_003


def episode_seed(seed: int, episode: int) -> int:
  """Trainee seed of episode `episode` (0-based) of base seed `seed`."""
  return seed * SEED_STRIDE + episode


class LearningRateControlEnv(py_environment.PyEnvironment):
  """Controls a trainee's learning rate, one chunk of steps per decision.

  Args:
    trainee_fn: builds the trainee once, given a seed; later episodes reuse it
      through `trainee.reset(seed, lr)` (no retracing). Anything that
      follows `trainee.TraineeRun` works (see `toy_problems`). It is called
      once more, inside `gin.config_scope(scope)`, for each scope of
      `scoped_initial_learning_rates`.
    num_steps: trainee steps per episode (paper: 1000).
    action_interval: trainee steps per decision (paper: 10).
    initial_learning_rates: each episode starts at one of these, drawn with the
      episode's seed (paper: one of 0.01, 0.001, 0.0001 per setting).
    scoped_initial_learning_rates: more trainee settings to train on: gin
      scope -> its initial learning rates. The trainee of scope `s` is built
      with `s/...` bindings (say `adam/make_optimizer.name = 'adam'`), and
      each episode draws one (setting, rate) pair, uniformly over the rates
      of the unscoped trainee and of every scope. None or empty: the unscoped
      trainee only. Evaluation always runs the unscoped trainee.
    scoped_num_steps: trainee steps per episode of the scopes named here (a
      multiple of `action_interval`; say `{'mnist1d': 1000}` beside digits'
      200), so settings with other step budgets train one controller; the
      other scopes and the unscoped trainee run `num_steps`.
    min_learning_rate: lower bound on the learning rate.
    max_learning_rate: upper bound on the learning rate.
    max_factor: largest factor one decision may scale the rate by (> 1).
    action_levels: None: the action is a log factor (float); n >= 2: the
      action is an index into n log factors evenly spaced over the bounds
      (`controller.level_log_factors`; 5 levels of max_factor 2 are the
      factors 1/2, 1/sqrt(2), 1, sqrt(2), 2).
    feature_names: observation features, in order.
    reward: a reward name from `rewards.REWARDS` (one that needs a reference
      makes each new trainee seed cost a second, constant-rate run).
    divergence_penalty: the final reward of a diverged episode (divergence is
      the trainee's, by `protocol`'s rule: its validation-loss bound keeps an
      exploding but finite run from giving one episode a return that swamps
      every other in its PPO update); None uses the reward's default (see
      `rewards`).
    setback_weight: each decision's reward also pays -setback_weight *
      `rewards.setback` (the log of how far its validation loss is above the
      lowest before it; a diverging decision pays the penalty alone); 0 (the
      default) leaves the reward as it is.
    reward_scale: every reward (the penalty included) is multiplied by this
      (> 0). It does not change which schedule is best, but returns of order 1
      let the critic, whose outputs move by about its Adam rate per step, fit
      them within a few updates; 1 / decisions_per_episode makes the return
      the mean reward per decision.
    scoped_reward_scales: `reward_scale` of the scopes named here (> 0; the
      other scopes and the unscoped trainee keep `reward_scale`). PPO
      normalizes advantages over a whole batch, so a setting whose returns
      spread less weighs less in each update; scales inversely proportional
      to each setting's return spread weigh them alike (a static form of
      PopArt's per-task normalization, Hessel et al. 2019).
    seed: base seed; episode k uses seed `seed * 1_000_003 + k`.
    evaluate_test: evaluate the best-validation checkpoint on the test split at
      the end of each episode (reported in `last_episode`, never observed).
  """

  def __init__(
    self,
    trainee_fn: Callable[[int], trainee_lib.TraineeRun],
    num_steps: int = 1000,
    action_interval: int = 10,
    initial_learning_rates: Sequence[float] = (0.01,),
    scoped_initial_learning_rates: Mapping[str, Sequence[float]] | None = None,
    scoped_num_steps: Mapping[str, int] | None = None,
    min_learning_rate: float = 1e-6,
    max_learning_rate: float = 1.0,
    max_factor: float = 2.0,
    action_levels: int | None = None,
    feature_names: Sequence[str] = features_lib.PAPER_FEATURES,
    reward: str = "neg_val_loss",
    divergence_penalty: float | None = None,
    setback_weight: float = 0.0,
    reward_scale: float = 1.0,
    scoped_reward_scales: Mapping[str, float] | None = None,
    seed: int = 0,
    evaluate_test: bool = True,
  ):
    super().__init__(handle_auto_reset=True)
    if num_steps <= 0 or action_interval <= 0:
      raise UserError(
        f"num_steps and action_interval must be positive, got {num_steps} and {action_interval}"
      )
    if num_steps % action_interval:
      raise UserError(
        f"num_steps ({num_steps}) must be a multiple of action_interval ({action_interval})"
      )
    if not max_factor > 1:
      raise UserError(f"max_factor must be above 1, got {max_factor}")
    self.min_learning_rate = trainee_lib.check_learning_rate(min_learning_rate)
    self.max_learning_rate = trainee_lib.check_learning_rate(max_learning_rate)
    if self.min_learning_rate >= self.max_learning_rate:
      raise UserError(
        f"min_learning_rate {min_learning_rate} must be below max_learning_rate {max_learning_rate}"
      )
    self._initial_lrs = [
      trainee_lib.check_learning_rate(lr) for lr in initial_learning_rates
    ]
    if not self._initial_lrs:
      raise UserError("initial_learning_rates must not be empty")
    # (gin scope, initial rate) pairs an episode draws from; "" is unscoped.
    self._settings = [("", lr) for lr in self._initial_lrs] + _scoped_settings(
      scoped_initial_learning_rates
    )
    self.num_steps = int(num_steps)
    self.action_interval = int(action_interval)
    # Trainee steps per episode by gin scope ("": unscoped).
    scopes = {scope for scope, _ in self._settings}
    self._steps_by_scope = {"": self.num_steps} | _scoped_num_steps(
      scoped_num_steps, scopes, self.action_interval
    )
    self._episode_steps = self.num_steps
    self.max_log_factor = float(math.log(max_factor))
    self.action_log_factors = (
      None
      if action_levels is None
      else controller_lib.level_log_factors(self.max_log_factor, action_levels)
    )
    self.feature_names = features_lib.check_feature_names(feature_names)
    self.reward_name = reward
    self._reward = rewards_lib.get_reward(reward)
    self._divergence_penalty = divergence_penalty
    self._setback_weight = checks.non_negative("setback_weight", setback_weight)
    # Reward scale by gin scope ("": unscoped); the episode's in `_reward_scale`.
    self._reward_scales = {
      "": checks.positive("reward_scale", reward_scale)
    } | _scoped_reward_scales(scoped_reward_scales, scopes)
    self._reward_scale = self._reward_scales[""]
    self._seed = int(seed)
    self._evaluate_test = evaluate_test
    self.episode_index = 0  # Episodes started so far; restored when resuming.
    self.nonfinite_actions = 0
    self.last_episode: dict | None = None
    self._trainee_fn = trainee_fn
    self._trainees: dict[str, trainee_lib.TraineeRun] = {}  # By gin scope.
    self._trainee = None
    # (scope, trainee seed, initial rate) -> the reference run's validation losses.
    self._reference_curves: dict[tuple[str, int, float], list[float]] = {}
    self._reference: list[float] | None = None
    self._pending_seed: int | None = None
    self._episode_ended = True

  # ---- Specs. ----

  def observation_spec(self) -> array_spec.ArraySpec:
    return array_spec.ArraySpec(
      (len(self.feature_names),), np.float32, name="observation"
    )

  def action_spec(self) -> array_spec.BoundedArraySpec:
    if self.action_log_factors is not None:
      return array_spec.BoundedArraySpec(
        (),
        np.int32,
        minimum=0,
        maximum=len(self.action_log_factors) - 1,
        name="factor_level",
      )
    return array_spec.BoundedArraySpec(
      (),
      np.float32,
      minimum=-self.max_log_factor,
      maximum=self.max_log_factor,
      name="log_factor",
    )

  @property
  def decisions_per_episode(self) -> int:
    """Decisions of the current episode (of the unscoped trainee before the first reset)."""
    return self._episode_steps // self.action_interval

  def episode_steps(self, scope: str = "") -> int:
    """Trainee steps per episode of gin scope `scope` ("": unscoped)."""
    return self._steps_by_scope.get(scope, self.num_steps)

  @property
  def trainee(self):
    """The current episode's trainee (built on the first reset)."""
    return self._trainee

  def _scoped_trainee(self, scope: str, seed: int):
    """The trainee of gin scope `scope` ("": unscoped).

    The first call builds every setting's trainee, so that gin's operative
    config records the bindings of all of them, whichever process runs
    which episodes.
    """
    if not self._trainees:
      for name in dict.fromkeys(name for name, _ in self._settings):
        with gin.config_scope(name) if name else contextlib.nullcontext():
          self._trainees[name] = self._trainee_fn(seed)
    return self._trainees[scope]

  def training_settings(self) -> list[dict]:
    """The settings episodes draw from, one dict per gin scope (builds the trainees).

    Each: `scope` ("" unscoped), the trainee's `describe()` (data, model,
    optimizer, batch_size), `num_steps` per episode and the
    `initial_learning_rates` episodes start at.
    """
    rates: dict[str, list[float]] = {}
    for scope, lr in self._settings:
      rates.setdefault(scope, []).append(lr)
    return [
      {
        "scope": scope,
        **self._scoped_trainee(scope, self.episode_seed(0)).describe(),
        "num_steps": self.episode_steps(scope),
        "initial_learning_rates": scope_rates,
      }
      for scope, scope_rates in rates.items()
    ]

  def episode_seed(self, episode: int) -> int:
    """Seed of the trainee of episode `episode` (0-based)."""
    return episode_seed(self._seed, episode)

  def seed_next_episode(self, seed: int) -> None:
    """Makes the next reset start a trainee from `seed` (evaluation runs)."""
    self._pending_seed = int(seed)

  # ---- Episode logic. ----

  def _reset(self) -> ts.TimeStep:
    episode = self.episode_index
    self.episode_index += 1
    seed = (
      self.episode_seed(episode) if self._pending_seed is None else self._pending_seed
    )
    self._pending_seed = None
    rng = np.random.default_rng(seed)
    scope, lr = self._settings[rng.integers(len(self._settings))]
    self._trainee = self._scoped_trainee(scope, seed)
    self._episode_steps = self.episode_steps(scope)
    self._reward_scale = self._reward_scales.get(scope, self._reward_scales[""])
    self._adaptive_optimizer = "adaptive_optimizer" in self.feature_names and (
      _trainee_is_adaptive(self._trainee)
    )
    self._reference = None
    reference_steps = 0
    if self._reward.needs_reference:
      cached = _reference_key(scope, seed, lr) in self._reference_curves
      self._reference = self.reference_curve(seed, lr, scope)
      reference_steps = 0 if cached else self._episode_steps
    self._trainee.reset(seed, lr)
    start = self._trainee.validate(keep_probabilities=True)
    self._initial_val_loss = start.loss
    self._val_loss = start.loss
    # The run's best validation loss so far: rewards and stall features.
    self._stall = features_lib.StallTracker()
    self._stall.observe(start.loss)
    self._probabilities = start.probabilities
    self._episode_start = time.perf_counter()
    self._episode = {
      "episode": episode,
      "seed": seed,
      "initial_learning_rate": lr,
      **(
        {
          "trainee_scope": scope,
          "num_steps": self._episode_steps,
          "reward_scale": self._reward_scale,
        }
        if len(self._settings) > len(self._initial_lrs)
        else {}
      ),
      "learning_rates": [],
      "val_losses": [],
      "train_losses": [],
      "return": 0.0,
    }
    if self._reference is not None:
      self._episode["reference_val_losses"] = list(self._reference)
      # The trainee steps this episode spent on a new reference run.
      self._episode["reference_steps"] = reference_steps
    state = self._state(
      train_loss=start.loss, probabilities=start.probabilities, learning_rate=lr
    )
    self._observation = self._observe(state)
    self._episode_ended = False
    return ts.restart(self._observation)

  def _step(self, action) -> ts.TimeStep:
    trainee = self._trainee
    action = np.asarray(action).reshape(())
    if self.action_log_factors is not None:
      levels = self.action_log_factors
      action = levels[int(np.clip(action, 0, len(levels) - 1))]
    lr, _, finite = controller_lib.apply_action(
      trainee.learning_rate,
      float(action),
      self.max_log_factor,
      self.min_learning_rate,
      self.max_learning_rate,
    )
    if not finite:
      self.nonfinite_actions += 1
    trainee.set_learning_rate(lr)
    train_loss = trainee.train(self.action_interval)
    self._episode["learning_rates"].append(lr)
    self._episode["train_losses"].append(io_utils.finite_or_none(train_loss))
    previous_val = self._val_loss
    result = None if trainee.diverged else trainee.validate(keep_probabilities=True)
    if trainee.diverged:  # By this chunk's training or validation loss.
      decision = len(self._episode["learning_rates"])  # 1-based.
      remaining = self.decisions_per_episode - decision + 1
      if self._divergence_penalty is not None:
        reward = float(self._divergence_penalty)
      else:
        reward = self._reward.penalty(
          self._initial_val_loss,
          previous_val,
          remaining,
          None if self._reference is None else self._reference[decision - 1 :],
          self._stall.best_val_loss,
        )
      self._episode["val_losses"].append(None)
      return self._end(self._reward_scale * reward)
    self._val_loss = result.loss
    self._episode["val_losses"].append(result.loss)
    reference = (
      None
      if self._reference is None
      else self._reference[len(self._episode["learning_rates"]) - 1]
    )
    reward = self._reward_scale * (
      float(
        self._reward.fn(previous_val, result.loss, reference, self._stall.best_val_loss)
      )
      - self._setback_weight
      * rewards_lib.setback(result.loss, self._stall.best_val_loss)
    )
    self._stall.observe(result.loss)
    state = self._state(train_loss, result.probabilities, lr)
    self._probabilities = result.probabilities
    self._observation = self._observe(state)
    if trainee.global_step >= self._episode_steps:
      return self._end(reward)
    self._episode["return"] += reward
    return ts.transition(
      self._observation, np.float32(reward), discount=np.float32(1.0)
    )

  def reference_curve(
    self, seed: int, learning_rate: float, scope: str = ""
  ) -> list[float]:
    """Validation losses after each decision of the constant-rate reference run.

    The trainee of gin scope `scope` ("": unscoped) and `seed` trains at
    `learning_rate` throughout (every action 0), validated at each decision;
    once it diverges (by the trainee's rule), the remaining entries are its
    initial validation loss.
    Computed once per (scope, seed, rate) and cached; leaves the trainee to
    be reset.

    Returns:
      one float per decision of the scope's episode.
    """
    key = _reference_key(scope, seed, learning_rate)
    decisions = self.episode_steps(scope) // self.action_interval
    if key not in self._reference_curves:
      trainee = self._scoped_trainee(scope, seed)
      trainee.reset(seed, learning_rate)
      initial = trainee.validate().loss
      curve = []
      for _ in range(decisions):
        trainee.train(self.action_interval)
        loss = None if trainee.diverged else trainee.validate().loss
        if trainee.diverged:
          break
        curve.append(float(loss))
      curve += [float(initial)] * (decisions - len(curve))
      self._reference_curves[key] = curve
    return list(self._reference_curves[key])

  def _end(self, reward: float) -> ts.TimeStep:
    """Closes the episode: test the best checkpoint (`protocol.finish`), record the summary."""
    self._episode["return"] += reward
    summary = protocol.finish(self._trainee, self._evaluate_test)
    finite_vals = [v for v in self._episode["val_losses"] if v is not None]
    self._episode.update(
      diverged=summary["diverged"],
      steps=summary["steps_done"],
      final_val_loss=finite_vals[-1] if finite_vals else None,
      best_val_loss=summary["best_val_loss"],
      test_loss=summary["test_loss"],
      test_accuracy=summary["test_accuracy"],
      seconds=time.perf_counter() - self._episode_start,
    )
    self.last_episode = self._episode
    self._episode_ended = True
    return ts.termination(self._observation, np.float32(reward))

  def _state(
    self, train_loss, probabilities, learning_rate
  ) -> features_lib.TrainingState:
    return features_lib.TrainingState(
      train_loss=train_loss,
      val_loss=self._val_loss,
      probabilities=probabilities,
      previous_probabilities=self._probabilities,
      final_kernel=self._trainee.final_layer.kernel,
      learning_rate=learning_rate,
      budget_left=1.0 - self._trainee.global_step / self._episode_steps,
      initial_learning_rate=self._episode["initial_learning_rate"],
      best_val_loss=self._stall.best_val_loss,
      decisions_since_best=self._stall.decisions_since_best,
      adaptive_optimizer=self._adaptive_optimizer,
    )

  def _observe(self, state: features_lib.TrainingState) -> np.ndarray:
    return controller_lib.guard_observation(
      features_lib.observation(state, self.feature_names)
    )

  def get_last_episode(self) -> dict | None:
    """The summary of the last finished episode (for callers in other processes)."""
    return self.last_episode

  def get_state(self) -> dict:
    return {
      "episode_index": self.episode_index,
      "nonfinite_actions": self.nonfinite_actions,
    }

  def set_state(self, state: dict) -> None:
    self.episode_index = int(state["episode_index"])
    self.nonfinite_actions = int(state.get("nonfinite_actions", 0))


def _trainee_is_adaptive(trainee) -> bool:
  """`features.is_adaptive_optimizer` of the trainee's Keras optimizer.

  Raises:
    UserError: for a trainee without one (the toy problems) or of unknown kind.
  """
  optimizer = getattr(trainee, "optimizer", None)
  if optimizer is None:
    raise UserError(
      f"the feature adaptive_optimizer needs a trainee with a Keras optimizer; "
      f"{type(trainee).__name__} has none"
    )
  try:
    return features_lib.is_adaptive_optimizer(optimizer)
  except UserError:
    raise UserError(
      f"the feature adaptive_optimizer: the trainee's optimizer "
      f"{type(optimizer).__name__} is of unknown kind (known: "
      f"{', '.join(sorted(features_lib.KNOWN_OPTIMIZERS))})"
    ) from None


def _reference_key(
  scope: str, seed: int, learning_rate: float
) -> tuple[str, int, float]:
  """Key of a cached reference curve: one per (scope, trainee seed, rate)."""
  return (scope, int(seed), float(learning_rate))


def _scoped_settings(
  scoped_initial_learning_rates: Mapping[str, Sequence[float]] | None,
) -> list[tuple[str, float]]:
  """(scope, initial rate) pairs of `scoped_initial_learning_rates`, checked."""
  if not scoped_initial_learning_rates:
    return []
  if not isinstance(scoped_initial_learning_rates, Mapping):
    raise UserError(
      "scoped_initial_learning_rates must map gin scopes to initial rates, "
      f"like {{'adam': [0.003]}}; got {scoped_initial_learning_rates!r}"
    )
  settings = []
  bound = gin.config_str().splitlines()
  for scope, rates in scoped_initial_learning_rates.items():
    if not _is_gin_scope(scope):
      raise UserError(
        f"scoped_initial_learning_rates: {scope!r} is not a gin scope name "
        "(like 'adam' or 'sgd/batch50')"
      )
    if not any(line.startswith(f"{scope}/") for line in bound):
      raise UserError(
        f"scoped_initial_learning_rates: gin has no binding in scope {scope!r} "
        f"(like {scope}/make_optimizer.name = 'adam'), so its trainee would be "
        "the unscoped one"
      )
    if isinstance(rates, (str, bytes)) or not isinstance(rates, Sequence) or not rates:
      raise UserError(
        f"scoped_initial_learning_rates[{scope!r}] must be a non-empty list of "
        f"initial rates, got {rates!r}"
      )
    settings += [(scope, trainee_lib.check_learning_rate(lr)) for lr in rates]
  return settings


def _scope_mapping(name: str, mapping, scopes: set[str], what: str) -> Mapping:
  """`mapping` (None: empty) checked: a Mapping whose keys are scopes of `scopes`."""
  if not mapping:
    return {}
  if not isinstance(mapping, Mapping):
    raise UserError(f"{name} must map gin scopes to {what}; got {mapping!r}")
  for scope in mapping:
    if scope not in scopes - {""}:
      raise UserError(
        f"{name}: {scope!r} is not a scope of scoped_initial_learning_rates, so "
        "no episode would run it"
      )
  return mapping


def _scoped_reward_scales(
  scoped_reward_scales: Mapping[str, float] | None, scopes: set[str]
) -> dict[str, float]:
  """`scoped_reward_scales` checked: scopes of `scopes`, positive scales."""
  mapping = _scope_mapping(
    "scoped_reward_scales",
    scoped_reward_scales,
    scopes,
    "reward scales, like {'mnist1d': 0.1}",
  )
  return {
    scope: checks.positive(f"scoped_reward_scales[{scope!r}]", value)
    for scope, value in mapping.items()
  }


def _scoped_num_steps(
  scoped_num_steps: Mapping[str, int] | None, scopes: set[str], action_interval: int
) -> dict[str, int]:
  """`scoped_num_steps` checked: scopes of `scopes`, positive multiples of the interval."""
  mapping = _scope_mapping(
    "scoped_num_steps",
    scoped_num_steps,
    scopes,
    "trainee steps per episode, like {'mnist1d': 1000}",
  )
  steps = {}
  for scope, value in mapping.items():
    value = checks.integer(f"scoped_num_steps[{scope!r}]", value, 1)
    if value % action_interval:
      raise UserError(
        f"scoped_num_steps[{scope!r}] ({value}) must be a multiple of "
        f"action_interval ({action_interval})"
      )
    steps[scope] = value
  return steps


def _is_gin_scope(name) -> bool:
  """True if gin accepts `name` (non-empty) as a scope."""
  if not isinstance(name, str) or not name:
    return False
  try:
    with gin.config_scope(name):
      return True
  except ValueError:
    return False


# The environment's own defaults, the one copy of them: `create_environment`
# takes each as the default of its parameter of the same name.
_DEFAULTS = {
  name: parameter.default
  for name, parameter in inspect.signature(
    LearningRateControlEnv.__init__
  ).parameters.items()
  if parameter.default is not inspect.Parameter.empty
}


# The seed is run control (a flag, or the caller's episode seed): binding
# `create_environment.seed` is a gin error.
@gin.configurable(denylist=["seed"])
def create_environment(
  seed: int = 0,
  trainee_fn: Callable[..., object] = trainee_lib.build_trainee,
  num_steps: int = _DEFAULTS["num_steps"],
  action_interval: int = _DEFAULTS["action_interval"],
  initial_learning_rates: Sequence[float] = _DEFAULTS["initial_learning_rates"],
  scoped_initial_learning_rates: Mapping[str, Sequence[float]] | None = _DEFAULTS[
    "scoped_initial_learning_rates"
  ],
  scoped_num_steps: Mapping[str, int] | None = _DEFAULTS["scoped_num_steps"],
  min_learning_rate: float = _DEFAULTS["min_learning_rate"],
  max_learning_rate: float = _DEFAULTS["max_learning_rate"],
  max_factor: float = _DEFAULTS["max_factor"],
  action_levels: int | None = _DEFAULTS["action_levels"],
  feature_names: Sequence[str] = _DEFAULTS["feature_names"],
  reward: str = _DEFAULTS["reward"],
  divergence_penalty: float | None = _DEFAULTS["divergence_penalty"],
  setback_weight: float = _DEFAULTS["setback_weight"],
  reward_scale: float = _DEFAULTS["reward_scale"],
  scoped_reward_scales: Mapping[str, float] | None = _DEFAULTS["scoped_reward_scales"],
  evaluate_test: bool = _DEFAULTS["evaluate_test"],
) -> LearningRateControlEnv:
  """Builds the environment as configured by gin (see `LearningRateControlEnv`).

  Every argument of the environment is a parameter here, with the
  environment's default, so a misspelt binding is a gin error and the
  defaults reach `operative_config.gin`.

  Args:
    seed: base seed of the episodes' trainees (the caller's, not gin's).
    trainee_fn: called as `trainee_fn(seed=...)` once to build the trainee.
    num_steps, action_interval, initial_learning_rates,
      scoped_initial_learning_rates, scoped_num_steps, min_learning_rate, max_learning_rate,
      max_factor, action_levels, feature_names, reward, divergence_penalty,
      setback_weight, reward_scale, scoped_reward_scales, evaluate_test: see
      `LearningRateControlEnv`.
  """
  return LearningRateControlEnv(
    trainee_fn=lambda s: trainee_fn(seed=s),
    num_steps=num_steps,
    action_interval=action_interval,
    initial_learning_rates=initial_learning_rates,
    scoped_initial_learning_rates=scoped_initial_learning_rates,
    scoped_num_steps=scoped_num_steps,
    min_learning_rate=min_learning_rate,
    max_learning_rate=max_learning_rate,
    max_factor=max_factor,
    action_levels=action_levels,
    feature_names=feature_names,
    reward=reward,
    divergence_penalty=divergence_penalty,
    setback_weight=setback_weight,
    reward_scale=reward_scale,
    scoped_reward_scales=scoped_reward_scales,
    seed=seed,
    evaluate_test=evaluate_test,
  )
