r"""The preset on a user's own model in Keras 3: the fourth held-out setting.

A user who never trained a controller writes a Keras model, compiles it with
Adam at Keras' default rate (0.001) and calls `fit`. This script runs that
user's choices side by side on the same seeds (weights and batch order), each
run validated every 10 batches on the same validation set, its best-validation
weights tested once (the protocol of every method here):

  constant         Adam(0.001), nothing else (what the user starts with)
  cosine           Adam(CosineDecay(0.001, the run's steps)), untuned
  controller       Adam(0.001) + LearnedLRScheduler.from_preset("general")
  tuned peers      cosine and ReduceLROnPlateau (factor 0.5, patience 2
                   epochs), each at the initial rate of {0.01, 0.003, 0.001,
                   0.0003} with the lowest mean best validation loss over 2
                   selection seeds; its search cost is shown

The model is not one the preset trained on: the convolutional network of
Keras' MNIST example, sized for 8x8 images (two 3x3 convolutions of 32 and 64
channels, max pooling, dropout 0.5, softmax), 20 epochs of batch 64 on
scikit-learn's 8x8 digits (1,000 train / 397 validation / 400 test, one fixed
permutation). (Batch normalization was left out: in 320 steps with Adam its
moving statistics lag the weights so far that every method's inference-mode
validation loss rose above chance while the training loss fell.)

Run it with the Keras 3 venv of scripts/check_keras3.sh (it needs
scikit-learn there: `.venv-keras3/bin/pip install scikit-learn`):

  .venv-keras3/bin/python benchmarks/preset_keras3.py --out=runs/preset_keras3.json

`--policy_dir=DIR` judges an exported policy in place of the shipped preset
(a candidate, before it ships).

Prints a table with paired t-tests (scipy if present, else the t statistic
alone) and writes the runs as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import tensorflow as tf

try:
  import keras
except ImportError:  # TF 2.15: Keras 2 as tf.keras.
  keras = tf.keras

DEFAULT_RATE = 1e-3  # Keras' default for Adam.
SEARCH_RATES = (1e-2, 3e-3, 1e-3, 3e-4)
EVAL_SEED_OFFSET = 500_000  # Held-out trainee seeds, as in the evaluation.
SELECTION_SEEDS = (0, 1)  # Seeds of the peers' rate search.
VALIDATE_EVERY = 10  # Batches, as the controller decides.


def load_digits():
  """(x, y) of train / validation / test: float32 [N, 8, 8, 1] in [0, 1], int32 [N]."""
  try:
    from sklearn.datasets import load_digits as sklearn_digits
  except ImportError:
    sys.exit("error: this benchmark needs scikit-learn: pip install scikit-learn")
  data = sklearn_digits()
  order = np.random.default_rng(0).permutation(len(data.target))
  x = (data.images[order] / 16.0).astype(np.float32)[..., None]
  y = data.target[order].astype(np.int32)
  return (x[:1000], y[:1000]), (x[1000:1397], y[1000:1397]), (x[1397:], y[1397:])


def user_model() -> keras.Model:
  """The user's model: Keras' MNIST convnet for 8x8 inputs (softmax outputs)."""
  layers = keras.layers
  return keras.Sequential(
    [
      keras.Input((8, 8, 1)),
      layers.Conv2D(32, 3, padding="same", activation="relu"),
      layers.Conv2D(64, 3, padding="same", activation="relu"),
      layers.MaxPooling2D(2),
      layers.Flatten(),
      layers.Dropout(0.5),
      layers.Dense(10, activation="softmax"),
    ]
  )


class BestWeights(keras.callbacks.Callback):
  """Validates every `every` batches; puts back the lowest-validation-loss weights at the end."""

  def __init__(self, validation, every=VALIDATE_EVERY):
    super().__init__()
    self.x, self.y = validation
    self.every = every
    self.loss = keras.losses.SparseCategoricalCrossentropy()
    self.best = math.inf
    self.best_weights = None
    self.batches = 0

  def on_train_batch_end(self, batch, logs=None):
    self.batches += 1
    if self.batches % self.every:
      return
    value = float(self.loss(self.y, self.model(self.x, training=False)))
    if value < self.best:
      self.best = value
      self.best_weights = self.model.get_weights()

  def on_train_end(self, logs=None):
    if self.best_weights is not None:
      self.model.set_weights(self.best_weights)


def run(method, rate, seed, data, epochs, batch_size, policy_dir=None):
  """One `fit`: returns {seed, best_val_loss, test_loss, test_accuracy, seconds}.

  `policy_dir`: the controller's exported policy; None: the shipped preset.
  """
  (x, y), validation, (x_test, y_test) = data
  keras.utils.set_random_seed(seed)
  model = user_model()
  steps = epochs * math.ceil(len(x) / batch_size)
  learning_rate = rate
  callbacks = []
  fit_validation = None
  if method == "cosine":
    learning_rate = keras.optimizers.schedules.CosineDecay(rate, steps)
  if method == "controller":
    import lr_controller

    arguments = dict(validation_data=validation, restore_best_weights=True)
    controller = (
      lr_controller.LearnedLRScheduler.from_preset("general", **arguments)
      if policy_dir is None
      else lr_controller.LearnedLRScheduler(policy_dir, **arguments)
    )
    callbacks.append(controller)
  else:
    best = BestWeights(validation)
    callbacks.append(best)
  if method == "reduce_on_plateau":
    callbacks.insert(
      0, keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)
    )
    fit_validation = validation
  model.compile(
    optimizer=keras.optimizers.Adam(learning_rate),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
  )
  start = time.perf_counter()
  model.fit(
    x,
    y,
    batch_size=batch_size,
    epochs=epochs,
    shuffle=True,
    validation_data=fit_validation,
    callbacks=callbacks,
    verbose=0,
  )
  seconds = time.perf_counter() - start
  test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
  best_val = controller.best_val_loss if method == "controller" else best.best
  return {
    "seed": seed,
    "rate": rate,
    "best_val_loss": float(best_val),
    "test_loss": float(test_loss),
    "test_accuracy": float(test_accuracy),
    "seconds": round(seconds, 2),
    "steps": steps,
  }


def paired(a, b):
  """(mean of a - b, two-sided paired t-test p or None without scipy)."""
  a, b = np.asarray(a), np.asarray(b)
  try:
    from scipy import stats
  except ImportError:
    return float(np.mean(a - b)), None
  return float(np.mean(a - b)), float(stats.ttest_rel(a, b).pvalue)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_runs", type=int, default=10)
  parser.add_argument("--epochs", type=int, default=20)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--out", default=os.path.join("runs", "preset_keras3.json"))
  parser.add_argument(
    "--policy_dir",
    default=None,
    help="an exported policy to judge in place of the shipped preset (a candidate)",
  )
  args = parser.parse_args()
  if args.num_runs < 2 or args.epochs < 1 or args.batch_size < 1:
    sys.exit("error: --num_runs must be >= 2, --epochs and --batch_size >= 1")
  if args.policy_dir is not None and not os.path.isdir(args.policy_dir):
    sys.exit(f"error: --policy_dir {args.policy_dir} is not a directory")
  data = load_digits()
  seeds = [EVAL_SEED_OFFSET + i for i in range(args.num_runs)]
  say = lambda text: print(text, flush=True)  # noqa: E731
  results = {
    "tensorflow": tf.__version__,
    "keras": keras.__version__,
    "policy": args.policy_dir or "preset general",
    "methods": {},
  }

  def repeat(name, method, rate):
    runs = []
    for k, seed in enumerate(seeds, 1):
      runs.append(
        run(method, rate, seed, data, args.epochs, args.batch_size, args.policy_dir)
      )
      say(f"{name} {k}/{len(seeds)}: test loss {runs[-1]['test_loss']:.4f}")
    results["methods"][name] = {"rate": rate, "runs": runs}
    return runs

  repeat("constant", "constant", DEFAULT_RATE)
  repeat("cosine", "cosine", DEFAULT_RATE)
  repeat("controller", "controller", DEFAULT_RATE)
  for peer in ("cosine", "reduce_on_plateau"):
    search = []
    for rate in SEARCH_RATES:
      scores = [
        run(peer, rate, s, data, args.epochs, args.batch_size) for s in SELECTION_SEEDS
      ]
      search.append(
        (float(np.mean([r["best_val_loss"] for r in scores])), rate, scores)
      )
      say(f"{peer} search: rate {rate:g} mean best val loss {search[-1][0]:.4f}")
    best_rate = min(search)[1]
    runs = repeat(f"tuned_{peer}", peer, best_rate)
    results["methods"][f"tuned_{peer}"]["search"] = {
      "rates": list(SEARCH_RATES),
      "mean_best_val_loss": [s[0] for s in search],
      "steps": sum(r["steps"] for s in search for r in s[2]),
    }
    del runs
  controller = [r["test_loss"] for r in results["methods"]["controller"]["runs"]]
  lines = [
    f"TensorFlow {tf.__version__}, Keras {keras.__version__}; {len(seeds)} seeds; "
    "test loss of the best-validation weights",
    "| method | initial rate | test loss | accuracy | controller minus it | paired p |",
    "|---|---|---|---|---|---|",
  ]
  for name, record in results["methods"].items():
    losses = [r["test_loss"] for r in record["runs"]]
    accuracy = [r["test_accuracy"] for r in record["runs"]]
    difference, p = (None, None) if name == "controller" else paired(controller, losses)
    search = record.get("search")
    rate = f"{record['rate']:g}" + (
      f" (searched, {search['steps']:,} steps)" if search else ""
    )
    lines.append(
      f"| {name} | {rate} | {np.mean(losses):.4f} ± {np.std(losses, ddof=1):.4f} | "
      f"{np.mean(accuracy):.4f} | "
      f"{'-' if difference is None else f'{difference:+.4f}'} | "
      f"{'-' if p is None else f'{p:.2g}'} |"
    )
  table = "\n".join(lines)
  say("\n" + table)
  results["table"] = table
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
