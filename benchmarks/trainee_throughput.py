r"""Train steps per second: our chunked loop (`Trainee.train`) against `model.fit`.

  python benchmarks/trainee_throughput.py                          # digits, batch 100
  python benchmarks/trainee_throughput.py --data=fashion_synthetic # 28x28, batch 1000
  python benchmarks/trainee_throughput.py --data=mnist1d_mlp      # MNIST-1D's MLP, batch 100
  python benchmarks/trainee_throughput.py --data=all --batch_size=500

Three training loops run in one process on the same data, model and
optimizer:

* ours: `Trainee.train(chunk)` called `steps / chunk` times. The paper's
  protocol validates every 10 steps, so the project uses chunk=10. The time
  includes everything a caller pays: the Python call, the chunk's rates, and
  reading back the loss.
* fit: a plain `model.fit(data.train, steps_per_epoch=steps, epochs=1)` on a
  compiled copy of the same architecture. It has the same seed and
  `make_optimizer` settings, reads the same `tf.data` train pipeline, and has
  no metrics or callbacks. `fit` is timed over its epoch (a callback's
  `on_epoch_begin` to `on_epoch_end`), so fit's per-call set-up (data handler,
  iterator) is left out. That favours fit; the whole call's rate is printed too
  ("fit call").
* ours XLA: `Trainee(..., jit_compile=True)`. The step is XLA-compiled; the
  loop that reads the input iterator stays a graph.

Each loop is warmed up first, so tracing and XLA compilation are not timed.
Then the measurements alternate (ours, fit, ours XLA, ours, fit, ...), so a
slow phase of a shared machine hits all of them. The tables report medians of
wall-clock steps per second and of the process's CPU time per step. The
ratios are medians over rounds of the ratio within a round: loops measured
back to back share the machine's load of the moment. CPU time is the steadier
measure when other processes compete for the cores.

Data sets: `digits` is `data.load_data(name="lrc_digits")`, prepared offline in
`--data_dir` (default: tfds') on first use. `fashion_synthetic` is
`testing.tiny_data(num_train=5000, image_shape=(28, 28, 1))` in memory, the
shape of the paper's Fashion-MNIST / LeNet setting at batch 1000.
`mnist1d_mlp` and `mnist1d_cnn` are `data.load_data(name="lrc_mnist1d")`
(generated offline on first use) with MNIST-1D's MLP and 1-D CNN, the
settings `mnist1d_mlp.gin` and `mnist1d_cnn.gin` (batch 100, 1,000 steps).
Each data set has its own model (`DEFAULT_MODELS`) unless `--model` says.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

import official_models  # noqa: E402
from lr_controller import testing  # noqa: E402
from lr_controller.trainee import data as data_lib  # noqa: E402
from lr_controller.trainee import protocol  # noqa: E402
from lr_controller.trainee import trainee as trainee_lib  # noqa: E402

# Per data set: train batch size and steps per measurement.
DEFAULT_BATCH_SIZES = {
  "digits": 100,
  "fashion_synthetic": 1000,
  "mnist1d_mlp": 100,
  "mnist1d_cnn": 100,
}
DEFAULT_STEPS = {
  "digits": 200,
  "fashion_synthetic": 10,
  "mnist1d_mlp": 1000,
  "mnist1d_cnn": 1000,
}
DEFAULT_MODELS = {
  "digits": "lenet",
  "fashion_synthetic": "lenet",
  "mnist1d_mlp": "mlp",
  "mnist1d_cnn": "cnn1d",
}

flags.DEFINE_enum(
  "data",
  "digits",
  [*DEFAULT_MODELS, "all"],
  "The embedded digits, a Fashion-MNIST-shaped synthetic set, MNIST-1D with "
  "its MLP or CNN, or all of them.",
)
flags.DEFINE_enum(
  "model",
  None,
  sorted(official_models.MODEL_BUILDERS),
  "Model (default: the data set's, DEFAULT_MODELS).",
)
flags.DEFINE_integer(
  "batch_size",
  None,
  "Train batch size (default: DEFAULT_BATCH_SIZES of the data set).",
  lower_bound=1,
)
flags.DEFINE_integer(
  "steps",
  None,
  "Steps per measurement (default: DEFAULT_STEPS of the data set).",
  lower_bound=1,
)
flags.DEFINE_integer("chunk", 10, "Steps per Trainee.train call.", lower_bound=1)
flags.DEFINE_integer("repeats", 5, "Measurements of each loop.", lower_bound=1)
flags.DEFINE_bool("xla", True, "Also measure our loop with jit_compile=True.")
flags.DEFINE_float("learning_rate", 0.01, "SGD learning rate (momentum 0.9).")
flags.DEFINE_string("data_dir", None, "tfds data dir of the digits.")
flags.DEFINE_integer("seed", 0, "Seed of the weights and the data order.")

FLAGS = flags.FLAGS


def load(name: str, batch_size: int) -> data_lib.Data:
  """The data set `name` with train batches of `batch_size`."""
  if name == "digits" or name.startswith("mnist1d"):
    return data_lib.load_data(
      name="lrc_digits" if name == "digits" else "lrc_mnist1d",
      data_dir=FLAGS.data_dir,
      batch_size=batch_size,
      seed=FLAGS.seed,
    )
  return testing.tiny_data(
    num_train=5000,
    num_validation=1000,
    num_test=1000,
    image_shape=(28, 28, 1),
    batch_size=batch_size,
    eval_batch_size=1000,
    seed=FLAGS.seed,
  )


def build_model(data: data_lib.Data, model: str) -> tf.keras.Model:
  """The benchmarked architecture `model`, with the initial weights of `--seed`."""
  tf.keras.utils.set_random_seed(FLAGS.seed)
  return official_models.build_model(
    model, input_shape=data.input_shape, num_classes=data.num_classes
  )


def cpu_seconds() -> float:
  """User + system CPU time of this process (all TensorFlow threads), seconds."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def our_loop(
  data: data_lib.Data, model: str, steps: int, chunk: int, jit_compile: bool
) -> Callable[[], dict]:
  """Returns a function that times `steps` steps in `Trainee.train(chunk)` calls."""
  trainee = trainee_lib.Trainee(
    build_model(data, model),
    trainee_lib.make_optimizer(learning_rate=FLAGS.learning_rate),
    data,
    jit_compile=jit_compile,
    # Throughput only: stop at a non-finite loss alone.
    rule=protocol.DivergenceRule(max_train_loss=float("inf"), max_val_loss_ratio=None),
  )
  calls, rest = divmod(steps, chunk)

  def measure() -> dict:
    start, cpu_start = time.perf_counter(), cpu_seconds()
    for _ in range(calls):
      trainee.train(chunk)
    if rest:
      trainee.train(rest)
    return {
      "steps_per_second": steps / (time.perf_counter() - start),
      "cpu_ms_per_step": 1e3 * (cpu_seconds() - cpu_start) / steps,
    }

  return measure


class _EpochTimer(tf.keras.callbacks.Callback):
  """Records the wall and CPU time of the last epoch (set-up of `fit` excluded)."""

  seconds = cpu = float("nan")

  def on_epoch_begin(self, epoch, logs=None):
    self._start, self._cpu_start = time.perf_counter(), cpu_seconds()

  def on_epoch_end(self, epoch, logs=None):
    # Keras has already read the epoch's logs back: its steps are done.
    self.seconds = time.perf_counter() - self._start
    self.cpu = cpu_seconds() - self._cpu_start


def fit_loop(data: data_lib.Data, model_name: str, steps: int) -> Callable[[], dict]:
  """Returns a function that times one `model.fit` call of `steps` steps."""
  model = build_model(data, model_name)
  model.compile(
    optimizer=trainee_lib.make_optimizer(learning_rate=FLAGS.learning_rate),
    loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    jit_compile=False,
  )
  timer = _EpochTimer()

  def measure() -> dict:
    start = time.perf_counter()
    model.fit(data.train, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[timer])
    call = time.perf_counter() - start
    return {
      "steps_per_second": steps / timer.seconds,
      "cpu_ms_per_step": 1e3 * timer.cpu / steps,
      "call": steps / call,
    }

  return measure


def benchmark(name: str) -> dict:
  """Measures every loop on data set `name`; returns the medians."""
  batch_size = FLAGS.batch_size or DEFAULT_BATCH_SIZES[name]
  steps = FLAGS.steps or DEFAULT_STEPS[name]
  chunk = min(FLAGS.chunk, steps)
  model = FLAGS.model or DEFAULT_MODELS[name]
  print(
    f"\n{name}: {model}, batch {batch_size}, {steps} steps per "
    f"measurement, chunk {chunk}, {FLAGS.repeats} repeats",
    flush=True,
  )
  data = load(name, batch_size)
  loops = {
    "ours": our_loop(data, model, steps, chunk, jit_compile=False),
    "fit": fit_loop(data, model, steps),
  }
  if FLAGS.xla:
    loops["ours XLA"] = our_loop(data, model, steps, chunk, jit_compile=True)
  for measure in loops.values():  # Warm-up: tracing, XLA, pipelines.
    measure()
  runs = {key: [] for key in loops}
  for _ in range(FLAGS.repeats):
    for key, measure in loops.items():
      runs[key].append(measure())
  for key, results in runs.items():
    rates = " ".join(f"{r['steps_per_second']:7.1f}" for r in results)
    cpus = " ".join(f"{r['cpu_ms_per_step']:7.1f}" for r in results)
    print(f"  {key:9s} steps/s {rates} | CPU ms/step {cpus}", flush=True)
  median = {
    key: statistics.median(r["steps_per_second"] for r in results)
    for key, results in runs.items()
  }
  median["fit call"] = statistics.median(r["call"] for r in runs["fit"])
  cpu = {
    key: statistics.median(r["cpu_ms_per_step"] for r in results)
    for key, results in runs.items()
  }

  def paired(faster: str, than: str, measure: str) -> float:
    """Median over rounds of the throughput ratio `faster` / `than`."""
    pairs = zip(runs[faster], runs[than])
    if measure == "cpu_ms_per_step":  # Time per step: the inverse ratio.
      return statistics.median(b[measure] / a[measure] for a, b in pairs)
    return statistics.median(a[measure] / b[measure] for a, b in pairs)

  ratios = {}
  for measure in ("steps_per_second", "cpu_ms_per_step"):
    ratios[measure] = [paired("ours", "fit", measure)]
    if FLAGS.xla:
      ratios[measure].append(paired("ours XLA", "ours", measure))
  return {
    "data": name,
    "model": model,
    "batch": batch_size,
    "median": median,
    "cpu": cpu,
    "ratios": ratios,
  }


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  print(
    f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
    f"Python {sys.version.split()[0]}"
  )
  names = list(DEFAULT_MODELS) if FLAGS.data == "all" else [FLAGS.data]
  results = [benchmark(name) for name in names]

  columns = ["ours", "fit", "fit call"] + (["ours XLA"] if FLAGS.xla else [])
  ratios = ["ours/fit"] + (["XLA/ours"] if FLAGS.xla else [])
  header = f"{'data':18s} {'model':8s} {'batch':>5s}" + "".join(
    f" {c:>9s}" for c in columns + ratios
  )
  print(
    "\nMedian train steps per second (fit: its epoch; fit call: whole call;"
    " ratios: median of per-round ratios)"
  )
  print(f"{header}\n{'-' * len(header)}")
  for r in results:
    m = r["median"]
    values = [m[c] for c in columns]
    ratio = r["ratios"]["steps_per_second"]
    cells = "".join(f" {v:9.1f}" for v in values) + "".join(f" {v:9.2f}" for v in ratio)
    print(f"{r['data']:18s} {r['model']:8s} {r['batch']:5d}{cells}")

  columns = ["ours", "fit"] + (["ours XLA"] if FLAGS.xla else [])
  header = f"{'data':18s} {'model':8s} {'batch':>5s}" + "".join(
    f" {c:>9s}" for c in columns + ratios
  )
  print("\nMedian CPU ms per step (all threads; ratios: of steps per CPU second)")
  print(f"{header}\n{'-' * len(header)}")
  for r in results:
    cpu = r["cpu"]
    ratio = r["ratios"]["cpu_ms_per_step"]
    cells = "".join(f" {cpu[k]:9.1f}" for k in columns) + "".join(
      f" {v:9.2f}" for v in ratio
    )
    print(f"{r['data']:18s} {r['model']:8s} {r['batch']:5d}{cells}")


if __name__ == "__main__":
  app.run(main)
