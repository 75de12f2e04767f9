#!/usr/bin/env bash
# On a GPU machine: the benchmarks and the tests on compiled Triton kernels, in parts.
# Writes benchmarks/results/<card>-<date>.json (and its PNGs) and the GPU section of benchmarks/RESULTS.md; logs go
# to LOGDIR. Installs nothing from the network (the machine brings torch, triton, pytest and pytest-benchmark).
# Exits non-zero when a test fails or a benchmark run fails.
# Usage: bash benchmarks/gpu_check.sh [LOGDIR] [PART ...]      (default /tmp/fastgan-gpu-check, every part)
# Parts, in the default order (what matters most first), with their time limits:
#   launch 60 s (host cost of fastgan's launch-bound calls against the code they replace, with the CUDA runtime
#   calls and the Python profile of each op), dropin 90 s (the drop-in penalty rows), steps 180 s (every whole-step
#   row, fp32 and bf16, eager and graph modes), gpu-tests 150 s (the kernels, capture, determinism, host syncs),
#   steps-compile 240 s (the compiled providers of the main step rows), gpu-tests-slow 200 s (compile and graph
#   modes against eager, the zoo, two processes on one GPU), parity 120 s, nccl 60 s, ops 180 s, r1 120 s (exact
#   against approximate R1, same critic), augment 120 s (DiffAugment fused against the reference, 64-256 px),
#   suite 300 s, profile 150 s (where the DCGAN and SN ResNet bf16 critic steps' device time goes, per provider,
#   cudnn.benchmark off and on); fid 420 s (not in the default list: it needs files that do not fit one call's
#   64 MiB, see below).
# The GPU tests run on pytest-xdist workers where the machine has it (several processes share the GPU).
# A 15-minute lease fits two calls: `launch dropin steps gpu-tests` (at most 8 minutes with the install), then
# `steps-compile gpu-tests-slow` (at most 7.5); the other parts go to a later lease (`profile r1 augment parity`
# first: issue 33's profile of the image steps).
# The fid part (time to FID on Lucic et al.'s protocol, the reference loop against fastgan's steps, 15,625 critic
# updates each and FID on 10,000 images) reads the FID network from $FID_WEIGHTS (default .data/inception-fp16.pt,
# written here by `python tools/fid_network_fp16.py default_1.pt .data/inception-fp16.pt`, 44 MB) and
# Fashion-MNIST from $FASHION_ROOT (default .data/fashion-mnist, the four .gz files, 30 MB): carry .data/inception-
# fp16.pt with the first call and .data/fashion-mnist with the second (a warm machine keeps the first). It takes
# the second call: `fid gpu-tests`. Set GPU_CHECK_EARLIER to a folder holding an earlier
# call's JSON files so that this call's report keeps them.
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-/tmp/fastgan-gpu-check}
shift || true
PARTS=${*:-launch dropin steps gpu-tests steps-compile gpu-tests-slow profile parity nccl ops r1 augment suite}
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
gpu_workers=""
python -c "import xdist" 2>/dev/null && workers="-n 12 -p no:benchmark" && gpu_workers="-n 4 -p no:benchmark"
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

bench() {  # name, time limit, runner arguments...: python -m benchmarks, its JSON written after every case
  local name=$1 limit=$2; shift 2
  step "benchmarks: $name"
  timeout "$limit" python -m benchmarks "$@" --json "$LOG/bench-$name.json" >"$LOG/bench-$name.log" \
    2>"$LOG/bench-$name.err"
  case $? in
    0) ;;
    124) step "benchmarks $name stopped by their time limit (the cases done are kept)" ;;
    *) step "benchmarks $name FAILED"; tail -n 5 "$LOG/bench-$name.err"; status=1 ;;
  esac
}

for part in $PARTS; do
  case $part in
    launch)
      step "launch cost: fastgan's launch-bound calls against the code they replace (host time, runtime calls)"
      timeout 60 python -m benchmarks.launch_cost --profile --json "$LOG/launch.json" >"$LOG/launch.log" 2>&1 \
        || { step "launch cost FAILED"; status=1; }
      cat "$LOG/launch.log" ;;
    dropin)  # the drop-in penalty in a user's loop: the gp steps and the critic iterations
      bench dropin 90 --no-compile --only "gp step" --only "critic iteration" ;;
    steps)  # every whole-step row (all batches, fp32 and bf16) without compiling: seed, eager, graph
      bench steps-nocompile 180 --no-compile --only "critic step" --only "iteration (" --exclude "critic iteration" ;;
    steps-compile)  # the compiled providers of the main rows (tens of seconds each to compile)
      bench steps 240 --providers compile --only "critic step (reference mlp)" --only "critic step (dcgan 64) 64x" \
        --only "critic step (sn resnet 128)" --only "critic steps x16" --only "iteration (reference mlp)" ;;
    gpu-tests)  # the compiled kernels: bitwise repeatability, direct launches, capture of every op, host syncs
      run_tests gpu 150 tests/gpu/test_gpu.py -q -rs $gpu_workers -k "not (modes_train or two_processes or zoo)" ;;
    gpu-tests-slow)  # graph, compile and compile+graph against eager (bf16 too), the zoo, two processes on one GPU
      run_tests gpu-slow 200 tests/gpu/test_gpu.py -q -rs $gpu_workers -k "modes_train or two_processes or zoo" ;;
    suite)
      # -v: a run stopped by its time limit still names the tests that failed before it.
      run_tests suite 300 tests --ignore=tests/gpu $workers -v --durations=15 ;;
    nccl)
      step "fastgan train on one NCCL process (torchrun)"
      timeout 60 python -m benchmarks.distributed --processes 1 --steps 300 --device cuda --json "$LOG/nccl.json" \
        >"$LOG/nccl.log" 2>&1 || { step "one-process NCCL run FAILED"; tail -n 5 "$LOG/nccl.log"; status=1; } ;;
    ops)  # the single ops at every size, then their small sizes with torch.compile beside them
      bench ops 100 --no-compile --only interpolation --only penalty --only clipping --only losses
      bench ops-compile 80 --quick --only interpolation --only penalty --only clipping --only losses ;;
    fid)  # time to FID: WGAN-GP on the whole protocol, the reference loop, then fastgan in auto mode (graph)
      step "time to FID: the reference loop against fastgan, 15,625 critic updates, FID on 10,000 images"
      timeout 420 python -m benchmarks.time_to_fid --device cuda --steps 3125 --evals 4 --fid 10000 \
        --fid-weights "${FID_WEIGHTS:-.data/inception-fp16.pt}" --data-root "${FASHION_ROOT:-.data/fashion-mnist}" \
        --out "$LOG/time_to_fid" >"$LOG/time_to_fid.log" 2>&1 \
        || { step "time to FID FAILED"; tail -n 5 "$LOG/time_to_fid.log"; status=1; }
      tail -n 1 "$LOG/time_to_fid.log" ;;
    r1)  # what R1 costs a critic step: exact (double backward) against approximate (one more forward)
      step "R1 exact against approximate, same critic, eager and compile"
      timeout 120 python -m benchmarks.r1_cost --device cuda --out "$LOG/r1_cost.json" >"$LOG/r1_cost.log" 2>&1 \
        || { step "r1 cost FAILED"; tail -n 5 "$LOG/r1_cost.log"; status=1; }
      cat "$LOG/r1_cost.log" ;;
    profile)  # the image critic steps in bf16: top kernels, their kinds, the device's busy share, cudnn.benchmark
      step "step profile: DCGAN and SN ResNet 128 critic steps, bf16, per provider, cudnn.benchmark off and on"
      timeout 150 python -m benchmarks.step_profile --device cuda --out benchmarks/results \
        >"$LOG/step_profile.log" 2>&1 || { step "step profile FAILED"; tail -n 5 "$LOG/step_profile.log"; status=1; }
      grep -E "^(\||[a-z])" "$LOG/step_profile.log" ;;
    augment)  # DiffAugment: the fused kernels against the reference and the compiled reference, 64-256 px b64
      step "augmentation, forward and backward, fp32 and bf16"
      timeout 120 python -m benchmarks.augment_cost --device cuda --out "$LOG/augment_cost.json" \
        >"$LOG/augment_cost.log" 2>&1 || { step "augment cost FAILED"; tail -n 5 "$LOG/augment_cost.log"; status=1; }
      cat "$LOG/augment_cost.log" ;;
    parity)  # graph mode's parameters after 10 steps against eager's and a float64 run's (every penalty)
      step "parity: graph mode against eager and float64"
      timeout 120 python -m benchmarks.parity --modes graph --device cuda --json "$LOG/parity.json" \
        >"$LOG/parity.log" 2>&1 || { step "parity FAILED"; tail -n 5 "$LOG/parity.log"; status=1; }
      grep -E "^\| (reference|dcgan)" "$LOG/parity.log" ;;
    *) echo "unknown part: $part" >&2; exit 2 ;;
  esac
done

inputs=""  # the all-sizes run first (its machine and order lead); the steps with every provider before those without
for f in bench-ops bench-ops-compile bench-dropin bench-steps bench-steps-nocompile; do
  [ -f "$LOG/$f.json" ] && inputs="$inputs $LOG/$f.json"
done
if [ -n "$inputs" ] && [ -n "${GPU_CHECK_EARLIER:-}" ]; then  # an earlier call's rows fill what this one lacks
  for f in "$GPU_CHECK_EARLIER"/*.json; do [ -f "$f" ] && inputs="$inputs $f"; done
fi
if [ -n "$inputs" ]; then
  launch=""
  [ -f "$LOG/launch.json" ] && launch="--launch $LOG/launch.json"
  python -m benchmarks.report $inputs $launch --out-dir benchmarks/results --results-md benchmarks/RESULTS.md \
    --tests "${tests_line:-tests not run in this call}"
  sed -n '/gpu-results:begin/,/gpu-results:end/p' benchmarks/RESULTS.md | grep -E "critic step|iteration|^###"
fi
step "done: ${tests_line:-no tests}; exit $status"
exit $status
