#!/usr/bin/env bash
# The prepared GPU check: scripts/gpu_check.py (numerical parity with the CPU, cuDNN attention against XLA's, and the
# MFU of the T5 v1.1 base and large train steps) on a machine with an NVIDIA GPU, in under 8 minutes all told.
#
#   bash scripts/gpu_check.sh              # the full check (needs an NVIDIA GPU)
#   bash scripts/gpu_check.sh --dry_run    # every check on the CPU at tiny sizes
#   bash scripts/gpu_check.sh --checks=mfu # arguments go to scripts/gpu_check.py
#
# Prints the machine (nvidia-smi, Python and package versions), picks a Python whose JAX sees the GPU ($PYTHON,
# else python3, else python), and writes the whole output to $OUT/gpu_check.log and every figure to
# $OUT/gpu_check.json ($OUT unset: /tmp/gpu_check/). The checks need jax with CUDA, flax, optax, numpy and
# ml_collections, and nothing of TensorFlow or SeqIO: the checkout goes on PYTHONPATH, no `pip install -e .`.
# Wheels carried in .whl/ are installed first, ahead of the machine's own packages (e.g. a pinned flax); a package
# still missing comes from the package index when it can be reached (bounded by timeouts); failing both, the
# script says what to carry. The machine's image of this workplace had no ml_collections: carry it.
# GPU_CHECK_TOTAL_S (default 470) bounds the whole run in seconds; the Python checks get what the header left.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${OUT:-/tmp/gpu_check}"
LOG="$DIR/gpu_check.log"
JSON="$DIR/gpu_check.json"
TOTAL_S="${GPU_CHECK_TOTAL_S:-470}"
SITE=/tmp/gpu_check_site  # where carried or missing packages go (never into the machine's own environment)
mkdir -p "$DIR"

export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"  # the checkout, then carried wheels, then the rest
export PYTHONUNBUFFERED=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.90}"  # JAX's default is 0.75
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-/tmp/gpu_check_xla_cache}"  # a rerun skips compiles
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-1}"

dry_run=0
for arg in "$@"; do
  [[ "$arg" == "--dry_run" ]] && dry_run=1
done

platform_of() {  # the platform of jax.devices()[0] under Python $1, or nothing when jax does not import
  "$1" -c 'import jax; print(jax.devices()[0].platform)' 2>/dev/null | tail -n 1 || true
}

pick_python() {  # sets PY (and PY_PLATFORM): the first candidate whose jax sees a GPU, else the first with jax
  PY=""
  PY_PLATFORM=""
  local first="" first_platform="" candidate platform
  for candidate in ${PYTHON:-} python3 python; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    platform="$(platform_of "$candidate")"
    [[ -z "$platform" ]] && continue
    [[ -z "$first" ]] && first="$candidate" && first_platform="$platform"
    if [[ "$platform" == "gpu" || "$dry_run" == 1 ]]; then
      PY="$candidate"
      PY_PLATFORM="$platform"
      return
    fi
  done
  PY="$first"
  PY_PLATFORM="$first_platform"
}

header() {
  echo "== gpu_check.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) ($(uname -m)), repo $REPO"
  echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv || true
    nvidia-smi || true
  else
    echo "nvidia-smi: not found"
  fi
  echo "CPU cores: $(nproc), memory: $(free -g 2>/dev/null | awk '/^Mem:/ {print $2 " GiB"}')"
  echo "XLA_PYTHON_CLIENT_MEM_FRACTION=$XLA_PYTHON_CLIENT_MEM_FRACTION XLA_FLAGS=${XLA_FLAGS:-} JAX_COMPILATION_CACHE_DIR=$JAX_COMPILATION_CACHE_DIR"
}

ensure_cuda_jax() {  # a GPU is there but this Python's jax has no CUDA backend: try the package index once
  echo "jax under $PY has no GPU backend; trying pip install 'jax[cuda12]' within setup.py's range (3 minutes at most)"
  if timeout 180 "$PY" -m pip install -q --retries 0 --timeout 15 "jax[cuda12]>=0.10.2,<0.12"; then
    [[ "$(platform_of "$PY")" == "gpu" ]] && return 0
    echo "FAIL: jax[cuda12] installed but jax still sees no GPU (driver/CUDA mismatch?); jax.devices():"
  else
    echo "FAIL: jax under $PY has no CUDA backend and 'pip install jax[cuda12]' failed (no package index here?)."
    echo "      Carry the wheels (jax-cuda12-plugin, jax-cuda12-pjrt and the nvidia-* CUDA wheels matching jax" \
      "$("$PY" -c 'import jax; print(jax.__version__)' 2>/dev/null)) in .whl/ and rerun."
  fi
  "$PY" -c 'import jax; print(jax.devices())' || true
  return 1
}

ensure_packages() {  # wheels carried in .whl/ first (over the machine's own), then what is still missing from the index
  local missing=() pip_names=() module
  declare -A pip_name=([flax]=flax [optax]=optax [numpy]=numpy [ml_collections]=ml-collections)
  if compgen -G "$REPO/.whl/*.whl" >/dev/null; then
    echo "installing the wheels carried in .whl/ into $SITE, ahead of the machine's own: $(cd "$REPO/.whl" && echo *.whl)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$REPO"/.whl/*.whl
  fi
  for module in flax optax numpy ml_collections; do
    "$PY" -c "import $module" 2>/dev/null || { missing+=("$module"); pip_names+=("${pip_name[$module]}"); }
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  echo "missing under $PY: ${missing[*]}; trying the package index (1 minute at most)"
  timeout 60 "$PY" -m pip install -q --retries 0 --timeout 15 --target "$SITE" "${pip_names[@]}" || true
  for module in "${missing[@]}"; do
    if ! "$PY" -c "import $module" 2>/dev/null; then
      echo "FAIL: $module cannot be imported under $PY, and neither .whl/ nor the package index provided it."
      echo "      Carry it: here, python3 -m pip download --no-deps --only-binary=:all: -d .whl ${pip_name[$module]}"
      echo "      (ml-collections is pure Python; it needs absl-py and PyYAML), ignore /.whl/ in .git/info/exclude,"
      echo "      and pass carry=['.whl'] to the device run."
      return 1
    fi
  done
}

versions() {
  "$PY" - <<'EOF'
import platform, sys
import jax
print(f"python {platform.python_version()} ({sys.executable})")
ranges = {"jax": ("0.10.2", "0.12"), "flax": ("0.12.8", "0.13"), "optax": ("0.2.8", "0.3")}  # setup.py's
key = lambda v: tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in v.split(".")[:3])
for name in ("jax", "jaxlib", "flax", "optax", "numpy", "ml_collections"):
    try:
        version = __import__(name).__version__
    except Exception as error:
        print(f"{name}: unavailable ({type(error).__name__})")
        continue
    low, high = ranges.get(name, (None, None))
    outside = low and not (key(low) <= key(version) < key(high))
    print(f"{name} {version}" + (f"  (outside setup.py's range >={low},<{high}: results may differ)" if outside else ""))
print("jax.devices():", jax.devices())
EOF
}

main() {
  header
  pick_python
  if [[ -z "$PY" ]]; then
    echo "FAIL: no Python with jax found (tried: ${PYTHON:-} python3 python); install the repo's dependencies first"
    return 3
  fi
  echo "python: $(command -v "$PY")"
  if [[ "$dry_run" == 0 && "$PY_PLATFORM" != "gpu" ]]; then
    if command -v nvidia-smi >/dev/null 2>&1; then
      ensure_cuda_jax || return 3
    else
      echo "FAIL: no NVIDIA GPU here (no nvidia-smi) and jax sees none; run 'bash scripts/gpu_check.sh --dry_run' for the CPU"
      return 3
    fi
  fi
  ensure_packages || return 3
  versions
  local left=$((TOTAL_S - SECONDS - 10))
  local budget=$((left - 25))  # the Python checks skip what would not end before this; the kill comes after
  echo "== scripts/gpu_check.py: budget ${budget} s, killed at ${left} s; figures to $JSON"
  local rc=0
  timeout --signal=TERM --kill-after=10 "$left" "$PY" "$REPO/scripts/gpu_check.py" --budget_s "$budget" \
    --json "$JSON" "$@" || rc=$?
  if [[ $rc == 124 || $rc == 137 ]]; then
    echo "gpu_check.py was stopped at its time limit (${left} s); $JSON holds the checks that finished"
  fi
  echo "== gpu_check.sh done in ${SECONDS} s (exit $rc); log $LOG, figures $JSON"
  return "$rc"
}

main "$@" 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
