"""Is PPO healthy? Diagnostics of one controller update, from its experience.

Computed around each `agent.train(experience)` call of `train_controller`,
written to TensorBoard (`ppo/...`) and `updates.jsonl`, and partly said on
the progress line:

| name                  | meaning                                                         |
|-----------------------|-----------------------------------------------------------------|
| at_bound_share        | share of sampled actions at or past the action bounds           |
| policy_mean           | mean of the action distribution's mean (log factor)             |
| policy_std            | mean of its standard deviation (log factor; None for a Beta)    |
| entropy               | mean entropy of the updated policy (nats)                       |
| approx_kl             | KL(pi_old, pi_new) by Schulman's estimator mean((r-1) - log r)  |
| clip_fraction         | PPO's share of ratios pi_new/pi_old outside [1 - eps, 1 + eps]  |
| explained_variance    | 1 - Var(return - V) / Var(return), critic before the update     |
| noise_correlation     | mean |correlation| of standardised noise between the episodes  |

For a discrete head (`create_environment.action_levels`) actions, mean and
standard deviation are those of the chosen log factors under the policy's
probabilities. Only real decisions count: the boundary steps between episodes are masked,
as PPO masks them. `noise_correlation` is about 0.2 for independent noise of
20-decision episodes and 1 for exploration frozen to one noise sequence.
"""

from __future__ import annotations

import numpy as np
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory as trajectory_lib

NAMES = (
  "at_bound_share",
  "policy_mean",
  "policy_std",
  "entropy",
  "approx_kl",
  "clip_fraction",
  "explained_variance",
  "noise_correlation",
)


def _time_steps(experience: trajectory_lib.Trajectory) -> ts.TimeStep:
  """Every step of the experience as a time step [1, T] (as PPO reads it)."""
  return ts.TimeStep(
    step_type=experience.step_type,
    reward=experience.reward,
    discount=experience.discount,
    observation=experience.observation,
  )


def _policy_pass(agent, experience):
  """The collect policy's action distribution over the experience, [1, T]."""
  state = agent.collect_policy.get_initial_state(experience.step_type.shape[0])
  return agent.collect_policy.distribution(_time_steps(experience), state).action


def _moments(distribution, log_factors):
  """Mean and standard deviation [T] of the log factor (std None if unknown)."""
  if log_factors is not None:  # A categorical over the factor set.
    probs = np.asarray(distribution.probs_parameter())[0]
    mean = probs @ log_factors
    return mean, np.sqrt(np.maximum(probs @ log_factors**2 - mean**2, 0.0))
  try:
    std = np.asarray(distribution.stddev())[0]
  except NotImplementedError:  # A transformed Beta has no closed-form stddev.
    std = None
  return np.asarray(distribution.mean())[0], std


def before_update(
  agent, experience: trajectory_lib.Trajectory, log_factors=None
) -> dict:
  """What the update will change: log-probabilities, values, the policy's moments.

  Args:
    agent: the PPO agent, before `train`.
    experience: the update's experience, a `Trajectory` of tensors [1, T].
    log_factors: float [levels], the log factor of each discrete action;
      None for a continuous head.

  Returns:
    NumPy arrays [T]: `log_prob`, `value`, `action` (log factor), `mean`,
    `std` (of the log factor), `return` (the agent's own return targets) and
    `valid` (not a boundary step).
  """
  distribution = _policy_pass(agent, experience)
  policy = agent.collect_policy
  value_state = policy.get_initial_value_state(experience.step_type.shape[0])
  values, _ = policy.apply_value_network(
    experience.observation,
    experience.step_type,
    value_state=value_state,
    training=False,
  )
  _, _, next_time_steps = trajectory_lib.to_transition(experience)
  returns, _ = agent.compute_return_and_advantage(next_time_steps, values)
  # `returns` covers the first T - 1 steps; the last step is a boundary.
  returns = np.concatenate([np.asarray(returns)[0], [0.0]])
  mean, std = _moments(distribution, log_factors)
  action = np.asarray(experience.action)[0]
  if log_factors is not None:
    action = np.asarray(log_factors)[action]
  return {
    "log_prob": np.asarray(distribution.log_prob(experience.action))[0],
    "value": np.asarray(values)[0],
    "action": action,
    "mean": mean,
    "std": std,
    "return": returns,
    "valid": ~np.asarray(experience.is_boundary())[0],
  }


def after_update(
  agent,
  experience: trajectory_lib.Trajectory,
  before: dict,
  loss_info,
  max_log_factor: float,
) -> dict[str, float]:
  """The table of the module docstring, as floats (None where undefined).

  Args:
    agent: the PPO agent, after `train`.
    experience: the update's experience [1, T].
    before: `before_update`'s result for the same experience.
    loss_info: what `agent.train` returned (its `extra.clip_fraction` is
      PPO's own, over the last epoch's batch).
    max_log_factor: the action bound (|log factor|).
  """
  valid = before["valid"]
  action = before["action"]
  distribution = _policy_pass(agent, experience)
  new_log_prob = np.asarray(distribution.log_prob(experience.action))[0]
  entropy = np.asarray(distribution.entropy())[0]
  log_ratio = (new_log_prob - before["log_prob"])[valid]
  ret, value = before["return"][valid], before["value"][valid]
  spread = np.var(ret)
  return {
    "at_bound_share": float(
      np.mean(np.abs(action[valid]) >= max_log_factor * (1 - 1e-6))
    ),
    "policy_mean": float(np.mean(before["mean"][valid])),
    "policy_std": None
    if before["std"] is None
    else float(np.mean(before["std"][valid])),
    "entropy": float(np.mean(entropy[valid])),
    "approx_kl": float(np.mean(np.expm1(log_ratio) - log_ratio)),
    "clip_fraction": float(loss_info.extra.clip_fraction),
    "explained_variance": float(1.0 - np.var(ret - value) / spread)
    if spread > 0
    else None,
    "noise_correlation": noise_correlation(
      (action - before["mean"])
      / (1.0 if before["std"] is None else np.maximum(before["std"], 1e-12)),
      valid,
    ),
  }


def noise_correlation(noise: np.ndarray, valid: np.ndarray) -> float | None:
  """Mean absolute correlation of per-episode noise sequences.

  Args:
    noise: standardised exploration noise, float [T], episodes end to end.
    valid: bool [T], False at the boundary step that ends each episode.

  Returns:
    The mean over episode pairs of |Pearson correlation| over their first
    common decisions; None with fewer than two episodes.
  """
  episodes, current = [], []
  for value, ok in zip(noise, valid):
    if ok:
      current.append(value)
    elif current:
      episodes.append(current)
      current = []
  if current:
    episodes.append(current)
  length = min((len(e) for e in episodes), default=0)
  if len(episodes) < 2 or length < 3:
    return None
  matrix = np.corrcoef(np.asarray([e[:length] for e in episodes]))
  pairs = matrix[np.triu_indices(len(episodes), k=1)]
  pairs = pairs[np.isfinite(pairs)]
  return float(np.mean(np.abs(pairs))) if pairs.size else None
