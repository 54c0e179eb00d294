"""Trains the learning-rate controller with PPO (Xu et al. 2019, Sec. 3.2 and 4).

The loop of the paper: collect one whole trainee run (an episode) with the
collect policy, train PPO on it, clear the on-policy data, repeat (paper:
1,000 episodes). Around it, what a tf-agents user expects:

  root_dir/
    controller_config.json   environment + network description (resume check)
    config.gin, operative_config.gin
    episodes.jsonl           one line per finished episode (atomic appends)
    train/                   TensorBoard summaries
    train/checkpoints/       agent, normalizers, counters, after every episode
    policies/greedy_policy   TF-only SavedModel of the greedy policy (export.py),
                             every `export_interval` episodes and at the end
    policies/greedy_policy_000050 ...  the periodic numbered copies

Re-running the same command resumes from the last checkpoint: a finished
episode is never repeated or lost (episodes.jsonl is reconciled with the
checkpoint's episode count). A PPO update that leaves non-finite losses or
weights is rolled back to the last checkpoint, said on the console and marked
in episodes.jsonl.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable

import gin
import numpy as np
import tensorflow as tf
from tf_agents.drivers import dynamic_episode_driver
from tf_agents.environments import tf_py_environment
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.utils import common

from lr_controller import agent as agent_lib
from lr_controller import constants, export, io_utils
from lr_controller import env as env_lib
from lr_controller.errors import UserError

CONTROLLER_CONFIG_JSON = "controller_config.json"


def _all_finite(variables) -> bool:
  return all(
    bool(tf.reduce_all(tf.math.is_finite(v))) for v in variables if v.dtype.is_floating
  )


def _check_compatible(root_dir: str, config: dict) -> None:
  """Raises UserError if root_dir holds a run of another configuration."""
  path = os.path.join(root_dir, CONTROLLER_CONFIG_JSON)
  if not os.path.exists(path):
    return
  previous = io_utils.read_json(path)
  differing = sorted(
    k for k in set(previous) | set(config) if previous.get(k) != config.get(k)
  )
  if differing:
    raise UserError(
      f"{root_dir} holds a controller run with a different configuration "
      f"({', '.join(differing)} differ): use another --root_dir"
    )


@gin.configurable
def train_controller(
  root_dir: str,
  seed: int = 0,
  num_episodes: int = 1000,
  episodes_per_update: int = 1,
  export_interval: int = 50,
  say: Callable[[str], None] = print,
) -> dict:
  """Trains (or resumes training) the PPO controller until `num_episodes` exist.

  Args:
    root_dir: output directory (exists).
    seed: seeds the agent and the environment's episode seeds.
    num_episodes: total episodes (paper: 1000); a resumed run stops there.
    episodes_per_update: episodes collected per PPO update (paper: 1).
    export_interval: export the greedy policy to `policies/greedy_policy`, and
      a numbered copy beside it, every this many episodes (0: only at the end);
      the final policy is always exported.
    say: progress printer.

  Returns:
    A summary dict: `episodes`, `policy_dir`, `last_episode`.
  """
  if num_episodes <= 0:
    raise UserError(f"num_episodes must be positive, got {num_episodes}")
  if episodes_per_update <= 0:
    raise UserError(f"episodes_per_update must be positive, got {episodes_per_update}")
  tf.random.set_seed(seed)
  py_env = env_lib.create_environment(seed=seed)
  tf_env = tf_py_environment.TFPyEnvironment(py_env)
  train_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step")
  episodes_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="episodes_done")
  agent = agent_lib.create_agent(
    tf_env.time_step_spec(), tf_env.action_spec(), train_step_counter=train_step
  )
  config = {
    "features": list(py_env.feature_names),
    "reward": py_env.reward_name,
    "action_interval": py_env.action_interval,
    "max_log_factor": py_env.max_log_factor,
    "networks": agent_lib.network_config(agent),
  }
  _check_compatible(root_dir, config)
  io_utils.write_json(os.path.join(root_dir, CONTROLLER_CONFIG_JSON), config)

  train_dir = os.path.join(root_dir, constants.TRAIN_DIR)
  checkpointer = common.Checkpointer(
    ckpt_dir=os.path.join(train_dir, constants.CHECKPOINTS_DIR),
    max_to_keep=2,
    agent=agent,
    train_step=train_step,
    episodes_done=episodes_done,
  )
  try:
    status = checkpointer.initialize_or_restore()
    if checkpointer.checkpoint_exists:
      status.assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise UserError(
      f"checkpoint in {train_dir} does not match this configuration: {first}"
    ) from None
  start_episode = int(episodes_done.numpy())
  py_env.set_state({"episode_index": start_episode})

  episodes_path = os.path.join(root_dir, constants.EPISODES_JSONL)
  kept = [r for r in io_utils.read_jsonl(episodes_path) if r["episode"] < start_episode]
  if os.path.exists(episodes_path):
    # Drop lines of episodes after the last checkpoint (they run again) and any
    # torn tail, so appends start on a clean line.
    io_utils.rewrite_jsonl(episodes_path, kept)

  policy_dir = os.path.join(
    root_dir, constants.POLICIES_DIR, constants.GREEDY_POLICY_DIR
  )
  metadata = {
    "features": list(py_env.feature_names),
    "action_interval": py_env.action_interval,
    "max_log_factor": py_env.max_log_factor,
    "min_learning_rate": py_env._min_lr,  # pylint: disable=protected-access
    "max_learning_rate": py_env._max_lr,  # pylint: disable=protected-access
    "reward": py_env.reward_name,
    "actor_network": config["networks"]["actor"],
  }
  exporter = export.PolicyExporter(agent.policy)
  if start_episode >= num_episodes:
    say(
      f"{start_episode} episodes already done in {root_dir} (asked for {num_episodes})"
    )
    if not os.path.isdir(policy_dir):
      exporter.export({**metadata, "episodes": start_episode}, policy_dir)
    return {
      "episodes": start_episode,
      "policy_dir": policy_dir,
      "last_episode": kept[-1] if kept else None,
    }
  if start_episode:
    say(
      f"resuming from episode {start_episode} (checkpoint in {checkpointer._manager.directory})"
    )  # pylint: disable=protected-access

  replay_buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
    agent.collect_data_spec,
    batch_size=tf_env.batch_size,
    max_length=(py_env.decisions_per_episode + 2) * episodes_per_update,
  )
  driver = dynamic_episode_driver.DynamicEpisodeDriver(
    tf_env, agent.collect_policy, observers=[replay_buffer.add_batch], num_episodes=1
  )
  # Compiled once: the policy and buffer run as one graph around the Python
  # environment (stepped through `tf.numpy_function` by TFPyEnvironment).
  driver.run = common.function(driver.run, autograph=False)
  writer = tf.summary.create_file_writer(train_dir)
  time_step = tf_env.reset()
  policy_state = agent.collect_policy.get_initial_state(tf_env.batch_size)
  durations = []
  last_row = kept[-1] if kept else None
  with writer.as_default():
    episode = start_episode
    while episode < num_episodes:
      batch_rows = []
      for _ in range(min(episodes_per_update, num_episodes - episode)):
        tf.random.set_seed(seed * 1_000_003 + episode)  # Resumable sampling.
        start = time.perf_counter()
        # The driver counts an episode when it steps past its LAST time step,
        # which auto-resets the environment: that reset starts the next
        # episode, so the time step is carried from run to run.
        time_step, policy_state = driver.run(
          time_step=time_step, policy_state=policy_state
        )
        info = dict(py_env.last_episode)
        info["seconds"] = time.perf_counter() - start
        batch_rows.append(info)
        episode += 1
      experience = replay_buffer.gather_all()
      loss_info = agent.train(experience)
      replay_buffer.clear()
      total_loss = float(loss_info.loss)
      update = "ok"
      if not math.isfinite(total_loss) or not _all_finite(agent.trainable_variables):
        update = "rolled_back"
        checkpointer.initialize_or_restore()
        say(
          f"warning: the PPO update after episode {episode} gave non-finite "
          "losses or weights; rolled back to the last checkpoint and skipped it"
        )
      for info in batch_rows:
        row = {
          "episode": info["episode"],
          "return": info["return"],
          "final_val_loss": info["final_val_loss"],
          "best_val_loss": info["best_val_loss"],
          "test_loss": info["test_loss"],
          "test_accuracy": info["test_accuracy"],
          "diverged": info["diverged"],
          "initial_learning_rate": info["initial_learning_rate"],
          "learning_rates": info["learning_rates"],
          "val_losses": info["val_losses"],
          "seconds": round(info["seconds"], 3),
          "ppo_loss": total_loss if math.isfinite(total_loss) else None,
          "update": update,
        }
        io_utils.append_jsonl(episodes_path, row)
        _write_summaries(row)
        last_row = row
        durations.append(info["seconds"])
      episodes_done.assign(episode)
      checkpointer.save(global_step=episodes_done)
      if episode == num_episodes or (
        export_interval and episode % export_interval == 0
      ):
        exporter.export({**metadata, "episodes": episode}, policy_dir)
        if episode < num_episodes:
          exporter.export(
            {**metadata, "episodes": episode}, f"{policy_dir}_{episode:06d}"
          )
      mean = float(np.mean(durations[-20:]))
      val = last_row["final_val_loss"]
      say(
        f"episode {episode}/{num_episodes}  return {last_row['return']:.3f}  "
        f"val loss {'diverged' if val is None else f'{val:.4f}'}  "
        f"{mean:.1f}s/episode  eta {io_utils.format_seconds(mean * (num_episodes - episode))}"
      )
  writer.flush()
  return {"episodes": episode, "policy_dir": policy_dir, "last_episode": last_row}


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
