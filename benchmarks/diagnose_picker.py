"""Why the learned picker misses TexNet P onsets and picks Puerto Rico noise: a diagnosis.

Run from the repository root::

    .venv/bin/python benchmarks/diagnose_picker.py [--sets texnet,ingv,pr] [--no-figures]

(``FIRSTMOTION_SHARED`` names the shared data folder when it is not ``../shared``.)

* For every TexNet analyst P reading: sampling rate, epicentral distance (QuakeML arrival),
  the onset SNR at the analyst's time (:func:`stream.picker.p_onset_snr`: 1-20 Hz causal
  band-pass, RMS 1 s after / 2 s before, the STA/LTA detector's measure), the same RMS ratio
  in four bands (zero-phase band-passes), and PhaseNet's largest P probability within 0.5 s
  of the reading with the onset 5 s, 15 s and 27.5 s into a 30 s window (27.5 s: where the
  stream stage's accepted region reads it). Figure ``benchmarks/figures/texnet_p_diagnosis.png``:
  the 1 Hz high-passed vertical around each reading with the P (red) and S (blue) probability.
* Every PhaseNet P pick at p >= 0.1 without the SNR gate on the three sets: its onset SNR and
  probability, labelled (TexNet/INGV: within 0.1 s of an analyst P on its station; PR: within
  10 s of an onset listed in firstmotion/data/pr2017_onsets.json or not). Figure
  ``benchmarks/figures/picker_snr_probability.png``; counts per gate and threshold printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import signal as sps

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_picker as bp  # noqa: E402

from stream.picker import PhaseNetModel, PickerParams, p_onset_snr, to_grid  # noqa: E402

FIGURES = Path(__file__).resolve().parent / "figures"
BANDS_HZ = ((1, 5), (5, 10), (10, 20), (20, 45))
POSITIONS_S = (5.0, 15.0, 27.5)


def band_snr(tr, t: float, lo: float, hi: float) -> float:
    rate = tr.stats.sampling_rate
    hi = min(hi, 0.45 * rate)
    if lo >= hi:
        return float("nan")
    sos = sps.butter(4, [lo, hi], "bandpass", fs=rate, output="sos")
    y = sps.sosfiltfilt(sos, tr.data.astype(float))
    i = int(round((t - tr.stats.starttime.timestamp) * rate))
    noise = y[max(0, i - int(2 * rate)) : i]
    sig = y[i : i + int(rate)]
    return float(np.sqrt(np.mean(sig**2)) / np.sqrt(np.mean(noise**2)))


def window_at(traces, t0: float) -> np.ndarray | None:
    w = np.zeros((3, 3000))
    for c, tr in enumerate(traces):
        if tr is None:
            continue
        start = tr.stats.starttime.timestamp
        if t0 < start + 1 or t0 + 30 > tr.stats.endtime.timestamp - 1:
            return None
        rate = tr.stats.sampling_rate
        pos = (t0 - start) * rate + np.arange(3000) * rate / 100.0
        w[c] = to_grid(tr.data.astype(float), rate, 0, pos)
    return w


def texnet_distances() -> dict[tuple[str, str], float]:
    from obspy import read_events

    out = {}
    for name in ("texnet2017cvmt", "texnet2017dfac"):
        ev = read_events(str(bp.SHARED / "texnet2017" / f"{name}.qml"))[0]
        picks = {p.resource_id: p for p in ev.picks}
        for a in ev.preferred_origin().arrivals:
            p = picks.get(a.pick_id)
            if p is not None and a.distance is not None:
                out[(name, p.waveform_id.station_code)] = a.distance * 111.19
    return out


def texnet_table(model, params: PickerParams, figures: bool) -> None:
    groups, readings = bp.texnet_readings()
    dist = texnet_distances()
    found = bp.pick_groups(model, groups, params, "")
    rows = [(k, t) for k, ph, t in readings if ph == "P"]
    print("texnet P readings: station, rate Hz, distance km, onset SNR (1-20 Hz causal), "
          f"band SNR {BANDS_HZ}, max P prob at window positions {POSITIONS_S} s, "
          "picked within 0.1 s")  # fmt: skip
    shown = []
    for key, t in rows:
        traces = groups[key]
        z = traces[2]
        rate = z.stats.sampling_rate
        snr = p_onset_snr(z.data, rate, (t - z.stats.starttime.timestamp) * rate)
        probs = []
        for pos in POSITIONS_S:
            w = window_at(traces, t - pos)
            if w is None:
                probs.append(float("nan"))
                continue
            p = model.predict(w[None], 1, params.highpass_hz)[0, 1]
            k = int(round(pos * 100))
            probs.append(float(p[k - 50 : k + 50].max()))
        ok = bp.nearest_error(found[key]["P"][found[key]["Pp"] >= params.p_threshold], t) <= 0.1
        event, sta = key.split(":")[0], key.split(":")[1].split(".")[1]
        d = dist.get((event, sta), float("nan"))
        bands = " ".join(f"{band_snr(z, t, *b):5.1f}" for b in BANDS_HZ)
        print(f"  {event[-4:]} {sta:5s} {rate:4.0f} {d:6.1f} {snr:5.1f} | {bands} | "
              + " ".join(f"{p:.2f}" for p in probs) + f" | {'yes' if ok else 'no'}")  # fmt: skip
        shown.append((key, t, d, snr))
    if figures:
        _texnet_figure(model, groups, shown, params.highpass_hz)


def _texnet_figure(model, groups, shown, highpass_hz: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(shown)
    fig, axes = plt.subplots((n + 1) // 2, 2, figsize=(12, 1.5 * ((n + 1) // 2)), sharex=True)
    sos = sps.butter(4, highpass_hz, "highpass", fs=100.0, output="sos")
    for ax, (key, t, d, snr) in zip(axes.ravel(), shown, strict=False):
        z = groups[key][2]
        off = min(15.0, t - z.stats.starttime.timestamp - 1.5)
        w = window_at(groups[key], t - off)
        p = model.predict(w[None], 1, highpass_hz)[0]
        y = sps.sosfilt(sos, w[2] - w[2, 0])
        tt = np.arange(3000) / 100.0 - off
        m = (tt > -6) & (tt < 4)
        ax.plot(tt[m], y[m] / np.abs(y[m]).max(), "k", lw=0.4)
        ax.plot(tt[m], p[1][m], "r", lw=1.2)
        ax.plot(tt[m], p[2][m], "b", lw=0.7)
        ax.axvline(0, color="g", lw=0.8)
        ax.set_ylim(-1, 1)
        sta = key.split(":")[1].rsplit(".", 1)[0]
        ax.set_title(f"{key[11:15]} {sta} {z.stats.sampling_rate:.0f} Hz, {d:.0f} km, "
                     f"SNR {snr:.1f}", fontsize=7)  # fmt: skip
        ax.tick_params(labelsize=6)
    fig.suptitle("TexNet P readings (green): vertical (1 Hz high-pass), PhaseNet P (red), S (blue)",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    FIGURES.mkdir(exist_ok=True)
    fig.savefig(FIGURES / "texnet_p_diagnosis.png", dpi=80)
    print(f"figure: {FIGURES / 'texnet_p_diagnosis.png'}")


def labelled_picks(model, sets: str) -> dict[str, list[tuple[float, float, bool]]]:
    """``{set: [(onset SNR, probability, matched)]}`` of P picks at p >= 0.1, no gate."""
    import json

    from obspy import Stream, UTCDateTime, read

    params = PickerParams(p_threshold=0.1, s_threshold=0.1, p_min_snr=0.0, candidate_p=0.0)
    out = {}
    for name, loader in (("texnet", bp.texnet_readings), ("ingv", bp.ingv_readings)):
        if name not in sets:
            continue
        groups, readings = loader()
        found = bp.pick_groups(model, groups, params, "")
        rows = []
        for key, f in found.items():
            mine = np.array([t for k, ph, t in readings if k == key and ph == "P"])
            for t, p, s in zip(f["P"], f["Pp"], f["Psnr"], strict=True):
                rows.append((float(s), float(p), bp.nearest_error(mine, t) <= 0.1))
        out[name] = rows
    if "pr" in sets:
        st = Stream()
        for f in sorted((bp.SHARED / "pr2017_noise").glob("*.mseed")):
            st += read(str(f))
        labels = json.loads((bp.ROOT / "firstmotion/data/pr2017_onsets.json").read_text())
        listed = np.array([UTCDateTime(o["time"]).timestamp
                           for o in labels["onsets"] + labels["left_out"]])  # fmt: skip
        found = bp.pick_groups(model, bp.station_groups(st), params, "")
        out["pr"] = [(float(s), float(p), bp.nearest_error(listed, t) <= 10.0)
                     for f in found.values()
                     for t, p, s in zip(f["P"], f["Pp"], f["Psnr"], strict=True)]  # fmt: skip
    return out


def snr_report(rows: dict, figures: bool) -> None:
    names = {"texnet": "TexNet within 0.1 s of analyst P", "ingv": "INGV within 0.1 s of analyst P",
             "pr": "PR within 10 s of a listed onset"}  # fmt: skip
    for name, r in rows.items():
        a = np.array(r, dtype=float).reshape(-1, 3)
        print(f"{name}: {len(a)} P picks (p >= 0.1, no gate); matched / other:")
        for gate in (0.0, 1.5, 2.0, 3.0):
            cells = []
            for thr in (0.1, 0.3, 0.5, 0.7):
                m = (a[:, 0] >= gate) & (a[:, 1] >= thr)
                cells.append(f"p>={thr}: {int(np.sum(m & (a[:, 2] == 1)))}/"
                             f"{int(np.sum(m & (a[:, 2] == 0)))}")  # fmt: skip
            print(f"  SNR >= {gate}: " + ", ".join(cells))
        for lab, sel in (("matched", a[:, 2] == 1), ("other", a[:, 2] == 0)):
            if sel.any():
                q = np.percentile(a[sel, 0], [10, 25, 50, 75, 90])
                print(f"  onset SNR of {lab}: 10/25/50/75/90% " + " ".join(f"{v:.2f}" for v in q))
    if not figures:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.6), sharey=True)
    for ax, (name, r) in zip(np.atleast_1d(axes), rows.items(), strict=True):
        a = np.array(r, dtype=float).reshape(-1, 3)
        for lab, sel, c in (("other", a[:, 2] == 0, "0.6"), (names[name], a[:, 2] == 1, "r")):
            ax.scatter(np.clip(a[sel, 0], 0.3, 1e3), a[sel, 1], s=8, c=c, label=lab)
        ax.axvline(2.0, color="k", ls="--", lw=0.8)
        ax.axhline(0.3, color="k", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("onset SNR, 1-20 Hz vertical (RMS 1 s / 2 s)")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=6, loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel("PhaseNet P probability")
    fig.tight_layout()
    FIGURES.mkdir(exist_ok=True)
    fig.savefig(FIGURES / "picker_snr_probability.png", dpi=90)
    print(f"figure: {FIGURES / 'picker_snr_probability.png'}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="texnet,ingv,pr")
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args(argv)
    model = PhaseNetModel.load(device="cpu", threads=1)
    if "texnet" in args.sets:
        texnet_table(model, PickerParams(), not args.no_figures)
    snr_report(labelled_picks(model, args.sets), not args.no_figures)


if __name__ == "__main__":
    main()
