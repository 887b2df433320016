"""How far the stream stage's picks fall from analysts' P onsets, and what each reader makes of
the first motion at those picks.

Run from the repository root::

    .venv/bin/python benchmarks/polarity_pick_error.py [--json F]

For every labelled real onset (INGV analysts' 88 readings, our Puerto Rico and Unterhaching
onsets) the STA/LTA + AIC detector of :mod:`stream.detect` runs once over the whole trace; the
detection nearest the labelled onset is its pick when it lies within 0.5 s. Printed: the pick
error (detector - label, seconds: median, 10/90th percentiles, share within 20/50 ms) and,
at the detector's picks, right / wrong / unknown of the shipped model, of polarity_v5 (the
network without the evidence check) and of the naive rule
(:func:`workers.polarity.evidence.naive_polarity`) on the same rows.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from stream.detect import DetectParams, detect_once, nearest_onsets
from workers.polarity import PolarityClassifier
from workers.polarity.evaluate import load_ingv_fmpc, load_pr2017_onsets, load_uh2010_onsets
from workers.polarity.evidence import naive_polarity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    readers = {"shipped": PolarityClassifier.load(device="cpu")}
    readers["polarity_v5"] = PolarityClassifier.load("polarity_v5", device="cpu")
    out = {}
    for name, loader in (
        ("ingv", load_ingv_fmpc),
        ("pr2017", load_pr2017_onsets),
        ("uh2010", load_uh2010_onsets),
    ):
        onsets = loader()
        if not onsets:
            continue
        errors, outcomes = [], {k: [] for k in (*readers, "naive")}
        missed = 0
        cache: dict = {}
        for o in onsets:
            rate = o["sampling_rate_hz"]
            key = (o["station_id"], id(o["data"]))
            if key not in cache:
                cache[key] = detect_once(o["data"], rate, DetectParams())
            nearest = nearest_onsets(cache[key], [o["pick_index"]])[0]
            if not np.isfinite(nearest) or abs(nearest - o["pick_index"]) > 0.5 * rate:
                missed += 1
                continue
            pick = int(round(nearest))
            errors.append((nearest - o["pick_index"]) / rate)
            for k, clf in readers.items():
                pol = clf.classify(o["data"][None, :], rate, [pick]).polarity[0]
                outcomes[k].append(int(pol) * o["polarity"])
            outcomes["naive"].append(
                int(naive_polarity(o["data"], rate, [pick])[0]) * o["polarity"]
            )
        e = np.array(errors)
        out[name] = {
            "n_labelled": len(onsets),
            "n_picked_within_0.5_s": int(e.size),
            "missed": missed,
            "pick_error_s": {
                "median": round(float(np.median(e)), 4) if e.size else None,
                "p10": round(float(np.percentile(e, 10)), 4) if e.size else None,
                "p90": round(float(np.percentile(e, 90)), 4) if e.size else None,
                "within_0.02_s": round(float(np.mean(np.abs(e) <= 0.02)), 3) if e.size else None,
                "within_0.05_s": round(float(np.mean(np.abs(e) <= 0.05)), 3) if e.size else None,
            },
            "at_detector_picks": {
                k: {"right": v.count(1), "wrong_sign": v.count(-1), "unknown": v.count(0)}
                for k, v in outcomes.items()
            },
        }
        print(name, json.dumps(out[name]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
