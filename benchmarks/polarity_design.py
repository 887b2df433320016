"""Polarity model design study: the published window lengths, trained and measured alike.

Run from the repository root (about 20 minutes on 2 cores)::

    .venv/bin/python benchmarks/polarity_design.py [--n-train 150000] [--steps 12000]

Each candidate is the shipped network (:class:`workers.polarity.model.PolarityCNN`, same
preprocessing, same training data generator and seed) with the window of a published design,
at 100 Hz, centred on the pick:

* ``64`` samples (32 + 32): PolarCAP (Chakraborty et al. 2022);
* ``128`` (64 + 64): DiTingMotion (Zhao et al. 2023), the shipped window;
* ``160`` (80 + 80): CFM (Messuti et al. 2023);
* ``400`` (200 + 200): Ross et al. (2018), 4 s.

Every candidate gets the same budget (``--n-train`` windows, ``--steps`` optimiser steps: a
quarter of the shipped model's, so that the study fits in one sitting; the ranking, not the
absolute figures, is the result) through ``firstmotion polarity train``, and is then measured
as ``firstmotion polarity eval`` measures the shipped model (hard mix with seed 1000, the
linear-phase FIR set, the TexNet analyst polarities) plus its model-only throughput at batch
256 in this run. Writes ``benchmarks/results/polarity_design.json`` and prints a Markdown table
(the README's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

CANDIDATES = (
    ("PolarCAP", 32, 32),
    ("DiTingMotion (shipped)", 64, 64),
    ("CFM", 80, 80),
    ("Ross et al. 2018", 200, 200),
)


def train(stem: Path, pre: int, post: int, args: argparse.Namespace) -> float:
    cmd = [
        sys.executable, "-m", "firstmotion.cli", "polarity", "train",
        "--out", str(stem), "--seed", "0", "--threads", str(args.threads),
        "--n-train", str(args.n_train), "--n-val", "5000", "--steps", str(args.steps),
        "--window-pre", str(pre), "--window-post", str(post),
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def model_windows_per_s(clf, n: int = 256, repeats: int = 5) -> float:
    shape = (n, clf.config.n_channels, clf.config.window_samples)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    clf.window_probabilities(x)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        clf.window_probabilities(x, batch_size=n)
        times.append(time.perf_counter() - t0)
    return n / float(np.median(times))


def measure(stem: Path, args: argparse.Namespace, real_noise: list, picks: list) -> dict:
    from workers.polarity.classifier import PolarityClassifier
    from workers.polarity.evaluate import evaluate_real_picks, evaluate_synthetic

    clf = PolarityClassifier.load(str(stem), device="cpu")
    syn = evaluate_synthetic(clf, args.n_eval, 1000, real_noise)
    tex = evaluate_real_picks(clf, picks) if picks else None
    by_snr = syn["updown_by_snr"]
    return {
        "window_samples": clf.config.window_samples,
        "updown_accuracy_snr_ge_5": syn["updown_accuracy_snr_ge_5"],
        "accuracy_snr_2_3": by_snr.get("2-3", {}).get("accuracy"),
        "accuracy_snr_3_5": by_snr.get("3-5", {}).get("accuracy"),
        "noise_only_unknown_rate": syn["noise_only_unknown_rate"],
        "mispicked_unknown_rate": syn["mispicked_unknown_rate"],
        "fir_100hz_wrong_sign": syn["linear_phase_fir"]["100hz"]["wrong_sign"],
        "ece": syn["ece"],
        "texnet_right": tex["n_correct"] if tex else None,
        "texnet_wrong": (
            sum(1 for p in tex["picks"] if p["model"] == -p["analyst"]) if tex else None
        ),
        "model_windows_per_s": model_windows_per_s(clf),
    }


def markdown(rows: list[dict]) -> str:
    out = [
        "| window (design) | SNR >= 5 | SNR 2-3 / 3-5 | noise -> unknown | mispick -> unknown "
        "| FIR 100 Hz wrong | ECE | TexNet right/wrong | model windows/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["metrics"]
        out.append(
            f"| {m['window_samples']} ({r['design']}) | {m['updown_accuracy_snr_ge_5']:.1%} "
            f"| {m['accuracy_snr_2_3']:.0%} / {m['accuracy_snr_3_5']:.1%} "
            f"| {m['noise_only_unknown_rate']:.1%} | {m['mispicked_unknown_rate']:.1%} "
            f"| {m['fir_100hz_wrong_sign']:.2%} | {m['ece']:.3f} "
            f"| {m['texnet_right']}/{m['texnet_wrong']} | {m['model_windows_per_s']:,.0f} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=150_000)
    parser.add_argument("--steps", type=int, default=12_000)
    parser.add_argument("--n-eval", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="/tmp/firstmotion_polarity_design", help="weights")
    parser.add_argument("--out", default="benchmarks/results/polarity_design.json")
    parser.add_argument(
        "--windows",
        default=None,
        help="other candidates instead of the published ones, e.g. '200:100,64:200' (pre:post)",
    )
    args = parser.parse_args()
    candidates = CANDIDATES
    if args.windows:
        pairs = [w.split(":") for w in args.windows.split(",")]
        candidates = tuple((f"{a} + {b}", int(a), int(b)) for a, b in pairs)
    torch.set_num_threads(args.threads)

    from workers.polarity.dataset import load_real_noise, shared_data_dir
    from workers.polarity.evaluate import load_texnet_polarities

    data_dir = shared_data_dir()
    real_noise = load_real_noise(data_dir) if data_dir.exists() else []
    picks = load_texnet_polarities(data_dir) if data_dir.exists() else []
    work = Path(args.work)
    rows = []
    for design, pre, post in candidates:
        stem = work / f"design_{pre}_{post}"
        wall = train(stem, pre, post, args)
        rows.append(
            {
                "design": design,
                "window_pre": pre,
                "window_post": post,
                "train_wall_s": round(wall, 1),
                "metrics": measure(stem, args, real_noise, picks),
            }
        )
        print(markdown(rows), flush=True)
    doc = {
        "command": (
            f"python benchmarks/polarity_design.py --n-train {args.n_train} "
            f"--steps {args.steps} --n-eval {args.n_eval} --threads {args.threads}"
            + (f" --windows {args.windows}" if args.windows else "")
        ),
        "torch": torch.__version__,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
