"""Which visible P arrivals of the swarm proxy the learned picker misses, and why.

Run from the repository root, after ``benchmarks/bench_swarm.py`` has built the scenario in
OUT::

    FIRSTMOTION_SHARED=../shared PYTHONPATH=$PWD .venv/bin/python benchmarks/swarm_missed_p.py \\
        [--out /tmp/bench_swarm] [--threads 2] [--json F]

Each station's record is picked in one pass (:func:`stream.picker.pick_traces`, the stream
stage's windows and rules at its defaults). Every visible reference P (first-motion SNR >=
``bench_swarm.VISIBLE_SNR``, as ``bench_swarm.py`` scores P) gets one outcome, by the P-phase
outputs within ``bench_swarm.PICK_TOLERANCE_S`` of it: a pick, a candidate onset only
(``phasenet``: a peak below the threshold or gate; ``stalta``: an onset in a larger one's
coda), an S-labelled pick only, or nothing. Each is also marked *in coda* when an earlier
earthquake's P or S reached the station less than ``CODA_S`` before it, and measured with the
picker's own onset gate (:func:`stream.picker.p_onset_snr`: RMS of the 1-20 Hz vertical over
1 s after the true P against the 2 s before), the energy jump the onset makes in the record as
it is. A P whose jump is near 1 is under what precedes it: in an earlier event's coda no
picker sees it from the record alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from bench_swarm import PICK_TOLERANCE_S, VISIBLE_SNR
from obspy import UTCDateTime, read

from stream.phase_stage import station_groups
from stream.picker import PhaseNetModel, PickerParams, p_onset_snr, pick_traces

CODA_S = 15.0  # an earlier earthquake's P or S this recent: the P arrives in its coda


def outcome(picks: list, t: float) -> str:
    """What the picker gave near the true P time ``t`` (epoch s) at the station."""
    near = [p for p in picks if abs(p.time_epoch_s - t) <= PICK_TOLERANCE_S]
    p_phase = [p for p in near if p.phase == "P"]
    if any(not p.candidate for p in p_phase):
        return "pick"
    if p_phase:
        return f"candidate ({p_phase[0].candidate})"
    if near:
        return "S pick"
    return "nothing"


def classify_visible_p(truth: dict, picks: dict[str, list], verticals: dict) -> list[dict]:
    """One row per visible reference P: station, event, magnitude, outcome, in coda, onset
    SNR of the record at the true time."""
    earlier: dict[str, list[tuple[float, float]]] = {}
    for ev in truth["events"]:
        for a in ev["stations"]:
            sta = a["station_id"].split(".")[1]
            earlier.setdefault(sta, []).append(
                (UTCDateTime(a["p_time"]).timestamp, UTCDateTime(a["s_time"]).timestamp)
            )
    rows = []
    for ev in truth["events"]:
        for a in ev["stations"]:
            if not a.get("p_in_data", True) or not (a.get("snr") or 0.0) >= VISIBLE_SNR:
                continue
            sta = a["station_id"].split(".")[1]
            t = UTCDateTime(a["p_time"]).timestamp
            in_coda = any(
                0.0 < t - arr <= CODA_S for tp, ts in earlier[sta] for arr in (tp, ts) if tp != t
            )
            z = verticals[sta]
            index = (t - z.stats.starttime.timestamp) * z.stats.sampling_rate
            rows.append(
                {
                    "station": sta,
                    "event_id": ev["event_id"],
                    "magnitude": ev["magnitude"],
                    "outcome": outcome(picks.get(sta, []), t),
                    "in_coda": in_coda,
                    "first_motion_snr": a["snr"],
                    "onset_snr": p_onset_snr(z.data, z.stats.sampling_rate, index),
                }
            )
    return rows


def summary(rows: list[dict]) -> list[str]:
    lines = []
    for in_coda in (False, True):
        part = [r for r in rows if r["in_coda"] == in_coda]
        lines.append(f"{'in an earlier earthquake coda' if in_coda else 'isolated'}: {len(part)}")
        for kind in sorted({r["outcome"] for r in part}):
            sel = [r for r in part if r["outcome"] == kind]
            snr = np.array([r["onset_snr"] for r in sel])
            mag = np.median([r["magnitude"] for r in sel])
            p10, p50, p90 = np.percentile(snr, [10, 50, 90])
            lines.append(
                f"  {kind:<22} {len(sel):4d}  magnitude median {mag:4.2f}  onset SNR "
                f"p10/50/90 {p10:6.2f} {p50:6.2f} {p90:6.2f}"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_swarm"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="write every row here")
    args = ap.parse_args()
    scen = args.out / "scenario"
    if not (scen / "truth.json").exists():
        raise SystemExit(f"no scenario in {scen}: run benchmarks/bench_swarm.py --out {args.out}")
    truth = json.loads((scen / "truth.json").read_text())
    st = read(str(scen / "mseed" / "*.mseed"))
    model = PhaseNetModel.load(device="cpu", threads=args.threads)
    params = PickerParams()
    picks: dict[str, list] = {}
    verticals = {}
    for key, traces in station_groups(st).items():
        sta = key.split(".")[1]
        picks[sta] = pick_traces(model, traces, params)
        verticals[sta] = traces[2]
    rows = classify_visible_p(truth, picks, verticals)
    print(f"{len(rows)} visible P (first-motion SNR >= {VISIBLE_SNR:g}), {args.out}")
    print("\n".join(summary(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
