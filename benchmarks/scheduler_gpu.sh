#!/usr/bin/env bash
# The multi-trace scheduler benchmark on a real NVIDIA GPU (issue #3), as recorded in docs/benchmarks.md.
# Needs the package importable (pip install -e ".[gpu]" or PYTHONPATH=repo root), PyTorch with CUDA,
# pandas and scikit-learn in the same interpreter. Writes its JSON to ${OUT:-.}/scheduler_gpu.json.
set -euo pipefail
out=${OUT:-.}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -m gome_agent bench scheduler --run-seconds "${RUN_SECONDS:-10}" --llm-delay "${LLM_DELAY:-10}" \
    --steps "${STEPS:-6}" --out "${WORK:-/tmp/gome-bench-scheduler}" > "$out/scheduler_gpu.json" 2> "$out/scheduler_gpu.log"
cat "$out/scheduler_gpu.json"
