"""AutoLRS as a peer of the learned controller.

Jin et al., ICLR 2021, "AutoLRS: Automatic Learning-Rate Schedule by Bayesian
Optimization on the Fly" (arXiv:2105.10762), Sec. 3-4, and the authors'
released server (github.com/YuchenJin/autolrs). Training runs in stages; a
stage of tau steps uses one constant rate, found on the fly:

1. Snapshot the run (weights, optimizer state, step; `take_snapshot`).
2. Bayesian optimisation over u = the normalised log rate in the search box:
   k candidates, each trained for tau' steps from the snapshot (restored
   before each) and scored by a forecast of the validation loss after tau
   steps: the exponential model L(s) = a exp(-b s) + c (b >= 0, c >= 0,
   losses being non-negative) least-squares fitted to the trial's loss curve
   by `scipy.optimize.curve_fit` and read at s = tau (`fit_exponential`,
   `forecast_loss`); as in the authors' server, a trial whose validation
   loss reaches the stage's starting loss again scores its last loss instead
   (an exponential fitted across a jump forecasts nonsense). Candidate 1 is the incumbent (the previous stage's
   rate; `initial_learning_rate` in stage 1); candidate i > 1 minimises the
   lower confidence bound mu(u) - kappa sigma(u) of scikit-learn's
   `GaussianProcessRegressor` (Matern 5/2 plus white noise, fitted to the
   scores so far) over a grid of u, skipping rates already tried.
3. Restore the snapshot and train tau steps at the best-scored rate (the
   run's real training: validated every `eval_interval` steps).
4. Double tau (and tau', keeping tau'/tau) for the next stage, up to tau_max.

Scaled to short runs. The authors' defaults (README and server) are
tau_0 = 1000, tau' = tau / 10, k = 10 and tau_max = 8000 (three doublings),
for runs of 10^4-10^5 steps; a paper-length run here has 200-1000 steps.
Defaults: tau_0 = num_steps / 8 (rounded down to a multiple of
`eval_interval`, at least one interval), three doublings (tau_max = 8 tau_0),
tau' = tau / 4 and k = 4, so, as for the authors, a stage's search costs
about as many steps (k tau') as its training (tau), and a trial has a few
points to fit. Digits default (200 steps, evaluation every 10): stages of
20, 40, 80 and 60 steps (the last one cut at the end of the run), trials of
5, 10, 20 and 15 steps, 200 trial steps in all. Stage boundaries fall on
evaluation steps, so the history has the rows of every other peer.

Departures from the paper, all ours: the search box is [1e-2, 10] times
`initial_learning_rate` (the authors' server takes its ends from the user),
so the evaluation's search over initial rates also places the box;
candidate 1 is the incumbent, not a random point (runs are deterministic);
the loss curve is the validation loss
measured during the trial by default ("training" uses the chunks' mean
training losses, as the authors' code does before tau reaches tau_max) and is
not spline-smoothed first; a trial that diverges (by the protocol's rule,
which stops it as it would stop the real training), or a forecast above twice
the stage's starting validation loss, scores that cap (the authors' code
feeds 1e6, which would swamp the GP). The acquisition is the authors'
server's: LCB with kappa = 1e6, nearly pure exploration (each candidate goes
where the GP is least certain; the stage takes the best forecast seen). On
the noisy quadratic (200 steps, initial rate 0.3, seeds 0-9) that gave a
mean best validation loss of 0.021 against 0.026 with kappa = 1 (and 0.029
for the best constant rate, `toy_problems`); kappa = 1
finds better rates for a single stage from a poor incumbent, but the
exponential forecast over-rates small rates (a nearly straight trial curve
is extrapolated far), and exploitation follows it.

Trials count toward the method's cost: `run_autolrs` returns the
`trainee.run_training` dict of the real training (its `history`,
`steps_done`, best checkpoint and test describe that run only; `seconds`
covers trials too) plus `trial_steps` (all trial steps taken) and `stages`.
The real training follows the protocol of every method (`trainee.protocol`):
it validates its initial weights, stops when the one divergence rule says so,
and its best checkpoint is tested once.
Trials never touch the best-validation checkpoint (they use `evaluate`, not
`validate`), and each one starts from the restored snapshot. A `Trainee`'s
input stream is not part of the snapshot (it is private to the trainee):
trials consume batches and the stage trains on the batches after them, as in
the authors' callback, which saves only model and optimizer state. A
`NoisyQuadraticTrainee`'s noise generator is part of it: every candidate, and
the stage, see the same noise.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Sequence

import gin
import numpy as np
import scipy.optimize
import sklearn.exceptions
import threadpoolctl
from sklearn import gaussian_process
from sklearn.gaussian_process import kernels

from lr_controller import checks, io_utils
from lr_controller.errors import UserError
from lr_controller.trainee import protocol, toy_problems
from lr_controller.trainee import trainee as trainee_lib

# k, the candidate rates per stage (authors: 10).
DEFAULT_NUM_CANDIDATES = 4
# tau_0 as a fraction of the run (authors: 1000 steps of runs 10-100x longer).
DEFAULT_FIRST_STAGE_FRACTION = 1 / 8
# tau_max = 2**doublings tau_0 (authors: 1000 -> 8000).
DEFAULT_STAGE_DOUBLINGS = 3
# tau' / tau (authors: 1 / 10).
DEFAULT_TRIAL_FRACTION = 1 / 4
# LCB's kappa, as in the authors' server (see the module docstring).
DEFAULT_KAPPA = 1e6
# The search box, relative to `initial_learning_rate`.
DEFAULT_MIN_RATE_RATIO = 1e-2
DEFAULT_MAX_RATE_RATIO = 10.0
# Points of a trial's loss curve (the authors' server: 16 validations per trial).
MAX_TRIAL_POINTS = 16
# Grid of u in [0, 1] on which the acquisition is minimised.
ACQUISITION_GRID = 257
# A diverged trial (and any forecast) scores at most this times the stage's
# starting validation loss.
SCORE_CAP_FACTOR = 2.0
LOSS_SERIES = ("validation", "training")
# Keys `run_autolrs` adds to the `run_training` dict.
EXTRA_KEYS = ("trial_steps", "stages")


# ---------------------------------------------------------------------------
# Snapshots of a run.


@dataclasses.dataclass(frozen=True)
class Snapshot:
  """A copy of a training run's state that `restore_snapshot` puts back.

  Attributes:
    step: the run's global step.
    learning_rate: the rate of the next step.
    diverged: the run's divergence flag.
    weights: the model's weights (`Trainee`) or (theta,) (noisy quadratic).
    optimizer_variables: values of `optimizer.variables` (slots, iteration
      count; empty for the noisy quadratic).
    noise_state: the noisy quadratic's noise generator state (else None).
  """

  step: int
  learning_rate: float
  diverged: bool
  weights: tuple[np.ndarray, ...]
  optimizer_variables: tuple[np.ndarray, ...] = ()
  noise_state: dict | None = None


def take_snapshot(trainee: trainee_lib.TraineeRun) -> Snapshot:
  """Copies the state of a `trainee.Trainee` or `toy_problems.NoisyQuadraticTrainee`.

  A `Trainee`'s snapshot holds its model weights, optimizer variables, step
  and rate (not its input stream). A noisy quadratic's holds theta, step,
  rate and noise generator state.

  Raises:
    UserError: for another kind of trainee.
  """
  if isinstance(trainee, toy_problems.NoisyQuadraticTrainee):
    return Snapshot(
      step=trainee.global_step,
      learning_rate=trainee.learning_rate,
      diverged=trainee.diverged,
      weights=(np.array(trainee.theta, copy=True),),
      noise_state=trainee.noise_state,
    )
  if isinstance(trainee, trainee_lib.Trainee):
    return Snapshot(
      step=trainee.global_step,
      learning_rate=trainee.learning_rate,
      diverged=trainee.diverged,
      weights=tuple(trainee.model.get_weights()),
      optimizer_variables=tuple(v.numpy() for v in trainee.optimizer.variables),
    )
  raise UserError(
    "AutoLRS snapshots a Trainee or a NoisyQuadraticTrainee, got "
    f"{type(trainee).__name__}"
  )


def restore_snapshot(trainee: trainee_lib.TraineeRun, snapshot: Snapshot) -> None:
  """Puts `snapshot` (of this trainee) back; the best checkpoint is left alone."""
  if isinstance(trainee, toy_problems.NoisyQuadraticTrainee):
    trainee.theta = np.array(snapshot.weights[0], copy=True)
    trainee.set_global_step(snapshot.step)
    trainee.noise_state = snapshot.noise_state
  elif isinstance(trainee, trainee_lib.Trainee):
    trainee.model.set_weights(list(snapshot.weights))
    for variable, value in zip(
      trainee.optimizer.variables, snapshot.optimizer_variables
    ):
      variable.assign(value)
    trainee.step.assign(snapshot.step)
  else:
    raise UserError(f"cannot restore a {type(trainee).__name__}")
  trainee.set_learning_rate(snapshot.learning_rate)
  trainee.diverged = snapshot.diverged


# ---------------------------------------------------------------------------
# The exponential forecasting model.


def _one_thread() -> threadpoolctl.threadpool_limits:
  """Limits BLAS/OpenMP to one thread: on these tiny problems threads only
  contend (a GP fit ran 7-10x slower with 2 threads on 2 busy cores)."""
  return threadpoolctl.threadpool_limits(limits=1)


def _exponential(s: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
  return a * np.exp(-b * s) + c


def _exponential_jacobian(s: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
  """d(a exp(-b s) + c) / d(a, b, c), float64 [n, 3]."""
  del c
  decay = np.exp(-b * s)
  return np.stack([decay, -a * s * decay, np.ones_like(s)], axis=1)


def fit_exponential(
  steps: Sequence[float], losses: Sequence[float]
) -> tuple[float, float, float] | None:
  """Least-squares fit of L(s) = a exp(-b s) + c to a loss curve.

  `scipy.optimize.curve_fit` (trust-region reflective, analytic Jacobian) on
  steps scaled to [0, 1] (by s_max, the last step) and losses scaled by their
  largest magnitude m, with b in [0, 50 / s_max], c in [0, 100 m] and a in
  [-100 m, 100 m] (bounds that keep a nearly straight curve from running off
  to infinite a and c), started from b s_max in {1, 10}; the better fit
  (least squared error) is kept.

  Args:
    steps: float [n] trial steps of the points (at least 3 distinct, >= 0).
    losses: float [n] losses there (nats, finite).

  Returns:
    (a in nats, b per step, c in nats), or None if the curve has fewer than 3
    distinct steps or no start converges.
  """
  s = np.asarray(steps, dtype=np.float64)
  y = np.asarray(losses, dtype=np.float64)
  if s.shape != y.shape or s.ndim != 1 or np.unique(s).size < 3:
    return None
  if not np.all(np.isfinite(y)) or not np.all(np.isfinite(s)):
    return None
  s_max = float(s.max())
  scale = float(np.max(np.abs(y))) or 1.0
  u, v = s / s_max, y / scale
  c0 = min(max(float(v.min()) * 0.9, 0.0), 99.0)
  best, best_error = None, math.inf
  for b0 in (1.0, 10.0):
    a0 = min(max(float(v[np.argmin(u)]) - c0, -99.0), 99.0) or 1e-3
    with _one_thread(), warnings.catch_warnings():
      warnings.simplefilter("ignore", scipy.optimize.OptimizeWarning)
      try:
        params, _ = scipy.optimize.curve_fit(
          _exponential,
          u,
          v,
          p0=(a0, b0, c0),
          bounds=([-100.0, 0.0, 0.0], [100.0, 50.0, 100.0]),
          method="trf",
          jac=_exponential_jacobian,
          maxfev=1000,
        )
      except (RuntimeError, ValueError):
        continue
    error = float(np.sum((_exponential(u, *params) - v) ** 2))
    if np.all(np.isfinite(params)) and error < best_error:
      best, best_error = params, error
  if best is None:
    return None
  a, b, c = best
  return float(a * scale), float(b / s_max), float(c * scale)


def forecast_loss(
  steps: Sequence[float], losses: Sequence[float], horizon: float
) -> float:
  """The fitted exponential's loss at step `horizon` (nats).

  Falls back to the last loss when `fit_exponential` returns None.
  """
  fit = fit_exponential(steps, losses)
  if fit is None:
    return float(np.asarray(losses, dtype=np.float64)[-1])
  return float(_exponential(np.float64(horizon), *fit))


# ---------------------------------------------------------------------------
# Stages.


def stage_plan(
  num_steps: int,
  eval_interval: int,
  first_stage_steps: int | None = None,
  max_stage_steps: int | None = None,
  first_trial_steps: int | None = None,
) -> list[tuple[int, int]]:
  """The stages' lengths tau and trial lengths tau', in steps.

  Planned lengths double from tau_0 = `first_stage_steps` up to
  `max_stage_steps`; the last stage is cut at `num_steps`. tau' keeps the
  ratio tau'_0 / tau_0 (rounded, at least 1, at most the stage's length).

  Args:
    num_steps: the run's training steps (>= 1).
    eval_interval: steps between validations (>= 1).
    first_stage_steps: tau_0, a multiple of `eval_interval`; None: num_steps /
      8 rounded down to a multiple of `eval_interval`, at least one interval.
    max_stage_steps: tau_max (a multiple of `eval_interval`, >= tau_0); None:
      8 tau_0.
    first_trial_steps: tau'_0 in [1, tau_0]; None: ceil(tau_0 / 4).

  Returns:
    One (tau, tau') per stage; the taus sum to `num_steps`.

  Raises:
    UserError: for a bad setting (e.g. tau <= 0 or tau' > tau).
  """
  num_steps = checks.integer("num_steps", num_steps)
  eval_interval = checks.integer("eval_interval", eval_interval)
  if first_stage_steps is None:
    fraction = int(num_steps * DEFAULT_FIRST_STAGE_FRACTION) // eval_interval
    first_stage_steps = max(1, fraction) * eval_interval
  tau = checks.integer("first_stage_steps (tau)", first_stage_steps)
  if tau % eval_interval:
    raise UserError(
      f"first_stage_steps (tau) must be a multiple of eval_interval "
      f"{eval_interval}, got {tau}"
    )
  if max_stage_steps is None:
    max_stage_steps = tau * 2**DEFAULT_STAGE_DOUBLINGS
  tau_max = checks.integer("max_stage_steps", max_stage_steps, minimum=tau)
  if tau_max % eval_interval:
    raise UserError(
      f"max_stage_steps must be a multiple of eval_interval {eval_interval}, "
      f"got {tau_max}"
    )
  if first_trial_steps is None:
    first_trial_steps = math.ceil(tau * DEFAULT_TRIAL_FRACTION)
  trial = checks.integer("first_trial_steps (tau')", first_trial_steps)
  if trial > tau:
    raise UserError(
      f"first_trial_steps (tau') must not exceed first_stage_steps (tau): "
      f"{trial} > {tau}"
    )
  ratio = trial / tau
  plan, done = [], 0
  while done < num_steps:
    length = min(tau, num_steps - done)
    plan.append((length, min(length, max(1, round(length * ratio)))))
    done += length
    tau = min(2 * tau, tau_max)
  return plan


@dataclasses.dataclass(frozen=True)
class Trial:
  """One candidate rate of a stage's search.

  Attributes:
    learning_rate: the candidate.
    score: the forecast validation loss after the stage, or the trial's last
      loss after a jump (nats; capped).
    diverged: whether the trial diverged.
    steps: trial steps taken.
  """

  learning_rate: float
  score: float
  diverged: bool
  steps: int


def _trial_curve(
  trainee: trainee_lib.TraineeRun,
  trial_steps: int,
  loss_series: str,
  start_loss: float,
) -> tuple[list[float], list[float], bool, int]:
  """Trains `trial_steps` steps, returning (steps, losses, diverged, steps taken).

  The steps are split into min(trial_steps, MAX_TRIAL_POINTS) near-equal
  chunks. "validation": the validation loss after each chunk, plus
  `start_loss` at step 0. "training": each chunk's mean training loss at the
  chunk's mean step (the loss of step s is taken before its update, at the
  weights after s steps).

  A trial diverges, and stops, by the protocol's rule (`trainee.rule`), as
  the real training at its rate would: on a chunk's training loss (`train`
  applies it) or on a validation loss, whose reference is the run's first
  validation loss (in stage 1, before the run has validated, `start_loss`:
  the same initial weights).
  """
  num_chunks = min(trial_steps, MAX_TRIAL_POINTS)
  sizes = [len(chunk) for chunk in np.array_split(np.arange(trial_steps), num_chunks)]
  steps, losses = ([0.0], [start_loss]) if loss_series == "validation" else ([], [])
  first = trainee.first_val_loss
  reference = start_loss if first is None else first
  done = 0
  for size in sizes:
    train_loss = trainee.train(int(size))
    if trainee.diverged:
      return steps, losses, True, done + int(size)
    if loss_series == "validation":
      loss = trainee.evaluate("validation").loss
      steps.append(float(done + size))
      diverged = trainee.rule.val_loss_diverged(loss, reference)
    else:
      loss = train_loss
      steps.append(done + (size - 1) / 2)
      diverged = False  # `train` applied the rule to this loss.
    done += int(size)
    if diverged:
      return steps, losses, True, done
    losses.append(loss)
  return steps, losses, False, done


def _next_candidate(
  tried: Sequence[float], scores: Sequence[float], kappa: float, seed: int
) -> float:
  """argmin over the grid of mu(u) - kappa sigma(u), skipping tried points."""
  kernel = kernels.ConstantKernel(1.0, (1e-3, 1e3)) * kernels.Matern(
    length_scale=0.2, length_scale_bounds=(0.05, 2.0), nu=2.5
  ) + kernels.WhiteKernel(1e-3, (1e-6, 1e-1))
  gp = gaussian_process.GaussianProcessRegressor(
    kernel, normalize_y=True, n_restarts_optimizer=2, random_state=seed
  )
  grid = np.linspace(0.0, 1.0, ACQUISITION_GRID)
  with _one_thread(), warnings.catch_warnings():
    warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
    gp.fit(np.asarray(tried)[:, None], np.asarray(scores))
    mean, std = gp.predict(grid[:, None], return_std=True)
  acquisition = mean - kappa * std
  spacing = 1.0 / (ACQUISITION_GRID - 1)
  near = np.min(np.abs(grid[:, None] - np.asarray(tried)[None, :]), axis=1)
  acquisition[near < spacing / 2] = np.inf
  return float(grid[np.argmin(acquisition)])


def search_stage(
  trainee: trainee_lib.TraineeRun,
  incumbent: float,
  rate_range: tuple[float, float],
  stage_steps: int,
  trial_steps: int,
  num_candidates: int = DEFAULT_NUM_CANDIDATES,
  kappa: float = DEFAULT_KAPPA,
  loss_series: str = "validation",
  seed: int = 0,
) -> tuple[float, list[Trial]]:
  """Steps 1-2 of a stage: picks its rate by BO over forecast losses.

  The trainee is left as it was on entry (restored from a snapshot).

  Args:
    trainee: the run (a `Trainee` or `NoisyQuadraticTrainee`, not diverged).
    incumbent: the first candidate (clipped into `rate_range`).
    rate_range: (lowest, highest) rate of the log-uniform search box.
    stage_steps: tau, the horizon of the forecasts.
    trial_steps: tau', steps of each trial (<= tau).
    num_candidates: k (>= 1).
    kappa: LCB's exploration weight (>= 0).
    loss_series: "validation" or "training" (see `_trial_curve`).
    seed: seeds the GP's hyperparameter restarts (an integer >= 0).

  Returns:
    The chosen rate (the best score; ties go to the earlier candidate) and
    the trials in the order run.
  """
  low, high = (math.log(checks.positive("learning rate bound", r)) for r in rate_range)
  if not low < high:
    raise UserError(f"the rate range must be increasing, got {rate_range!r}")
  stage_steps = checks.integer("stage_steps (tau)", stage_steps)
  trial_steps = checks.integer("trial_steps (tau')", trial_steps)
  if trial_steps > stage_steps:
    raise UserError(
      f"trial_steps (tau') must not exceed stage_steps (tau): {trial_steps} > {stage_steps}"
    )
  num_candidates = checks.integer("num_candidates (k)", num_candidates)
  kappa = checks.non_negative("kappa", kappa)
  if loss_series not in LOSS_SERIES:
    raise UserError(f"loss_series must be one of {LOSS_SERIES}, got {loss_series!r}")
  incumbent = trainee_lib.check_learning_rate(incumbent)
  start = take_snapshot(trainee)
  start_loss = trainee.evaluate("validation").loss
  cap = SCORE_CAP_FACTOR * start_loss if math.isfinite(start_loss) else 1e6
  tried: list[float] = []
  trials: list[Trial] = []
  for i in range(num_candidates):
    if i == 0:
      rate = min(max(incumbent, rate_range[0]), rate_range[1])
      u = (math.log(rate) - low) / (high - low)
    else:
      gp_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
      u = _next_candidate(tried, [t.score for t in trials], kappa, gp_seed)
      rate = math.exp(low + u * (high - low))
    restore_snapshot(trainee, start)
    trainee.set_learning_rate(rate)
    steps, losses, diverged, taken = _trial_curve(
      trainee, trial_steps, loss_series, start_loss
    )
    if diverged:
      score = cap
    elif loss_series == "validation" and max(losses[1:]) >= start_loss:
      score = min(losses[-1], cap)  # The authors' guard against loss jumps.
    else:
      forecast = forecast_loss(steps, losses, stage_steps)
      score = min(forecast, cap) if math.isfinite(forecast) else cap
    tried.append(u)
    trials.append(Trial(rate, float(score), diverged, taken))
  restore_snapshot(trainee, start)
  best = min(range(len(trials)), key=lambda j: trials[j].score)
  return trials[best].learning_rate, trials


# ---------------------------------------------------------------------------
# The peer.


@gin.configurable(denylist=trainee_lib.RUN_ARGUMENTS)
def run_autolrs(
  trainee: trainee_lib.TraineeRun,
  initial_learning_rate: float,
  num_steps: int,
  eval_interval: int = 10,
  num_candidates: int = DEFAULT_NUM_CANDIDATES,
  first_stage_steps: int | None = None,
  max_stage_steps: int | None = None,
  first_trial_steps: int | None = None,
  min_learning_rate_ratio: float = DEFAULT_MIN_RATE_RATIO,
  max_learning_rate_ratio: float = DEFAULT_MAX_RATE_RATIO,
  kappa: float = DEFAULT_KAPPA,
  loss_series: str = "validation",
  seed: int = 0,
  evaluate_test: bool = True,
) -> dict:
  """Trains with AutoLRS (see the module docstring) and the paper's protocol.

  Args:
    trainee: a `Trainee` or `NoisyQuadraticTrainee`; reset (no schedule) and
      trained in place.
    initial_learning_rate: the first stage's first candidate (> 0); the
      search box is [min_learning_rate_ratio, max_learning_rate_ratio] times
      it.
    num_steps: steps of real training (trials come on top).
    eval_interval: steps between validations of the real training.
    num_candidates: k, candidate rates per stage (>= 1; authors: 10).
    first_stage_steps: tau_0 (see `stage_plan`; None: num_steps / 8).
    max_stage_steps: tau_max (None: 8 tau_0).
    first_trial_steps: tau'_0 (None: tau_0 / 4; authors: tau_0 / 10).
    min_learning_rate_ratio: lower end of the search box / initial rate.
    max_learning_rate_ratio: upper end / initial rate (> the lower ratio).
    kappa: LCB's exploration weight (>= 0; default the authors' 1e6).
    loss_series: the trials' loss curve, "validation" or "training".
    seed: seeds the initial weights, the batch order and the GP.
    evaluate_test: test the best checkpoint at the end.

  Returns:
    The `trainee_lib.run_training` dict of the real training (`seconds`
    includes the search), plus `trial_steps`: int, steps taken by all trials
    (the search's cost in training steps), and `stages`: per stage, its
    `start_step`, `steps` (tau), `trial_steps` (tau'), the chosen
    `learning_rate`, and `candidates`: per trial, its `learning_rate`,
    `score` (forecast validation loss, nats), `diverged` and `steps`.

  Raises:
    UserError: for bad settings (k < 1, tau <= 0, tau' > tau, a bad box or
      loss series).
  """
  start_time = time.perf_counter()
  plan = stage_plan(
    num_steps, eval_interval, first_stage_steps, max_stage_steps, first_trial_steps
  )
  num_candidates = checks.integer("num_candidates (k)", num_candidates)
  low = checks.positive("min_learning_rate_ratio", min_learning_rate_ratio)
  high = checks.positive("max_learning_rate_ratio", max_learning_rate_ratio)
  if not low < high:
    raise UserError(
      f"min_learning_rate_ratio must be below max_learning_rate_ratio, got {low}, {high}"
    )
  kappa = checks.non_negative("kappa", kappa)
  if loss_series not in LOSS_SERIES:
    raise UserError(f"loss_series must be one of {LOSS_SERIES}, got {loss_series!r}")
  rate = trainee_lib.check_learning_rate(initial_learning_rate)
  rate_range = (rate * low, rate * high)
  take_snapshot(trainee)  # Fails early for a trainee it cannot snapshot.
  trainee.reset(seed, rate, schedule=None)
  history, stages, trial_total = [], [], 0
  for stage, (tau, tau_trial) in enumerate(plan):
    if trainee.diverged:
      break
    start_step = trainee.global_step
    rate, trials = search_stage(
      trainee,
      rate,
      rate_range,
      tau,
      tau_trial,
      num_candidates,
      kappa,
      loss_series,
      seed=int(np.random.SeedSequence([seed, stage]).generate_state(1)[0]),
    )
    trial_total += sum(t.steps for t in trials)
    trainee.set_learning_rate(rate)
    part = trainee_lib.run_training(
      trainee,
      num_steps=start_step + tau,
      eval_interval=eval_interval,
      evaluate_test=False,
    )
    history.extend(part["history"])
    stages.append(
      {
        "start_step": start_step,
        "steps": tau,
        "trial_steps": tau_trial,
        "learning_rate": rate,
        "candidates": [
          {**dataclasses.asdict(t), "score": io_utils.finite_or_none(t.score)}
          for t in trials
        ],
      }
    )
  return {
    **protocol.finish(trainee, evaluate_test),
    "seconds": time.perf_counter() - start_time,
    "history": history,
    "trial_steps": trial_total,
    "stages": stages,
  }
