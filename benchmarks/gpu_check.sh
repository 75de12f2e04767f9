#!/usr/bin/env bash
# On a GPU machine: the tests on compiled Triton kernels (GPU-only tests first), then the benchmarks.
# Writes benchmarks/results/<card>-<date>.json and the GPU section of benchmarks/RESULTS.md; logs go to LOGDIR.
# Installs nothing from the network (the machine brings torch, triton, pytest and pytest-benchmark).
# Exits non-zero when a test fails or a benchmark run fails.
# Usage: bash benchmarks/gpu_check.sh [LOGDIR] [PART ...]      (default /tmp/fastgan-gpu-check, every part)
# Parts, in the default order (the suite, the longest, last), with their time limits:
#   gpu-tests 240 s, steps 260 s, parity 120 s, nccl 60 s, ops 180 s, suite 300 s.
# A 15-minute lease fits two calls: `gpu-tests steps` (5.2 minutes on the H200 of 2026-11-27), then
# `parity nccl ops suite` (6.1 minutes there; the suite last, where a cut costs least); set GPU_CHECK_EARLIER to a
# folder holding the first call's JSON files so that the second call's report keeps them.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-/tmp/fastgan-gpu-check}
shift || true
PARTS=${*:-gpu-tests steps parity nccl ops suite}
mkdir -p "$LOG"
unset TRITON_INTERPRET
export PYTHONUNBUFFERED=1
step() { echo "[$(date +%H:%M:%S)] $*"; }
status=0
tests_line=""

# `import fastgan` with kernels/ as fastgan.kernels needs the package installed (python -m pip: the `pip` on the
# PATH there may belong to another Python).
python -m pip install --no-deps --no-build-isolation -e . >"$LOG/install.log" 2>&1 \
  || { echo "pip install -e . failed (see $LOG/install.log)"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$LOG/gpu.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$LOG/gpu.txt"
# Several pytest workers where pytest-xdist is there: the suite compiles every kernel variant once per worker.
workers=""
python -c "import xdist" 2>/dev/null && workers="-n 12 -p no:benchmark"
# The whole-step cases' models: the steps part runs their cases, the ops part every other case.
step_models=("(seed mlp)" "(dcgan 64)" "(pytorch-gan mlp)")
only_steps=(); no_steps=()
for m in "${step_models[@]}"; do only_steps+=(--only "$m"); no_steps+=(--exclude "$m"); done

run_tests() {  # name, time limit, pytest arguments...
  local name=$1 limit=$2; shift 2
  step "tests: $name"
  timeout "$limit" python -m pytest -p no:cacheprovider "$@" 2>&1 | tee "$LOG/tests-$name.log" \
    | grep -E "(^| )(FAILED|ERROR) |[0-9]+ (passed|failed)"
  local rc=${PIPESTATUS[0]}
  local line; line=$(grep -E "[0-9]+ (passed|failed)" "$LOG/tests-$name.log" | tail -n 1 | tr -d '=' | xargs)
  tests_line="${tests_line:+$tests_line; }$name: ${line:-no summary (exit $rc)}"
  [ "$rc" -eq 0 ] || { step "tests $name FAILED (exit $rc)"; status=1; }
}

for part in $PARTS; do
  case $part in
    gpu-tests)  # graph mode, compile mode on CUDA, CUDA-graph capture of every op, bitwise repeatability
      run_tests gpu 240 tests/test_gpu.py -q -rs ;;
    steps)
      # Whole steps as a user runs them (host included). Without compiling first (seconds), so that the seed,
      # eager and graph rows exist whatever happens next; then the compiled providers (tens of seconds each to
      # compile; the JSON is written after each case, and running out of time is not a failure here).
      step "benchmarks: whole critic steps and iterations, seed / eager / graph"
      timeout 70 python -m benchmarks "${only_steps[@]}" --no-compile --json "$LOG/bench-steps-nocompile.json" \
        >"$LOG/bench-steps-nocompile.log" 2>"$LOG/bench-steps-nocompile.err" \
        || { step "step benchmarks FAILED"; tail -n 5 "$LOG/bench-steps-nocompile.err"; status=1; }
      step "benchmarks: whole critic steps and iterations, compiled providers included"
      timeout 190 python -m benchmarks --quick --only "critic step (seed mlp)" --only "critic step (dcgan 64)" \
        --only "iteration (seed mlp)" --json "$LOG/bench-steps.json" >"$LOG/bench-steps.log" 2>"$LOG/bench-steps.err"
      tail -n 3 "$LOG/bench-steps.err" ;;
    suite)
      # -v: a run stopped by its time limit still names the tests that failed before it.
      run_tests suite 300 tests --ignore=tests/test_gpu.py $workers -v --durations=15 ;;
    nccl)
      step "fastgan train on one NCCL process (torchrun)"
      timeout 60 python -m benchmarks.distributed --processes 1 --steps 300 --device cuda --json "$LOG/nccl.json" \
        >"$LOG/nccl.log" 2>&1 || { step "one-process NCCL run FAILED"; tail -n 5 "$LOG/nccl.log"; status=1; } ;;
    ops)  # everything but the step part's models (the seed-size "critic iteration" rows included)
      step "benchmarks: single ops, every size, without torch.compile"
      timeout 100 python -m benchmarks --no-compile "${no_steps[@]}" \
        --json "$LOG/bench.json" >"$LOG/bench.log" 2>"$LOG/bench.err" \
        || { step "benchmarks FAILED"; tail -n 5 "$LOG/bench.err"; status=1; }
      # Compiling each case takes seconds; as in the steps part, the JSON keeps every case done before the limit.
      step "benchmarks: small sizes with torch.compile beside the others (ops)"
      timeout 80 python -m benchmarks --quick "${no_steps[@]}" \
        --json "$LOG/bench-compile.json" >"$LOG/bench-compile.log" 2>"$LOG/bench-compile.err"
      case $? in
        0) ;;
        124) step "compiled op benchmarks stopped by their time limit (the cases done are kept)" ;;
        *) step "compile benchmarks FAILED"; tail -n 5 "$LOG/bench-compile.err"; status=1 ;;
      esac ;;
    parity)  # graph mode's parameters after 10 steps against eager's and a float64 run's (every penalty)
      step "parity: graph mode against eager and float64"
      timeout 120 python -m benchmarks.parity --modes graph --device cuda --json "$LOG/parity.json" \
        >"$LOG/parity.log" 2>&1 || { step "parity FAILED"; tail -n 5 "$LOG/parity.log"; status=1; }
      grep -E "^\| (seed|dcgan)" "$LOG/parity.log" ;;
    *) echo "unknown part: $part" >&2; exit 2 ;;
  esac
done

inputs=""  # the all-sizes run first (its machine and order lead); the steps with every provider before those without
for f in bench bench-compile bench-steps bench-steps-nocompile; do
  [ -f "$LOG/$f.json" ] && inputs="$inputs $LOG/$f.json"
done
if [ -n "$inputs" ] && [ -n "${GPU_CHECK_EARLIER:-}" ]; then  # an earlier call's rows fill what this one lacks
  for f in "$GPU_CHECK_EARLIER"/*.json; do [ -f "$f" ] && inputs="$inputs $f"; done
fi
if [ -n "$inputs" ]; then
  python -m benchmarks.report $inputs --out-dir benchmarks/results --results-md benchmarks/RESULTS.md \
    --tests "${tests_line:-tests not run in this call}"
  sed -n '/gpu-results:begin/,/gpu-results:end/p' benchmarks/RESULTS.md | grep -E "critic step|iteration|^###"
fi
step "done: ${tests_line:-no tests}; exit $status"
exit $status
