"""Onset polarization at analysts' P and S readings: what ``detect.phasenet_p_max_hv`` stands on.

Run from the repository root::

    .venv/bin/python benchmarks/picker_polarization.py [--plot FIG.png]

(``FIRSTMOTION_SHARED`` names the shared data folder when it is not ``../shared``.)

For every analyst P and S reading of the INGV and TexNet sets (as ``bench_picker.py`` reads
them), the station's three components are put on the picker's 100 Hz grid
(:func:`stream.picker.to_grid`) around the reading and :func:`stream.picker.onset_hv_ratio`
is measured there, as the picker measures it on a P peak: the increase of the 2-20 Hz
horizontal ground motion over the vertical's at the onset. Prints the percentiles per set
and phase and how many readings lie above the operating bound (P readings above it would
lose their pick; S readings above it are the S onsets the check tells from a P).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from stream.picker import GRID_RATE_HZ, PickerParams, onset_hv_ratio, to_grid

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_picker import ingv_readings, texnet_readings  # noqa: E402

BEFORE_S, AFTER_S = 6.0, 1.0  # grid window around a reading (the ratio reads 3.6 s / 0.3 s)


def reading_ratio(traces: list, t: float) -> float:
    """:func:`onset_hv_ratio` at epoch ``t`` of E, N, Z traces (NaN without all three or
    without the samples)."""
    if any(tr is None for tr in traces):
        return float("nan")
    n = int(round((BEFORE_S + AFTER_S) * GRID_RATE_HZ))
    rows = []
    for tr in traces:
        rate = float(tr.stats.sampling_rate)
        first = (t - BEFORE_S - tr.stats.starttime.timestamp) * rate
        pos = first + np.arange(n) * rate / GRID_RATE_HZ
        if pos[0] < 2 * rate or pos[-1] > tr.stats.npts - 1 - 2 * rate:
            return float("nan")
        rows.append(to_grid(tr.data.astype(np.float64), rate, 0, pos))
    return onset_hv_ratio(np.stack(rows), BEFORE_S * GRID_RATE_HZ)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plot", default="", help="histograms of the ratios (PNG)")
    args = ap.parse_args()
    bound = PickerParams.p_max_hv
    found: dict[tuple[str, str], np.ndarray] = {}
    for name, loader in (("INGV", ingv_readings), ("TexNet", texnet_readings)):
        loaded = loader()
        if loaded is None:
            print(f"{name}: not in the shared data folder")
            continue
        groups, readings = loaded
        for phase in ("P", "S"):
            r = np.array([reading_ratio(groups[k], t) for k, ph, t in readings if ph == phase])
            r = r[~np.isnan(r)]
            found[(name, phase)] = r
            # a vertical with no increase gives inf: counted as 1000 in the percentiles
            q = np.percentile(np.minimum(r, 1e3), [5, 50, 95]) if r.size else [np.nan] * 3
            print(f"{name} {phase}: {r.size} readings, onset H/V 5th / 50th / 95th percentile "
                  f"{q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f}; above 2: {int(np.sum(r > 2))}, above "
                  f"the bound {bound:g}: {int(np.sum(r > bound))}")  # fmt: skip
    if args.plot and found:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 3.6))
        bins = np.logspace(-2, 2, 41)
        for (name, phase), r in found.items():
            style = "-" if phase == "P" else "--"
            ax.hist(np.clip(r, bins[0], bins[-1]), bins=bins, histtype="step", lw=1.5,
                    ls=style, label=f"{name} {phase} ({r.size})")  # fmt: skip
        ax.axvline(bound, color="k", lw=1)
        ax.text(bound * 1.08, ax.get_ylim()[1] * 0.9, f"p_max_hv = {bound:g}", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("onset H/V: horizontal over vertical increase, 2-20 Hz (clipped to 0.01-100)")
        ax.set_ylabel("analyst readings")
        ax.set_title("P onsets move the vertical, S onsets the horizontals (real readings)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"figure: {args.plot}")


if __name__ == "__main__":
    main()
