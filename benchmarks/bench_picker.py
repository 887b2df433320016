"""The learned P/S picker against analyst picks on real data, STA/LTA in the same run.

Run from the repository root::

    .venv/bin/python benchmarks/bench_picker.py [--sets texnet,ingv,pr] [--p-threshold 0.3] \\
        [--s-threshold 0.3] [--z-only [zeros|copy]] [--resample-hz R] [--glitch SIZE@SECONDS] \\
        [--threads 1] [--sweep] [--json out.json]

(``FIRSTMOTION_SHARED`` names the shared data folder when it is not ``../shared``.)

Each station's record is picked in one pass by :func:`stream.picker.pick_traces` (the
stream stage's windows, regions and rules: 30 s windows, ``stride_s`` apart, picks from each
window's accepted region), three components (E/N or 1/2 and Z; ``--z-only``: the
horizontals left out, read as zeros). STA/LTA + AIC (:func:`stream.detect.detect_once`,
default settings) runs on the vertical of the same records. For every analyst reading, the
nearest pick of its phase on its station: counts within 0.1 s and 0.5 s.

* **texnet**: the two TexNet events (../shared/data/texnet2017), analyst P and S in the
  QuakeML (40 and 200 Hz; 2-minute records);
* **ingv**: five central-Italy events (../shared/data/ingv_fmpc), the HYPO71 P and S
  readings of INGV's analysts (station codes as the README says: T107 is T0107);
* **pr**: the real Puerto Rico hour (../shared/data/pr2017_noise, EH? of 3 stations): P and
  S picks per station-hour, and those not within ``--near-s`` of an onset listed in
  firstmotion/data/pr2017_onsets.json (labelled or left out) on any of the stations: the
  false-pick figure (an upper bound: the hour holds small events nobody listed), and of
  those the picks with no pick of their phase at another station within 5 s (isolated: what
  no event explains; the stations are within ~40 km).

``--sweep`` prints the P counts for a range of thresholds (the operating threshold is chosen
on TexNet and reported on INGV and PR).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import time
from collections import defaultdict
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
from obspy import Stream, UTCDateTime, read
from scipy.signal import resample_poly

from stream.detect import DetectParams, detect_once
from stream.phase_stage import station_groups
from stream.picker import PhaseNetModel, PickerParams, p_onset_snr, pick_traces

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FIRSTMOTION_SHARED", ROOT.parent / "shared")) / "data"


def pick_groups(model, groups: dict[str, list], params: PickerParams, z_only: str) -> dict:
    """``{station key: (P times, P probs, S times, S probs, STA/LTA times, candidate P
    onset times)}``."""
    out = {}
    for key, traces in groups.items():
        if z_only:
            traces = [None, None, traces[2]]
        picks = pick_traces(model, traces, replace(params, vertical_only=z_only or "copy"))
        z = traces[2]
        rate = z.stats.sampling_rate
        dets = detect_once(z.data.astype(float), rate, DetectParams())
        z0 = z.stats.starttime.timestamp
        cands = np.array([p.time_epoch_s for p in picks if p.candidate])
        picks = [p for p in picks if not p.candidate]
        ptimes = [p.time_epoch_s for p in picks if p.phase == "P"]
        out[key] = {
            "P": np.array(ptimes),
            "Pc": cands,
            "Psnr": np.array([p_onset_snr(z.data, rate, (t - z0) * rate) for t in ptimes]),
            "Pp": np.array([p.probability for p in picks if p.phase == "P"]),
            "S": np.array([p.time_epoch_s for p in picks if p.phase == "S"]),
            "Sp": np.array([p.probability for p in picks if p.phase == "S"]),
            "stalta": np.array([z.stats.starttime.timestamp + d.onset_index / rate for d in dets]),
        }
    return out


def rotate_horizontals(traces: list, degrees: float) -> list:
    """[E, N, Z] with the horizontals rotated by ``degrees`` about the vertical (as a sensor
    whose 1 and 2 point elsewhere records them); unchanged when one is missing or they differ
    in length."""
    e, n, z = traces
    if e is None or n is None or e.stats.npts != n.stats.npts:
        return traces
    a = np.radians(degrees)
    x, y = e.data.astype(np.float64), n.data.astype(np.float64)
    e2, n2 = e.copy(), n.copy()
    e2.data = np.cos(a) * x - np.sin(a) * y
    n2.data = np.sin(a) * x + np.cos(a) * y
    return [e2, n2, z]


def add_glitch(traces: list, at_epoch_s: float, size: float) -> list:
    """[E, N, Z] copies with one sample ``size`` times each component's largest deviation
    from its median added at ``at_epoch_s`` (a telemetry bit error on every channel)."""
    out = []
    for tr in traces:
        if tr is None:
            out.append(None)
            continue
        tr = tr.copy()
        x = tr.data.astype(np.float64)
        k = int(round((at_epoch_s - tr.stats.starttime.timestamp) * tr.stats.sampling_rate))
        if 0 <= k < x.size:
            x[k] += size * np.max(np.abs(x - np.median(x)))
        tr.data = x
        out.append(tr)
    return out


def resample_zero_phase(x, from_hz: float, to_hz: float) -> np.ndarray:
    """Samples ``x`` at ``from_hz`` resampled to ``to_hz``, demeaned, by a zero-phase polyphase
    FIR (:func:`scipy.signal.resample_poly`): as a datalogger recording at ``to_hz`` gives them,
    its linear-phase FIR's delay corrected."""
    ratio = Fraction(to_hz / from_hz).limit_denominator(1000)
    x = np.asarray(x, dtype=np.float64)
    return resample_poly(x - x.mean(), ratio.numerator, ratio.denominator)


def resample_traces(traces: list, rate_hz: float) -> list:
    """Each trace (None kept) at ``rate_hz`` (:func:`resample_zero_phase`), its start time
    kept. 0: unchanged; a trace at
    that rate or lower is kept as recorded (an upsampled one would keep its own datalogger's
    ringing below the new Nyquist)."""
    if not rate_hz:
        return traces
    out = []
    for tr in traces:
        if tr is None or tr.stats.sampling_rate <= rate_hz:
            out.append(tr)
            continue
        tr2 = tr.copy()
        tr2.data = resample_zero_phase(tr.data, tr.stats.sampling_rate, rate_hz)
        tr2.stats.sampling_rate = rate_hz
        out.append(tr2)
    return out


def nearest_error(times: np.ndarray, t: float) -> float:
    return float(np.min(np.abs(times - t))) if times.size else np.inf


def score(readings: list[tuple[str, str, float]], found: dict, thresholds=(0.3,)) -> dict:
    """Counts within 0.1 / 0.5 s per phase (and STA/LTA for P)."""
    res: dict = {}
    for phase in ("P", "S"):
        rows = [(k, t) for k, ph, t in readings if ph == phase and k in found]
        res[phase] = {"n": len(rows)}
        for thr in thresholds:
            errs = []
            for k, t in rows:
                keep = found[k][phase + "p"] >= thr
                errs.append(nearest_error(found[k][phase][keep], t))
            e = np.asarray(errs)
            res[phase][thr] = {
                "within_0.1": int(np.sum(e <= 0.1)),
                "within_0.5": int(np.sum(e <= 0.5)),
                "median_abs_err_0.5": float(np.median(e[e <= 0.5])) if np.any(e <= 0.5) else None,
            }
        if phase == "P":
            # readings without a P pick (p >= the operating threshold) but with a candidate
            # onset: what event-guided association could add at most
            thr = min(thresholds, key=lambda x: abs(x - PickerParams.p_threshold))
            for lim in (0.1, 0.5):
                res["candidate_P_" + str(lim)] = sum(
                    1 for k, t in rows
                    if nearest_error(found[k]["P"][found[k]["Pp"] >= thr], t) > lim
                    and nearest_error(found[k]["Pc"], t) <= lim
                )  # fmt: skip
            res["candidates"] = int(sum(found[k]["Pc"].size for k in {k for k, _ in rows}))
            e = np.asarray([nearest_error(found[k]["stalta"], t) for k, t in rows])
            res["stalta_P"] = {"within_0.1": int(np.sum(e <= 0.1)),
                               "within_0.5": int(np.sum(e <= 0.5))}  # fmt: skip
    return res


def texnet_readings() -> tuple[dict, list] | None:
    base = SHARED / "texnet2017"
    if not base.is_dir():
        return None
    from obspy import read_events

    groups, readings = {}, []
    for name in ("texnet2017cvmt", "texnet2017dfac"):
        g = station_groups(read(str(base / f"{name}.mseed")))
        g = {f"{name}:{k}": v for k, v in g.items()}
        groups.update(g)
        for pick in read_events(str(base / f"{name}.qml"))[0].picks:
            phase = (pick.phase_hint or "")[:1].upper()
            if phase not in ("P", "S"):
                continue
            w = pick.waveform_id
            want = [w.network_code, w.station_code]
            keys = [k for k in g if k.split(":")[1].split(".")[:2] == want]
            if keys:
                readings.append((keys[0], phase, pick.time.timestamp))
    return groups, readings


def parse_hypo71(path: Path) -> list[tuple[str, str, float]]:
    """``[(station code, phase, epoch s)]`` from HYPO71 phase cards (P and S)."""
    out = []
    for line in path.read_bytes().decode("ascii", "replace").splitlines():
        line = line.rstrip("\r")
        if len(line) < 24 or line[5] != "P" or not re.match(r"\d{10}", line[9:19]):
            continue
        minute = UTCDateTime.strptime(line[9:19], "%y%m%d%H%M")
        code = line[:4].strip()
        out.append((code, "P", (minute + float(line[19:24])).timestamp))
        s_text = line[31:36].strip() if len(line) >= 36 else ""
        if s_text and len(line) > 37 and line[37] == "S":
            out.append((code, "S", (minute + float(s_text)).timestamp))
    return out


def ingv_readings() -> tuple[dict, list] | None:
    base = SHARED / "ingv_fmpc"
    if not base.is_dir():
        return None
    groups, readings = {}, []
    for dat in sorted((base / "Phases_file").glob("*.dat")):
        event = dat.stem
        st = Stream()
        for f in sorted(glob.glob(str(base / "mseed" / f"{event}_mseed" / "*.mseed"))):
            st += read(f)
        g = {f"{event}:{k}": v for k, v in station_groups(st).items()}
        groups.update(g)
        by_sta: dict[str, list[str]] = defaultdict(list)
        for k in g:
            by_sta[k.split(":")[1].split(".")[1]].append(k)
        for code, phase, t in parse_hypo71(dat):
            names = [code, code[0] + "0" + code[1:]] if len(code) == 4 else [code]
            keys = [k for n in names for k in by_sta.get(n, [])]
            keys.sort(key=lambda k: k.split(".")[-1][0] != "H" or k.endswith("HN"))
            if keys:
                readings.append((keys[0], phase, t))
    return groups, readings


def report(name: str, res: dict, thresholds) -> None:
    for phase in ("P", "S"):
        r = res[phase]
        for thr in thresholds:
            c = r[thr]
            print(f"{name}: {phase}: {r['n']} analyst readings, phasenet (p >= {thr:.2f}): "
                  f"{c['within_0.1']} within 0.1 s, {c['within_0.5']} within 0.5 s"
                  + (f", median |err| {c['median_abs_err_0.5']:.3f} s"
                     if c["median_abs_err_0.5"] is not None else ""))  # fmt: skip
        if phase == "P":
            print(
                f"{name}: P: candidate onsets ({res['candidates']} at these stations; "
                "never picks on their own): a reading with no pick but a candidate within "
                f"0.1 s: {res['candidate_P_0.1']}, within 0.5 s: {res['candidate_P_0.5']}"
            )
            s = res["stalta_P"]
            print(f"{name}: P: stalta+aic: {s['within_0.1']} within 0.1 s, "
                  f"{s['within_0.5']} within 0.5 s")  # fmt: skip


def pr_false_picks(
    model,
    params: PickerParams,
    z_only: str,
    near_s: float,
    thresholds,
    coincidence_s: float = 5.0,
    resample_hz: float = 0.0,
) -> dict:
    base = SHARED / "pr2017_noise"
    if not base.is_dir():
        return {}
    st = Stream()
    for f in sorted(glob.glob(str(base / "*.mseed"))):
        st += read(f)
    groups = {k: resample_traces(v, resample_hz) for k, v in station_groups(st).items()}
    labels = json.loads((ROOT / "firstmotion/data/pr2017_onsets.json").read_text())
    listed = np.array(sorted(UTCDateTime(o["time"]).timestamp
                             for o in labels["onsets"] + labels["left_out"]))  # fmt: skip
    found = pick_groups(model, groups, params, z_only)
    hours = sum(g[2].stats.npts / g[2].stats.sampling_rate for g in groups.values()) / 3600
    out = {"station_hours": hours}
    for thr in thresholds:
        row = {}
        for phase in ("P", "S"):
            per = {k: f[phase][f[phase + "p"] >= thr] for k, f in found.items()}
            times = np.concatenate(list(per.values()))
            far = [t for t in times if nearest_error(listed, t) > near_s]
            # nor within coincidence_s of a pick of that phase at another station: isolated
            alone = [
                t
                for k, v in per.items()
                for t in v
                if nearest_error(listed, t) > near_s
                and all(nearest_error(w, t) > coincidence_s for j, w in per.items() if j != k)
            ]
            row[phase] = {"picks": int(times.size), "not_near_listed": len(far),
                          "isolated": len(alone)}  # fmt: skip
            if phase == "P":  # onset SNR (1-20 Hz vertical) of the picks near / not near
                snr = np.concatenate([f["Psnr"][f["Pp"] >= thr] for f in found.values()])
                is_far = np.array([nearest_error(listed, t) > near_s for t in times], bool)
                row["P"]["snr_quartiles_not_near"] = _quartiles(snr[is_far])
                row["P"]["snr_quartiles_near"] = _quartiles(snr[~is_far])
        out[thr] = row
        print(f"pr: {hours:.2f} station-hours, p >= {thr:.2f}: P picks {row['P']['picks']} "
              f"({row['P']['picks'] / hours:.1f}/station-hour), not within {near_s:g} s of a "
              f"listed onset: {row['P']['not_near_listed']} "
              f"({row['P']['not_near_listed'] / hours:.1f}/station-hour), of those with no P "
              f"at another station within {coincidence_s:g} s: {row['P']['isolated']} "
              f"({row['P']['isolated'] / hours:.1f}/station-hour); S picks "
              f"{row['S']['picks']} ({row['S']['not_near_listed']} not near, "
              f"{row['S']['isolated']} isolated); onset SNR quartiles of the P picks not near "
              f"{row['P']['snr_quartiles_not_near']}, "
              f"near {row['P']['snr_quartiles_near']}")  # fmt: skip
    cands = np.concatenate([f["Pc"] for f in found.values()])
    far = np.array([nearest_error(listed, t) > near_s for t in cands], bool)
    out["candidates"] = {"onsets": int(cands.size), "not_near_listed": int(far.sum())}
    print(
        f"pr: candidate P onsets (flagged; false P only where an event takes them): "
        f"{cands.size} ({cands.size / hours:.1f}/station-hour), not within {near_s:g} s of a "
        f"listed onset: {int(far.sum())} ({far.sum() / hours:.1f}/station-hour)"
    )
    st_picks = sum(f["stalta"].size for f in found.values())
    print(f"pr: stalta+aic: {st_picks} P picks ({st_picks / hours:.1f}/station-hour)")
    out["stalta_picks"] = st_picks
    return out


def _quartiles(x: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in np.percentile(x, [25, 50, 75])] if x.size else []


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="texnet,ingv,pr")
    ap.add_argument("--p-threshold", type=float, default=PickerParams.p_threshold)
    ap.add_argument("--s-threshold", type=float, default=PickerParams.s_threshold)
    ap.add_argument("--stride-s", type=float, default=PickerParams.stride_s)
    ap.add_argument("--tail-s", type=float, default=PickerParams.tail_s)
    ap.add_argument(
        "--hot-stride-s",
        type=float,
        default=PickerParams.hot_stride_s,
        help="stride after a window with P rising in its tail (0: off)",
    )
    ap.add_argument("--hot-p", type=float, default=PickerParams.hot_p)
    ap.add_argument("--hot-pick-p", type=float, default=PickerParams.hot_pick_p)
    ap.add_argument("--highpass-hz", type=float, default=PickerParams.highpass_hz)
    ap.add_argument(
        "--p-min-snr",
        type=float,
        default=PickerParams.p_min_snr,
        help="P onset SNR gate (1-20 Hz vertical, as STA/LTA's min_snr); 0: none",
    )
    ap.add_argument(
        "--s-min-snr",
        type=float,
        default=PickerParams.s_min_snr,
        help="S onset SNR gate (the larger of the 1-20 Hz horizontals, same measure); 0: none",
    )
    ap.add_argument(
        "--z-only",
        nargs="?",
        const="zeros",
        default="",
        choices=["zeros", "copy"],
        help="vertical only: horizontals as zeros (the stage's way) or copies of Z",
    )
    ap.add_argument(
        "--rotate-horizontals-deg",
        type=float,
        default=0.0,
        help="rotate each station's two horizontals by this angle before picking (TexNet, "
        "INGV): how much the picks depend on the horizontals' orientation",
    )
    ap.add_argument(
        "--candidate-p",
        type=float,
        default=PickerParams.candidate_p,
        help="candidate P onsets: PhaseNet peaks from this (0: none)",
    )
    ap.add_argument(
        "--candidate-stalta",
        type=float,
        default=PickerParams.candidate_stalta,
        help="candidate P onsets: STA/LTA ratio from this (0: none)",
    )
    ap.add_argument("--candidate-min-snr", type=float, default=PickerParams.candidate_min_snr)
    ap.add_argument(
        "--p-max-hv",
        type=float,
        default=PickerParams.p_max_hv,
        help="P peaks whose onset raises the horizontals more than this times the vertical "
        "are S onsets (polarization); 0: no such check",
    )
    ap.add_argument(
        "--resample-hz",
        type=float,
        default=0.0,
        help="resample every record faster than this rate to it before picking (zero-phase): "
        "the pickers on the same onsets as a network recording at that rate has them",
    )
    ap.add_argument(
        "--glitch",
        default="",
        metavar="SIZE@SECONDS",
        help="TexNet, INGV: at each station with a P reading, one sample SIZE times each "
        "component's largest deviation, SECONDS before the P (a telemetry bit error)",
    )
    ap.add_argument("--near-s", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    model = PhaseNetModel.load(device="cpu", threads=args.threads)
    low = min(args.p_threshold, args.s_threshold, 0.1 if args.sweep else 1.0)
    params = PickerParams(p_threshold=low, s_threshold=low, stride_s=args.stride_s,
                          tail_s=args.tail_s, highpass_hz=args.highpass_hz,
                          p_min_snr=args.p_min_snr, s_min_snr=args.s_min_snr,
                          hot_stride_s=args.hot_stride_s,
                          hot_p=args.hot_p, hot_pick_p=args.hot_pick_p,
                          candidate_p=args.candidate_p if args.candidate_p < low else 0.0,
                          candidate_stalta=args.candidate_stalta,
                          candidate_min_snr=args.candidate_min_snr,
                          p_max_hv=args.p_max_hv)  # fmt: skip
    sweep = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8} if args.sweep else set()
    thresholds = sorted({args.p_threshold, args.s_threshold} | sweep)
    print(f"settings: stride {params.stride_s} s (hot {params.hot_stride_s} s at P >= "
          f"{params.hot_p}, hot picks P >= {params.hot_pick_p}), tail {params.tail_s} s, window "
          f"{params.window_s} s, high-pass {params.highpass_hz} Hz, P SNR gate "
          f"{params.p_min_snr}, S SNR gate {params.s_min_snr}, P max H/V {params.p_max_hv}, "
          f"z_only={args.z_only}")  # fmt: skip
    results: dict = {}
    for name, loader in (("texnet", texnet_readings), ("ingv", ingv_readings)):
        if name not in args.sets:
            continue
        t0 = time.perf_counter()
        loaded = loader()
        if loaded is None:
            print(f"{name}: skipped (data not found under {SHARED})")
            continue
        groups, readings = loaded
        if args.resample_hz:
            groups = {k: resample_traces(v, args.resample_hz) for k, v in groups.items()}
        if args.rotate_horizontals_deg:
            deg = args.rotate_horizontals_deg
            groups = {k: rotate_horizontals(v, deg) for k, v in groups.items()}
        if args.glitch:
            size, before_s = (float(v) for v in args.glitch.split("@"))
            p_at = {k: t for k, ph, t in readings if ph == "P"}
            groups = {k: add_glitch(v, p_at[k] - before_s, size) if k in p_at else v
                      for k, v in groups.items()}  # fmt: skip
        found = pick_groups(model, groups, params, args.z_only)
        res = score(readings, found, thresholds)
        report(name, res, thresholds)
        results[name] = res
        print(f"{name}: {len(groups)} stations, {time.perf_counter() - t0:.1f} s")
    if "pr" in args.sets:
        results["pr"] = pr_false_picks(
            model, params, args.z_only, args.near_s, thresholds, resample_hz=args.resample_hz
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
