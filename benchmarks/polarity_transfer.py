"""Polarity models on the demo's scenarios: a second generator of the same physics.

Run from the repository root::

    .venv/bin/python benchmarks/polarity_transfer.py --models model_weights/polarity_v3 OTHER \\
        [--seeds 11-22] [--n-events 10] [--duration-s 1200] [--json out.json]

The training sampler (:mod:`workers.polarity.dataset`) and the scenario generator
(:mod:`stream.scenario`: rays through a layered model, station sensors and noise, whole
records) draw on the same source physics but build their waveforms differently, so a model
that gains on the sampler's held-out set by fitting the sampler more closely can lose here.
For each seed the scenario of ``firstmotion demo --mode truth --seed S --n-events N
--duration-s D`` is built in memory, its vertical records are cut at every true P time plus the
demo's Laplacian pick error (20 ms, same draws as the demo) and every model reads the same
windows through the polarity worker's own batching (:func:`workers.polarity.worker.
classify_picks`). Prints right / wrong sign / unknown per seed and model, the totals, and the
windows where two models disagree (paired: which one was right). No Redis, no SeedLink.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stream.scenario import demo_truth_windows
from workers.polarity import PolarityClassifier
from workers.polarity.worker import classify_picks


def seeds_of(text: str) -> list[int]:
    """'11-22' or '7,11,12' -> list of seeds."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="model stems or names")
    parser.add_argument("--seeds", default="11-22")
    parser.add_argument("--n-events", type=int, default=10)
    parser.add_argument("--duration-s", type=float, default=1200.0)
    parser.add_argument("--json", default=None, help="also write the counts here")
    args = parser.parse_args()
    models = {m: PolarityClassifier.load(m, device="cpu") for m in args.models}
    names = list(models)
    per_seed: dict[int, dict[str, list[int]]] = {}
    outcome: dict[str, list[int]] = {m: [] for m in names}  # +1 right, -1 wrong, 0 unknown
    for seed in tqdm(seeds_of(args.seeds), desc="scenarios", unit="seed"):
        windows = [w for w in demo_truth_windows(seed, args.n_events, args.duration_s)
                   if w.true_polarity != 0]  # nodal rays: not judged, as in the demo  # fmt: skip
        truth = np.array([w.true_polarity for w in windows])
        per_seed[seed] = {}
        for name, clf in models.items():
            got = np.array([r[0] for r in classify_picks(clf, [w.pick for w in windows])])
            o = np.where(got == 0, 0, np.where(got == truth, 1, -1))
            outcome[name] += o.tolist()
            per_seed[seed][name] = [int(np.sum(o == 1)), int(np.sum(o == -1)), int(np.sum(o == 0))]

    def cells(counts: dict[str, list[int]]) -> str:
        return "  ".join(f"{' / '.join(map(str, counts[m])):>22}" for m in names)

    print(f"{'seed':>5}  " + "  ".join(f"{Path(m).name:>22}" for m in names))
    for seed, row in per_seed.items():
        print(f"{seed:>5}  {cells(row)}")
    totals = {m: [int(np.sum(np.array(outcome[m]) == v)) for v in (1, -1, 0)] for m in names}
    print(f"{'all':>5}  {cells(totals)}")
    print("(right / wrong sign / unknown)")
    pairs = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            oa, ob = np.array(outcome[a]), np.array(outcome[b])
            differ = oa != ob
            key = f"{Path(a).name} vs {Path(b).name}"
            pairs[key] = {
                "windows_that_differ": int(differ.sum()),
                "first_better": int(np.sum(oa[differ] > ob[differ])),
                "second_better": int(np.sum(ob[differ] > oa[differ])),
            }
            p = pairs[key]
            print(f"{key}: {p['windows_that_differ']} windows differ; better: "
                  f"{Path(a).name} {p['first_better']}, {Path(b).name} {p['second_better']} "
                  "(right > unknown > wrong sign)")  # fmt: skip
    seeds_worse = {
        f"{Path(b).name} more wrong than {Path(a).name}": sum(
            per_seed[s][b][1] > per_seed[s][a][1] for s in per_seed
        )
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }
    print(seeds_worse, f"of {len(per_seed)} seeds")
    if args.json:
        short = {m: Path(m).name for m in names}
        doc = {
            "command": "python benchmarks/polarity_transfer.py --models "
            f"{' '.join(names)} --seeds {args.seeds} --n-events {args.n_events} "
            f"--duration-s {args.duration_s:g}",
            "counts": "right, wrong sign, unknown",
            "totals": {short[m]: totals[m] for m in names},
            "seeds": {str(k): {short[m]: v[m] for m in names} for k, v in per_seed.items()},
            "pairs": pairs,
        }
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
