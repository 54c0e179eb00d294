"""Collects whole controller episodes from several environments at once.

The paper's loop collects one episode (one whole trainee run) per PPO update
in one process. Episodes are independent trainee runs, so they parallelise:
`collect_episodes` runs one episode on each of several environments (in other
processes, or a local one), asking the policy for all of them in one batched
call per decision, and returns each episode's trajectory and summary. It is
the one collection loop of every collector (in-process, parallel, Reverb).

Episode k always trains the trainee of seed `env.episode_seed(k)`, whichever
environment or machine runs it, so parallel and distributed runs see the same
trainees as the single-process loop, and explores with the same noise
(`exploration.action_seeds`): with the same policy weights, it is the same
episode.

`to_experience` lays collected episodes end to end in one row, as tf-agents'
episode driver leaves them in a replay buffer (each episode followed by its
boundary step), which is what `PPOAgent.train` takes for MLP and LSTM actors.

`spawn_environments` starts environments in fresh processes (the "spawn" start
method: a forked child of a process that already ran TensorFlow can hang in
Keras). Each child rebuilds its environment from the parent's gin config.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
from collections.abc import Callable, Sequence

import gin
import numpy as np
import tensorflow as tf
from tf_agents.environments import parallel_py_environment
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory as trajectory_lib

from lr_controller import gin_utils
from lr_controller.control import env as env_lib
from lr_controller.control import exploration


@dataclasses.dataclass
class Episode:
  """One collected episode.

  Attributes:
    index: the episode's number (its trainee seed is `episode_seed(index)`).
    trajectory: `Trajectory` of NumPy arrays with a leading time axis
      [decisions + 1]: every transition, then the boundary step.
    info: the environment's `last_episode` summary (JSON-able).
  """

  index: int
  trajectory: trajectory_lib.Trajectory
  info: dict


def build_environment_from_gin(
  gin_config: str, seed: int
) -> env_lib.LearningRateControlEnv:
  """Parses `gin_config` (a `gin.config_str()`) and builds the environment.

  Module-level so that a spawned process can unpickle it.
  """
  gin_utils.parse_gin_string(gin_config)
  return env_lib.create_environment(seed=seed)


class SpawnedEnvironment(parallel_py_environment.ProcessPyEnvironment):
  """tf-agents' `ProcessPyEnvironment`, started with the "spawn" method.

  tf-agents' own start needs `system_multiprocessing.handle_main` in the
  binary, re-parses gin in the child before our configurables are imported,
  and uses the platform's start method (fork on Linux). This one needs none of
  that: the constructor carries the gin config it needs.
  """

  def start(self, wait_to_start: bool = True) -> None:
    context = multiprocessing.get_context("spawn")
    self._conn, conn = context.Pipe()
    self._process = context.Process(target=self._worker, args=(conn,), daemon=True)
    self._process.start()
    if wait_to_start:
      self.wait_start()

  def close(self, timeout_secs: float = 60.0) -> None:
    """Asks the process to close and waits until it has exited.

    tf-agents' `close` waits 5 s, which a loaded machine exceeds while the
    process tears TensorFlow down (a test saw one still alive); this waits
    up to `timeout_secs` more, then terminates it.
    """
    super().close()
    self._process.join(timeout_secs)
    if self._process.is_alive():
      self._process.terminate()
      self._process.join()


def spawn_environments(num: int, seed: int) -> list[SpawnedEnvironment]:
  """Starts `num` environments (as configured by gin now) in new processes.

  All share the base `seed`, so episode k has the same trainee wherever it
  runs. Returns them started; close each with `.close()`.
  """
  constructor = functools.partial(
    build_environment_from_gin, gin.config_str(), int(seed)
  )
  envs = [SpawnedEnvironment(constructor) for _ in range(num)]
  for env in envs:
    env.start(wait_to_start=False)
  for env in envs:
    env.wait_start()
  return envs


def _remote(env) -> bool:
  return isinstance(env, parallel_py_environment.ProcessPyEnvironment)


def _call(env, name: str, *args) -> Callable[[], object]:
  """Calls `env.name(*args)`, in its process if it has one; returns a promise."""
  if _remote(env):
    return env.call(name, *args)
  result = getattr(env, name)(*args)
  return lambda: result


def _stack(items):
  return tf.nest.map_structure(lambda *x: np.stack(x), *items)


def collect_episodes(
  envs: Sequence[object],
  policy: exploration.SeededPolicy,
  episode_indices: Sequence[int],
  seed: int,
) -> list[Episode]:
  """Runs episode `episode_indices[i]` on `envs[i]`, all at once.

  Args:
    envs: `LearningRateControlEnv`s, local or `SpawnedEnvironment`s; at least
      as many as episodes.
    policy: the (collect) policy, asked for all episodes in one batched call
      per decision; decision d of episode k samples with
      `exploration.action_seeds(seed, [k], d)`.
    episode_indices: the episodes to run.
    seed: the controller's base seed (the exploration noise's).

  Returns:
    The episodes, in the order of `episode_indices`.
  """
  count = len(episode_indices)
  if count > len(envs):
    raise ValueError(f"{count} episodes need as many environments, got {len(envs)}")
  envs = list(envs)[:count]
  for promise in [
    _call(env, "set_state", {"episode_index": int(k)})
    for env, k in zip(envs, episode_indices)
  ]:
    promise()
  time_steps = [p() for p in [_call(env, "reset") for env in envs]]
  policy_state = policy.get_initial_state(count)
  steps: list[list] = [[] for _ in range(count)]
  done = [False] * count
  decision = 0
  while not all(done):
    batch = tf.nest.map_structure(tf.convert_to_tensor, _stack(time_steps))
    seeds = exploration.action_seeds(seed, episode_indices, decision)
    action_step = policy.action(batch, policy_state, seeds)
    decision += 1
    policy_state = action_step.state
    action_step = tf.nest.map_structure(
      lambda t: t.numpy(), action_step._replace(state=())
    )
    promises = {}
    for i in range(count):
      if done[i]:
        continue
      own = tf.nest.map_structure(lambda x, i=i: x[i], action_step)
      if time_steps[i].is_last():
        # The boundary step the episode driver records when it steps past
        # LAST (PPO masks it; it keeps the last real transition trainable).
        restart = ts.restart(time_steps[i].observation)
        steps[i].append(trajectory_lib.from_transition(time_steps[i], own, restart))
        done[i] = True
      else:
        promises[i] = (own, _call(envs[i], "step", own.action))
    for i, (own, promise) in promises.items():
      next_step = promise()
      steps[i].append(trajectory_lib.from_transition(time_steps[i], own, next_step))
      time_steps[i] = next_step
  infos = [p() for p in [_call(env, "get_last_episode") for env in envs]]
  return [
    Episode(index=int(k), trajectory=_stack(s), info=info)
    for k, s, info in zip(episode_indices, steps, infos)
  ]


def to_experience(episodes: Sequence[Episode], data_spec) -> trajectory_lib.Trajectory:
  """Lays `episodes` end to end: a `Trajectory` of tensors [1, total steps]."""

  specs = tf.nest.flatten(data_spec)
  columns = zip(*[tf.nest.flatten(e.trajectory) for e in episodes])
  leaves = [
    tf.convert_to_tensor(np.concatenate(parts).astype(spec.dtype.as_numpy_dtype)[None])
    for spec, parts in zip(specs, columns)
  ]
  return tf.nest.pack_sequence_as(data_spec, leaves)
