"""Tests for `lr_controller.trainee.schedules`.

Expected values come from closed forms written here in NumPy/math (and, for
OneCycle, from a line-by-line Python copy of PyTorch's `OneCycleLR.get_lr` loop
plus literal numbers), never from the schedules under test.
"""

from __future__ import annotations

import json
import math

import gin
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from lr_controller.errors import UserError
from lr_controller.trainee import schedules
from lr_controller.trainee.schedules import make_schedule, schedule_values

# Float32 outputs; Keras computes cos() in float32, so allow a small absolute
# error next to zero.
RTOL = 1e-5
ATOL = 1e-8


def _budget_reference(shape, lr0, total, t, lo=0.0, warmup=0, start=0.0):
  """Warm-up to lr0 over `warmup` steps, then lo + (lr0 - lo) * shape(p)."""
  t = min(max(float(t), 0.0), float(total))
  if t < warmup:
    return start + (lr0 - start) * t / warmup
  p = (t - warmup) / (total - warmup)
  return lo + (lr0 - lo) * shape(p)


def _cosine_shape(p):
  return (1.0 + math.cos(math.pi * p)) / 2.0


def _linear_shape(p):
  return 1.0 - p


def _rex_shape(p):
  z = 1.0 - p
  return z / (0.5 + 0.5 * z)


def _uba_shape(phi):
  def shape(p):
    c = 1.0 + math.cos(math.pi * p)
    return 2.0 * c / (2.0 * phi + (2.0 - phi) * c)

  return shape


def _torch_one_cycle(
  max_lr,
  total_steps,
  steps,
  pct_start=0.3,
  anneal_strategy="cos",
  div_factor=25.0,
  final_div_factor=1e4,
  three_phase=False,
):
  """PyTorch's OneCycleLR.get_lr, for each step in `steps` (<= total - 1)."""
  initial_lr = max_lr / div_factor
  min_lr = initial_lr / final_div_factor
  if three_phase:
    phases = [
      (float(pct_start * total_steps) - 1, initial_lr, max_lr),
      (float(2 * pct_start * total_steps) - 2, max_lr, initial_lr),
      (total_steps - 1, initial_lr, min_lr),
    ]
  else:
    phases = [
      (float(pct_start * total_steps) - 1, initial_lr, max_lr),
      (total_steps - 1, max_lr, min_lr),
    ]

  def anneal(start, end, pct):
    if anneal_strategy == "cos":
      return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start

  out = []
  for step_num in steps:
    start_step = 0.0
    for i, (end_step, start_lr, end_lr) in enumerate(phases):
      if step_num <= end_step or i == len(phases) - 1:
        pct = (step_num - start_step) / (end_step - start_step)
        out.append(anneal(start_lr, end_lr, pct))
        break
      start_step = end_step
  return np.array(out)


def _values_at(schedule, steps):
  return np.array([float(schedule(tf.constant(s, tf.int64))) for s in steps])


class StepDecayTest(tf.test.TestCase):
  def test_values(self):
    sched = make_schedule(
      "step_decay", initial_learning_rate=0.1, discount_step=10, factor=0.9
    )
    steps = [0, 9, 10, 25, 99]
    expected = [0.1, 0.1, 0.09, 0.081, 0.1 * 0.9**9]
    self.assertAllClose(_values_at(sched, steps), expected, rtol=1e-6, atol=0)

  def test_every_boundary(self):
    sched = make_schedule(
      "step_decay", initial_learning_rate=0.1, discount_step=7, factor=0.99
    )
    steps = np.arange(2000)
    expected = 0.1 * 0.99 ** np.floor(steps / 7)
    self.assertAllClose(schedule_values(sched, 2000), expected, rtol=1e-5, atol=0)

  def test_default_discount_step_is_a_third_of_the_budget(self):
    sched = make_schedule("step_decay", initial_learning_rate=1.0, total_steps=100)
    # ceil(100 / 3) = 34: decays at 34 and 68, two decays within the budget.
    self.assertAllClose(
      _values_at(sched, [0, 33, 34, 67, 68, 99]),
      [1.0, 1.0, 0.1, 0.1, 0.01, 0.01],
      rtol=1e-6,
    )

  def test_is_keras_exponential_decay_with_staircase(self):
    sched = schedules.StepDecaySchedule(0.3, discount_step=5, factor=0.7)
    keras = tf.keras.optimizers.schedules.ExponentialDecay(0.3, 5, 0.7, staircase=True)
    self.assertAllClose(schedule_values(sched, 60), schedule_values(keras, 60))


class BudgetedScheduleTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.named_parameters(
    ("cosine", "cosine", _cosine_shape, {}),
    ("linear", "linear", _linear_shape, {}),
    ("rex", "rex", _rex_shape, {}),
    ("uba_phi_half", "uba", _uba_shape(0.5), {"phi": 0.5}),
    ("uba_phi_1", "uba", _uba_shape(1.0), {"phi": 1.0}),
    ("uba_phi_5", "uba", _uba_shape(5.0), {"phi": 5.0}),
  )
  def test_closed_form(self, name, shape, extra):
    total = 200
    for lo, warmup, start in [(0.0, 0, 0.0), (0.001, 20, 0.0), (0.002, 15, 0.01)]:
      sched = make_schedule(
        name,
        initial_learning_rate=0.1,
        total_steps=total,
        min_learning_rate=lo,
        warmup_steps=warmup,
        warmup_start_learning_rate=start,
        **extra,
      )
      steps = [0, 1, 7, 14, 15, 16, 19, 20, 21, 100, 150, 199, 200, 201, 500]
      expected = [
        _budget_reference(shape, 0.1, total, s, lo, warmup, start) for s in steps
      ]
      self.assertAllClose(_values_at(sched, steps), expected, rtol=RTOL, atol=ATOL)
      # Vectorised evaluation agrees with the closed form at every step.
      every = [
        _budget_reference(shape, 0.1, total, s, lo, warmup, start) for s in range(230)
      ]
      self.assertAllClose(schedule_values(sched, 230), every, rtol=RTOL, atol=ATOL)

  def test_linear_is_defazio_formula(self):
    sched = make_schedule("linear", initial_learning_rate=0.5, total_steps=80)
    steps = np.array([0, 1, 40, 79, 80, 81, 1000])
    expected = 0.5 * (1.0 - np.minimum(steps, 80) / 80)
    self.assertAllClose(_values_at(sched, steps), expected, rtol=RTOL, atol=ATOL)

  def test_rex_midpoint(self):
    sched = make_schedule("rex", initial_learning_rate=0.3, total_steps=100)
    # z = 1/2: (1/2) / (3/4) = 2/3.
    self.assertAllClose(float(sched(50)), 0.2, rtol=1e-6)

  def test_uba_phi_2_is_cosine(self):
    for warmup, lo in [(0, 0.0), (25, 0.003)]:
      kwargs = dict(
        initial_learning_rate=0.05,
        total_steps=300,
        min_learning_rate=lo,
        warmup_steps=warmup,
      )
      uba = schedule_values(make_schedule("uba", phi=2.0, **kwargs), 320)
      cosine = schedule_values(make_schedule("cosine", **kwargs), 320)
      self.assertAllClose(uba, cosine, rtol=RTOL, atol=ATOL)

  def test_uba_phi_orders_the_curves(self):
    def mid(phi):
      sched = make_schedule("uba", initial_learning_rate=1.0, total_steps=100, phi=phi)
      return float(sched(50))

    # At p = 1/2, c = 1 and the fraction is 2 / (phi + 2).
    self.assertAllClose([mid(0.5), mid(2.0), mid(6.0)], [0.8, 0.5, 0.25], rtol=1e-6)

  def test_cosine_matches_keras_cosine_decay_with_warmup(self):
    ours = make_schedule(
      "cosine", initial_learning_rate=0.1, total_steps=100, warmup_steps=10
    )
    keras = tf.keras.optimizers.schedules.CosineDecay(
      0.0, decay_steps=90, warmup_target=0.1, warmup_steps=10
    )
    # The Keras schedule needs tf.cond, so schedule_values goes step by step.
    self.assertAllClose(
      schedule_values(ours, 120), schedule_values(keras, 120), rtol=RTOL, atol=ATOL
    )

  def test_cosine_and_linear_match_keras_with_a_floor(self):
    for name, keras in (
      ("cosine", tf.keras.optimizers.schedules.CosineDecay(0.1, 100, alpha=0.01)),
      (
        "linear",
        tf.keras.optimizers.schedules.PolynomialDecay(0.1, 100, end_learning_rate=1e-3),
      ),
    ):
      ours = make_schedule(
        name, initial_learning_rate=0.1, total_steps=100, min_learning_rate=1e-3
      )
      self.assertAllClose(
        schedule_values(ours, 120), schedule_values(keras, 120), rtol=RTOL, atol=ATOL
      )


class OneCycleTest(tf.test.TestCase, parameterized.TestCase):
  def test_literal_values(self):
    # max_lr = 0.1, T = 100: initial_lr = 0.004, min_lr = 4e-7, the first
    # phase ends at step 0.3 * 100 - 1 = 29 and the second at 99.
    sched = make_schedule("one_cycle", initial_learning_rate=0.1, total_steps=100)
    steps = [0, 10, 29, 30, 64, 98, 99, 100, 150]
    expected = [
      0.004,
      0.029516394846410082,  # 0.1 + (0.004 - 0.1) / 2 * (1 + cos(pi * 10 / 29))
      0.1,
      0.09994965352845243,
      0.0500002,  # pct = 35 / 70 = 1/2: midway between max_lr and min_lr.
      5.07464715475788e-05,
      4e-7,
      4e-7,  # Clamped at T - 1.
      4e-7,
    ]
    self.assertAllClose(_values_at(sched, steps), expected, rtol=RTOL, atol=1e-10)

  @parameterized.named_parameters(
    ("default", 100, {}),
    ("fractional_boundary", 95, {"pct_start": 0.25}),
    ("linear", 64, {"anneal_strategy": "linear", "pct_start": 0.4}),
    ("factors", 50, {"div_factor": 10.0, "final_div_factor": 100.0}),
    ("three_phase", 100, {"three_phase": True}),
    ("three_phase_fractional", 77, {"three_phase": True, "pct_start": 0.33}),
    ("three_phase_linear", 40, {"three_phase": True, "anneal_strategy": "linear"}),
  )
  def test_matches_pytorch_loop(self, total, kwargs):
    sched = make_schedule(
      "one_cycle", initial_learning_rate=0.2, total_steps=total, **kwargs
    )
    expected = _torch_one_cycle(0.2, total, range(total), **kwargs)
    self.assertAllClose(schedule_values(sched, total), expected, rtol=RTOL, atol=1e-10)
    # After the budget the rate stays at PyTorch's last training value.
    self.assertAllClose(
      _values_at(sched, [total, total + 7]), [expected[-1]] * 2, rtol=RTOL
    )

  def test_three_phase_literal_values(self):
    # T = 100, pct_start = 0.3: phases end at 29, 58 and 99.
    sched = make_schedule(
      "one_cycle", initial_learning_rate=0.1, total_steps=100, three_phase=True
    )
    self.assertAllClose(
      _values_at(sched, [0, 29, 58, 99]), [0.004, 0.1, 0.004, 4e-7], rtol=RTOL
    )


class OtherSchedulesTest(tf.test.TestCase):
  def test_exponential(self):
    sched = make_schedule(
      "exponential",
      initial_learning_rate=0.2,
      total_steps=100,
      decay_steps=30,
      decay_rate=0.5,
    )
    steps = np.array([0, 1, 15, 29, 30, 31, 100, 250])
    self.assertAllClose(
      _values_at(sched, steps), 0.2 * 0.5 ** (steps / 30), rtol=RTOL, atol=0
    )

  def test_exponential_default_reaches_rate_times_lr0_at_budget(self):
    sched = make_schedule("exponential", initial_learning_rate=0.2, total_steps=100)
    self.assertAllClose(float(sched(100)), 0.02, rtol=1e-6)

  def test_inverse_sqrt(self):
    sched = make_schedule(
      "inverse_sqrt", initial_learning_rate=0.1, total_steps=1000, warmup_steps=16
    )
    steps = [0, 1, 15, 16, 17, 64, 400, 999, 5000]
    expected = [0.1 * math.sqrt(16) / math.sqrt(max(s, 16)) for s in steps]
    self.assertAllClose(_values_at(sched, steps), expected, rtol=RTOL, atol=0)

  def test_inverse_sqrt_linear_warmup(self):
    sched = make_schedule(
      "inverse_sqrt",
      initial_learning_rate=0.1,
      total_steps=1000,
      warmup_steps=16,
      linear_warmup=True,
      warmup_start_learning_rate=0.02,
    )
    steps = [0, 4, 8, 15, 16, 64, 400]
    expected = [0.02, 0.04, 0.06, 0.02 + 0.08 * 15 / 16, 0.1, 0.05, 0.02]
    self.assertAllClose(_values_at(sched, steps), expected, rtol=RTOL, atol=0)

  def test_constant(self):
    sched = make_schedule("constant", initial_learning_rate=0.03)
    self.assertAllClose(schedule_values(sched, 5), [0.03] * 5, rtol=1e-7)
    self.assertAllClose(float(sched(10**9)), 0.03, rtol=1e-7)


def _instances():
  """One instance of every schedule, with non-default arguments."""
  return [
    ("step_decay", {"discount_step": 10, "factor": 0.9}),
    (
      "cosine",
      {
        "min_learning_rate": 1e-4,
        "warmup_steps": 5,
        "warmup_start_learning_rate": 1e-3,
      },
    ),
    ("linear", {"min_learning_rate": 1e-4, "warmup_steps": 5}),
    ("rex", {"warmup_steps": 3}),
    ("uba", {"phi": 0.7, "warmup_steps": 4, "min_learning_rate": 1e-5}),
    ("one_cycle", {"pct_start": 0.25, "three_phase": True, "div_factor": 10.0}),
    ("exponential", {"decay_steps": 20, "decay_rate": 0.3}),
    ("inverse_sqrt", {"warmup_steps": 8, "linear_warmup": True}),
    ("constant", {}),
  ]


class CommonBehaviourTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.named_parameters(*[(n, n, kw) for n, kw in _instances()])
  def test_config_round_trip(self, name, kwargs):
    sched = make_schedule(name, initial_learning_rate=0.1, total_steps=60, **kwargs)
    config = sched.get_config()
    json.dumps(config)  # Plain Python values only.
    rebuilt = type(sched).from_config(config)
    self.assertEqual(rebuilt.get_config(), config)
    self.assertAllEqual(schedule_values(rebuilt, 80), schedule_values(sched, 80))
    # Keras (de)serialization finds the class through its registered name.
    keras_rebuilt = tf.keras.optimizers.schedules.deserialize(
      tf.keras.optimizers.schedules.serialize(sched)
    )
    self.assertIsInstance(keras_rebuilt, type(sched))
    self.assertAllEqual(schedule_values(keras_rebuilt, 80), schedule_values(sched, 80))

  @parameterized.named_parameters(*[(n, n, kw) for n, kw in _instances()])
  def test_float32_in_tf_function_and_optimizer(self, name, kwargs):
    sched = make_schedule(name, initial_learning_rate=0.1, total_steps=60, **kwargs)
    step = tf.Variable(7, dtype=tf.int64)
    in_graph = tf.function(lambda: sched(step))()
    self.assertEqual(in_graph.dtype, tf.float32)
    self.assertEqual(sched(3.0).dtype, tf.float32)
    self.assertAllClose(in_graph, schedule_values(sched, 8)[7], rtol=1e-7)
    # One SGD step with the schedule: w <- w - lr(0) * grad.
    var = tf.Variable(1.0)
    optimizer = tf.keras.optimizers.SGD(learning_rate=sched)
    optimizer.apply_gradients([(tf.constant(2.0), var)])
    self.assertAllClose(var, 1.0 - 2.0 * schedule_values(sched, 1)[0], rtol=1e-6)

  def test_negative_steps_count_as_zero(self):
    for name, kwargs in _instances():
      sched = make_schedule(name, initial_learning_rate=0.1, total_steps=60, **kwargs)
      self.assertAllClose(sched(-5), sched(0), rtol=1e-7, msg=name)

  def test_schedule_values_shape_and_dtype(self):
    values = schedule_values(make_schedule("cosine", total_steps=10), 12)
    self.assertEqual(values.dtype, np.float64)
    self.assertEqual(values.shape, (12,))
    self.assertEqual(schedule_values(make_schedule("constant"), 0).shape, (0,))

  def test_registry_names(self):
    self.assertCountEqual(
      schedules.SCHEDULES,
      [
        "step_decay",
        "cosine",
        "linear",
        "rex",
        "uba",
        "one_cycle",
        "exponential",
        "inverse_sqrt",
        "constant",
      ],
    )

  def test_gin_bindings(self):
    try:
      gin.parse_config(
        [
          "make_schedule.name = 'uba'",
          "make_schedule.initial_learning_rate = 0.2",
          "make_schedule.total_steps = 100",
          "make_schedule.phi = 2.0",
        ]
      )
      sched = make_schedule()
    finally:
      gin.clear_config()
    self.assertIsInstance(sched, schedules.UbaSchedule)
    self.assertEqual(sched.phi, 2.0)
    self.assertAllClose(float(sched(50)), 0.1, rtol=1e-6)


class UserErrorTest(tf.test.TestCase, parameterized.TestCase):
  @parameterized.named_parameters(
    ("unknown_name", dict(name="nope"), r"unknown schedule 'nope'; known .*step_decay"),
    ("lr_zero", dict(initial_learning_rate=0.0), r"initial_learning_rate .* got 0.0"),
    ("lr_negative", dict(initial_learning_rate=-1.0), r"got -1.0"),
    ("lr_nan", dict(initial_learning_rate=float("nan")), r"got nan"),
    ("lr_inf", dict(initial_learning_rate=float("inf")), r"got inf"),
    ("lr_string", dict(initial_learning_rate="0.1"), r"got '0.1'"),
    (
      "discount_step_zero",
      dict(discount_step=0),
      r"^discount_step must be a positive number of steps, got 0$",
    ),
    ("factor_zero", dict(factor=0.0), r"factor must be positive, got 0.0"),
    ("factor_negative", dict(factor=-0.5), r"factor must be positive, got -0.5"),
    ("total_steps_zero", dict(total_steps=0), r"total_steps must be .*, got 0$"),
    ("total_steps_negative", dict(total_steps=-3), r"total_steps .* got -3"),
    ("total_steps_fraction", dict(total_steps=10.5), r"total_steps .* got 10.5"),
    (
      "unknown_keyword",
      dict(name="cosine", phi=1.0),
      r"unknown keyword phi for schedule 'cosine'; accepted: min_learning_rate",
    ),
    ("constant_keyword", dict(name="constant", factor=0.5), r"accepted: none"),
    ("pct_start_zero", dict(name="one_cycle", pct_start=0.0), r"pct_start .* got 0.0"),
    ("pct_start_one", dict(name="one_cycle", pct_start=1.0), r"pct_start .* got 1.0"),
    (
      "pct_start_too_small",
      dict(name="one_cycle", total_steps=100, pct_start=0.005),
      r"pct_start=0.005 gives an empty OneCycle phase",
    ),
    (
      "three_phase_too_long",
      dict(name="one_cycle", total_steps=100, pct_start=0.6, three_phase=True),
      r"pct_start=0.6 gives an empty OneCycle phase .*three_phase",
    ),
    ("anneal", dict(name="one_cycle", anneal_strategy="exp"), r"got 'exp'"),
    ("div_factor", dict(name="one_cycle", div_factor=0), r"div_factor .* got 0"),
    ("final_div", dict(name="one_cycle", final_div_factor=-1), r"final_div_factor"),
    ("phi_zero", dict(name="uba", phi=0.0), r"phi must be positive, got 0.0"),
    ("phi_negative", dict(name="uba", phi=-2.0), r"phi must be positive, got -2.0"),
    (
      "warmup_too_long",
      dict(name="cosine", total_steps=100, warmup_steps=100),
      r"warmup_steps must be less than total_steps=100, got 100",
    ),
    ("warmup_negative", dict(name="linear", warmup_steps=-1), r"warmup_steps .* -1"),
    (
      "min_above_peak",
      dict(name="rex", initial_learning_rate=0.1, min_learning_rate=0.2),
      r"min_learning_rate must not exceed initial_learning_rate=0.1, got 0.2",
    ),
    ("min_negative", dict(name="cosine", min_learning_rate=-0.1), r"got -0.1"),
    ("decay_steps", dict(name="exponential", decay_steps=0), r"decay_steps .* got 0"),
    ("decay_rate", dict(name="exponential", decay_rate=0.0), r"decay_rate .* 0.0"),
    ("rsqrt_warmup", dict(name="inverse_sqrt", warmup_steps=0), r"warmup_steps .* 0"),
  )
  def test_make_schedule_errors(self, kwargs, pattern):
    with self.assertRaises(UserError) as caught:
      make_schedule(**kwargs)
    # gin appends "\n  In call to configurable 'make_schedule' ..." to errors
    # raised inside a configurable; our own message is the first line.
    self.assertRegex(str(caught.exception).split("\n")[0], pattern)

  def test_schedule_values_negative_steps(self):
    with self.assertRaisesRegex(UserError, r"num_steps .* got -1"):
      schedule_values(make_schedule("constant"), -1)

  def test_classes_check_their_arguments(self):
    with self.assertRaisesRegex(UserError, r"discount_step .* got -10"):
      schedules.StepDecaySchedule(0.1, discount_step=-10, factor=0.5)
    with self.assertRaisesRegex(UserError, r"phi must be positive"):
      schedules.UbaSchedule(0.1, total_steps=10, phi=0)


if __name__ == "__main__":
  tf.test.main()
