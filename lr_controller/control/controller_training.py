"""Trains the learning-rate controller with PPO (Xu et al. 2019, Sec. 3.2 and 4).

The loop of the paper: collect one whole trainee run (an episode) with the
collect policy, train PPO on it, clear the on-policy data, repeat (paper:
1,000 episodes). Around it, what a tf-agents user expects:

  root_dir/
    controller_config.json   environment + network description (resume check)
    config.gin               the gin files and bindings given (the binaries)
    operative_config.gin     what gin used, written when a call trains (a
                             call on a finished run builds no trainee, and
                             keeps the file as its training left it)
    episodes.jsonl           one line per finished episode (atomic appends)
    updates.jsonl            one line per PPO update: its health (ppo_diagnostics)
    train/                   TensorBoard summaries
    train/checkpoints/       agent, normalizers, counters, after every update
    selection.jsonl          each selection's mean best validation loss
    warm_start.json          the run it started from, if warm-started
    policies/last_policy     TF-only SavedModel of the latest greedy policy
                             (export.py), every `export_interval` episodes
                             and at the end
    policies/greedy_policy   the one of those with the lowest mean best
                             validation loss on the validation trainees
                             (`selection`); what users and `evaluate` load
    policies/greedy_policy_000050 ...  greedy_policy as it was at episode 50...
    policies/last_policy_000050 ...    every policy selection judged, to judge
                             again (e.g. on more validation trainees)

Where episodes come from is pluggable (a *collector*): one in-process
environment (the default, the paper's loop); `num_parallel_envs` environments
in their own processes, one episode each at a time (`episode_collection`); or
remote collectors through Reverb (`distributed`). Whatever collects them,
episode k trains the trainee of seed `seed * 1_000_003 + k` and explores with
noise seeded by (seed, k, decision) (`exploration`), and PPO trains on each
update's episodes together.

A new run can start from another run's agent instead of fresh weights
(`warm_start_dir`: fine-tuning a controller trained on another task, the
paper's transfer with training on the new task).

Re-running the same command resumes from the last checkpoint: a finished
episode is never repeated or lost (episodes.jsonl is reconciled with the
checkpoint's episode count; a new run checkpoints its starting point). A PPO
step with a non-finite gradient changes nothing (`agent.ActorCriticOptimizer`
skips it), and an update that leaves non-finite losses or weights is rolled
back to the last checkpoint, said on the console and marked in
episodes.jsonl and updates.jsonl.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import gin
import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from lr_controller import constants, gin_utils, io_utils, policy_metadata
from lr_controller.control import agent as agent_lib
from lr_controller.control import env as env_lib
from lr_controller.control import (
  episode_collection,
  exploration,
  export,
  ppo_diagnostics,
  selection,
)
from lr_controller.errors import UserError, first_line

CONTROLLER_CONFIG_JSON = "controller_config.json"
# The policy metadata's fields that CONTROLLER_CONFIG_JSON records too (beside
# the networks), so a resumed run is checked against them.
_CONFIG_METADATA_FIELDS = (
  policy_metadata.FEATURES,
  policy_metadata.REWARD,
  policy_metadata.ACTION_INTERVAL,
  policy_metadata.MAX_LOG_FACTOR,
  policy_metadata.ACTION_LEVELS,
)
# What a warm start's source run must share with this one: what the networks
# read and answer. The reward, the task and the trainee may differ.
_WARM_START_KEYS = (
  policy_metadata.FEATURES,
  policy_metadata.MAX_LOG_FACTOR,
  policy_metadata.ACTION_LEVELS,
  "networks",
)
# What reading a checkpoint that does not fit, or is damaged, raises.
_CHECKPOINT_ERRORS = (AssertionError, ValueError, IndexError, tf.errors.OpError)


def _all_finite(variables) -> bool:
  return all(
    bool(tf.reduce_all(tf.math.is_finite(v))) for v in variables if v.dtype.is_floating
  )


def _read_json(path: str, what: str) -> Any:
  try:
    return io_utils.read_json(path)
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read {what} {path}: {first_line(e)}") from None


def _differing(previous: dict, config: dict, keys) -> list[str]:
  """The keys among `keys` whose values differ between two controller configs."""
  return sorted(k for k in keys if previous.get(k) != config.get(k))


def _check_compatible(root_dir: str, config: dict) -> None:
  """Raises UserError if root_dir holds a run of another configuration."""
  path = os.path.join(root_dir, CONTROLLER_CONFIG_JSON)
  if not os.path.exists(path):
    return
  previous = _read_json(path, "the controller config")
  differing = _differing(previous, config, set(previous) | set(config))
  if differing:
    raise UserError(
      f"{root_dir} holds a controller run with a different configuration "
      f"({', '.join(differing)} differ): use another --root_dir"
    )


def _agent_checkpoint(agent, **counters: tf.Variable) -> tf.train.Checkpoint:
  """What a controller run checkpoints: its agent and counters (`episodes_done`, ...).

  `agent` may also be a `tf.train.Checkpoint` of some of the agent's parts
  under their keys (`agent.checkpointed_networks`), to read those alone.
  """
  return tf.train.Checkpoint(agent=agent, **counters)


def _warm_start_checkpoint(source_dir: str, config: dict) -> str:
  """The latest checkpoint of the run in `source_dir`, checked against `config`.

  Raises:
    UserError: no controller run or checkpoint in source_dir, or one whose
      features, action or networks differ from `config` (this run's
      `CONTROLLER_CONFIG_JSON` content).
  """
  config_path = os.path.join(source_dir, CONTROLLER_CONFIG_JSON)
  if not os.path.exists(config_path):
    raise UserError(f"warm_start_dir {source_dir} holds no controller run")
  source_config = _read_json(config_path, "the controller config")
  differing = _differing(source_config, config, _WARM_START_KEYS)
  if differing:
    raise UserError(
      f"warm_start_dir {source_dir} holds a controller with other "
      f"{', '.join(differing)}: its networks cannot start this run"
    )
  checkpoint = tf.train.latest_checkpoint(
    os.path.join(source_dir, constants.TRAIN_DIR, constants.CHECKPOINTS_DIR)
  )
  if checkpoint is None:
    raise UserError(f"warm_start_dir {source_dir} has no checkpoint yet")
  return checkpoint


def _warm_start(agent, checkpoint: str) -> int:
  """Starts `agent` from the networks of a controller run's `checkpoint`.

  Reads the actor, critic and observation normalizer (the collect and greedy
  policies share them) and nothing else: the optimizers start fresh, as in
  fine-tuning, whatever their settings in either run.

  Args:
    agent: this run's freshly built agent (its networks as the source's, see
      `_warm_start_checkpoint`).
    checkpoint: the source run's checkpoint path.

  Returns:
    The source run's episodes at that checkpoint.

  Raises:
    UserError: the checkpoint is unreadable or lacks any of those networks.
  """
  networks = tf.train.Checkpoint(**agent_lib.checkpointed_networks(agent))
  episodes = tf.Variable(0, dtype=tf.int64, trainable=False)
  try:
    _agent_checkpoint(networks, episodes_done=episodes).read(
      checkpoint
    ).assert_existing_objects_matched().expect_partial()
  except _CHECKPOINT_ERRORS as e:
    raise UserError(f"cannot warm-start from {checkpoint}: {first_line(e)}") from None
  return int(episodes.numpy())


def build_environment_and_agent(seed: int, train_step: tf.Variable | None = None):
  """The gin-configured environment (no trainee built yet) and PPO agent.

  Seeds Python, NumPy and TensorFlow with `seed` first: Keras initializers
  without a seed (tf-agents' networks) draw theirs from NumPy's generator.

  Args:
    seed: base seed of the agent's initial weights and the episodes.
    train_step: the agent's int64 step counter; None makes one.

  Returns:
    (py_env, agent).
  """
  tf.keras.utils.set_random_seed(seed)
  py_env = env_lib.create_environment(seed=seed)
  if train_step is None:
    train_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step")
  agent = agent_lib.create_agent(
    tensor_spec.from_spec(py_env.time_step_spec()),
    tensor_spec.from_spec(py_env.action_spec()),
    train_step_counter=train_step,
  )
  return py_env, agent


class Collector(Protocol):
  """Where `train_controller` gets its episodes: in-process, parallel or Reverb."""

  def collect(self, episodes: list[int]) -> tuple[Any, list[dict]]:
    """Runs `episodes` (indices); returns (experience [1, T], one info dict each)."""

  def close(self, finished: bool) -> None:
    """Releases workers; `finished`: training reached its episode count."""


class EnvironmentCollector:
  """Runs episodes in rounds of `len(envs)`, one environment each.

  With one in-process environment this is the paper's loop; with environments
  in their own processes (`episode_collection.spawn_environments`) the collect
  policy acts for all of them in one batched call per decision. Episodes are
  handed out in order and explore with noise seeded by (seed, episode,
  decision), so a resumed or re-run update collects the same episodes.

  Args:
    envs: the environments.
    agent: the PPO agent (its collect policy acts).
    seed: the controller's base seed.
  """

  def __init__(self, envs, agent, seed: int):
    self._seed = seed
    self._data_spec = agent.collect_data_spec
    self._policy = exploration.SeededPolicy(agent.collect_policy)
    self._envs = list(envs)

  def collect(self, episodes: list[int]):
    """Runs `episodes`; returns (experience [1, T], infos)."""
    collected, infos = [], []
    n = len(self._envs)
    for first in range(0, len(episodes), n):
      start = time.perf_counter()
      batch = episode_collection.collect_episodes(
        self._envs, self._policy, episodes[first : first + n], self._seed
      )
      seconds = time.perf_counter() - start
      for episode in batch:
        infos.append({**episode.info, "seconds": seconds})
      collected.extend(batch)
    return episode_collection.to_experience(collected, self._data_spec), infos

  def close(self, finished: bool) -> None:
    del finished
    for env in self._envs:
      env.close()


# Run control comes from the caller (the binaries' flags): binding these is a
# gin error.
@gin.configurable(denylist=["root_dir", "seed", "say"])
def train_controller(
  root_dir: str,
  seed: int = 0,
  num_episodes: int = 1000,
  episodes_per_update: int | None = None,
  export_interval: int = 50,
  selection_runs: int = 20,
  num_parallel_envs: int = 1,
  say: Callable[[str], None] = print,
  collector_fn: Callable[..., Collector] | None = None,
  warm_start_dir: str | None = None,
) -> dict:
  """Trains (or resumes training) the PPO controller until `num_episodes` exist.

  Args:
    root_dir: output directory (exists).
    seed: seeds the agent and the environment's episode seeds.
    num_episodes: total episodes (paper: 1000); a resumed run stops there.
    episodes_per_update: episodes collected per PPO update (paper: 1); None:
      one per environment (`num_parallel_envs`, 1 for a distributed learner).
    export_interval: every this many episodes (0: only at the end), run the
      greedy policy on `selection_runs` validation trainees, export it to
      `policies/last_policy`, and to `policies/greedy_policy` if its mean best
      validation loss is the lowest so far; numbered copies of greedy_policy
      and last_policy record what a run stopped there would give and what
      the selection judged.
    selection_runs: validation trainees per selection (their seeds are
      `selection.selection_episodes`, apart from training and evaluation
      seeds); 0 exports every policy as greedy_policy without selection.
      With 5, occasional failed runs went unseen and the selection chose
      worse policies (docs/experiments.md, round 6).
    num_parallel_envs: environments stepped in parallel processes, one
      episode each at a time; `episodes_per_update` must be a multiple of it.
      1 (default) collects in this process.
    say: progress printer.
    collector_fn: `(agent, seed) -> collector` with `collect(episodes)` and
      `close(finished)` (see `EnvironmentCollector`); used by the distributed
      learner. Overrides `num_parallel_envs`.
    warm_start_dir: root_dir of another controller run with the same
      features, action and networks (any task and reward): a new run starts
      from the networks of its latest checkpoint (actor, critic, observation
      normalizer) instead of fresh weights; optimizers, episodes and
      selections start anew. Ignored when root_dir has a checkpoint (a
      resumed run goes on from its own).

  Returns:
    A summary dict: `episodes`, `policy_dir`, `last_episode`.
  """
  episodes_per_update = _episodes_per_update(
    num_episodes, episodes_per_update, selection_runs, num_parallel_envs, collector_fn
  )
  run = _start_run(root_dir, seed, warm_start_dir, say)
  paths = _Paths.of(root_dir)
  start_episode = int(run.episodes_done.numpy())
  last_row = _reconcile_logs(paths, start_episode)
  exporter = export.PolicyExporter(run.agent.policy, run.py_env.action_log_factors)
  greedy_policy = exploration.SeededPolicy(run.agent.policy)
  if start_episode >= num_episodes:
    say(
      f"{start_episode} episodes already done in {root_dir} (asked for {num_episodes})"
    )
    if not os.path.isdir(paths.greedy_policy):
      exporter.export(run.metadata, paths.greedy_policy, episodes=start_episode)
    return {
      "episodes": start_episode,
      "policy_dir": paths.greedy_policy,
      "last_episode": last_row,
    }
  if run.resuming:
    say(f"resuming from episode {start_episode} (checkpoint in {paths.checkpoints})")

  collector = _make_collector(run, seed, num_parallel_envs, collector_fn, say)
  writer = tf.summary.create_file_writer(paths.train)
  update_seconds, update_sizes = [], []
  episode = start_episode
  try:
    with writer.as_default():
      while episode < num_episodes:
        start = time.perf_counter()
        count = min(episodes_per_update, num_episodes - episode)
        experience, infos = collector.collect(list(range(episode, episode + count)))
        episode += count
        total_loss, update, diagnostics = _train_once(run, experience, episode, say)
        _log_update(paths, episode, update, total_loss, diagnostics, start)
        last_row = _log_episodes(paths, infos, update, total_loss) or last_row
        if episode == num_episodes or (
          export_interval and episode % export_interval == 0
        ):
          # Before the checkpoint: a crash in between redoes the update and
          # this selection, with the same result.
          _select_and_export(
            run,
            exporter,
            greedy_policy,
            paths,
            seed=seed,
            episode=episode,
            num_episodes=num_episodes,
            selection_runs=selection_runs,
            say=say,
          )
        run.episodes_done.assign(episode)
        run.manager.save(checkpoint_number=episode)
        update_seconds.append(time.perf_counter() - start)
        update_sizes.append(count)
        _say_progress(
          say,
          last_row,
          episode,
          num_episodes,
          update_seconds,
          update_sizes,
          diagnostics,
        )
    writer.flush()
  finally:
    collector.close(finished=episode >= num_episodes)
  gin_utils.write_operative_config(root_dir)
  return {
    "episodes": episode,
    "policy_dir": paths.greedy_policy,
    "last_episode": last_row,
  }


# ---------------------------------------------------------------------------
# The steps of `train_controller`.


def _episodes_per_update(
  num_episodes: int,
  episodes_per_update: int | None,
  selection_runs: int,
  num_parallel_envs: int,
  collector_fn: Callable[..., Collector] | None,
) -> int:
  """Checks `train_controller`'s run-length arguments; the episodes per update.

  Returns:
    `episodes_per_update`, or its default for None: one per environment
    (`num_parallel_envs`), 1 with a `collector_fn`.

  Raises:
    UserError: for a count that is not positive (`selection_runs`: negative),
      or episodes per update that parallel environments cannot split evenly.
  """
  if num_episodes <= 0:
    raise UserError(f"num_episodes must be positive, got {num_episodes}")
  if num_parallel_envs <= 0:
    raise UserError(f"num_parallel_envs must be positive, got {num_parallel_envs}")
  if episodes_per_update is None:
    episodes_per_update = num_parallel_envs if collector_fn is None else 1
  if episodes_per_update <= 0:
    raise UserError(f"episodes_per_update must be positive, got {episodes_per_update}")
  if selection_runs < 0:
    raise UserError(f"selection_runs must not be negative, got {selection_runs}")
  if collector_fn is None and episodes_per_update % num_parallel_envs:
    raise UserError(
      f"episodes_per_update ({episodes_per_update}) must be a multiple of "
      f"num_parallel_envs ({num_parallel_envs}): PPO trains on each round of "
      "parallel episodes together (set train_controller.episodes_per_update)"
    )
  return episodes_per_update


@dataclasses.dataclass(frozen=True)
class _Paths:
  """Where a controller run writes (see the module docstring)."""

  train: str
  checkpoints: str
  episodes: str
  updates: str
  selection: str
  greedy_policy: str
  last_policy: str

  @classmethod
  def of(cls, root_dir: str) -> _Paths:
    train = os.path.join(root_dir, constants.TRAIN_DIR)
    policies = os.path.join(root_dir, constants.POLICIES_DIR)
    return cls(
      train=train,
      checkpoints=os.path.join(train, constants.CHECKPOINTS_DIR),
      episodes=os.path.join(root_dir, constants.EPISODES_JSONL),
      updates=os.path.join(root_dir, constants.UPDATES_JSONL),
      selection=os.path.join(root_dir, constants.SELECTION_JSONL),
      greedy_policy=os.path.join(policies, constants.GREEDY_POLICY_DIR),
      last_policy=os.path.join(policies, constants.LAST_POLICY_DIR),
    )


@dataclasses.dataclass(frozen=True)
class _Run:
  """A controller run's live parts, where its last checkpoint left them.

  Attributes:
    py_env: the in-process environment.
    agent: the PPO agent.
    metadata: what every exported policy carries (`policy_metadata.build`).
    checkpoint: the agent and the counters below.
    manager: keeps the last two checkpoints in `train/checkpoints/`.
    episodes_done: int64 episodes trained on (checkpointed).
    best_score: float64 best selection score so far (checkpointed).
    resuming: whether the run restored a checkpoint of its own.
  """

  py_env: Any
  agent: Any
  metadata: dict
  checkpoint: tf.train.Checkpoint
  manager: tf.train.CheckpointManager
  episodes_done: tf.Variable
  best_score: tf.Variable
  resuming: bool


def _start_run(
  root_dir: str, seed: int, warm_start_dir: str | None, say: Callable[[str], None]
) -> _Run:
  """Builds the environment and agent, and brings them to where the run stands.

  A run with a checkpoint in root_dir resumes from it. A new one starts from
  fresh weights or from `warm_start_dir`'s networks (recorded in
  `WARM_START_JSON`), and checkpoints that start as episode 0. Either way
  CONTROLLER_CONFIG_JSON is checked against this configuration, then written.

  Raises:
    UserError: root_dir holds a run of another configuration or a checkpoint
      that does not fit, or the warm start's source does not fit.
  """
  train_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step")
  episodes_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="episodes_done")
  best_score = tf.Variable(
    np.inf, dtype=tf.float64, trainable=False, name="best_selection_score"
  )
  py_env, agent = build_environment_and_agent(seed, train_step)
  networks = agent_lib.network_config(agent)
  metadata = policy_metadata.build(
    policy_metadata.Interface.of_environment(py_env),
    reward=py_env.reward_name,
    actor_network=networks["actor"],
    action_levels=None
    if py_env.action_log_factors is None
    else len(py_env.action_log_factors),
    settings=py_env.training_settings(),
    commit=io_utils.source_commit(),
  )
  config = {
    **{key: metadata[key] for key in _CONFIG_METADATA_FIELDS},
    "networks": networks,
  }
  paths = _Paths.of(root_dir)
  checkpoint = _agent_checkpoint(
    agent,
    train_step=train_step,
    episodes_done=episodes_done,
    best_selection_score=best_score,
  )
  manager = tf.train.CheckpointManager(checkpoint, paths.checkpoints, max_to_keep=2)
  resuming = manager.latest_checkpoint is not None
  source_checkpoint = None
  if warm_start_dir and not resuming:
    # Checked before this run writes anything, so a corrected command can rerun.
    source_checkpoint = _warm_start_checkpoint(warm_start_dir, config)
  _check_compatible(root_dir, config)
  io_utils.write_json(os.path.join(root_dir, CONTROLLER_CONFIG_JSON), config)
  if resuming:
    try:
      checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    except _CHECKPOINT_ERRORS as e:
      first = first_line(e)
      raise UserError(
        f"checkpoint in {paths.train} does not match this configuration: {first}"
      ) from None
  else:
    if source_checkpoint is not None:
      source_episodes = _warm_start(agent, source_checkpoint)
      io_utils.write_json(
        os.path.join(root_dir, constants.WARM_START_JSON),
        {
          "source_dir": os.path.abspath(warm_start_dir),
          "checkpoint": os.path.abspath(source_checkpoint),
          "episodes": source_episodes,
        },
      )
      say(
        f"warm start from {source_checkpoint} "
        f"(after {source_episodes} episodes of that run)"
      )
    # The starting point, to resume from and to roll a failed update back to.
    manager.save(checkpoint_number=0)
  return _Run(
    py_env=py_env,
    agent=agent,
    metadata=metadata,
    checkpoint=checkpoint,
    manager=manager,
    episodes_done=episodes_done,
    best_score=best_score,
    resuming=resuming,
  )


def _reconcile_logs(paths: _Paths, start_episode: int) -> dict | None:
  """Drops log lines of episodes after the checkpoint; the last episode row kept.

  Those episodes run again; a torn tail goes too, so appends start on a
  clean line.
  """
  kept = [
    r for r in io_utils.read_jsonl(paths.episodes) if r["episode"] < start_episode
  ]
  if os.path.exists(paths.episodes):
    io_utils.rewrite_jsonl(paths.episodes, kept)
  for path in (paths.updates, paths.selection):
    if os.path.exists(path):
      io_utils.rewrite_jsonl(
        path, [r for r in io_utils.read_jsonl(path) if r["episodes"] <= start_episode]
      )
  return kept[-1] if kept else None


def _make_collector(
  run: _Run,
  seed: int,
  num_parallel_envs: int,
  collector_fn: Callable[..., Collector] | None,
  say: Callable[[str], None],
) -> Collector:
  """The run's collector: `collector_fn`'s, parallel processes, or in-process."""
  if collector_fn is not None:
    return collector_fn(run.agent, seed)
  if num_parallel_envs > 1:
    say(f"starting {num_parallel_envs} environments in parallel processes")
    return EnvironmentCollector(
      episode_collection.spawn_environments(num_parallel_envs, seed), run.agent, seed
    )
  return EnvironmentCollector([run.py_env], run.agent, seed)


def _train_once(
  run: _Run, experience, episode: int, say: Callable[[str], None]
) -> tuple[float, str, dict]:
  """One PPO update on `experience`, rolled back if it leaves non-finite values.

  Returns:
    (the PPO loss, "ok" or "rolled_back", `ppo_diagnostics.after_update`).
  """
  agent = run.agent
  before = ppo_diagnostics.before_update(
    agent, experience, run.py_env.action_log_factors
  )
  loss_info = agent.train(experience)
  total_loss = float(loss_info.loss)
  update = "ok"
  if not math.isfinite(total_loss) or not _all_finite(agent.trainable_variables):
    update = "rolled_back"
    run.checkpoint.restore(run.manager.latest_checkpoint)
    say(
      f"warning: the PPO update after episode {episode} gave non-finite "
      "losses or weights; rolled back to the last checkpoint and skipped it"
    )
  diagnostics = ppo_diagnostics.after_update(
    agent, experience, before, loss_info, run.py_env.max_log_factor
  )
  return total_loss, update, diagnostics


def _log_update(
  paths: _Paths,
  episode: int,
  update: str,
  total_loss: float,
  diagnostics: dict,
  start: float,
) -> None:
  """Appends the update's line to updates.jsonl and its diagnostics' summaries."""
  io_utils.append_jsonl(
    paths.updates,
    {
      "episodes": episode,
      "update": update,
      "ppo_loss": io_utils.finite_or_none(total_loss),
      **diagnostics,
      # Collection and PPO (what `costs` sums as training time).
      "seconds": round(time.perf_counter() - start, 3),
    },
  )
  for name, value in diagnostics.items():
    if value is not None:
      tf.summary.scalar(f"ppo/{name}", value, step=episode)


def _log_episodes(
  paths: _Paths, infos: list[dict], update: str, total_loss: float
) -> dict | None:
  """Appends one line per collected episode to episodes.jsonl; the last row."""
  row = None
  for info in infos:
    row = {
      "episode": info["episode"],
      "seed": info["seed"],
      "return": info["return"],
      "final_val_loss": info["final_val_loss"],
      "best_val_loss": info["best_val_loss"],
      "test_loss": info["test_loss"],
      "test_accuracy": info["test_accuracy"],
      "diverged": info["diverged"],
      "initial_learning_rate": info["initial_learning_rate"],
      # Only when the environment trains several settings.
      **{k: info[k] for k in ("trainee_scope", "reward_scale") if k in info},
      "learning_rates": info["learning_rates"],
      "val_losses": info["val_losses"],
      "steps": info["steps"],
      "reference_steps": info.get("reference_steps", 0),
      "seconds": round(info["seconds"], 3),
      "ppo_loss": io_utils.finite_or_none(total_loss),
      "update": update,
      "wall_time": round(time.time(), 3),  # When the update was done.
    }
    io_utils.append_jsonl(paths.episodes, row)
    _write_summaries(row)
  return row


def _select_and_export(
  run: _Run,
  exporter: export.PolicyExporter,
  greedy_policy,
  paths: _Paths,
  seed: int,
  episode: int,
  num_episodes: int,
  selection_runs: int,
  say: Callable[[str], None],
) -> None:
  """Exports the greedy policy as last_policy and keeps it if the selection prefers it.

  The greedy policy runs on `selection_runs` validation trainees; it becomes
  greedy_policy if its mean best validation loss is the lowest so far (or
  without selection). Numbered copies record both, and selection.jsonl the
  score.
  """
  exporter.export(run.metadata, paths.last_policy, episodes=episode)
  score, selection_start, selection_steps = None, time.perf_counter(), 0
  if selection_runs:
    infos = selection.run_greedy_policy(run.py_env, greedy_policy, seed, selection_runs)
    score = selection.score(infos)
    selection_steps = sum(i["steps"] + i.get("reference_steps", 0) for i in infos)
  chosen = bool(
    score is None
    or selection.improves(score, float(run.best_score.numpy()))
    or not os.path.isdir(paths.greedy_policy)
  )
  if chosen:
    run.best_score.assign(np.inf if score is None else score)
    io_utils.copy_dir(paths.last_policy, paths.greedy_policy)
  if episode < num_episodes:
    io_utils.copy_dir(
      paths.greedy_policy, constants.policy_copy(paths.greedy_policy, episode)
    )
  # Also the last one: a run continued later overwrites last_policy.
  io_utils.copy_dir(
    paths.last_policy, constants.policy_copy(paths.last_policy, episode)
  )
  io_utils.append_jsonl(
    paths.selection,
    {
      "episodes": episode,
      "mean_best_val_loss": score,
      "chosen": chosen,
      "steps": selection_steps,
      "seconds": round(time.perf_counter() - selection_start, 3),
    },
  )
  if score is not None:
    tf.summary.scalar("selection/mean_best_val_loss", score, step=episode)
    say(
      f"selection after episode {episode}: mean best validation loss "
      f"{score:.4f} over {selection_runs} validation trainees"
      + ("  (best so far: policies/greedy_policy)" if chosen else "")
    )


def _say_progress(
  say, row, episode, num_episodes, update_seconds, update_sizes, diagnostics
):
  """One progress line: the last episode, PPO's health, episodes per hour, time left."""
  recent = slice(-10, None)
  per_episode = sum(update_seconds[recent]) / sum(update_sizes[recent])
  val = row["final_val_loss"]

  def show(name, spec):
    value = diagnostics.get(name)
    return "-" if value is None else format(value, spec)

  say(
    f"episode {episode}/{num_episodes}  return {row['return']:.3f}  "
    f"val loss {'diverged' if val is None else f'{val:.4f}'}  "
    f"| policy mean {show('policy_mean', '+.3f')} std {show('policy_std', '.3f')} "
    f"at bound {show('at_bound_share', '.0%')} kl {show('approx_kl', '.4f')} "
    f"clip {show('clip_fraction', '.2f')} ev {show('explained_variance', '.2f')} "
    f"noise corr {show('noise_correlation', '.2f')} | "
    f"{3600 / per_episode:.0f} episodes/h  "
    f"eta {io_utils.format_seconds(per_episode * (num_episodes - episode))}"
  )


def _write_summaries(row: dict) -> None:
  step = row["episode"]
  tf.summary.scalar("episode/return", row["return"], step=step)
  for name in ("final_val_loss", "best_val_loss", "test_loss", "test_accuracy"):
    if row[name] is not None:
      tf.summary.scalar(f"episode/{name}", row[name], step=step)
  if row["learning_rates"]:
    log_lrs = np.log(np.asarray(row["learning_rates"], np.float64))
    tf.summary.histogram("episode/log_learning_rates", log_lrs, step=step)
    tf.summary.scalar("episode/final_log_learning_rate", float(log_lrs[-1]), step=step)
    tf.summary.text(
      "episode/learning_rates", json.dumps(row["learning_rates"]), step=step
    )
