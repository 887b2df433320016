#!/usr/bin/env bash
# Create benchmarks/.venv-skhash with SKHASH 1.1.5, the reference HASH implementation used by
# benchmarks/bench_mechanism.py. SKHASH pins numpy<2, so it lives in its own virtualenv and
# never constrains the project's numpy. Idempotent; prints the venv's python on success.
#   usage: benchmarks/skhash_env.sh            (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-skhash"
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import SKHASH, numpy, pandas" 2>/dev/null; then
    "$venv/bin/pip" install --quiet "skhash==1.1.5" "numpy<2" "pandas"
fi
echo "$venv/bin/python"
