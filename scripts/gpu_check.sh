#!/usr/bin/env bash
# The GPU check of issues 14 and 23, on a machine with one NVIDIA GPU, in under 13 minutes in total.
#
#   bash scripts/gpu_check.sh                      # install what is missing, test, measure
#   bash scripts/gpu_check.sh --dry-run            # CPU rehearsal: same steps, tiny sizes, no installs
#   bash scripts/gpu_check.sh --output DIR         # default docs/benchmarks/gpu (dry run: /tmp/gpu_check)
#
# Steps, each under its own timeout; a step that fails or times out is recorded and the next one
# runs: (1) install: nothing when `jax` already sees a GPU and torch, flax, optax and
# ml_collections import (the lent machines ship them; they cannot reach PyPI, so a missing
# pure-Python package travels as a wheel in .whl/, installed with --no-index), otherwise
# `pip install -e ".[cuda,torch]"`; (2) tests: the `gpu` marker and tests/test_lowering.py;
# (3) the measurements of scripts/gpu_check.py (bench at 512 px bf16 and TF32, PyTorch on the same
# GPU, 2048 px with remat, cold and warm `nstjax stylize`, the largest size, time to quality: CF,
# GE, LP against wall time for nstjax's recipes and neural-style's in PyTorch, 512 px, one pair,
# a fifth of the iterations), each in its own process and timeout. Writes gpu_check.json and gpu_check.md into the output folder.
# On the lent machines (jax 0.11 + CUDA 13 plugin, torch, flax, optax, h5py, pytest; no registry),
# only ml_collections is missing: `echo /.whl/ >> .git/info/exclude; python3 -m pip download
# --no-deps -d .whl ml_collections` here, carry `.whl`, and the install step installs it offline.
# GPU_CHECK_TIME_SCALE=N multiplies every timeout (default 1; 3 with --dry-run);
# GPU_CHECK_STEPS="bench_bf16 torch" runs only those measurement steps.
set -u
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."
DRY=0
OUTPUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,/^set -u/{/^#/s/^# \{0,1\}//p}' "$SELF"; exit 0 ;;
    --output) OUTPUT="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
PY="${PYTHON:-python3}"
[ -z "$OUTPUT" ] && { [ "$DRY" = 1 ] && OUTPUT=/tmp/gpu_check || OUTPUT=docs/benchmarks/gpu; }
mkdir -p "$OUTPUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
[ -d .whl ] && export PYTHONPATH="/tmp/gpu_check_site:$PYTHONPATH"
SHELL_JSON="$OUTPUT/shell_steps.json"
echo "[" > "$SHELL_JSON.tmp"
FIRST=1

step() {  # step NAME TIMEOUT COMMAND...: run, time, record; never stops the script
  local name="$1" limit="$2"; shift 2
  local start=$SECONDS status=ok
  # a shared CPU is slower than any GPU machine: GPU_CHECK_TIME_SCALE stretches every timeout
  limit=$(( limit * ${GPU_CHECK_TIME_SCALE:-$([ "$DRY" = 1 ] && echo 3 || echo 1)} ))
  echo "[$name] (timeout ${limit}s) $*"
  timeout --kill-after=10 "$limit" bash -c '"$@"' _ "$@" > "$OUTPUT/$name.log" 2>&1
  local rc=$?
  if [ $rc = 124 ] || [ $rc = 137 ]; then status=timeout; elif [ $rc != 0 ]; then status=failed; fi
  local error=""
  [ "$status" != ok ] && error=$(tail -n 3 "$OUTPUT/$name.log" | tr '\n"\\' '   ' | cut -c1-600)
  tail -n 3 "$OUTPUT/$name.log"
  echo "[$name] $status in $((SECONDS - start)) s"
  [ $FIRST = 1 ] && FIRST=0 || echo "," >> "$SHELL_JSON.tmp"
  printf '{"step": "%s", "status": "%s", "wall_s": %d, "error": "%s"}\n' \
    "$name" "$status" "$((SECONDS - start))" "$error" >> "$SHELL_JSON.tmp"
}

have_everything() {
  "$PY" - <<'PY'
import importlib, sys
for name in ("jax", "flax", "optax", "ml_collections", "h5py", "PIL", "torch"):
    importlib.import_module(name)
import jax
sys.exit(0 if jax.default_backend() == "gpu" else 1)
PY
}

install() {
  if [ -d .whl ]; then  # wheels carried to a machine without PyPI
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/gpu_check_site .whl/*.whl || return 1
  fi
  if have_everything; then echo "everything needed is installed"; return 0; fi
  "$PY" -m pip install -q -e ".[cuda,torch]"
}

gpu_tests() {  # the `gpu` marker across the suite; none collected (exit 5) is not a failure
  "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/
  local rc=$?
  [ $rc = 5 ] && return 0 || return $rc
}

export PY DRY
export -f have_everything install gpu_tests
if [ "$DRY" = 1 ]; then
  step install 30 "$PY" -c "import jax, flax, optax, ml_collections, h5py, torch; print('dry run, no install; backend', jax.default_backend())"
else
  step install 90 install
fi
step lowering_tests 60 "$PY" -m pytest -q -p no:cacheprovider tests/test_lowering.py
step gpu_tests 45 gpu_tests
echo "]" >> "$SHELL_JSON.tmp"
mv "$SHELL_JSON.tmp" "$SHELL_JSON"
ARGS=(--output "$OUTPUT" --shell-json "$SHELL_JSON")
[ "$DRY" = 1 ] && ARGS+=(--dry-run)
# shellcheck disable=SC2086
"$PY" scripts/gpu_check.py "${ARGS[@]}" ${GPU_CHECK_STEPS:+--steps $GPU_CHECK_STEPS}
