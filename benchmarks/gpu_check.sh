#!/usr/bin/env bash
# One prepared GPU check: the GPU tests, then the throughput benchmark.
# Run from the repository root on a machine with an NVIDIA GPU and CuPy installed
# (pip install 'nmf-sched[gpu]' or cupy-cuda12x). Writes benchmarks/results/gpu.{json,md}
# and copies them (and the test log) to $OUT when that is set.
set -uo pipefail
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUTDIR=${OUT:-benchmarks/results}
mkdir -p "$OUTDIR"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" -c "import cupy; print('cupy', cupy.__version__, 'devices', cupy.cuda.runtime.getDeviceCount())" || {
    echo "CuPy or a CUDA device is missing: nothing to check"; exit 2; }
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
timeout 240 "$PY" -m pytest -q tests/test_gpu.py -rs 2>&1 | tee "$OUTDIR/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}
timeout 300 "$PY" benchmarks/bench_gpu.py "$@" 2>&1 | tee "$OUTDIR/gpu_bench.log"
bench_rc=${PIPESTATUS[0]}
[ "$OUTDIR" != benchmarks/results ] && cp -f benchmarks/results/gpu.json benchmarks/results/gpu.md "$OUTDIR"/ 2>/dev/null
echo "tests rc=$tests_rc bench rc=$bench_rc"
exit $(( tests_rc != 0 || bench_rc != 0 ))
