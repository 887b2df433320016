"""How far the stream stage's picks fall from analysts' P onsets, and what each reader makes of
the first motion at those picks.

Run from the repository root::

    .venv/bin/python benchmarks/polarity_pick_error.py [--pickers stalta,phasenet] \\
        [--resample-hz R] [--json F]

For every labelled real onset (INGV analysts' 88 readings, our Puerto Rico and Unterhaching
onsets) each picker runs once over the whole record: the STA/LTA + AIC detector of
:mod:`stream.detect` on the vertical, and the learned picker (PhaseNet,
:func:`stream.picker.pick_traces`, the stream stage's windows and rules at its operating
threshold) on the station's three components (INGV; the Puerto Rico and Unterhaching rows
are read from their vertical alone, as the stage reads a Z-only station). The P pick nearest
the labelled onset is the picker's pick when it lies within 0.5 s. Printed per picker: the
pick error (pick time - label, seconds: median, 10/90th percentiles, share within 20/50 ms),
the same for the sample the polarity stage reads at (``read_at_error_s``: the learned
picker's refined onset, :attr:`stream.picker.StationPick.onset_s`; the STA/LTA pick itself)
and, there, right / wrong / unknown of the shipped model (read as the polarity stage reads a
pick: at its refined onset, and where that is unknown at the pick's time, PhaseNet's peak),
of polarity_v5 (the network without the evidence check) and of the naive rule
(:func:`workers.polarity.evidence.naive_polarity`) on the same rows. ``--resample-hz R``:
every record faster than R Hz resampled to R first (zero-phase, as
``bench_picker.py --resample-hz`` and ``polarity_rates.py`` do): the whole chain, picks and
reads, as a network recording at that rate has it.
"""

from __future__ import annotations

import argparse
import glob
import json

import numpy as np
import torch
from bench_picker import resample_traces
from obspy import Stream, Trace, UTCDateTime, read
from polarity_rates import resample_row

from stream.detect import DetectParams, detect_once, nearest_onsets
from stream.picker import PhaseNetModel, PickerParams, pick_traces
from workers.polarity import PolarityClassifier
from workers.polarity.evaluate import load_ingv_fmpc, load_pr2017_onsets, load_uh2010_onsets
from workers.polarity.evidence import naive_polarity


def _ingv_components(onset: dict) -> list:
    """E, N, Z traces (None where missing) of an INGV row's station and instrument, grouped
    as ``bench_picker.py`` groups them."""
    from bench_picker import station_groups

    from workers.polarity.evaluate import shared_data_dir

    net, sta, loc, cha = onset["station_id"].split(".")
    folder = shared_data_dir() / "ingv_fmpc" / "mseed" / f"{onset['event']}_mseed"
    st = Stream()
    for f in sorted(glob.glob(str(folder / f"*.{net}.{sta}*.{cha[:2]}?.mseed"))):
        st += read(f)
    groups = station_groups(st)
    return groups.get(f"{net}.{sta}.{loc}.{cha[:2]}", [None, None, None])


def _vertical_only(onset: dict) -> list:
    """[None, None, Z] of a row (its raw vertical, its start from the labelled pick)."""
    rate = onset["sampling_rate_hz"]
    net, sta, loc, cha = onset["station_id"].split(".")
    start = UTCDateTime(onset["time"]) - onset["pick_index"] / rate
    z = Trace(
        np.asarray(onset["data"], dtype=np.float64),
        header={"network": net, "station": sta, "location": loc, "channel": cha,
                "sampling_rate": rate, "starttime": start},
    )  # fmt: skip
    return [None, None, z]


def learned_p_index(model, onset: dict, components: list, cache: dict) -> tuple[float, float]:
    """Sample indices (in the row) of the learned picker's P pick nearest the labelled onset:
    its time (PhaseNet's peak) and its refined onset, where the stream stage's window puts
    the polarity read (NaN, NaN when it picked no P)."""
    key = (onset["station_id"], onset.get("event"), id(onset["data"]))
    if key not in cache:
        picks = pick_traces(model, components, PickerParams(vertical_only="copy"))
        cache[key] = np.array(
            [(p.time_epoch_s, p.onset_s) for p in picks if p.phase == "P" and not p.candidate]
        ).reshape(-1, 2)
    times = cache[key]
    if not times.size:
        return float("nan"), float("nan")
    labelled = UTCDateTime(onset["time"]).timestamp
    t, at = times[np.argmin(np.abs(times[:, 0] - labelled))]
    rate = onset["sampling_rate_hz"]
    return onset["pick_index"] + (t - labelled) * rate, onset["pick_index"] + (at - labelled) * rate


def _error_stats(e: np.ndarray) -> dict:
    if not e.size:
        return dict.fromkeys(("median", "p10", "p90", "within_0.02_s", "within_0.05_s"))
    return {
        "median": round(float(np.median(e)), 4),
        "p10": round(float(np.percentile(e, 10)), 4),
        "p90": round(float(np.percentile(e, 90)), 4),
        "within_0.02_s": round(float(np.mean(np.abs(e) <= 0.02)), 3),
        "within_0.05_s": round(float(np.mean(np.abs(e) <= 0.05)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--pickers", default="stalta,phasenet", help="comma list of stalta, phasenet"
    )
    parser.add_argument(
        "--resample-hz", type=float, default=0.0,
        help="resample every record faster than this first (0: as recorded)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    readers = {"shipped": PolarityClassifier.load(device="cpu")}
    readers["polarity_v5"] = PolarityClassifier.load("polarity_v5", device="cpu")
    pickers = [p.strip() for p in args.pickers.split(",") if p.strip()]
    phasenet = PhaseNetModel.load(device="cpu", threads=args.threads) if (
        "phasenet" in pickers) else None  # fmt: skip
    out: dict = {"shipped_model": readers["shipped"].card.get("name")}
    for name, loader in (
        ("ingv", load_ingv_fmpc),
        ("pr2017", load_pr2017_onsets),
        ("uh2010", load_uh2010_onsets),
    ):
        onsets = loader()
        if not onsets:
            continue
        if args.resample_hz:
            onsets = [resample_row(o, args.resample_hz) or o for o in onsets]
        out[name] = {}
        for picker in pickers:
            errors, onset_errors, outcomes = [], [], {k: [] for k in (*readers, "naive")}
            missed = 0
            cache: dict = {}
            for o in onsets:
                rate = o["sampling_rate_hz"]
                if picker == "stalta":
                    key = (o["station_id"], id(o["data"]))
                    if key not in cache:
                        cache[key] = detect_once(o["data"], rate, DetectParams())
                    nearest = nearest_onsets(cache[key], [o["pick_index"]])[0]
                    at = nearest
                else:
                    comps = _ingv_components(o) if name == "ingv" else _vertical_only(o)
                    if comps[2] is None:
                        comps = _vertical_only(o)
                    comps = resample_traces(comps, args.resample_hz)
                    nearest, at = learned_p_index(phasenet, o, comps, cache)
                if not np.isfinite(nearest) or abs(nearest - o["pick_index"]) > 0.5 * rate:
                    missed += 1
                    continue
                pick = int(round(at))  # where the stream stage's window puts the read
                errors.append((nearest - o["pick_index"]) / rate)
                onset_errors.append((at - o["pick_index"]) / rate)
                for k, clf in readers.items():
                    # as the polarity stage reads a pick: at the refined onset, and where
                    # that is unknown at the arrival time (workers.polarity.worker)
                    pol = clf.classify(
                        o["data"][None, :], rate, [pick], second_index=[nearest]
                    ).polarity[0]
                    outcomes[k].append(int(pol) * o["polarity"])
                outcomes["naive"].append(
                    int(naive_polarity(o["data"], rate, [pick])[0]) * o["polarity"]
                )
            e = np.array(errors)
            out[name][picker] = {
                "n_labelled": len(onsets),
                "n_picked_within_0.5_s": int(e.size),
                "missed": missed,
                "pick_error_s": _error_stats(e),
                "read_at_error_s": _error_stats(np.array(onset_errors)),
                "at_picks": {
                    k: {"right": v.count(1), "wrong_sign": v.count(-1), "unknown": v.count(0)}
                    for k, v in outcomes.items()
                },
            }
            print(name, picker, json.dumps(out[name][picker]), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
