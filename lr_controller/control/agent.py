"""The PPO agent that learns the controller (Xu et al. 2019, Sec. 3.2).

tf-agents' `PPOClipAgent` with the paper's networks: an actor with one hidden
layer of 32 units (or an LSTM of 32 units) and a critic with one hidden layer of
32 units, trained with Adam at 1e-3 for the actor and 5e-3 for the critic.
Observations are normalised by tf-agents' running normalizer, since the
features live on very different scales.

Two learning rates under one optimizer: PPO computes one gradient list for
actor and critic together and calls `optimizer.apply_gradients` once. Scaling
the value loss would not give the critic its own rate under Adam (Adam is
nearly invariant to the gradient's scale), so `ActorCriticOptimizer` routes
each gradient to one of two Adam optimizers by whether its variable belongs to
the actor network. Both optimizers' slots are tracked, so they checkpoint with
the agent; PPO's global-norm gradient clipping still covers both. A step with
a non-finite gradient is skipped, so a failed update leaves weights and Adam
state as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import gin
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.agents.ppo import ppo_clip_agent
from tf_agents.networks import (
  actor_distribution_network,
  actor_distribution_rnn_network,
  categorical_projection_network,
  normal_projection_network,
  sequential,
  value_network,
  value_rnn_network,
)
from tf_agents.utils import common

from lr_controller import checks
from lr_controller.errors import UserError

ACTOR_NETWORKS = ("mlp", "lstm")
ACTION_HEADS = ("gaussian", "beta", "categorical")


def beta_actor_network(
  observation_spec, action_spec, hidden_units: int
) -> sequential.Sequential:
  """An MLP actor whose action distribution is a Beta over the action bounds.

  Outputs `low + (high - low) * Beta(1 + softplus(u), 1 + softplus(v))`: both
  concentrations stay above 1, so the density is finite and zero at the
  bounds (log-probabilities of sampled actions stay finite), every action lies
  inside the bounds (nothing is clipped, so gradients reach every sample), and
  the mode, the greedy action, is unique. It starts near Beta(1.69, 1.69),
  centred on the zero log factor.

  Args:
    observation_spec: the (TF) observation spec, [num_features].
    action_spec: a bounded scalar (TF) action spec.
    hidden_units: units of the hidden layer.
  """
  low, high = float(action_spec.minimum), float(action_spec.maximum)

  def to_distribution(params):
    alpha = 1.0 + tf.nn.softplus(params[..., 0])
    beta = 1.0 + tf.nn.softplus(params[..., 1])
    return tfp.distributions.TransformedDistribution(
      tfp.distributions.Beta(alpha, beta),
      tfp.bijectors.Chain([tfp.bijectors.Shift(low), tfp.bijectors.Scale(high - low)]),
    )

  return sequential.Sequential(
    [
      tf.keras.layers.Dense(hidden_units, activation=tf.keras.activations.tanh),
      tf.keras.layers.Dense(
        2,
        kernel_initializer=tf.keras.initializers.VarianceScaling(0.1),
        bias_initializer="zeros",
      ),
      tf.keras.layers.Lambda(to_distribution),
    ],
    input_spec=observation_spec,
    name="BetaActorNetwork",
  )


class ActorCriticOptimizer(tf.Module):
  """An optimizer-like object giving actor and critic variables their own Adam.

  Args:
    actor_variables: the actor network's trainable variables; every other
      gradient goes to the critic's optimizer.
    actor_learning_rate: Adam learning rate of the actor (paper: 1e-3), or a
      `tf.keras.optimizers.schedules.LearningRateSchedule` of its steps.
    critic_learning_rate: Adam learning rate of the critic (paper: 5e-3).
  """

  def __init__(
    self,
    actor_variables: Sequence[tf.Variable],
    actor_learning_rate: float
    | tf.keras.optimizers.schedules.LearningRateSchedule = 1e-3,
    critic_learning_rate: float = 5e-3,
  ):
    super().__init__(name="actor_critic_optimizer")
    self.actor_optimizer = tf.keras.optimizers.Adam(
      actor_learning_rate, name="actor_adam"
    )
    self.critic_optimizer = tf.keras.optimizers.Adam(
      critic_learning_rate, name="critic_adam"
    )
    self._actor_refs = {v.ref() for v in actor_variables}

  @property
  def learning_rate(self):
    """The actor's learning rate (what PPO's summaries report)."""
    return self.actor_optimizer.learning_rate

  def _by_network(self, pairs) -> list:
    """(optimizer, its (gradient, variable) pairs) for each network with any."""
    actor = [(g, v) for g, v in pairs if v.ref() in self._actor_refs]
    critic = [(g, v) for g, v in pairs if v.ref() not in self._actor_refs]
    return [
      (optimizer, part)
      for optimizer, part in (
        (self.actor_optimizer, actor),
        (self.critic_optimizer, critic),
      )
      if part
    ]

  def build(self, variables: Sequence[tf.Variable]) -> None:
    """Creates each network's Adam slots for `variables`, outside any trace.

    Called by `create_agent`: variables created inside a `tf.function`'s
    first call make TensorFlow trace it a second time, and PPO's train step
    is the costliest trace of a training run.
    """
    self._build_slots(self._by_network([(None, v) for v in variables]))

  @staticmethod
  def _build_slots(by_network: list) -> None:
    """Builds each optimizer for its pairs' variables (once: Keras ignores more)."""
    with tf.init_scope():
      for optimizer, part in by_network:
        optimizer.build([v for _, v in part])

  def apply_gradients(self, grads_and_vars) -> tf.Tensor:
    """Applies each (gradient, variable) pair with its network's optimizer.

    A step with any non-finite gradient is skipped whole: weights and Adam
    state stay as they were (as Keras' `LossScaleOptimizer` skips such steps).

    Returns:
      A bool scalar: whether the step was applied.
    """
    # Keras drops pairs without a gradient too.
    pairs = self._by_network([(g, v) for g, v in grads_and_vars if g is not None])
    # Slots first, outside the condition: no variable is created in a branch.
    self._build_slots(pairs)
    finite = tf.reduce_all(
      [tf.reduce_all(tf.math.is_finite(grad)) for _, part in pairs for grad, _ in part]
    )

    def apply():
      for optimizer, part in pairs:
        optimizer.apply_gradients(part)
      return tf.constant(True)

    return tf.cond(finite, apply, lambda: tf.constant(False))


# The environment's specs and the step counter are the caller's
# (`controller_training`): binding them is a gin error.
@gin.configurable(denylist=["time_step_spec", "action_spec", "train_step_counter"])
def create_agent(
  time_step_spec,
  action_spec,
  actor_network: str = "mlp",
  action_head: str = "gaussian",
  hidden_units: int = 32,
  actor_learning_rate: float = 1e-3,
  actor_learning_rate_decay_steps: int = 0,
  critic_learning_rate: float = 5e-3,
  initial_action_stddev: float = 0.2,
  squash_mean: bool = True,
  num_epochs: int = 10,
  importance_ratio_clipping: float = 0.2,
  entropy_regularization: float = 0.0,
  discount_factor: float = 0.99,
  lambda_value: float = 0.95,
  gradient_clipping: float = 0.5,
  normalize_rewards: bool = False,
  train_step_counter: tf.Variable | None = None,
) -> ppo_clip_agent.PPOClipAgent:
  """Builds the paper's PPO controller agent.

  Args:
    time_step_spec: the environment's (TF) time-step spec.
    action_spec: the environment's (TF) action spec, a bounded scalar.
    actor_network: "mlp" (one hidden layer) or "lstm" (an LSTM actor and an LSTM
      value network, as tf-agents' PPO needs both recurrent).
    action_head: "gaussian" (a Normal with state-independent spread, clipped
      to the bounds when applied) or "beta" (`beta_actor_network`: a Beta on
      the bounds; MLP actor only) or "categorical" (a softmax over the
      discrete factor set of `create_environment.action_levels`, tf-agents'
      categorical projection; its greedy action is the likeliest factor).
      `initial_action_stddev` and `squash_mean` apply to the Gaussian.
    hidden_units: units of the hidden layer / LSTM (paper: 32).
    actor_learning_rate: Adam rate of the actor (paper: 1e-3).
    actor_learning_rate_decay_steps: if positive, the actor's rate decays
      linearly to 0 over this many of its Adam steps (one per PPO epoch:
      updates x num_epochs), as PPO anneals it (Schulman et al. 2017, Atari);
      0 keeps it constant.
    critic_learning_rate: Adam rate of the critic (paper: 5e-3).
    initial_action_stddev: initial standard deviation of the Gaussian policy
      (in units of log factor).
    squash_mean: squash the Gaussian's mean into the action bounds with tanh
      (tf-agents' default); False keeps it linear (the environment clips what
      it applies either way, since samples may leave the bounds).
    num_epochs: PPO epochs over each batch of collected episodes.
    importance_ratio_clipping: PPO's clip epsilon.
    entropy_regularization: entropy bonus coefficient.
    discount_factor: gamma over decisions.
    lambda_value: GAE lambda.
    gradient_clipping: global-norm clip of the joint gradient (0 disables).
    normalize_rewards: divide rewards by a running standard deviation. Off by
      default: its scale drifts as the agent's episodes get worse or better,
      the critic lags behind, and the advantages take the drift's sign; on the
      noisy quadratic task this fed back into ever larger learning rates
      (returns from -0.8 to -13 in 35 episodes), while without it PPO improved.
    train_step_counter: int64 variable counting gradient steps.

  Returns:
    An initialized `PPOClipAgent`.
  """
  if actor_network not in ACTOR_NETWORKS:
    raise UserError(
      f"unknown actor_network '{actor_network}' (known: {', '.join(ACTOR_NETWORKS)})"
    )
  if action_head not in ACTION_HEADS:
    raise UserError(
      f"unknown action_head '{action_head}' (known: {', '.join(ACTION_HEADS)})"
    )
  if action_head == "beta" and actor_network != "mlp":
    raise UserError("action_head 'beta' needs actor_network 'mlp'")
  discrete = action_spec.dtype.is_integer
  if discrete != (action_head == "categorical"):
    raise UserError(
      "action_head 'categorical' needs a discrete factor set "
      "(create_environment.action_levels) and the other heads need none; got "
      f"action_head '{action_head}' with "
      + ("discrete" if discrete else "continuous")
      + " actions"
    )
  hidden_units = checks.integer("hidden_units", hidden_units, 1)
  actor_learning_rate = checks.positive("actor_learning_rate", actor_learning_rate)
  critic_learning_rate = checks.positive("critic_learning_rate", critic_learning_rate)
  actor_learning_rate_decay_steps = checks.integer(
    "actor_learning_rate_decay_steps", actor_learning_rate_decay_steps, 0
  )
  observation_spec = time_step_spec.observation
  # softplus(bias) is the initial stddev.
  std_bias = float(np.log(np.expm1(initial_action_stddev)))

  def projection(spec):
    return normal_projection_network.NormalProjectionNetwork(
      spec,
      init_means_output_factor=0.1,
      std_bias_initializer_value=std_bias,
      state_dependent_std=False,
      mean_transform=None
      if not squash_mean
      else normal_projection_network.tanh_squash_to_spec,
    )

  def categorical(spec):
    # Small initial logits: every factor starts about equally likely (the
    # default 0.1 started a test policy at probabilities 0.14 to 0.30).
    return categorical_projection_network.CategoricalProjectionNetwork(
      spec, logits_init_output_factor=0.01
    )

  if action_head == "beta":
    actor_net = beta_actor_network(observation_spec, action_spec, hidden_units)
    value_net = value_network.ValueNetwork(
      observation_spec,
      fc_layer_params=(hidden_units,),
      activation_fn=tf.keras.activations.tanh,
    )
  elif actor_network == "mlp":
    actor_net = actor_distribution_network.ActorDistributionNetwork(
      observation_spec,
      action_spec,
      fc_layer_params=(hidden_units,),
      activation_fn=tf.keras.activations.tanh,
      discrete_projection_net=categorical,
      continuous_projection_net=projection,
    )
    value_net = value_network.ValueNetwork(
      observation_spec,
      fc_layer_params=(hidden_units,),
      activation_fn=tf.keras.activations.tanh,
    )
  else:
    actor_net = actor_distribution_rnn_network.ActorDistributionRnnNetwork(
      observation_spec,
      action_spec,
      input_fc_layer_params=None,
      lstm_size=(hidden_units,),
      output_fc_layer_params=None,
      discrete_projection_net=categorical,
      continuous_projection_net=projection,
    )
    value_net = value_rnn_network.ValueRnnNetwork(
      observation_spec,
      input_fc_layer_params=None,
      lstm_size=(hidden_units,),
      output_fc_layer_params=None,
    )
  actor_net.create_variables()
  value_net.create_variables()
  actor_rate = actor_learning_rate
  if actor_learning_rate_decay_steps:
    actor_rate = tf.keras.optimizers.schedules.PolynomialDecay(
      actor_learning_rate, actor_learning_rate_decay_steps, end_learning_rate=0.0
    )
  optimizer = ActorCriticOptimizer(
    actor_net.trainable_variables, actor_rate, critic_learning_rate
  )
  if train_step_counter is None:
    train_step_counter = tf.Variable(
      0, dtype=tf.int64, trainable=False, name="train_step"
    )
  agent = ppo_clip_agent.PPOClipAgent(
    time_step_spec,
    action_spec,
    optimizer=optimizer,
    actor_net=actor_net,
    value_net=value_net,
    importance_ratio_clipping=importance_ratio_clipping,
    entropy_regularization=entropy_regularization,
    discount_factor=discount_factor,
    lambda_value=lambda_value,
    num_epochs=num_epochs,
    normalize_observations=True,
    normalize_rewards=normalize_rewards,
    use_gae=True,
    gradient_clipping=gradient_clipping if gradient_clipping > 0 else None,
    compute_value_and_advantage_in_train=True,
    train_step_counter=train_step_counter,
  )
  agent.initialize()
  # In the order of PPO's train step (sorted by name), as the slots were
  # created before: a checkpoint keeps an optimizer's variables by position.
  optimizer.build(
    sorted(
      actor_net.trainable_weights + value_net.trainable_weights, key=lambda v: v.name
    )
  )
  agent.train = common.function(agent.train, autograph=False)
  return agent


def checkpointed_networks(agent: ppo_clip_agent.PPOClipAgent) -> dict:
  """The agent's actor, critic and observation normalizer, by their checkpoint keys.

  A checkpoint of the agent stores them under these names (tf-agents'
  attributes; it has no public accessor for the critic or the normalizer), so
  `tf.train.Checkpoint(**checkpointed_networks(agent))`, placed where the
  agent was, reads them alone from such a checkpoint: no optimizer state.
  """
  # pylint: disable=protected-access
  networks = {"_actor_net": agent.actor_net, "_value_net": agent._value_net}
  if agent._observation_normalizer is not None:
    networks["_observation_normalizer"] = agent._observation_normalizer
  return networks


def network_config(agent: ppo_clip_agent.PPOClipAgent) -> dict:
  """A JSON-ready description of the agent's networks (for compatibility checks)."""
  actor = agent.actor_net
  return {
    "actor": type(actor).__name__,
    "value": type(checkpointed_networks(agent)["_value_net"]).__name__,
    "actor_variables": [list(v.shape) for v in actor.variables],
  }
