"""Convert the original PhaseNet weights (TensorFlow variables as numpy arrays) to
``model_weights/phasenet_original.pt`` with its model card and licence text.

Run from the repository root::

    .venv/bin/python benchmarks/convert_phasenet.py [--source ../shared/models/phasenet_original]

(``FIRSTMOTION_SHARED`` names the shared folder when it is not ``../shared``.)

Checks the port on the reference pair first (TensorFlow's output of the original graph for the
reference input's first 3,000 samples): the largest absolute difference is written into the
card, and the conversion stops if it exceeds 1e-5. Also records, for a fixed pseudo-random
input, the converted network's output at a few samples (``self_check`` in the card), so a test
can verify the shipped ``.pt`` without the reference files. Keeps the card's ``metrics``,
``operating`` and ``thresholds`` from an earlier conversion (``benchmarks/bench_picker.py``
measures them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from stream.phasenet import LABELS, from_tf_variables, self_check_input

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FIRSTMOTION_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "model_weights"
NAME = "phasenet_original"
SELF_CHECK_SAMPLES = [0, 1, 100, 1499, 1500, 2999]


def reference_difference(model: torch.nn.Module, source: Path) -> float:
    """Largest absolute difference from TensorFlow's output on the reference pair."""
    x = np.load(source / "reference_input.npy")[:, :3000, 0, :].transpose(0, 2, 1)
    y = np.load(source / "reference_output.npy")
    with torch.no_grad():
        p = model(torch.from_numpy(np.ascontiguousarray(x)))[0].numpy().T
    return float(np.abs(p - y).max())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=str(SHARED / "models/phasenet_original"))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    source, out = Path(args.source), Path(args.out)
    model = from_tf_variables(str(source / "variables.npz"))
    diff = reference_difference(model, source)
    print(f"max |port - TensorFlow| on the reference pair: {diff:.3g}")
    if diff > 1e-5:
        raise SystemExit("the port does not reproduce the reference output")
    out.mkdir(parents=True, exist_ok=True)
    pt = out / f"{NAME}.pt"
    torch.save(model.state_dict(), pt)
    shutil.copyfile(source / "LICENSE", out / f"{NAME}.LICENSE")
    with torch.no_grad():
        check = model(torch.from_numpy(self_check_input()))[0].numpy()
    card_path = out / f"{NAME}.json"
    old = json.loads(card_path.read_text()) if card_path.exists() else {}
    card = {
        "format_version": 1,
        "name": NAME,
        "description": "PhaseNet P/S phase picker (Zhu & Beroza 2019), original weights",
        "min_firstmotion_version": "0.1.0",
        "architecture": {
            "class": "PhaseNet",
            "args": {
                "in_channels": 3,
                "classes": 3,
                "depth": 5,
                "filters_root": 8,
                "kernel_size": 7,
                "stride": 4,
            },  # fmt: skip
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
            "padding": "TensorFlow 'same' (asymmetric), skip concatenation [skip, cropped up]",
            "batch_norm_eps": 1e-3,
        },
        "labels": list(LABELS),
        "preprocessing": {
            "sampling_rate_hz": 100.0,
            "components": ["E", "N", "Z"],
            "window_samples": 3000,
            "normalisation": "per window and channel: zero mean, unit standard deviation",
        },
        "thresholds": old.get("thresholds", {"P": 0.3, "S": 0.3}),
        "source": {
            "repository": "https://github.com/AI4EPS/PhaseNet",
            "commit": "62005c6195638f88d077f8870ea895971062715a",
            "folder": "model/190703-214543 (TensorFlow 1 checkpoint model_95.ckpt)",
            "training_data": "Northern California Earthquake Data Center, 100 Hz, 3 components",
            "paper": "Zhu & Beroza (2019), GJI 216(1), 261-273, doi:10.1093/gji/ggy423",
        },
        "licence": {
            "name": "MIT",
            "file": f"{NAME}.LICENSE",
            "text": (source / "LICENSE").read_text(),
        },
        "conversion": {
            "command": "python benchmarks/convert_phasenet.py",
            "from": "variables.npz (TF variables; kernels (kh, kw, in, out), transposed "
            "convolutions (kh, kw, out, in)) -> torch (out, in, k) / (in, out, k)",
            "reference_max_abs_difference": diff,
            "reference": "reference_input.npy[:, :3000] -> reference_output.npy (TensorFlow)",
        },
        "self_check": {
            "input": "stream.phasenet.self_check_input()",
            "samples": SELF_CHECK_SAMPLES,
            "probabilities": check[:, SELF_CHECK_SAMPLES].T.round(7).tolist(),
            "column_sums": check.sum(axis=1).round(4).tolist(),
        },
        "torch_version": torch.__version__,
        "weights_sha256": hashlib.sha256(pt.read_bytes()).hexdigest(),
        "operating": old.get("operating", {}),
        "metrics": old.get("metrics", {}),
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {pt}, {card_path}, {out / (NAME + '.LICENSE')}")


if __name__ == "__main__":
    main()
