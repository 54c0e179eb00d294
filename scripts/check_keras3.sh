#!/usr/bin/env bash
# The callback as users run it: the newest TensorFlow (Keras 3), lr_controller
# installed without extras.
#
#   scripts/check_keras3.sh [PYTEST_ARGS]     (./run.sh test runs it after the main suite)
#
# 1. .venv-keras3 (or $LRC_KERAS3_VENV): the newest tensorflow the registry
#    serves, pytest, and lr_controller from a wheel of this checkout, WITHOUT
#    extras. Made once, and again when setup.py or this script change; set
#    LRC_KERAS3_UPGRADE=1 to move it to a newer tensorflow. The wheel itself is
#    rebuilt and reinstalled (no dependencies) at every call.
# 2. A small policy exported by the pinned stack (the dev venv .venv,
#    TensorFlow 2.15): a smoke run of train_controller on controller/digits.gin,
#    in the background while 1 runs.
# 3. tests/keras3 in the Keras 3 venv against that policy.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
DEV_PY="$ROOT/.venv/bin/python"
VENV="${LRC_KERAS3_VENV:-$ROOT/.venv-keras3}"
STAMP="$VENV/.lr_controller_keras3"
PIP=(-m pip install --quiet --disable-pip-version-check)

say() { echo "[keras3 $(( SECONDS - START ))s] $*"; }
START=$SECONDS

if [ ! -x "$DEV_PY" ]; then
  echo "error: no dev venv at $ROOT/.venv (it exports the policy): run ./run.sh setup" >&2
  exit 1
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lrc_keras3_XXXXXX")"
trap 'kill "${EXPORT_PID:-}" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT

# The export (CPU) runs while the wheel is built and the venv installed
# (mostly disk and registry): about 20 s that no longer add up.
say "exporting a policy with the pinned stack (.venv), in the background: 2 smoke episodes of controller/digits.gin"
TF_CPP_MIN_LOG_LEVEL=3 TFDS_DATA_DIR="$WORK/tfds" "$DEV_PY" -m lr_controller.bin.train_controller \
  --root_dir="$WORK/controller" --gin_file=controller/digits.gin --gin_file=smoke.gin \
  --seed=0 >"$WORK/export.log" 2>&1 &
EXPORT_PID=$!

say "building the lr_controller wheel"
WHEEL="$("$DEV_PY" scripts/build_wheel.py "$WORK/dist" | tail -n 1)"

want="$(cat setup.py scripts/check_keras3.sh | sha256sum | cut -d' ' -f1)"
if ! "$VENV/bin/python" -c "" 2>/dev/null; then
  py="${LRC_KERAS3_PYTHON:-$("$DEV_PY" -c 'import sys; print(sys._base_executable)')}"
  say "creating $VENV with $py"
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
  echo "*" > "$VENV/.gitignore"  # Not part of the checkout.
  say "installing lr_controller without extras (its requirements: the newest tensorflow) and pytest"
  "$VENV/bin/python" "${PIP[@]}" "$WHEEL" pytest
  echo "$want" > "$STAMP"
elif [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ] || [ "${LRC_KERAS3_UPGRADE:-0}" = 1 ]; then
  say "updating $VENV: the newest tensorflow, lr_controller's requirements, pytest"
  "$VENV/bin/python" "${PIP[@]}" --upgrade "$WHEEL" tensorflow pytest
  echo "$want" > "$STAMP"
else
  say "reusing $VENV"
fi
"$VENV/bin/python" "${PIP[@]}" --no-deps --force-reinstall "$WHEEL"
versions="$("$VENV/bin/python" -c 'import importlib.metadata as m; print("tensorflow", m.version("tensorflow") + ", keras", m.version("keras"))')"

if ! wait "$EXPORT_PID"; then
  cat "$WORK/export.log" >&2
  echo "error: the policy export with the pinned stack failed (log above)" >&2
  exit 1
fi
EXPORT_PID=""
say "policy exported"

say "running tests/keras3 with $versions"
# From the work folder, with the venv's pytest: nothing puts the checkout on sys.path.
cd "$WORK"
LRC_KERAS3_POLICY="$WORK/controller/policies/greedy_policy" TF_CPP_MIN_LOG_LEVEL=3 \
  "$VENV/bin/pytest" -c "$ROOT/tests/keras3/pytest.ini" "$ROOT/tests/keras3" "$@"
