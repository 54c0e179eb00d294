"""The collect policy's own random stream: exploration noise seeded per decision.

PPO learns from the differences between explorations of similar situations,
so every episode must explore with fresh noise, and a run must still be
reproducible and resumable wherever its episodes are collected. Both follow
from drawing the sample of decision d of episode k with a stateless seed that
is a function of (controller seed, k, d) only (`action_seeds`):

* the noise is independent between episodes and decisions;
* episode k explores with the same noise in this process, in a parallel
  environment's batch and on a Reverb collector, so a resumed or
  redistributed run collects what the uninterrupted run would have;
* nothing reads or resets TensorFlow's global generator. Reseeding it
  (`tf.random.set_seed`) restarts the stream of every random op already
  traced into a `tf.function` with the same numbers, which froze exploration
  to one noise sequence for every episode before this module existed.

`SeededPolicy` wraps a tf-agents policy (collect or greedy): it asks the policy
for its action distribution and draws row i of the batch with seed row i.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from tf_agents.trajectories import policy_step

# Keeps these streams apart from other uses of the same (seed, episode) pair.
_SALT = 0x6C72_6578  # "lrex"


def action_seeds(seed: int, episodes: Sequence[int], decision: int) -> np.ndarray:
  """Stateless seeds of decision `decision` of each episode in `episodes`.

  Args:
    seed: the controller's base seed.
    episodes: episode indices, one per batch row.
    decision: 0-based decision index within the episodes.

  Returns:
    int32 [len(episodes), 2], entries in [0, 2**31): a seed for TensorFlow's
    stateless random ops, a function of (seed, episode, decision) only.
  """
  rows = [
    np.random.SeedSequence([_SALT, int(seed), int(k), int(decision)]).generate_state(2)
    for k in episodes
  ]
  return (np.asarray(rows, np.uint32).reshape(-1, 2) >> 1).astype(np.int32)


class SeededPolicy:
  """A tf-agents policy whose sampling follows explicit per-row seeds.

  Args:
    policy: a tf-agents `TFPolicy` (for PPO, the agent's `collect_policy`; a
      greedy policy works too and ignores the seeds).
  """

  def __init__(self, policy):
    self.policy = policy
    # One trace per batch size (the rows are unrolled); a run uses one or two.
    self._action = tf.function(self._action_impl, autograph=False)

  def get_initial_state(self, batch_size: int):
    return self.policy.get_initial_state(batch_size)

  def action(self, time_step, policy_state, seeds) -> policy_step.PolicyStep:
    """The policy's step for a batch, sampled with `seeds` (int32 [B, 2])."""
    return self._action(time_step, policy_state, tf.convert_to_tensor(seeds, tf.int32))

  def _action_impl(self, time_step, policy_state, seeds):
    step = self.policy.distribution(time_step, policy_state)
    batch = int(seeds.shape[0])
    flat = tf.nest.flatten(step.action)
    # Row by row, so that row i's draw depends on seeds[i] alone, not on which
    # other episodes share the batch.
    sampled = [
      tf.stack([d[i].sample(seed=seeds[i]) for i in range(batch)]) for d in flat
    ]
    action = tf.nest.pack_sequence_as(step.action, sampled)
    return step._replace(action=action)
