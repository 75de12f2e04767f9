#!/usr/bin/env bash
# On a GPU machine: the test suite with compiled Triton, then the benchmark runner; logs and JSON under $OUT.
# Installs nothing from the network (the machine brings torch, triton, pytest and pytest-benchmark).
# Usage: OUT=/some/dir bash benchmarks/gpu_check.sh   (about 8 minutes at most on an H100)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/latest}
mkdir -p "$OUT"
unset TRITON_INTERPRET

# Make `import fastgan` (with kernels/ as fastgan.kernels) work without the network.
if ! python -m pip install --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1; then
  site=$(mktemp -d)
  cp -r fastgan "$site/fastgan" && ln -s "$PWD/kernels" "$site/fastgan/kernels"
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  echo "pip install failed; using PYTHONPATH=$site" >>"$OUT/install.log"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())" >>"$OUT/gpu.txt" 2>&1

# Compiled kernels: every dtype and flag combination compiles once (most of this step's time).
timeout 270 python -m pytest tests -q -p no:cacheprovider >"$OUT/tests.log" 2>&1
echo "tests exit $?" >>"$OUT/tests.log"
tail -n 15 "$OUT/tests.log"

# All sizes up to hundreds of MB, without torch.compile (each compilation takes seconds) ...
timeout 150 python -m benchmarks --no-compile --json "$OUT/bench.json" --markdown "$OUT/bench.md" \
  >"$OUT/bench.log" 2>"$OUT/bench.err"
echo "benchmarks exit $?" >>"$OUT/bench.log"
tail -n 70 "$OUT/bench.log"
# ... then torch.compile beside the others at the small sizes, where launch overhead decides.
timeout 90 python -m benchmarks --quick --json "$OUT/bench-compile.json" --markdown "$OUT/bench-compile.md" \
  >"$OUT/bench-compile.log" 2>"$OUT/bench-compile.err"
echo "compile benchmarks exit $?" >>"$OUT/bench-compile.log"
tail -n 50 "$OUT/bench-compile.log"
