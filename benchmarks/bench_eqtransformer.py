"""EQTransformer (Mousavi et al. 2020, original MIT weights) against the stream stage's
PhaseNet on the real sets, in the same run: is it worth adding as a picker?

Run from the repository root (``FIRSTMOTION_SHARED`` names the shared folder when it is not
``../shared``)::

    bash benchmarks/eqt_env.sh          # once: benchmarks/.venv-eqt (TensorFlow 2.15, weights)
    .venv/bin/python benchmarks/bench_eqtransformer.py [--json out.json]

The records of each set (TexNet and INGV with their analyst P and S, the Puerto Rico noise
hour with its listed onsets) are put on the stream stage's 100 Hz grid (E, N, Z; a missing
horizontal is the vertical, as the stage's ``vertical_only = "copy"``), EQTransformer runs over
60 s windows 30 s apart in ``benchmarks/.venv-eqt`` (``benchmarks/eqt_forward.py``; TensorFlow
pins numpy<2), and its P and S peaks are scored as ``bench_picker.py`` scores PhaseNet: within
0.1 / 0.5 s of an analyst pick, and P picks per station-hour more than 10 s from any listed
Puerto Rico onset. P peaks are scored raw, with the stage's AIC refinement, and with the
refinement and the stage's onset SNR gate (2.0). PhaseNet runs at its operating settings on
the same records in the same run.
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from obspy import Stream, UTCDateTime, read

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_picker as bp  # noqa: E402

from stream.picker import (  # noqa: E402
    PhaseNetModel,
    PickerParams,
    find_peaks,
    p_onset_snr,
    refine_p_onset,
    to_grid,
)

ROOT = Path(__file__).resolve().parents[1]
EQT_PY = ROOT / "benchmarks/.venv-eqt/bin/python"
RATE = 100.0


def grid_arrays(groups: dict) -> dict[str, tuple[float, np.ndarray]]:
    """``{key: (first sample epoch s, float32 (3, n) E/N/Z at 100 Hz)}`` over the span all
    components cover; a missing horizontal is the vertical."""
    out = {}
    for key, trs in groups.items():
        have = [tr for tr in trs if tr is not None]
        t0 = max(tr.stats.starttime for tr in have)
        n = int((min(tr.stats.endtime for tr in have) - t0) * RATE)
        rows = []
        for tr in trs:
            if tr is None:
                rows.append(None)
                continue
            rate = tr.stats.sampling_rate
            pos = (t0 - tr.stats.starttime) * rate + np.arange(n) * rate / RATE
            rows.append(to_grid(tr.data.astype(np.float64), rate, 0.0, pos))
        rows = [r if r is not None else rows[2] for r in rows]
        out[key] = (t0.timestamp, np.stack(rows).astype(np.float32))
    return out


def load_sets() -> dict:
    """``{set: (groups, arrays, references)}``: references are the analyst readings (TexNet,
    INGV) or the listed onset times (Puerto Rico)."""
    sets = {}
    for name, loader in (("texnet", bp.texnet_readings), ("ingv", bp.ingv_readings)):
        got = loader()
        if got:
            sets[name] = (got[0], grid_arrays(got[0]), got[1])
    base = bp.SHARED / "pr2017_noise"
    if base.is_dir():
        st = Stream()
        for f in sorted(glob.glob(str(base / "*.mseed"))):
            st += read(f)
        labels = json.loads((ROOT / "firstmotion/data/pr2017_onsets.json").read_text())
        listed = sorted(UTCDateTime(o["time"]).timestamp
                        for o in labels["onsets"] + labels["left_out"])  # fmt: skip
        groups = bp.station_groups(st)
        sets["pr"] = (groups, grid_arrays(groups), listed)
    return sets


def eqt_picks(t0: float, x: np.ndarray, prob: np.ndarray, row: int, thr: float, refine: bool,
              gate: float) -> np.ndarray:  # fmt: skip
    """Peak times of probability row ``row`` (1 P, 2 S) above ``thr``; P peaks optionally
    refined by the stage's AIC and gated by its onset SNR."""
    z = x[2].astype(np.float64)
    out = []
    for idx, _p in find_peaks(prob[row].astype(np.float32), thr):
        if row == 1 and refine:
            idx = refine_p_onset(z, RATE, idx)
        if row == 1 and gate and p_onset_snr(z, RATE, idx) < gate:
            continue
        out.append(t0 + idx / RATE)
    return np.array(out)


def eqt_set_picks(sets: dict, prob: dict, thr: float, refine: bool, gate: float, name: str,
                  key: str, phase: str) -> np.ndarray:  # fmt: skip
    """EqT's picks of one record of a set (``prob``: the forward pass's output)."""
    t0, x = sets[name][1][key]
    row = 1 if phase == "P" else 2
    return eqt_picks(t0, x, prob[f"{name}|{key}"], row, thr, refine,
                     gate if phase == "P" else 0.0)  # fmt: skip


def score_sets(sets: dict, picks_of) -> dict:
    """``picks_of(set, key, phase) -> times``; per set and phase ``[within 0.1 s, within
    0.5 s, readings]``, and Puerto Rico P / S picks per station-hour more than 10 s from a
    listed onset."""
    res = {}
    for name in ("texnet", "ingv"):
        if name not in sets:
            continue
        _g, arrays, readings = sets[name]
        for phase in ("P", "S"):
            e = np.array([bp.nearest_error(picks_of(name, k, phase), t)
                          for k, ph, t in readings if ph == phase and k in arrays])  # fmt: skip
            res[f"{name}_{phase}"] = [int(np.sum(e <= 0.1)), int(np.sum(e <= 0.5)), int(e.size)]
    if "pr" in sets:
        _g, arrays, listed = sets["pr"]
        listed = np.asarray(listed)
        hours = sum(v[1].shape[1] for v in arrays.values()) / RATE / 3600
        for phase in ("P", "S"):
            far = sum(int(bp.nearest_error(listed, t) > 10.0)
                      for k in arrays for t in picks_of("pr", k, phase))  # fmt: skip
            res[f"pr_false_{phase}_per_station_hour"] = round(far / hours, 1)
    return res


def line(label: str, r: dict) -> str:
    def cell(k):
        return f"{r[k][0]}/{r[k][1]}" if k in r else "-"

    return (f"{label:<38} {cell('texnet_P'):>6} {cell('texnet_S'):>6} {cell('ingv_P'):>6} "
            f"{cell('ingv_S'):>6} {r.get('pr_false_P_per_station_hour', '-'):>6} "
            f"{r.get('pr_false_S_per_station_hour', '-'):>6}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--thresholds", default="0.1,0.3", help="EqT peak thresholds")
    ap.add_argument("--models", default="EqT_model.h5,EqT_model2.h5")
    ap.add_argument("--filters", default="eqt,causal")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    if not EQT_PY.exists():
        sys.exit("benchmarks/.venv-eqt is missing: run `bash benchmarks/eqt_env.sh` first")
    sets = load_sets()
    n_ref = {f"{n}_{ph}": sum(1 for k, p, _t in sets[n][2] if p == ph and k in sets[n][1])
             for n in ("texnet", "ingv") if n in sets for ph in ("P", "S")}  # fmt: skip
    print(
        "counts: within 0.1 s / within 0.5 s of the analyst picks ("
        + ", ".join(f"{k} of {v}" for k, v in n_ref.items())
        + "); PR: picks per station-hour more than 10 s from a listed onset"
    )
    print(
        f"{'picker':<38} {'TexP':>6} {'TexS':>6} {'INGVP':>6} {'INGVS':>6} {'PR P':>6} {'PR S':>6}"
    )
    results: dict = {"references": n_ref}

    model = PhaseNetModel.load(device="cpu", threads=1)
    params = PickerParams()
    found = {name: bp.pick_groups(model, g, params, "") for name, (g, _a, _r) in sets.items()}

    def phasenet_of(name, key, phase):
        f = found[name][key]
        thr = params.p_threshold if phase == "P" else params.s_threshold
        return f[phase][f[phase + "p"] >= thr]

    results["phasenet (operating settings)"] = r = score_sets(sets, phasenet_of)
    print(line("phasenet (operating settings)", r), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        keys = {f"{n}|{k}": (n, k) for n, (_g, a, _r) in sets.items() for k in a}
        np.savez(f"{tmp}/in.npz", **{s: sets[n][1][k][1] for s, (n, k) in keys.items()})
        for model_name in args.models.split(","):
            for kind in args.filters.split(","):
                t = time.perf_counter()
                subprocess.run([str(EQT_PY), str(ROOT / "benchmarks/eqt_forward.py"),
                                f"{tmp}/in.npz", f"{tmp}/out.npz", "--filter", kind, "--model",
                                str(EQT_PY.parents[1] / "eqt" / model_name)],
                               check=True, stderr=subprocess.DEVNULL)  # fmt: skip
                prob = dict(np.load(f"{tmp}/out.npz"))
                wall = time.perf_counter() - t
                for thr in (float(v) for v in args.thresholds.split(",")):
                    for refine, gate in ((False, 0.0), (True, 0.0), (True, 2.0)):
                        eqt_of = partial(eqt_set_picks, sets, prob, thr, refine, gate)
                        label = (
                            f"{model_name.removesuffix('.h5')} {kind} p>={thr:g}"
                            + (" +AIC" if refine else "")
                            + (" +gate" if gate else "")
                        )
                        results[label] = r = score_sets(sets, eqt_of)
                        print(line(label, r), flush=True)
                print(f"  ({model_name} {kind}: forward pass over all sets {wall:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
