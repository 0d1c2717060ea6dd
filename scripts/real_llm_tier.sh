#!/usr/bin/env bash
# Real-LLM CI tier: prepares llama-server and the verified Qwen2.5-Coder-0.5B GGUF, then runs
# the tests marked real_llm against them. Run it after the main tests, in the project's
# virtual environment. Both artefacts are cached under $GOME_CACHE (default
# ~/.cache/gome-agent), so on the same machine only the first run compiles (about 5-6 min on
# 2 cores) and downloads (0.5 GB); later runs only re-verify them.
set -euo pipefail
cd "$(dirname "$0")/.."

export GOME_CACHE="${GOME_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gome-agent}"
PREPARE_TIMEOUT_S="${PREPARE_TIMEOUT_S:-1500}"
TEST_TIMEOUT_S="${TEST_TIMEOUT_S:-1500}"

t0=$(date +%s)
echo "real-LLM tier: preparing the local model in $GOME_CACHE"
timeout "$PREPARE_TIMEOUT_S" python - <<'PY'
import logging

from gome_agent.llm.local import prepare_local_llm

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
binary, gguf = prepare_local_llm()
print(f"llama-server: {binary}\nmodel: {gguf}")
PY
t1=$(date +%s)
echo "real-LLM tier: prepared in $((t1 - t0)) s"

export GOME_TIER_REPORT="${GOME_TIER_REPORT:-$(mktemp)}"
# GOME_TIER_KEEP=<folder>: the run's folder is copied there (events, llm_calls.jsonl, code, report).
timeout "$TEST_TIMEOUT_S" python -m pytest -m real_llm -q
echo "real-LLM tier: $(cat "$GOME_TIER_REPORT" 2>/dev/null || echo 'no run summary written')"
t2=$(date +%s)
echo "real-LLM tier: tests took $((t2 - t1)) s; whole tier $((t2 - t0)) s"
