"""``firstmotion picker eval``: the stream stage's pickers on a network's own analyst picks.

Labels: the P and S picks of QuakeML (or another event format obspy reads: SEISAN's Nordic
S-files, NonLinLoc), HYPO71 phase cards (each card's P and S readings) or
the CSV pair ``events.csv picks.csv`` or its picks CSV alone
(:func:`firstmotion.event_catalogs.read_events`).
Waveforms: files, folders or globs of anything obspy reads, or an SDS archive root. For every
event and labelled station, the station's record from :data:`BEFORE_S` before the event's
first label to :data:`AFTER_S` after its last (only the files holding it are read), its
components grouped as the stream stage groups them
(:func:`stream.phase_stage.station_groups`: E/N or 1/2 and Z, or the Japanese codes U/UD,
N/NS and E/EW; a station with a vertical
only is read as the stage reads it), is picked in one pass with the stage's windows and rules
(:func:`stream.picker.pick_traces`, the ``[detect]`` settings of ``--config`` or the
defaults) and by STA/LTA + AIC on its vertical (:func:`stream.detect.detect_once`, P only).
Each label is scored by the nearest pick of its phase: counts within 0.1 and 0.5 s and the
median absolute error of those within 0.5 s. Candidate onsets (picks the stage offers only
to an event that predicts them) are not picks and are not counted.

A label whose station has no vertical in the waveforms is named in a warning and left out.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firstmotion.archive import (
    expand_paths,
    index_files,
    is_sds_root,
    same_site,
    site_codes_given,
    squeezed,
)
from firstmotion.channels import sensor
from firstmotion.errors import InputError
from firstmotion.event_catalogs import read_events

log = logging.getLogger("firstmotion.picker_eval")

BEFORE_S = 60.0  # record before an event's first label: two PhaseNet windows of context
AFTER_S = 40.0  # after its last label: the second look reads 18 s after an onset
LIMITS_S = (0.1, 0.5)


@dataclass(frozen=True)
class Label:
    """An analyst's P or S pick: station codes as given ('' where unknown)."""

    event: str
    network: str
    station: str
    location: str
    channel: str
    phase: str  # "P" or "S"
    time_s: float


def read_labels(paths: list[str]) -> list[Label]:
    """The P and S picks of a catalog (QuakeML, HYPO71 cards, or the CSV pair)."""
    out = [
        Label(ev.event_id, p.network, p.station, p.location, p.channel, p.phase, p.time_epoch_s)
        for ev in read_events(paths, phases=("P", "S"), option="--labels")
        for p in ev.picks
    ]
    if not out:
        raise InputError(f"--labels {' '.join(paths)}: no P or S pick")
    return out


def serves(label: Label, key: str) -> bool:
    """Whether the station group ``key`` (``NET.STA.LOC.BI``) is the label's station: the
    same station code (HYPO71's 4 letters match a longer code with zeros removed: ``T107``
    is ``T0107``), and network, location and sensor where the label gives them (the band and
    instrument codes of a SEED channel, the band of a two-letter Nordic one:
    :func:`firstmotion.channels.sensor`)."""
    net, sta, loc, band = key.split(".")
    if not same_site(label.network, label.station, label.location, net, sta, loc):
        return False
    given = sensor(label.channel) if len(label.channel or "") >= 2 else ""
    return band.startswith(given) if len(given) < 2 else band == given


def _preference(key: str, groups: dict) -> tuple:
    """Among a station's groups: not an accelerometer (instrument code N), then the higher
    rate."""
    band = key.split(".")[-1]
    rate = float(groups[key][2].stats.sampling_rate)
    return (band[1:2].upper() != "N", rate)


def label_group(label: Label, groups: dict) -> str | None:
    """The station group (a key of :func:`stream.phase_stage.station_groups`) that reads
    ``label``: of the groups that serve it, the one carrying the label's network and location
    codes, then a seismometer before an accelerometer, then the higher rate; None without
    one."""
    keys = [k for k in groups if serves(label, k)]
    if not keys:
        return None

    def codes(key: str) -> int:  # a record with the label's own network and location first
        net, _sta, loc, _band = key.split(".")
        return site_codes_given(label.network, label.location, net, loc)

    return max(keys, key=lambda k: (codes(k), *_preference(k, groups)))


class Waveforms:
    """The records of ``paths``: files, folders or globs indexed once by their headers
    (:func:`firstmotion.archive.index_files`), or an SDS root; :meth:`stream` reads
    only what one event needs."""

    def __init__(self, paths: list[str]) -> None:
        self.client = None
        self.entries = []
        if len(paths) == 1 and is_sds_root(paths[0]):
            from obspy.clients.filesystem.sds import Client

            self.client = Client(paths[0])
            self.codes = {(net, sta) for net, sta, _loc, _cha in self.client.get_all_nslc()}
            return
        files = expand_paths(paths)
        if not files:
            raise InputError(f"--waveforms {' '.join(paths)}: no file")
        self.entries, bad = index_files(files)
        for path, why in bad.items():
            log.warning("--waveforms: %s: %s", path, why)

    def stream(self, span: tuple[float, float], stations: set[str]):
        """An obspy Stream of every channel of ``stations`` (squeezed codes) within ``span``
        (epoch seconds)."""
        from obspy import Stream, UTCDateTime, read

        a, b = UTCDateTime(span[0]), UTCDateTime(span[1])
        st = Stream()
        if self.client is not None:
            for net, sta in sorted(self.codes):
                if squeezed(sta) in stations:
                    st += self.client.get_waveforms(net, sta, "*", "*", a, b)
            return st
        for entry in self.entries:
            if entry.wanted(stations, span, verticals=False):
                got = read(str(entry.path), starttime=a, endtime=b)
                st += Stream([tr for tr in got if squeezed(tr.stats.station) in stations])
        return st


def nearest_error(times: np.ndarray, t: float) -> float:
    """Signed error of the pick nearest ``t`` (inf without one)."""
    if times.size == 0:
        return float("inf")
    d = times - t
    return float(d[np.argmin(np.abs(d))])


def summary(errors: list[float]) -> dict:
    """Counts within each of :data:`LIMITS_S` and the median |error| of those within 0.5 s."""
    e = np.abs(np.asarray(errors, dtype=np.float64))
    close = e[e <= LIMITS_S[-1]]
    out = {"n": int(e.size)}
    out.update({f"within_{lim:g}_s": int(np.sum(e <= lim)) for lim in LIMITS_S})
    out["median_abs_error_s"] = round(float(np.median(close)), 4) if close.size else None
    return out


def evaluate(labels: list[Label], waveforms: list[str], params, model) -> dict:
    """The figures of the module docstring: per phase the learned picker's (and for P the
    STA/LTA detector's) counts; per label the errors (JSON-ready)."""
    from obspy import UTCDateTime
    from tqdm import tqdm

    from stream.detect import DetectParams, detect_once
    from stream.phase_stage import station_groups
    from stream.picker import pick_traces

    events: dict[str, list[Label]] = {}
    for lab in labels:
        events.setdefault(lab.event, []).append(lab)
    spans = {
        ev: (min(x.time_s for x in labs) - BEFORE_S, max(x.time_s for x in labs) + AFTER_S)
        for ev, labs in events.items()
    }
    source = Waveforms(waveforms)
    rows, missing = [], []
    with tqdm(total=len(labels), desc="picker eval", unit="label", disable=None) as bar:
        for ev, labs in events.items():
            groups = station_groups(source.stream(spans[ev], {squeezed(x.station) for x in labs}))
            by_station: dict[str, list[Label]] = {}
            for lab in labs:
                key = label_group(lab, groups)
                if key is None:
                    missing.append(f"{ev} {lab.network}.{lab.station} {lab.phase}")
                    bar.update()
                    continue
                by_station.setdefault(key, []).append(lab)
            for key, here in by_station.items():
                traces = groups[key]
                picks = [p for p in pick_traces(model, traces, params) if not p.candidate]
                z = traces[2]
                rate = float(z.stats.sampling_rate)
                z0 = z.stats.starttime.timestamp
                found = {
                    ph: np.array([p.time_epoch_s for p in picks if p.phase == ph])
                    for ph in ("P", "S")
                }
                dets = detect_once(z.data.astype(np.float64), rate, DetectParams())
                stalta = np.array([z0 + d.onset_index / rate for d in dets])
                z1 = z.stats.endtime.timestamp
                for lab in here:
                    if not z0 <= lab.time_s <= z1:  # before or after the record
                        missing.append(f"{ev} {lab.network}.{lab.station} {lab.phase} "
                                       "(outside the record)")  # fmt: skip
                        bar.update()
                        continue
                    row = {
                        "event": ev,
                        "station": key,
                        "phase": lab.phase,
                        "time": str(UTCDateTime(lab.time_s)),
                        "learned_error_s": nearest_error(found[lab.phase], lab.time_s),
                    }
                    if lab.phase == "P":
                        row["stalta_error_s"] = nearest_error(stalta, lab.time_s)
                    rows.append(row)
                    bar.update()
    if missing:
        log.warning("%d of %d labels have no vertical in --waveforms or lie outside the record, "
                    "left out: %s",
                    len(missing), len(labels), "; ".join(missing[:10]))  # fmt: skip
    if not rows:
        raise InputError(f"--waveforms {' '.join(waveforms)}: no vertical trace for any label")
    out: dict = {}
    for ph in ("P", "S"):
        these = [r for r in rows if r["phase"] == ph]
        out[ph] = {"learned": summary([r["learned_error_s"] for r in these])}
        if ph == "P":
            out[ph]["stalta"] = summary([r["stalta_error_s"] for r in these])
    out["left_out"] = missing
    for r in rows:  # JSON has no inf: no pick of the phase on the record
        for k in ("learned_error_s", "stalta_error_s"):
            if k in r:
                r[k] = round(r[k], 4) if np.isfinite(r[k]) else None
    out["labels"] = rows
    return out


def plot_errors(result: dict, path: str) -> None:
    """Histograms of the signed errors within 0.5 s (pick minus label): P for the learned
    picker and STA/LTA, S for the learned picker, each with its counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = np.linspace(-LIMITS_S[-1], LIMITS_S[-1], 41)
    panels = (("P", ("learned", "stalta")), ("S", ("learned",)))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharex=True)
    for ax, (phase, pickers) in zip(axes, panels, strict=True):
        for name in pickers:
            key = f"{name}_error_s"
            e = np.array([r[key] for r in result["labels"] if r["phase"] == phase
                          and r.get(key) is not None and abs(r[key]) <= LIMITS_S[-1]])  # fmt: skip
            s = result[phase][name]
            who = "PhaseNet" if name == "learned" else "STA/LTA + AIC"
            label = (f"{who}: {s['within_0.1_s']} / {s['within_0.5_s']} of {s['n']} "
                     "within 0.1 / 0.5 s")  # fmt: skip
            ax.hist(e, bins=bins, histtype="step" if name == "stalta" else "stepfilled",
                    alpha=1.0 if name == "stalta" else 0.6, label=label)  # fmt: skip
        for lim in LIMITS_S[:-1]:
            ax.axvspan(-lim, lim, color="grey", alpha=0.08)
        ax.set(xlabel=f"{phase} pick - analyst's (s)", ylabel="labels", title=f"{phase} picks")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--labels", nargs="+", required=True, metavar="FILE",
        help="analyst P and S picks: QuakeML or another event format obspy reads (SEISAN "
             "S-files, NonLinLoc .hyp; a file or folder), HYPO71 phase cards (a file or "
             "folder), the CSV pair events.csv picks.csv, or a picks CSV alone",
    )  # fmt: skip
    parser.add_argument(
        "--waveforms", nargs="+", required=True, metavar="PATH",
        help="miniSEED (or anything obspy reads) files, folders, globs, or an SDS root",
    )  # fmt: skip
    parser.add_argument("--config", default=None, help="TOML config: its [detect] settings")
    parser.add_argument("--json", default=None, help="also write the figures and every label")
    parser.add_argument("--plot", default=None, help="write a PNG: the error histograms")


def run(args: argparse.Namespace) -> int:
    from firstmotion.config import load_settings
    from stream.ingest import picker_params
    from stream.picker import PhaseNetModel

    settings = load_settings(args.config)
    params = picker_params(settings.detect)
    model = PhaseNetModel.load(params.model, device=params.device)
    labels = read_labels(args.labels)
    result = evaluate(labels, args.waveforms, params, model)
    for ph in ("P", "S"):
        for name, s in result[ph].items():
            if s["n"]:
                print(f"{ph} ({s['n']} labels), {name}: {s['within_0.1_s']} within 0.1 s, "
                      f"{s['within_0.5_s']} within 0.5 s, median |error| "
                      f"{s['median_abs_error_s']} s")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.plot:
        plot_errors(result, args.plot)
    return 0
