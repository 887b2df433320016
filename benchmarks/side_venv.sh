#!/usr/bin/env bash
# A benchmark's side virtualenv, for a reference tool that pins what the project must not
# (SKHASH: numpy<2; TensorFlow). Creates DIR with $PYTHON (default python3) unless it holds a
# python already, and installs the SPECs there unless `import IMPORTS` already works. Idempotent.
#   usage: benchmarks/side_venv.sh DIR "IMPORTS" SPEC...
set -euo pipefail
venv="$1"
imports="$2"
shift 2
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import $imports" 2>/dev/null; then
    "$venv/bin/pip" install --quiet "$@"
fi
