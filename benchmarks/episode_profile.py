r"""Where one controller episode's wall time goes, and what is not training.

Runs a few episodes of `LearningRateControlEnv` with a constant action (keep
the rate) on a LeNet trainee and prints:

* a breakdown of the last episode's wall time: trainee train steps,
  validation passes, the end-of-episode test pass, features
  (`features.observation`), reward, trainee reset, and everything else
  (exclusive times: a call's time excludes the timed calls inside it);
* traces of the train loop and of the eval pass after all episodes (want 1);
* validation passes per decision (want 1; the reset adds one for the first
  observation);
* the share of train-step time spent waiting for input: the compiled train
  loop fed from the real pipeline (`Data.train_stream`) vs from one batch
  repeated, measured side by side on one trainee;
* XLA: train steps/s (`Trainee(jit_compile=...)`) and validation passes/s
  (the eval pass compiled with `jit_compile=True`) on vs off, side by side.

Data: `data.load_data("fashion_mnist")` under `tfds.testing.mock_data`
(random 28x28x1 images through the real loader and train pipeline), shrunk
to CPU size. Prints ratios (medians of per-round ratios), never asserts times:

  python benchmarks/episode_profile.py
  python benchmarks/episode_profile.py --batch_size=1000 --num_validation=10000
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags, logging  # noqa: E402

flags.DEFINE_integer("batch_size", 250, "Training batch (paper: 1000).")
flags.DEFINE_integer("num_train", 5000, "Synthetic training examples (paper: 50000).")
flags.DEFINE_integer("num_validation", 2000, "Validation examples (paper: 10000).")
flags.DEFINE_integer("eval_batch_size", 1000, "Examples per eval-pass batch.")
flags.DEFINE_integer("num_steps", 100, "Trainee steps per episode (paper: 1000).")
flags.DEFINE_integer("action_interval", 10, "Steps per decision (paper: 10).")
flags.DEFINE_integer("episodes", 4, "Episodes run; the last one is broken down.")
flags.DEFINE_integer("repeats", 5, "Rounds of each side-by-side measurement.")
flags.DEFINE_integer("steps", 50, "Train steps per side-by-side measurement.")
flags.DEFINE_integer("passes", 10, "Validation passes per side-by-side measurement.")
FLAGS = flags.FLAGS

BUCKETS = (
  "train steps",
  "validation passes",
  "test pass (episode end)",
  "features",
  "reward",
  "trainee reset",
)


class Profile:
  """Exclusive wall time (s) and call counts of wrapped callables, by bucket."""

  def __init__(self):
    self.seconds = collections.Counter()
    self.calls = collections.Counter()
    self._children = []  # Time of timed calls inside each open call (s).

  def wrap(self, fn: Callable, bucket: str | Callable[..., str | None]) -> Callable:
    """`fn` timed into `bucket`, or into `bucket(*args, **kwargs)` (None: untimed)."""

    @functools.wraps(fn)
    def timed(*args, **kwargs):
      name = bucket(*args, **kwargs) if callable(bucket) else bucket
      if name is None:
        return fn(*args, **kwargs)
      self._children.append(0.0)
      start = time.perf_counter()
      try:
        return fn(*args, **kwargs)
      finally:
        elapsed = time.perf_counter() - start
        self.seconds[name] += elapsed - self._children.pop()
        self.calls[name] += 1
        if self._children:
          self._children[-1] += elapsed

    return timed

  def clear(self) -> None:
    self.seconds.clear()
    self.calls.clear()


def load():
  """Fashion-MNIST-shaped random data through `load_data` (no files needed)."""
  import tensorflow_datasets as tfds

  from lr_controller.trainee import data as data_lib

  with tfds.testing.mock_data(num_examples=max(FLAGS.num_train, FLAGS.num_validation)):
    return data_lib.load_data(
      "fashion_mnist",
      batch_size=FLAGS.batch_size,
      eval_batch_size=FLAGS.eval_batch_size,
      train_examples=FLAGS.num_train,
      validation_examples=FLAGS.num_validation,
      test_examples=FLAGS.num_validation,
    )


def instrument(trainee, profile: Profile) -> None:
  """Times the trainee's public calls the environment makes."""

  def eval_bucket(split="validation", keep_probabilities=False):
    """The test pass; validation passes are timed (and counted) by `validate`."""
    del keep_probabilities
    return None if split == "validation" else "test pass (episode end)"

  trainee.train = profile.wrap(trainee.train, "train steps")
  trainee.validate = profile.wrap(trainee.validate, "validation passes")
  trainee.evaluate = profile.wrap(trainee.evaluate, eval_bucket)
  trainee.reset = profile.wrap(trainee.reset, "trainee reset")


def run_episode(env, action) -> float:
  """Runs one episode with a constant action; returns its wall time (s)."""
  start = time.perf_counter()
  time_step = env.reset()
  while not time_step.is_last():
    time_step = env.step(action)
  return time.perf_counter() - start


def side_by_side(measures: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
  """Warms up, then alternates the measures `--repeats` times; rates per round."""
  for measure in measures.values():
    measure()
  rates = {key: [] for key in measures}
  for _ in range(FLAGS.repeats):
    for key, measure in measures.items():
      rates[key].append(measure())
  return rates


def paired_ratio(rates: dict[str, list[float]], a: str, b: str) -> float:
  """Median over rounds of rate `a` / rate `b`."""
  return statistics.median(x / y for x, y in zip(rates[a], rates[b]))


def report_rates(rates: dict[str, list[float]], unit: str) -> None:
  for key, values in rates.items():
    runs = " ".join(f"{v:7.1f}" for v in values)
    print(f"  {key:26s} {statistics.median(values):8.1f} {unit}  (rounds: {runs})")


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)
  import numpy as np
  import tensorflow as tf

  from lr_controller import features as features_lib
  from lr_controller.control import env as env_lib
  from lr_controller.trainee import trainee as trainee_lib

  print(
    f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, Python "
    f"{sys.version.split()[0]}\nLeNet, 28x28x1, batch {FLAGS.batch_size}, "
    f"{FLAGS.num_train} train / {FLAGS.num_validation} validation examples, "
    f"{FLAGS.num_steps} steps per episode, a decision every "
    f"{FLAGS.action_interval} steps",
    flush=True,
  )
  data = load()
  profile = Profile()

  def trainee_fn(seed):
    trainee = trainee_lib.build_trainee(seed=seed, data=data)
    instrument(trainee, profile)
    return trainee

  env = env_lib.LearningRateControlEnv(
    trainee_fn,
    num_steps=FLAGS.num_steps,
    action_interval=FLAGS.action_interval,
    initial_learning_rates=(0.01,),
  )
  # Time what the environment calls: module-level features, its reward object.
  features_lib.observation = profile.wrap(features_lib.observation, "features")
  env._reward = dataclasses.replace(
    env._reward, fn=profile.wrap(env._reward.fn, "reward")
  )
  action = np.float32(0.0)

  # ---- One episode's breakdown. ----
  for _ in range(FLAGS.episodes - 1):
    run_episode(env, action)
  profile.clear()
  wall = run_episode(env, action)
  print(f"\nEpisode {FLAGS.episodes} (warm): {wall * 1e3:.0f} ms wall")
  timed = 0.0
  for bucket in BUCKETS:
    seconds, calls = profile.seconds[bucket], profile.calls[bucket]
    timed += seconds
    print(
      f"  {bucket:26s} {seconds * 1e3:8.1f} ms {seconds / wall:6.1%}  "
      f"({calls} calls, {seconds * 1e3 / max(calls, 1):.2f} ms each)"
    )
  other = wall - timed
  print(f"  {'everything else':26s} {other * 1e3:8.1f} ms {other / wall:6.1%}")

  trainee = env.trainee
  decisions = env.decisions_per_episode
  validates = profile.calls["validation passes"]
  print(
    f"\nTraces after {FLAGS.episodes} episodes: train loop "
    f"{trainee._train_loop.experimental_get_tracing_count()}, eval pass "
    f"{trainee._eval_pass.experimental_get_tracing_count()} (want 1 each)"
  )
  print(
    f"Validation passes per decision: {(validates - 1) / decisions:.2f} (want 1; "
    f"{validates} in the episode = {decisions} decisions + 1 at reset)"
  )

  # ---- Input wait: real pipeline vs one batch repeated. ----
  probe = trainee_lib.build_trainee(seed=0, data=data)
  real = iter(data.train_stream(1))
  one_batch = iter(tf.data.Dataset.from_tensors(next(iter(data.train))).repeat())
  rates = tf.fill([FLAGS.steps], 0.01)

  def loop_rate(iterator) -> float:
    start = time.perf_counter()
    float(probe._train_loop(iterator, rates))
    return FLAGS.steps / (time.perf_counter() - start)

  input_rates = side_by_side(
    {
      "real pipeline": functools.partial(loop_rate, real),
      "one batch repeated": functools.partial(loop_rate, one_batch),
    }
  )
  print(f"\nTrain loop, {FLAGS.steps} steps per round, steps/s:")
  report_rates(input_rates, "steps/s")
  ratio = paired_ratio(input_rates, "real pipeline", "one batch repeated")
  print(
    f"  ratio real / repeated: {ratio:.3f} -> share of step time waiting for "
    f"input: {max(0.0, 1 - ratio):.1%}"
  )

  # ---- XLA on vs off: train step and eval pass. ----
  xla = trainee_lib.build_trainee(seed=0, data=data, jit_compile=True)
  chunks = max(1, FLAGS.steps // FLAGS.action_interval)

  def train_rate(t) -> float:
    start = time.perf_counter()
    for _ in range(chunks):
      t.train(FLAGS.action_interval)
    return chunks * FLAGS.action_interval / (time.perf_counter() - start)

  train_rates = side_by_side(
    {
      "train step XLA off": functools.partial(train_rate, probe),
      "train step XLA on": functools.partial(train_rate, xla),
    }
  )
  print(f"\nTrainee.train({FLAGS.action_interval}) x {chunks}, steps/s:")
  report_rates(train_rates, "steps/s")
  print(
    "  ratio XLA on / off: "
    f"{paired_ratio(train_rates, 'train step XLA on', 'train step XLA off'):.3f}"
  )

  split = probe._splits["validation"]
  plain_pass = probe._eval_pass
  xla_pass = tf.function(
    probe._eval_pass_impl,
    jit_compile=True,
    input_signature=plain_pass.input_signature,
  )

  def pass_rate(fn) -> float:
    start = time.perf_counter()
    for _ in range(FLAGS.passes):
      fn(*split)[2].numpy()  # The env reads the probabilities back.
    return FLAGS.passes / (time.perf_counter() - start)

  measures = {"eval pass XLA off": functools.partial(pass_rate, plain_pass)}
  try:
    xla_pass(*split)
    measures["eval pass XLA on"] = functools.partial(pass_rate, xla_pass)
  except (tf.errors.InvalidArgumentError, ValueError) as e:
    print(f"\nThe eval pass does not compile with XLA: {str(e).splitlines()[0]}")
  pass_rates = side_by_side(measures)
  print(f"\nValidation passes ({FLAGS.num_validation} examples), passes/s:")
  report_rates(pass_rates, "passes/s")
  if "eval pass XLA on" in pass_rates:
    print(
      "  ratio XLA on / off: "
      f"{paired_ratio(pass_rates, 'eval pass XLA on', 'eval pass XLA off'):.3f}"
    )


if __name__ == "__main__":
  app.run(main)
