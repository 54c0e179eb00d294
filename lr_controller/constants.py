"""Names of the files and folders every run writes under its `root_dir`."""

CONFIG_GIN = "config.gin"  # The gin files and bindings as given, at start.
OPERATIVE_GIN = "operative_config.gin"  # What gin actually used, at the end.
METRICS_JSON = "metrics.json"  # train_trainee's result.
SEARCH_JSON = "search.json"  # search_baseline's result.
REPEATS_JSON = "repeats.json"  # search_baseline's repeats of the best setting.

TRAIN_DIR = "train"  # TensorBoard summaries and checkpoints of controller training.
CHECKPOINTS_DIR = "checkpoints"
POLICIES_DIR = "policies"
GREEDY_POLICY_DIR = "greedy_policy"  # The policy chosen on validation runs.
LAST_POLICY_DIR = "last_policy"  # The latest policy.
EVAL_DIR = "eval"
EPISODES_JSONL = "episodes.jsonl"
UPDATES_JSONL = "updates.jsonl"
SELECTION_JSONL = "selection.jsonl"
WARM_START_JSON = "warm_start.json"  # The run whose networks a run started from.

# evaluate's outputs (lr_controller.judge.evaluation and lr_controller.judge.report).
BASELINE_SEARCH_DIR = "baseline_search"  # The step-decay search evaluate runs itself.
RESULTS_JSON = "results.json"  # Every run of every method, and the statistics.
RESULTS_CSV = "results.csv"  # One row per setting and method.
REPORT_MD = "report.md"  # The tables (the paper's Tables 1 and 2).
FIGURE1_PNG = "figure1_val_loss.png"  # Validation loss vs step (the paper's Fig. 1).
FIGURE2_PNG = "figure2_lr_schedules.png"  # Learned schedules (the paper's Fig. 2).


def policy_copy(policy_dir: str, episode: int) -> str:
  """The copy of `policy_dir` (a name or path) as it was after `episode` episodes.

  E.g. `policy_copy("greedy_policy", 48)` is "greedy_policy_000048".
  """
  return f"{policy_dir}_{episode:06d}"


def policy_copy_episode(name: str, policy_dir: str) -> int | None:
  """The episode of `name` if it is a `policy_copy` of `policy_dir`, else None."""
  prefix, _, digits = name.rpartition("_")
  if (
    prefix == policy_dir
    and digits.isdigit()
    and name == policy_copy(prefix, int(digits))
  ):
    return int(digits)
  return None
