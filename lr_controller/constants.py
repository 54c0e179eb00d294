"""Names of the files and folders every run writes under its `root_dir`."""

CONFIG_GIN = "config.gin"  # The gin files and bindings as given, at start.
OPERATIVE_GIN = "operative_config.gin"  # What gin actually used, at the end.
METRICS_JSON = "metrics.json"  # train_trainee's result.
SEARCH_JSON = "search.json"  # search_baseline's result.
REPEATS_JSON = "repeats.json"  # search_baseline's repeats of the best setting.

TRAIN_DIR = "train"  # TensorBoard summaries and checkpoints of controller training.
CHECKPOINTS_DIR = "checkpoints"
POLICIES_DIR = "policies"
GREEDY_POLICY_DIR = "greedy_policy"
EVAL_DIR = "eval"
EPISODES_JSONL = "episodes.jsonl"
