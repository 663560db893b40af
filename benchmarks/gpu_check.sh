#!/usr/bin/env bash
# The GPU check (issue 19): every test marked gpu, then the GPU sections of the benchmarks,
# one Markdown report, in one call of under 8 minutes. Made for a lent GPU machine that gets
# a copy of the working tree and has no network: it installs nothing from the network, and
# it stops at once, non-zero, where torch sees no CUDA device.
#
#   bash benchmarks/gpu_check.sh            # the report: $OUT/gpu_report.md if OUT is set,
#                                           # else benchmarks/results/gpu_report.md
#   bash benchmarks/gpu_check.sh --quick    # smaller sizes, no torch.compile (a short rerun)
#   bash benchmarks/gpu_check.sh --publish  # also put the report into docs/benchmarks.md
#   bash benchmarks/gpu_check.sh --wheels   # NOT on the GPU machine: with network, download
#                                           # into .whl/ the wheels of what its python lacks
#
# Environment: PYTHON (default: .venv/bin/python where it exists, else python3: on the lent
# machines the image's python3 holds torch and Triton, and `make setup` cannot run there, it
# downloads), GPU_CHECK_BUDGET (seconds for the whole check, default 450),
# GPU_CHECK_BENCHMARKS (default fps,knn,patchify,tokenize_points,embed), GPU_CHECK_WHEELS
# (default .whl), GPU_PYTHON_VERSION (for --wheels, default 3.12: the lent machines' python).
# Exit status: 0 all ran (a FAILed goal is a finding, not an error), 1 a test failed or a
# benchmark did not run through, 2 no CUDA, 3 a package is missing.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
STARTED=$SECONDS
BUDGET="${GPU_CHECK_BUDGET:-450}"
BENCHMARKS="${GPU_CHECK_BENCHMARKS:-fps,knn,patchify,tokenize_points,embed}"
WHEELS="${GPU_CHECK_WHEELS:-$ROOT/.whl}"
# What the check imports beyond the standard library, as import names
NEEDED_MODULES="torch triton numpy numba scipy timm safetensors PIL zarr numcodecs soundfile typer h5py tqdm pytest"
# Distributions mmtok needs that the lent machines' image lacks (see
# /work/.library/device/KINDS.md's package list), with what they need in turn
WHEEL_PACKAGES="zarr numcodecs donfig google-crc32c soundfile cffi pycparser"

say() { printf 'gpu_check: %s\n' "$*" >&2; }

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
  elif [ -x "$ROOT/.venv/bin/python" ]; then echo "$ROOT/.venv/bin/python"
  else command -v python3 || echo python3
  fi
}

download_wheels() {
  # Versions are this machine's (the ones mmtok is tested with); binaries for the GPU
  # machine's python and processor (x86-64 manylinux), no dependencies resolved: the list
  # names them all.
  local py version pkg installed specs=()
  py="$(pick_python)"
  version="${GPU_PYTHON_VERSION:-3.12}"
  for pkg in $WHEEL_PACKAGES; do
    installed="$("$py" -c "import importlib.metadata as m; print(m.version('$pkg'))")" || {
      say "$pkg is not installed for $py: run make setup first"; exit 3; }
    specs+=("$pkg==$installed")
  done
  mkdir -p "$WHEELS"
  "$py" -m pip download --no-deps --only-binary=:all: --python-version "$version" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$WHEELS" "${specs[@]}" || exit 3
  say "wheels in $WHEELS ($(du -sh "$WHEELS" | cut -f1)); name it in the device call's carry"
}

QUICK=() PUBLISH=()
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=(--quick) ;;
    --publish) PUBLISH=(--publish) ;;
    --wheels) download_wheels; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) say "unknown option $arg"; usage >&2; exit 64 ;;
  esac
done

PY="$(pick_python)"
# 1. CUDA, first and fast: without it there is nothing to check
if ! probe="$(timeout 120 "$PY" -c '
import sys
try:
    import torch
except ImportError as exc:
    print(f"torch cannot be imported ({exc})"); sys.exit(1)
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} sees no CUDA device"); sys.exit(1)
print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
' 2>&1)"; then
  say "${probe:-$PY did not answer}"
  say "no CUDA here ($PY): this check needs a GPU machine; nothing was run"
  exit 2
fi
say "GPU: $probe (python: $PY)"

# 2. packages: the image's python lacks some of mmtok's; carried wheels fill them in
missing_modules() {
  "$PY" -c '
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))' $NEEDED_MODULES
}
missing="$(missing_modules)"
if [ -n "$missing" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  site="${TMPDIR:-/tmp}/mmtok-gpu-check-site"
  say "missing $missing: installing the wheels in $WHEELS into $site (no network)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$WHEELS"/*.whl || { say "installing the wheels failed"; exit 3; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  missing="$(missing_modules)"
fi
if [ -n "$missing" ]; then
  say "missing Python packages: $missing"
  say "on a machine with pip run 'bash benchmarks/gpu_check.sh --wheels' (it fills .whl/),"
  say "then send .whl with the working tree (the device call's carry)"
  exit 3
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # mmtok from this checkout
export PYTHONUNBUFFERED=1

# 3. the tests marked gpu, then the GPU sections, inside what is left of the budget
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$ROOT/benchmarks/results/gpu-$STAMP"
mkdir -p "$RESULTS"
LEFT=$((BUDGET - (SECONDS - STARTED) - 15))  # 15 s for copying the report out
"$PY" benchmarks/report.py --gpu-only --gpu-tests --only "$BENCHMARKS" \
  --results-dir "$RESULTS" --budget "$LEFT" --timeout 300 ${QUICK[@]+"${QUICK[@]}"} \
  ${PUBLISH[@]+"${PUBLISH[@]}"} \
  2>&1 | tee "$RESULTS/gpu_check.log"
status=${PIPESTATUS[0]}

# 4. one report where it is wanted; with OUT, the logs too (few files: OUT takes at most 8)
report="$(ls "$RESULTS"/report-*.md 2>/dev/null | head -n 1)"
if [ -z "$report" ]; then
  say "report.py wrote no report (exit $status); its output is in $RESULTS/gpu_check.log"
  [ -n "${OUT:-}" ] && cp "$RESULTS/gpu_check.log" "$OUT/"
  exit 1
fi
if [ -n "${OUT:-}" ]; then
  destination="$OUT/gpu_report.md"
  tar -czf "$OUT/gpu_results.tar.gz" -C "$RESULTS" .
else
  destination="$ROOT/benchmarks/results/gpu_report.md"
fi
cp "$report" "$destination"
echo
# the summary and the goals last, where a short output tail still shows them
awk '/^## /{shown = ($0 ~ /^## (Summary|Goals)$/)} shown' "$destination"
say "report: $destination; results and logs: $RESULTS; $((SECONDS - STARTED)) s in all"
exit "$status"
