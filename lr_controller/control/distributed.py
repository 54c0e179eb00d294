"""Actor-learner controller training on Reverb: one learner, many collectors.

Each episode trains a whole network, so collection is the cost; it spreads over
machines in tf-agents' distributed layout, with Reverb as the engine:

  reverb job    holds the tables below; it is given the gin config, which it
                publishes, so every other job runs exactly that configuration.
  collect jobs  (any number, anywhere) take a ticket "run episode k with policy
                version v", pull the policy variables, run the episode on their
                own trainee and send it back.
  train job     the learner: `controller_training.train_controller` with a
                `ReverbCollector`; checkpoints, exports and logs as in one process.

Tables:
  variables  the collect policy's variables, the policy version and a
             `finished` flag (tf-agents' `ReverbVariableContainer`, max_size 1)
  tickets    queue of [version, episode] work items
  episodes   queue of collected episodes ([version, episode, info JSON,
             trajectory leaves...]), one item per whole episode
  config     the gin config every job runs (max_size 1)

PPO is on-policy: the policy version is the number of episodes trained on (the
learner's `episodes_done`). The learner pushes version v, issues the tickets of
episodes v .. v + E - 1, waits for those episodes collected with version v, and
drops anything else (stale versions, duplicates). A collector drops a ticket
whose version is older than the variables it pulls. Failures:
  - a collector dies: its ticket is re-issued after `reissue_after_secs`; a
    restarted collector simply takes the next ticket;
  - the learner dies: restarted, it restores its checkpoint, pushes that
    version again and re-issues its tickets; episodes already collected for
    that version are used, nothing is trained twice;
  - the learner finishes: it sets `finished`, and collectors exit.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable

import gin
import numpy as np
import reverb
import tensorflow as tf
from tf_agents.experimental.distributed import reverb_variable_container

from lr_controller.control import controller_training, episode_collection, exploration
from lr_controller.errors import UserError, first_line

VARIABLES_TABLE = reverb_variable_container.DEFAULT_TABLE
TICKETS_TABLE = "tickets"
EPISODES_TABLE = "episodes"
CONFIG_TABLE = "config"
FINISHED_KEY = "finished"
# Seconds a Reverb server may take to answer before it counts as gone.
RPC_TIMEOUT_SECS = 30

# Reverb's gRPC errors when a server is unreachable or goes away.
_CONNECTION_ERRORS = (
  RuntimeError,
  reverb.errors.DeadlineExceededError,
  tf.errors.UnavailableError,
  tf.errors.DeadlineExceededError,
)


class SharedVariables:
  """What the learner shares with collectors: policy variables, version, flag."""

  def __init__(self, agent):
    self.version = tf.Variable(-1, dtype=tf.int64, trainable=False, name="version")
    self.finished = tf.Variable(False, trainable=False, name="finished")
    self.nest = {
      reverb_variable_container.POLICY_KEY: agent.collect_policy.variables(),
      reverb_variable_container.TRAIN_STEP_KEY: self.version,
      FINISHED_KEY: self.finished,
    }

  def signature(self):
    return tf.nest.map_structure(lambda v: tf.TensorSpec(v.shape, v.dtype), self.nest)


def make_server(port: int, seed: int = 0) -> reverb.Server:
  """Starts the Reverb server of the gin config on `port` and publishes the config."""
  gin_config = gin.config_str()
  _, agent = controller_training.build_environment_and_agent(seed)
  shared = SharedVariables(agent)

  def single(name, signature):
    return reverb.Table(
      name=name,
      sampler=reverb.selectors.Uniform(),
      remover=reverb.selectors.Fifo(),
      max_size=1,
      rate_limiter=reverb.rate_limiters.MinSize(1),
      signature=signature,
    )

  tables = [
    single(VARIABLES_TABLE, shared.signature()),
    single(CONFIG_TABLE, tf.TensorSpec((), tf.string)),
    reverb.Table.queue(TICKETS_TABLE, max_size=1_000_000),
    reverb.Table.queue(EPISODES_TABLE, max_size=10_000),
  ]
  try:
    server = reverb.Server(tables, port=port)
  except (RuntimeError, ValueError) as e:
    raise UserError(
      f"cannot start a Reverb server on port {port}: {first_line(e)}"
    ) from None
  publish_config(reverb.Client(f"localhost:{server.port}"), gin_config, seed)
  return server


def _server_answers(client: reverb.Client) -> bool:
  """Whether the Reverb server still answers (within a few seconds)."""
  try:
    client.server_info(timeout=5)
  except _CONNECTION_ERRORS:
    return False
  return True


def _unless_lost(
  client: reverb.Client,
  fn: Callable[[], object],
  what: str,
  timeout_secs: float = RPC_TIMEOUT_SECS,
):
  """`fn()`, a Reverb read; raises DeadlineExceededError if the server goes away.

  Reverb's samplers wait for ever on a server that is gone, so `fn` runs in a
  daemon thread (left behind if the server is lost), and after every
  `timeout_secs` without a result the server is asked whether it still
  answers; `fn`'s own errors are raised as they are.
  """
  outcome: queue.Queue = queue.Queue()

  def run():
    try:
      outcome.put((True, fn()))
    except Exception as e:  # pylint: disable=broad-except
      outcome.put((False, e))

  threading.Thread(target=run, daemon=True).start()
  while True:
    try:
      ok, value = outcome.get(timeout=timeout_secs)
    except queue.Empty:
      if _server_answers(client):
        continue
      raise reverb.errors.DeadlineExceededError(
        f"{what}: no answer within {timeout_secs:.0f} s"
      ) from None
    if ok:
      return value
    raise value


@contextlib.contextmanager
def _server_errors_as_user_errors(client: reverb.Client):
  """Turns a lost connection to the Reverb server into one UserError line.

  A write the server dies during raises an InternalError ("Error when
  confirming that all items written"); it counts as lost when the server no
  longer answers, and is raised as it is otherwise.
  """
  try:
    yield
  except _CONNECTION_ERRORS + (
    tf.errors.NotFoundError,
    tf.errors.CancelledError,
    tf.errors.InternalError,
  ) as e:
    if isinstance(e, tf.errors.InternalError) and _server_answers(client):
      raise
    raise UserError(
      f"lost the Reverb server at {client.server_address}: {first_line(e)}"
    ) from None


def connect(address: str, timeout: float, say: Callable[[str], None]) -> reverb.Client:
  """Waits until a Reverb server of this layout answers at `address`.

  Raises:
    UserError: if none does within `timeout` seconds.
  """
  client = reverb.Client(address)
  deadline = time.monotonic() + timeout
  said = False
  while True:
    try:
      info = client.server_info(timeout=max(1, min(5, int(timeout))))
      break
    except _CONNECTION_ERRORS:
      if time.monotonic() > deadline:
        raise UserError(
          f"no Reverb server answers at {address} (waited {timeout:.0f} s)"
        ) from None
      if not said:
        say(f"waiting for the Reverb server at {address}")
        said = True
      time.sleep(1.0)
  missing = {VARIABLES_TABLE, TICKETS_TABLE, EPISODES_TABLE, CONFIG_TABLE} - set(info)
  if missing:
    raise UserError(
      f"the Reverb server at {address} is not an lr_controller server (no table {sorted(missing)[0]})"
    )
  return client


def insert(
  client: reverb.Client, data, table: str, timeout_secs: float = RPC_TIMEOUT_SECS
) -> None:
  """Inserts one item, `data` (a nest of arrays) as one step, into `table`.

  `table` has no signature (tickets, episodes). Stores what
  `client.insert(data, {table: 1.0})` stores, but bounded: that call
  retries for ever while the server is gone (a collector hung there when the
  server was killed); this one raises `reverb.errors.DeadlineExceededError`
  after `timeout_secs`.
  """
  writer = client.trajectory_writer(num_keep_alive_refs=1)
  try:
    writer.append(data)
    writer.create_item(
      table, 1.0, tf.nest.map_structure(lambda column: column[-1:], writer.history)
    )
    writer.flush(timeout_ms=int(timeout_secs * 1000))
  finally:
    writer.close()


def publish_config(client: reverb.Client, gin_config: str, seed: int) -> None:
  """Publishes the layout's gin config and seed (the reverb job does, once)."""
  blob = json.dumps({"gin": gin_config, "seed": seed}).encode()
  # The server was started by this process a moment ago: no deadline needed.
  client.insert(np.array(blob, dtype=object), {CONFIG_TABLE: 1.0})


def fetch_config(client: reverb.Client) -> tuple[str, int]:
  """The gin config string and seed the reverb job published."""
  sample = next(client.sample(CONFIG_TABLE, 1))
  blob = json.loads(sample[0].data[0].item().decode())
  return blob["gin"], int(blob["seed"])


def _encode_episode(episode: episode_collection.Episode, version: int) -> list:
  header = [
    np.int64(version),
    np.int64(episode.index),
    np.array(json.dumps(episode.info, default=float).encode(), dtype=object),
  ]
  return header + [np.asarray(x) for x in tf.nest.flatten(episode.trajectory)]


def _decode_episode(data: list, data_spec) -> tuple[int, episode_collection.Episode]:
  version, index, info = int(data[0]), int(data[1]), json.loads(data[2].item())
  trajectory = tf.nest.pack_sequence_as(data_spec, list(data[3:]))
  return version, episode_collection.Episode(
    index=index, trajectory=trajectory, info=info
  )


class ReverbCollector:
  """The learner's side: episodes come from collect jobs through Reverb.

  Args:
    agent: the learner's agent (its collect policy's variables are pushed).
    client: a connected `reverb.Client`.
    reissue_after_secs: re-issue the tickets still missing when no wanted
      episode arrived for this long; None: three times the slowest episode
      seen so far (at least 60 s; 600 s before any episode arrived).
    say: progress printer.
    rpc_timeout_secs: how long the server may take to answer.
  """

  def __init__(
    self,
    agent,
    client: reverb.Client,
    reissue_after_secs: float | None,
    say,
    rpc_timeout_secs: float = RPC_TIMEOUT_SECS,
  ):
    self._rpc_timeout = int(rpc_timeout_secs)
    self._client = client
    self._data_spec = agent.collect_data_spec
    self._shared = SharedVariables(agent)
    self._container = reverb_variable_container.ReverbVariableContainer(
      client.server_address, table_names=[VARIABLES_TABLE]
    )
    self._reissue_after = reissue_after_secs
    self._slowest = 0.0
    self._say = say

  def _push(self) -> None:
    # Reverb's writers wait for an absent server: make sure it is there.
    self._client.server_info(timeout=self._rpc_timeout)
    try:
      self._container.push(self._shared.nest)
    except (tf.errors.InvalidArgumentError, ValueError) as e:
      raise UserError(
        f"the Reverb server's variables do not match this agent: {first_line(e)}"
      ) from None

  def _issue(self, version: int, episodes) -> None:
    for k in episodes:
      insert(self._client, np.array([version, k], np.int64), TICKETS_TABLE)

  def _timeout(self) -> float:
    if self._reissue_after is not None:
      return self._reissue_after
    return max(60.0, 3 * self._slowest) if self._slowest else 600.0

  def collect(self, episodes: list[int]):
    """Pushes the policy, has `episodes` collected; returns (experience, infos).

    Raises:
      UserError: if the Reverb server goes away.
    """
    with _server_errors_as_user_errors(self._client):
      return self._collect(episodes)

  def _collect(self, episodes: list[int]):
    version = episodes[0]
    self._shared.version.assign(version)
    self._push()
    self._issue(version, episodes)
    received: dict[int, episode_collection.Episode] = {}
    dropped = 0
    last_progress = time.monotonic()
    while len(received) < len(episodes):
      info = self._client.server_info(timeout=self._rpc_timeout)
      if info[EPISODES_TABLE].current_size == 0:
        if time.monotonic() - last_progress > self._timeout():
          missing = [k for k in episodes if k not in received]
          self._say(
            f"re-issuing episodes {missing} (no episode for {self._timeout():.0f} s)"
          )
          self._issue(version, missing)
          last_progress = time.monotonic()
        time.sleep(0.1)
        continue
      data = _unless_lost(
        self._client,
        lambda: next(self._client.sample(EPISODES_TABLE, 1))[0].data,
        "sampling an episode",
      )
      got_version, episode = _decode_episode(data, self._data_spec)
      if (
        got_version != version
        or episode.index not in episodes
        or episode.index in received
      ):
        dropped += 1
        continue
      received[episode.index] = episode
      self._slowest = max(self._slowest, episode.info["seconds"])
      last_progress = time.monotonic()
    if dropped:
      self._say(f"dropped {dropped} stale or duplicate episode(s)")
    ordered = [received[k] for k in episodes]
    experience = episode_collection.to_experience(ordered, self._data_spec)
    return experience, [e.info for e in ordered]

  def close(self, finished: bool) -> None:
    """Tells collectors to stop once training is complete."""
    if finished:
      self._shared.finished.assign(True)
      with _server_errors_as_user_errors(self._client):
        self._push()


class _TicketFetcher:
  """Waits for tickets in a thread, so the collector can time out and look around.

  At most one ticket is requested at a time: a collector never holds a ticket
  another one could run.
  """

  def __init__(self, client: reverb.Client):
    self._client = client
    self._results: queue.Queue = queue.Queue()
    self._wanted = threading.Event()
    self._pending = False
    threading.Thread(target=self._loop, daemon=True).start()

  def _loop(self):
    while True:
      self._wanted.wait()
      self._wanted.clear()
      try:
        data = next(self._client.sample(TICKETS_TABLE, 1))[0].data[0]
        self._results.put((int(data[0]), int(data[1])))
      except Exception as e:  # pylint: disable=broad-except
        self._results.put(e)

  def get(self, timeout: float) -> tuple[int, int] | None:
    """A (version, episode) ticket, or None after `timeout` seconds."""
    if not self._pending:
      self._pending = True
      self._wanted.set()
    try:
      result = self._results.get(timeout=timeout)
    except queue.Empty:
      return None
    self._pending = False
    if isinstance(result, Exception):
      raise result
    return result


def run_collector(
  client: reverb.Client,
  seed: int,
  name: str,
  say: Callable[[str], None],
  poll_secs: float = 2.0,
) -> int:
  """Collects episodes for the learner until it finishes; returns how many.

  The gin config must be the server's (`fetch_config`), parsed already.

  Raises:
    UserError: if the Reverb server goes away.
  """
  py_env, agent = controller_training.build_environment_and_agent(seed)
  policy = exploration.SeededPolicy(agent.collect_policy)
  shared = SharedVariables(agent)
  container = reverb_variable_container.ReverbVariableContainer(
    client.server_address, table_names=[VARIABLES_TABLE]
  )
  tickets = _TicketFetcher(client)
  done = 0

  def pull() -> bool:
    """Updates the policy if the learner pushed one; True once it finished."""
    if client.server_info(timeout=RPC_TIMEOUT_SECS)[VARIABLES_TABLE].current_size:
      _unless_lost(client, lambda: container.update(shared.nest), "pulling the policy")
    return bool(shared.finished.numpy())

  say(f"{name}: waiting for work")
  with _server_errors_as_user_errors(client):
    while True:
      ticket = tickets.get(timeout=poll_secs)
      if pull():
        say(f"{name}: the learner finished; {done} episodes collected")
        return done
      if ticket is None:
        continue
      version, index = ticket
      if version != int(shared.version.numpy()):
        continue  # A ticket of an older policy.
      start = time.perf_counter()
      [episode] = episode_collection.collect_episodes([py_env], policy, [index], seed)
      episode.info["seconds"] = time.perf_counter() - start
      insert(client, _encode_episode(episode, version), EPISODES_TABLE)
      done += 1
      say(
        f"{name}: episode {index} (policy {version}) in {episode.info['seconds']:.1f} s, "
        f"return {episode.info['return']:.3f}"
      )
