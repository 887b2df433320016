#!/usr/bin/env bash
# Create benchmarks/.venv-skhash with SKHASH 1.1.5, the reference HASH implementation used by
# benchmarks/bench_mechanism.py. SKHASH pins numpy<2, so it lives in its own virtualenv and
# never constrains the project's numpy. Idempotent; prints the venv's python on success.
#   usage: benchmarks/skhash_env.sh            (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-skhash"
bash "$here/side_venv.sh" "$venv" "SKHASH, numpy, pandas" "skhash==1.1.5" "numpy<2" "pandas"
echo "$venv/bin/python"
