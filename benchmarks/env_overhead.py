r"""Trainee steps per second inside the controller's environment vs a plain run.

Both sides train the same LeNet on the same data, batch and process, and both
validate every `action_interval` steps (the paper's protocol keeps the best
validation checkpoint, so the plain run validates too). The environment side
adds what the controller costs: the features, the reward, and a PPO collect
policy's action at every decision. Runs alternate and the medians are compared:

  python benchmarks/env_overhead.py                 # paper's LeNet shapes, shrunk
  python benchmarks/env_overhead.py --batch_size=100 --image_size=8

Prints steps/s of each and the ratio env / plain (target: >= 0.9).
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_integer("batch_size", 1000, "Training batch (paper: 1000).")
flags.DEFINE_integer("image_size", 28, "Image height and width (Fashion-MNIST: 28).")
flags.DEFINE_integer("num_train", 5000, "Synthetic training examples.")
flags.DEFINE_integer("num_validation", 2000, "Validation examples (paper: 10000).")
flags.DEFINE_integer("num_steps", 100, "Trainee steps per measured run (paper: 1000).")
flags.DEFINE_integer(
  "action_interval", 10, "Steps per decision / validation (paper: 10)."
)
flags.DEFINE_integer("repeats", 3, "Alternating measurements of each side.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  import numpy as np
  import tensorflow as tf
  from tf_agents.environments import tf_py_environment
  from tf_agents.policies import py_tf_eager_policy

  from lr_controller import testing
  from lr_controller.control import agent as agent_lib
  from lr_controller.control import env as env_lib
  from lr_controller.trainee import schedules
  from lr_controller.trainee import trainee as trainee_lib

  data = testing.tiny_data(
    num_train=FLAGS.num_train,
    num_validation=FLAGS.num_validation,
    num_test=FLAGS.num_validation,
    image_shape=(FLAGS.image_size, FLAGS.image_size, 1),
    batch_size=FLAGS.batch_size,
    eval_batch_size=1000,
  )
  plain = trainee_lib.build_trainee(seed=0, data=data)
  schedule = schedules.make_schedule(
    "step_decay",
    initial_learning_rate=0.01,
    total_steps=FLAGS.num_steps,
    discount_step=20,
    factor=0.9,
  )
  env = env_lib.LearningRateControlEnv(
    lambda seed: trainee_lib.build_trainee(seed=seed, data=data),
    num_steps=FLAGS.num_steps,
    action_interval=FLAGS.action_interval,
    initial_learning_rates=(0.01,),
    evaluate_test=False,
  )
  tf_env = tf_py_environment.TFPyEnvironment(env)
  agent = agent_lib.create_agent(tf_env.time_step_spec(), tf_env.action_spec())
  policy = py_tf_eager_policy.PyTFEagerPolicy(
    agent.collect_policy, use_tf_function=True
  )

  def run_plain(seed):
    plain.reset(seed, 0.01, schedule=schedule)
    start = time.perf_counter()
    trainee_lib.run_training(
      plain,
      num_steps=FLAGS.num_steps,
      eval_interval=FLAGS.action_interval,
      evaluate_test=False,
    )
    return FLAGS.num_steps / (time.perf_counter() - start)

  def run_env(seed):
    env.seed_next_episode(seed)
    start = time.perf_counter()
    time_step = env.reset()
    state = policy.get_initial_state(1)
    while not time_step.is_last():
      action_step = policy.action(time_step, state)
      state = action_step.state
      time_step = env.step(np.asarray(action_step.action, np.float32))
    return FLAGS.num_steps / (time.perf_counter() - start)

  print(
    f"LeNet, {FLAGS.image_size}x{FLAGS.image_size}x1, batch {FLAGS.batch_size}, "
    f"{FLAGS.num_steps} steps, validation of {FLAGS.num_validation} every "
    f"{FLAGS.action_interval} steps; warming up...",
    flush=True,
  )
  run_plain(99)
  run_env(99)
  plain_rates, env_rates = [], []
  for i in range(FLAGS.repeats):
    plain_rates.append(run_plain(i))
    env_rates.append(run_env(i))
    print(
      f"  run {i + 1}: plain {plain_rates[-1]:.1f} steps/s, env {env_rates[-1]:.1f} steps/s",
      flush=True,
    )
  p, e = statistics.median(plain_rates), statistics.median(env_rates)
  print(f"{'plain trainee loop':<28}{p:>10.1f} steps/s")
  print(f"{'inside the environment':<28}{e:>10.1f} steps/s")
  print(f"ratio env / plain: {e / p:.3f} (target >= 0.9)")
  del tf


if __name__ == "__main__":
  app.run(main)
