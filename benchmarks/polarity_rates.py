"""The polarity reader on real analyst first motions recorded at lower sampling rates.

Many local and volcano networks record at 50 or 40 Hz. The real labelled rows here are mostly
100 Hz (INGV, Puerto Rico, Unterhaching; TexNet 40 and 200 Hz). Each row is resampled to
each rate of ``--rates`` by a zero-phase polyphase FIR (:func:`scipy.signal.resample_poly`:
what a datalogger recording at that rate gives, its linear-phase FIR's delay corrected, its
acausal ringing at the new Nyquist included) and read by the shipped reader (the same
``classify()`` the polarity stage calls) at the labelled pick and with it 50 ms early and
late; the naive rule (:func:`workers.polarity.evidence.naive_polarity`) reads the same rows.
``0`` reads the rows as recorded. Only rates at or below a row's own are made (an upsampled
row keeps its datalogger's ringing below the new Nyquist, which a record made at the higher
rate would not have); a row whose own rate is lower is left out of that rate's counts.

Run from the repository root::

    FIRSTMOTION_SHARED=../shared PYTHONPATH=$PWD .venv/bin/python benchmarks/polarity_rates.py \\
        [--rates 0,50,40] [--model NAME] [--json F]

Prints right-wrong-unknown per set, rate and pick shift.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bench_picker import resample_zero_phase

from workers.polarity import PolarityClassifier
from workers.polarity.evaluate import (
    load_ingv_fmpc,
    load_pr2017_onsets,
    load_texnet_polarities,
    load_uh2010_onsets,
)
from workers.polarity.evidence import naive_polarity

SHIFTS_S = (-0.05, 0.0, 0.05)


def resample_row(pick: dict, rate_hz: float) -> dict | None:
    """``pick`` (a labelled row) at ``rate_hz`` (0: as recorded), its pick index moved to the
    same time; None when ``rate_hz`` is above the row's own rate."""
    own = float(pick["sampling_rate_hz"])
    if not rate_hz:
        return pick
    if rate_hz > own + 1e-9:
        return None
    if abs(rate_hz - own) < 1e-9:
        return pick
    y = resample_zero_phase(pick["data"], own, rate_hz)
    index = int(round(pick["pick_index"] * rate_hz / own))
    return {**pick, "data": y, "sampling_rate_hz": rate_hz, "pick_index": index}


def read_rows(clf: PolarityClassifier, rows: list[dict]) -> dict:
    """Right-wrong-unknown of the reader and the naive rule at each pick shift."""
    out = {}
    for shift in SHIFTS_S:
        model, naive = [], []
        for p in rows:
            k = p["pick_index"] + int(round(shift * p["sampling_rate_hz"]))
            read = clf.classify(p["data"][None, :], p["sampling_rate_hz"], [k]).polarity[0]
            model.append(int(read) * p["polarity"])
            naive.append(
                int(naive_polarity(p["data"], p["sampling_rate_hz"], [k])[0]) * p["polarity"]
            )
        out[f"{shift:+g}"] = {
            name: [v.count(1), v.count(-1), v.count(0)]
            for name, v in (("model", model), ("naive", naive))
        }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="0,50,40", help="sampling rates (Hz; 0: as recorded)")
    ap.add_argument("--model", default=None, help="model stem or shipped name (default)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    data_dir = Path(os.environ.get("FIRSTMOTION_SHARED", "../shared")) / "data"
    clf = PolarityClassifier.load(args.model) if args.model else PolarityClassifier.load()
    sets = {
        "ingv": load_ingv_fmpc(data_dir),
        "pr": load_pr2017_onsets(data_dir),
        "uh": load_uh2010_onsets(),
        "texnet": load_texnet_polarities(data_dir),
    }
    results: dict = {}
    for rate in (float(r) for r in args.rates.split(",")):
        for name, picks in sets.items():
            rows = [r for r in (resample_row(p, rate) for p in picks) if r is not None]
            if not rows:
                continue
            res = read_rows(clf, rows)
            label = f"{rate:g} Hz" if rate else "as recorded"
            results.setdefault(label, {})[name] = {"n": len(rows), **res}
            cells = "  ".join(
                f"{s}: {'-'.join(map(str, v['model']))} (naive {'-'.join(map(str, v['naive']))})"
                for s, v in res.items()
            )
            print(f"{label} {name} ({len(rows)} of {len(picks)} rows)  {cells}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
