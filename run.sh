#!/usr/bin/env bash
# lr_controller's one entry point.
#   ./run.sh            set up .venv if needed, then run the main job on the embedded digits data
#   ./run.sh test [ARGS] set up, then run the test suite, two processes at a time
#                       (LRC_TEST_WORKERS=n to change; extra ARGS go to pytest alone);
#                       without ARGS, also the callback on Keras 3 beside it (scripts/check_keras3.sh)
#   ./run.sh distributed [FLAGS]  the Reverb actor-learner layout on localhost
#   ./run.sh setup      set up only
# Re-running is fast: the install is redone only when setup.py or constraints.txt change.
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.lr_controller_installed"

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3 python; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    local py
    if ! py="$(find_python)"; then
      echo "error: lr_controller needs Python 3.11 (TensorFlow 2.15 and dm-reverb 0.14 have no wheels for other versions); install python3.11 or set PYTHON=/path/to/python3.11" >&2
      exit 1
    fi
    echo "[setup] creating $VENV with $py"
    "$py" -m venv "$VENV"
  fi
  local want
  want="$(cat setup.py constraints.txt | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "[setup] installing lr_controller with its pinned training stack into .venv (a few minutes the first time)"
    # The build tools first: the editable install below builds without isolation.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      "setuptools==65.5.0" "wheel==0.48.0"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      -c constraints.txt --no-build-isolation -e ".[train,test]"
    echo "$want" > "$STAMP"
  fi
}

cmd="${1:-demo}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    setup
    echo "[setup] done: $VENV"
    ;;
  test)
    setup
    if [ $# -gt 0 ]; then
      echo "[test] pytest $*; the Keras 3 check runs without arguments (or: scripts/check_keras3.sh)"
      exec "$VENV/bin/python" -m pytest "$@"
    fi
    status=0
    # The callback as users run it (the newest TensorFlow, Keras 3, no extras)
    # runs beside pytest: its venv install is mostly disk and registry, so in
    # series it left a core idle for a minute. Its output follows pytest's.
    keras3_log="$(mktemp "${TMPDIR:-/tmp}/lrc_keras3_log_XXXXXX")"
    echo "[test] pytest, and beside it the Keras 3 check (scripts/check_keras3.sh; its output follows)"
    scripts/check_keras3.sh >"$keras3_log" 2>&1 &
    keras3_pid=$!
    # Stopped early (Ctrl-C), the check and what it started stop too.
    # (`|| true`: under `set -e` a failing command in the trap sets the exit status.)
    trap 'pkill -P "$keras3_pid" 2>/dev/null || true; kill "$keras3_pid" 2>/dev/null || true; rm -f "$keras3_log"' EXIT
    # Two test processes (pytest-xdist), one per core. A test class goes to one
    # worker whole, so a class's shared set-up (setUpClass) runs once.
    "$VENV/bin/python" -m pytest -n "${LRC_TEST_WORKERS:-2}" --dist loadscope || status=$?
    keras3_status=0
    wait "$keras3_pid" || keras3_status=$?
    echo "[test] the Keras 3 check:"
    cat "$keras3_log"
    [ "$keras3_status" = 0 ] || status=$keras3_status
    exit "$status"
    ;;
  demo)
    setup
    exec "$VENV/bin/python" -m lr_controller.bin.demo "$@"
    ;;
  distributed)
    # The Reverb actor-learner layout on this machine (1 server, 2 collectors,
    # 1 learner); any flags replace these defaults (see launch_local --help).
    setup
    [ $# -gt 0 ] || set -- --root_dir=runs/distributed --gin_file=controller/digits.gin --num_collectors=2
    exec "$VENV/bin/python" -m lr_controller.bin.launch_local "$@"
    ;;
  *)
    echo "error: unknown command '$cmd' (use: ./run.sh, ./run.sh test, ./run.sh distributed, ./run.sh setup)" >&2
    exit 2
    ;;
esac
