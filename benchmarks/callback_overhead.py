r"""Batches per second of a user's `model.fit` with `LearnedLRScheduler` against without.

  python benchmarks/callback_overhead.py --policy_dir=ROOT/policies/greedy_policy
  .venv-keras3/bin/python benchmarks/callback_overhead.py --policy_dir=...  # Keras 3

The paper's LeNet (28x28x1 inputs zero-padded to 32x32, as
`official_models.lenet`, written here in plain Keras so that the script runs
in the callback-only install too) trains on random Fashion-MNIST-shaped data
at batch 1,000 with SGD, twice per round in one process: a plain `fit`, and
the same `fit` with the callback (a decision every `action_interval` batches,
`validation_examples` validation examples). Both models start from the same
weights; the rounds alternate, and each figure is a median over rounds.

Printed, by wall-clock and by this process's CPU time (the steadier measure
on a shared machine): the ratio of batches per second (with / without the
callback); the share of the plain fit's time that the callback's validation
forward passes explain (timed on their own, the same passes: the model in inference mode on
the validation subset in batches, cross-entropy and softmax, once per
decision); and the rest, everything else the callback costs (features, the
policy call, Python), as a share of the plain epoch time. The goal for the
rest is at most 2%. The validation pass scales with `validation_examples`:
fewer examples cost less but give noisier features.
"""

from __future__ import annotations

import importlib.metadata
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

import lr_controller  # noqa: E402

flags.DEFINE_string("policy_dir", None, "An exported controller policy.", required=True)
flags.DEFINE_integer("batch_size", 1000, "Training batch size.", lower_bound=1)
flags.DEFINE_integer("train_examples", 20_000, "Training examples.", lower_bound=1)
flags.DEFINE_integer("validation_examples", 2000, "The callback's validation subset.")
flags.DEFINE_integer("epochs", 2, "Epochs per measured fit.", lower_bound=1)
flags.DEFINE_integer("rounds", 9, "Measured rounds (each: plain, then callback).")
FLAGS = flags.FLAGS


def lenet(num_classes: int = 10) -> tf.keras.Model:
  """LeNet-5 on 28x28x1 (zero-padded to 32x32): `official_models.lenet`'s layers."""
  return tf.keras.Sequential(
    [
      tf.keras.Input((28, 28, 1)),
      tf.keras.layers.ZeroPadding2D(2),
      tf.keras.layers.Conv2D(6, 5, activation="relu"),
      tf.keras.layers.MaxPooling2D(2),
      tf.keras.layers.Conv2D(16, 5, activation="relu"),
      tf.keras.layers.MaxPooling2D(2),
      tf.keras.layers.Flatten(),
      tf.keras.layers.Dense(120, activation="relu"),
      tf.keras.layers.Dense(84, activation="relu"),
      tf.keras.layers.Dense(num_classes, name="logits"),
    ]
  )


def compiled(weights=None) -> tf.keras.Model:
  tf.keras.utils.set_random_seed(0)
  model = lenet()
  if weights is not None:
    model.set_weights(weights)
  model.compile(
    optimizer=tf.keras.optimizers.SGD(0.01, momentum=0.9),
    loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
  )
  return model


def timed_fit(model, x, y, callbacks) -> tuple[float, float]:
  """(wall-clock seconds, this process's CPU seconds) of one `fit` of FLAGS.epochs epochs."""
  start, cpu = time.perf_counter(), time.process_time()
  model.fit(
    x,
    y,
    batch_size=FLAGS.batch_size,
    epochs=FLAGS.epochs,
    shuffle=False,
    verbose=0,
    callbacks=callbacks,
  )
  return time.perf_counter() - start, time.process_time() - cpu


def validation_pass_seconds(
  model, x_val, y_val, repeats: int = 5
) -> tuple[float, float]:
  """Median (wall-clock, CPU) seconds of one validation pass as the callback makes it."""
  forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
  batch = 256  # The callback's evaluation batch.

  def one_pass():
    outputs = tf.concat(
      [forward(x_val[s : s + batch]) for s in range(0, len(x_val), batch)], 0
    )
    loss = tf.reduce_mean(
      tf.keras.losses.sparse_categorical_crossentropy(y_val, outputs, from_logits=True)
    )
    return float(loss), tf.nn.softmax(outputs).numpy()

  one_pass()  # Trace.
  wall, cpu = [], []
  for _ in range(repeats):
    start, start_cpu = time.perf_counter(), time.process_time()
    one_pass()
    wall.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
  return statistics.median(wall), statistics.median(cpu)


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  x = rng.random((FLAGS.train_examples, 28, 28, 1), dtype=np.float32)
  y = rng.integers(0, 10, FLAGS.train_examples).astype(np.int32)
  x_val = rng.random((FLAGS.validation_examples, 28, 28, 1), dtype=np.float32)
  y_val = rng.integers(0, 10, FLAGS.validation_examples).astype(np.int32)
  weights = compiled().get_weights()
  plain, with_callback = compiled(weights), compiled(weights)

  # One callback for every fit, as one for a whole training: its forward pass
  # is traced in the warm-up, not in the measured fits.
  callback = lr_controller.LearnedLRScheduler(
    FLAGS.policy_dir,
    validation_data=(x_val, y_val),
    validation_examples=FLAGS.validation_examples,
  )
  interval = callback.action_interval
  batches = FLAGS.epochs * -(-FLAGS.train_examples // FLAGS.batch_size)
  decisions = 1 + batches // interval  # One at train begin, then per chunk.
  print(
    f"TensorFlow {tf.__version__}, Keras {importlib.metadata.version('keras')}; "
    f"LeNet, batch {FLAGS.batch_size}, {batches} batches per fit, a decision "
    f"every {interval} batches ({decisions} per fit), "
    f"{FLAGS.validation_examples} validation examples"
  )
  timed_fit(plain, x, y, [])  # Warm-up: traces.
  timed_fit(with_callback, x, y, [callback])
  plain_times, callback_times = [], []
  for k in range(FLAGS.rounds):
    plain_times.append(timed_fit(plain, x, y, []))
    callback_times.append(timed_fit(with_callback, x, y, [callback]))
    (t_plain, _), (t_callback, _) = plain_times[-1], callback_times[-1]
    print(
      f"round {k + 1}/{FLAGS.rounds}: plain {batches / t_plain:.2f} batches/s, "
      f"with the callback {batches / t_callback:.2f} (ratio {t_plain / t_callback:.3f})"
    )
  validation = validation_pass_seconds(with_callback, x_val, y_val)
  for i, clock in enumerate(("wall-clock", "CPU")):
    plain_s = [t[i] for t in plain_times]
    callback_s = [t[i] for t in callback_times]
    base = statistics.median(plain_s)
    overhead = statistics.median(c - p for c, p in zip(callback_s, plain_s))
    ratio = statistics.median(p / c for c, p in zip(callback_s, plain_s))
    passes = decisions * validation[i]
    print(
      f"{clock} time: ratio (with / without the callback, batches per second) "
      f"{ratio:.3f}; validation passes {passes / base:.1%} of the plain fit; the "
      f"rest (features, policy, Python) {(overhead - passes) / base:.1%} (goal: "
      "at most 2%)"
    )


if __name__ == "__main__":
  app.run(main)
