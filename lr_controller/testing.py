"""Tiny fixtures for tests and benchmarks (like `tf_agents.utils.test_utils`)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from lr_controller.trainee import data as data_lib
from lr_controller.trainee import trainee as trainee_lib

# The keys of `trainee.run_training`'s result.
RUN_KEYS = frozenset(
  {
    "test_loss",
    "test_accuracy",
    "best_step",
    "best_val_loss",
    "diverged",
    "steps_done",
    "seconds",
    "history",
  }
)


def tiny_data(
  num_train: int = 64,
  num_validation: int = 32,
  num_test: int = 32,
  image_shape: tuple[int, int, int] = (8, 8, 1),
  num_classes: int = 10,
  batch_size: int = 16,
  eval_batch_size: int = 16,
  seed: int = 0,
  repeat_one_batch: bool = False,
) -> data_lib.Data:
  """A learnable synthetic classification set in memory.

  Images are class templates plus noise (float32 in [0, 1]); labels int32.

  Args:
    num_train, num_validation, num_test: examples per split.
    image_shape: (H, W, C).
    num_classes: classes.
    batch_size: training batch.
    eval_batch_size: evaluation batch.
    seed: NumPy seed of the images.
    repeat_one_batch: the train split yields its first batch forever (makes
      a step's gradient predictable in tests).

  Returns:
    A `data.Data` with infinite train and finite validation/test datasets.
  """
  rng = np.random.default_rng(seed)
  templates = rng.uniform(0, 1, size=(num_classes, *image_shape)).astype(np.float32)

  def make(n):
    labels = rng.integers(0, num_classes, size=n).astype(np.int32)
    noise = rng.normal(0, 0.3, size=(n, *image_shape)).astype(np.float32)
    images = np.clip(templates[labels] + noise, 0, 1).astype(np.float32)
    return images, labels

  train, validation, test = make(num_train), make(num_validation), make(num_test)
  if repeat_one_batch:
    first = (train[0][:batch_size], train[1][:batch_size])
    one_batch = tf.data.Dataset.from_tensors(first).repeat()

    def train_fn(unused_seed):
      return one_batch

  else:
    train_fn = data_lib.make_train_fn(
      tf.constant(train[0]), tf.constant(train[1]), batch_size
    )
  return data_lib.Data(
    name="tiny",
    train=train_fn(seed),
    train_fn=train_fn,
    validation=tf.data.Dataset.from_tensor_slices(validation)
    .batch(eval_batch_size)
    .cache(),
    test=tf.data.Dataset.from_tensor_slices(test).batch(eval_batch_size).cache(),
    input_shape=tuple(image_shape),
    num_classes=num_classes,
    num_examples={"train": num_train, "validation": num_validation, "test": num_test},
  )


def tiny_trainee(
  learning_rate: float = 0.05,
  momentum: float = 0.0,
  data: data_lib.Data | None = None,
  seed: int = 0,
) -> trainee_lib.Trainee:
  """A `Trainee` of a tiny MLP (8x8x1 -> 16 ReLU -> 10 logits named "logits").

  Args:
    learning_rate, momentum: its SGD optimizer's.
    data: its data; None: `tiny_data()`.
    seed: seeds the model's initial weights.
  """
  tf.keras.utils.set_random_seed(seed)
  inputs = tf.keras.Input((8, 8, 1))
  x = tf.keras.layers.Flatten()(inputs)
  x = tf.keras.layers.Dense(16, activation="relu")(x)
  model = tf.keras.Model(inputs, tf.keras.layers.Dense(10, name="logits")(x))
  optimizer = trainee_lib.make_optimizer(
    "sgd", learning_rate=learning_rate, momentum=momentum
  )
  return trainee_lib.Trainee(model, optimizer, data or tiny_data())
