"""Polarity reads of real onsets with a one-sample glitch in the noise before the pick.

A telemetry bit error or a digitiser glitch is one sample far off the record. Each labelled
real onset (INGV analysts', Puerto Rico and Unterhaching ours) is read as recorded, then with
one sample ``--sizes`` times the onset's largest swing (0.5 s after the pick) added ``--at``
seconds before the pick, by the shipped reader with its glitch repair
(``PolarityClassifier.despike``, the default) and without it; right-wrong-unknown against the
labels.

    FIRSTMOTION_SHARED=../shared python benchmarks/polarity_glitches.py [--json F]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from workers.polarity.classifier import PolarityClassifier
from workers.polarity.evaluate import load_ingv_fmpc, load_pr2017_onsets, load_uh2010_onsets


def glitched(p: dict, size: float, at_s: float) -> np.ndarray:
    """The row with one sample ``size`` times its onset's largest swing ``at_s`` before the
    pick (unchanged for ``size`` 0)."""
    x = np.array(p["data"], dtype=np.float64)
    k, rate = p["pick_index"], p["sampling_rate_hz"]
    if size:
        onset = x[k : k + int(0.5 * rate)]
        swing = np.nanmax(np.abs(onset - np.nanmedian(x[:k])))
        x[k - int(round(at_s * rate))] += size * swing
    return x


def outcomes(clf: PolarityClassifier, rows: list[dict], size: float, at_s: float) -> str:
    signs = []
    for p in rows:
        r = clf.classify(glitched(p, size, at_s)[None, :], p["sampling_rate_hz"], [p["pick_index"]])
        signs.append(int(r.polarity[0]) * int(p["polarity"]))
    s = np.array(signs)
    return f"{(s == 1).sum()}-{(s == -1).sum()}-{(s == 0).sum()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,10,100", help="glitch sizes, times the onset's swing")
    ap.add_argument("--at", default="0.3,1.0,1.5,2.5", help="seconds before the pick")
    ap.add_argument("--json", help="write the table here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = load_ingv_fmpc() + load_pr2017_onsets() + load_uh2010_onsets()
    clf = PolarityClassifier.load()
    table = {"rows": len(rows), "clean": outcomes(clf, rows, 0.0, 0.0), "glitch": []}
    print(f"{len(rows)} real onsets, right-wrong-unknown as recorded: {table['clean']}")
    print("glitch size x swing | s before pick | repaired (default) | as given")
    for size in (float(v) for v in args.sizes.split(",")):
        for at_s in (float(v) for v in args.at.split(",")):
            clf.despike = True
            fixed = outcomes(clf, rows, size, at_s)
            clf.despike = False
            raw = outcomes(clf, rows, size, at_s)
            table["glitch"].append({"size": size, "at_s": at_s, "repaired": fixed, "as_given": raw})
            print(f"{size:g} | {at_s:g} | {fixed} | {raw}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
