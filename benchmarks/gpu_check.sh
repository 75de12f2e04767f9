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

timeout 240 python -m pytest tests -q -x -p no:cacheprovider >"$OUT/tests.log" 2>&1
echo "tests exit $?" >>"$OUT/tests.log"
tail -n 3 "$OUT/tests.log"

timeout 300 python -m benchmarks --json "$OUT/bench.json" --markdown "$OUT/bench.md" >"$OUT/bench.log" 2>"$OUT/bench.err"
echo "benchmarks exit $?" >>"$OUT/bench.log"
tail -n 60 "$OUT/bench.log"
