#!/usr/bin/env bash
# The GPU figures in one run, each with its CPU baseline measured in the same process:
# polarity network and classify(), the polarity worker through a real Redis, the learned
# picker's capacity. Usage (repository root): bash benchmarks/gpu_benchmarks.sh OUTDIR
set -uo pipefail
out=${1:-benchmarks/out}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
nvidia-smi -L 2>/dev/null || true
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
echo "== polarity classify() and network, CPU 2 threads vs CUDA"
timeout 150 "$py" benchmarks/bench_polarity.py --threads 2 --repeats 10 2>&1 | tee "$out/bench_polarity.txt"
echo "== learned picker capacity, one CPU core vs one GPU"
timeout 200 "$py" benchmarks/bench_picker_capacity.py --cpu-stations 150 --gpu-stations ${GPU_STATIONS:-3000} \
  --seconds 30 --batch 256 2>&1 | tee "$out/bench_picker_capacity.txt"
echo "== polarity worker through a real Redis, CPU vs CUDA"
timeout 200 "$py" benchmarks/bench_polarity_worker.py --n ${CPU_PICKS:-20000} --n-gpu ${GPU_PICKS:-50000} \
  2>&1 | tee "$out/bench_polarity_worker.txt"
