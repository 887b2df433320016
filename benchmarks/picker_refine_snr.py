"""The P onset refinement against the onset SNR: real onsets under real noise.

Run from the repository root::

    .venv/bin/python benchmarks/picker_refine_snr.py [--snr 1.5,2,3,4,6,8,12,16,24,48]

(``FIRSTMOTION_SHARED`` names the shared data folder when it is not ``../shared``.)

Each INGV analyst P reading on a 100 Hz three-component station whose onset SNR
(:func:`stream.picker.p_onset_snr`) is at least ``--min-snr`` (60) is buried, on all three
components, under a stretch of the Puerto Rico noise hour (a random station and start, the
same for every level) scaled so that the onset SNR at the analyst's time is each ``--snr``
level. The learned picker runs over the noisy record with the refinement off
(:func:`stream.picker.pick_traces`, operating threshold, no SNR gate); its P pick nearest the
analyst's time (within 0.5 s) is then refined as the stream stage refines it
(:func:`stream.picker.refine_p_onset`, AIC on the 1-20 Hz vertical). Printed per level: how
many onsets were picked, and the absolute error to the analyst's time of PhaseNet's own time
and of the refined one (median, 90th percentile, count within 0.05 and 0.1 s).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from obspy import read

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_picker as bp  # noqa: E402

from stream.picker import (  # noqa: E402
    PhaseNetModel,
    PickerParams,
    p_onset_snr,
    pick_traces,
    refine_p_onset,
)


def noise_scale(z: np.ndarray, noise_z: np.ndarray, rate: float, index: float, snr: float) -> float:
    """The factor on ``noise_z`` that makes the onset SNR of ``z + factor * noise_z`` at
    ``index`` equal ``snr`` (bisection on its logarithm; the SNR falls as the factor grows)."""
    lo, hi = -3.0, 8.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if p_onset_snr(z + 10**mid * noise_z, rate, index) > snr:
            lo = mid
        else:
            hi = mid
    return 10 ** ((lo + hi) / 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snr", default="1.5,2,3,4,6,8,12,16,24,48")
    ap.add_argument("--min-snr", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plot", type=Path, default=None, help="error against SNR (PNG)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    got = bp.ingv_readings()
    noise_dir = bp.SHARED / "pr2017_noise"
    if got is None or not noise_dir.is_dir():
        print(f"needs {bp.SHARED}/ingv_fmpc and {noise_dir}")
        return 1
    groups, readings = got
    noise = read(str(noise_dir / "*.mseed"))
    noise.merge(fill_value="interpolate")
    stations = sorted({tr.stats.station for tr in noise})
    model = PhaseNetModel.load(device="cpu")
    params = PickerParams(p_refine="none", p_min_snr=0.0, candidate_p=0.0)
    levels = [float(x) for x in args.snr.split(",")]
    rng = np.random.default_rng(args.seed)
    errors: dict[float, list[tuple[float, float]]] = {s: [] for s in levels}
    rows = [(k, t) for k, phase, t in readings if phase == "P"]
    seen, used = set(), 0
    for n, (key, t) in enumerate(rows, 1):
        traces = groups[key]
        z = traces[2]
        rate = z.stats.sampling_rate
        if key in seen or rate != 100.0 or any(tr is None for tr in traces):
            continue
        seen.add(key)
        index = (t - z.stats.starttime.timestamp) * rate
        if p_onset_snr(z.data.astype(float), rate, index) < args.min_snr:
            continue
        used += 1
        sta = stations[rng.integers(len(stations))]
        comps = {tr.stats.channel[-1]: tr.data for tr in noise if tr.stats.station == sta}
        npts = max(tr.stats.npts for tr in traces)
        start = int(rng.integers(0, comps["Z"].size - npts - 1))
        segs = [comps[c][start : start + npts].astype(float) for c in ("E", "N", "Z")]
        for snr in levels:
            scale = noise_scale(z.data.astype(float), segs[2][: z.stats.npts], rate, index, snr)
            noisy = []
            for tr, seg in zip(traces, segs, strict=True):
                x = tr.copy()
                x.data = tr.data.astype(float) + scale * seg[: tr.stats.npts]
                noisy.append(x)
            picks = [p for p in pick_traces(model, noisy, params) if p.phase == "P"]
            near = [p for p in picks if abs(p.time_epoch_s - t) <= 0.5]
            if not near:
                errors[snr].append((np.nan, np.nan))
                continue
            p = min(near, key=lambda p: abs(p.time_epoch_s - t))
            i = (p.time_epoch_s - noisy[2].stats.starttime.timestamp) * rate
            refined = refine_p_onset(noisy[2].data, rate, i)
            errors[snr].append((p.time_epoch_s - t, (refined - index) / rate))
        print(f"\r{n}/{len(rows)} readings", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(f"{used} INGV onsets of onset SNR >= {args.min_snr:g} under Puerto Rico noise")
    print("SNR    picked  |error| median  p90 (s)    within 0.05 s   within 0.1 s")
    print("               PhaseNet  AIC   PhaseNet AIC  PhaseNet AIC   PhaseNet AIC")
    for snr, rows_ in errors.items():
        a = np.asarray(rows_, dtype=float)
        ok = np.isfinite(a[:, 0])
        pn, aic = np.abs(a[ok, 0]), np.abs(a[ok, 1])
        print(
            f"{snr:5.1f}  {ok.sum():3d}/{len(a):<3d}  {np.median(pn):.3f} {np.median(aic):.3f}  "
            f"{np.percentile(pn, 90):.3f} {np.percentile(aic, 90):.3f}   "
            f"{np.sum(pn <= 0.05):3d} {np.sum(aic <= 0.05):3d}        "
            f"{np.sum(pn <= 0.1):3d} {np.sum(aic <= 0.1):3d}"
        )
    if args.plot:
        plot(errors, args.plot)
    return 0


def plot(errors: dict[float, list[tuple[float, float]]], path: Path) -> None:
    """Median and 90th percentile of the absolute error against the onset SNR, PhaseNet's
    peak and the AIC-refined onset."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snr = np.array(sorted(errors))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    series = (
        (0, "PhaseNet peak (the pick's time)", "tab:blue"),
        (1, "AIC-refined onset (the polarity read)", "tab:orange"),
    )
    for col, name, colour in series:
        stats = []
        for s in snr:
            a = np.asarray(errors[s], dtype=float)
            e = np.abs(a[np.isfinite(a[:, 0]), col])
            stats.append((np.median(e), np.percentile(e, 90)))
        med, p90 = np.array(stats).T
        ax.plot(snr, med * 1e3, "o-", c=colour, label=f"{name}, median")
        ax.plot(snr, p90 * 1e3, "s--", c=colour, alpha=0.6, label="... 90th percentile")
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(snr, [f"{s:g}" for s in snr])
    ax.set_xlabel("onset SNR (1-20 Hz, 1 s after / 2 s before)")
    ax.set_ylabel("|pick - analyst onset| (ms)")
    ax.set_title("INGV onsets under real Puerto Rico noise")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
