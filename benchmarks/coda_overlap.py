"""A real P in a real earthquake's coda: does the learned picker find it?

On the swarm proxy (docs/swarm.md) most visible P without a pick arrive in an earlier
earthquake's coda, but the proxy's earthquakes are synthetic. This builds the same situation
from real records only: at each INGV station with an analyst P reading, the station's own
three-component record (``host``) plus a copy of itself delayed by ``D`` seconds and scaled by
``s`` (``guest``: the same earthquake repeated, as swarm events nearly repeat, its P arriving
``D`` after the host's P, in the host's P or S coda). The guest is demeaned and starts with a
1 s cosine ramp, so its start makes no step. Its P is the analyst's reading plus ``D``.

The composite record is picked in one pass with the stream stage's windows and rules
(:func:`stream.picker.pick_traces`, ``[detect]`` defaults) and the guest P gets one outcome:
a P pick within 0.1 s / 0.5 s, a candidate onset only (within 0.5 s), an S pick only, or
nothing; with the energy jump it makes in the composite (:func:`stream.picker.p_onset_snr`,
the picker's onset gate). Where the INGV cards hold the station's S reading, ``D`` is also
given after the host's S. With ``--polarity`` the shipped polarity reader reads the guest's
first motion at the analyst's time + ``D`` and at the picker's P pick there, against the
analyst's sign (the host's own read, without the guest, beside it).

Run from the repository root::

    FIRSTMOTION_SHARED=../shared PYTHONPATH=$PWD .venv/bin/python benchmarks/coda_overlap.py \\
        [--delays 2,4,8,16,32] [--scales 1,0.3,0.1] [--polarity] [--json F] [--plot F.png]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from firstmotion.archive import squeezed
from firstmotion.event_catalogs import read_events
from stream.phase_stage import station_groups
from stream.picker import PhaseNetModel, PickerParams, p_onset_snr, pick_traces
from stream.picker_eval import Waveforms, label_group, read_labels, serves

BEFORE_S = 35.0  # record kept before the host P (INGV records start 35-50 s before it)
AFTER_S = 40.0  # after the guest P: the second look reads 18 s after an onset
RAMP_S = 1.0
LEVEL_HISTORY_S = 60.0  # the background the level before an onset is compared with
LEVEL_FLAGS = (3.0, 10.0)  # levels reported as a possible "in a coda" flag


def shared_ingv() -> Path:
    root = Path(os.environ.get("FIRSTMOTION_SHARED", "../shared"))
    return root / "data" / "ingv_fmpc"


def composite(traces: list, delay_s: float, scale: float) -> list:
    """Each trace plus ``scale`` x itself delayed by ``delay_s`` (demeaned, its first second
    ramped in; the delayed copy holds nothing before the record's start + ``delay_s``)."""
    out = []
    for tr in traces:
        if tr is None:
            out.append(None)
            continue
        x = tr.data.astype(np.float64)
        n = int(round(delay_s * tr.stats.sampling_rate))
        guest = np.zeros_like(x)
        if n < x.size:
            g = (x - x.mean())[: x.size - n] * scale
            ramp = min(int(RAMP_S * tr.stats.sampling_rate), g.size)
            g[:ramp] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
            guest[n:] = g
        tr2 = tr.copy()
        tr2.data = x + guest
        out.append(tr2)
    return out


def outcome(picks: list, t: float) -> str:
    """What the picker gave near the guest P time ``t`` (epoch s)."""
    near = [p for p in picks if abs(p.time_epoch_s - t) <= 0.5]
    ps = [p for p in near if p.phase == "P" and not p.candidate]
    if ps:
        best = min(abs(p.time_epoch_s - t) for p in ps)
        return "pick 0.1 s" if best <= 0.1 else "pick 0.5 s"
    if any(p.phase == "P" for p in near):
        return "candidate"
    if near:
        return "S pick"
    return "nothing"


def s_outcome(picks: list, t: float) -> str:
    """The S picks near the guest's S time ``t``: within 0.1 s, 0.5 s, or none."""
    err = [abs(p.time_epoch_s - t) for p in picks if p.phase == "S" and not p.candidate]
    best = min(err, default=np.inf)
    return "pick 0.1 s" if best <= 0.1 else "pick 0.5 s" if best <= 0.5 else "nothing"


OUTCOMES = ("pick 0.1 s", "pick 0.5 s", "candidate", "S pick", "nothing")


def station_records(labels, waveforms: Waveforms, polarity: dict | None = None) -> list[dict]:
    """Per analyst P: the station's three-component group cut around it, its S reading, and
    its first motion (``polarity``: (event, station, time) -> +1 / -1 / 0)."""
    events: dict[str, list] = {}
    for lab in labels:
        events.setdefault(lab.event, []).append(lab)
    out = []
    for ev, labs in events.items():
        t0 = min(x.time_s for x in labs) - BEFORE_S
        span = (t0, max(x.time_s for x in labs) + 400.0)
        st = waveforms.stream(span, {squeezed(x.station) for x in labs})
        groups = station_groups(st)
        for lab in (x for x in labs if x.phase == "P"):
            key = label_group(lab, groups)
            if key is None:
                continue
            s = [x.time_s for x in labs if x.phase == "S" and serves(x, key)]
            motion = (polarity or {}).get((ev, lab.station, round(lab.time_s, 3)), 0)
            out.append({"event": ev, "station": key, "p": lab.time_s, "polarity": motion,
                        "s": s[0] if s else None, "traces": groups[key]})  # fmt: skip
    return out


def pre_onset_level(z, t: float, history_s: float = LEVEL_HISTORY_S) -> float:
    """The level a P onset at epoch ``t`` rises from against the station's background: RMS of
    the causally band-passed (1-20 Hz) vertical over the 2 s before ``t - 0.1 s``, over the
    smallest RMS of 2 s blocks in the ``history_s`` before that (the first 5 s of the span
    left to the filter); NaN with less than 10 s of history. About 1 for an onset in noise,
    the coda's level over the noise for one in an earlier earthquake's coda."""
    from stream.detect import bandpass_causal, design_bandpass

    rate = float(z.stats.sampling_rate)
    k = int(round((t - z.stats.starttime.timestamp) * rate))
    lo = max(0, k - int((history_s + 7.1) * rate))
    x = z.data[lo:k].astype(np.float64)
    y, _ = bandpass_causal(x - x[0], design_bandpass(1.0, 20.0, rate))
    n2 = int(2 * rate)
    before = y[-int(2.1 * rate) : -int(0.1 * rate)]
    history = y[int(5 * rate) : -int(2.1 * rate)]
    if history.size < 5 * n2 or before.size == 0:
        return float("nan")
    blocks = history[: history.size // n2 * n2].reshape(-1, n2)
    quiet = float(np.sqrt(np.mean(blocks**2, axis=1)).min())
    return float(np.sqrt(np.mean(before**2)) / quiet) if quiet > 0 else float("inf")


def read_at(reader, z, t: float, second_t: float | None = None) -> tuple[int, float, bool]:
    """The polarity reader's read (sign, confidence, whether it was made at ``second_t``) of
    vertical trace ``z`` at epoch ``t`` (with ``second_t``, read again there where unknown at
    ``t``, as the polarity stage reads a learned pick at its refined onset and then at
    PhaseNet's peak)."""
    rate = float(z.stats.sampling_rate)
    at = lambda u: int(round((u - z.stats.starttime.timestamp) * rate))  # noqa: E731
    second = None if second_t is None else [at(second_t)]
    res = reader.classify(z.data.astype(np.float64)[None, :], rate, [at(t)], second_index=second)
    at_second = res.second_read is not None and bool(res.second_read[0])
    return int(res.polarity[0]), float(res.confidence[0]), at_second


def onset_snr_at(z, t: float) -> float:
    """:func:`stream.picker.p_onset_snr` of vertical trace ``z`` at epoch ``t``."""
    rate = float(z.stats.sampling_rate)
    return float(p_onset_snr(z.data, rate, (t - z.stats.starttime.timestamp) * rate))


def own_coda(rec: dict, picks: list, z) -> list[dict]:
    """The P-phase outputs of a record alone from 0.5 to 60 s after its P reading (and more
    than 0.5 s from its S reading): what the picker makes of a single earthquake's coda."""
    out = []
    for p in picks:
        dt = p.time_epoch_s - rec["p"]
        near_s = rec["s"] is not None and abs(p.time_epoch_s - rec["s"]) <= 0.5
        if p.phase == "P" and 0.5 <= dt <= 60.0 and not near_s:
            t = p.onset_epoch_s or p.time_epoch_s
            out.append({"kind": p.candidate or "pick", "onset_snr": round(onset_snr_at(z, t), 2)})
    return out


def run(
    records, delays, scales, model, params, reader=None, level_history_s=LEVEL_HISTORY_S
) -> tuple[list[dict], list[dict]]:
    """One row per record, delay and scale (JSON-ready); with a polarity ``reader``, also its
    reads of the guest P (at the analyst's time + D, and at the picker's P pick there)
    against the analyst's first motion. And the P-phase outputs in each record's own coda
    (:func:`own_coda`)."""
    from obspy import UTCDateTime

    rows, singles = [], []
    total = len(records) * len(delays) * len(scales)
    with tqdm(total=total, desc="coda overlap", unit="record", disable=None) as bar:
        for rec in records:
            # the record alone: its own coda, and its P at the picker's pick
            lo, hi = UTCDateTime(rec["p"] - BEFORE_S), UTCDateTime(rec["p"] + 60.0 + AFTER_S)
            cut = [None if tr is None else tr.slice(lo, hi) for tr in rec["traces"]]
            alone_picks = pick_traces(model, cut, params)
            singles += own_coda(rec, alone_picks, cut[2])
            alone = None
            if reader is not None and rec["polarity"]:
                alone = polarity_reads(reader, rec, alone_picks, cut[2], rec["p"], level_history_s)
            for d in delays:
                lo = UTCDateTime(rec["p"] - BEFORE_S)
                hi = UTCDateTime(rec["p"] + d + AFTER_S)
                cut = [None if tr is None else tr.slice(lo, hi) for tr in rec["traces"]]
                if cut[2].stats.endtime < hi - 1.0:
                    bar.update(len(scales))
                    continue
                for s in scales:
                    tr3 = composite(cut, d, s)
                    picks = pick_traces(model, tr3, params)
                    guest = rec["p"] + d
                    z = tr3[2]
                    host = outcome(picks, rec["p"])
                    got = outcome(picks, guest)
                    cand_snr = None
                    if got == "candidate":  # the likeliest candidate P there: its energy jump
                        c = max((p for p in picks if p.phase == "P" and p.candidate
                                 and abs(p.time_epoch_s - guest) <= 0.5),
                                key=lambda p: p.probability)  # fmt: skip
                        cand_snr = round(onset_snr_at(z, c.onset_epoch_s or c.time_epoch_s), 2)
                    rows.append({
                        "event": rec["event"], "station": rec["station"], "delay_s": d,
                        "scale": s,
                        "after_host_s_s": None if rec["s"] is None else round(
                            guest - rec["s"], 2),
                        "outcome": got, "host_outcome": host, "candidate_onset_snr": cand_snr,
                        "s_outcome": None if rec["s"] is None else s_outcome(picks, rec["s"] + d),
                        "onset_snr": round(onset_snr_at(z, guest), 2),
                    })  # fmt: skip
                    if alone is not None:
                        rows[-1].update(
                            polarity_reads(reader, rec, picks, z, guest, level_history_s)
                        )
                        rows[-1]["host_read"] = alone["read_at_label"]
                        rows[-1]["host_alone_at_pick"] = alone["read_at_pick"]
                        rows[-1]["host_alone_level"] = alone["pick_level"]
                        rows[-1]["host_alone_as_stage"] = alone["read_as_stage"]
                    bar.update()
    return rows, singles


def polarity_reads(
    reader, rec: dict, picks: list, z, guest: float, history_s: float = LEVEL_HISTORY_S
) -> dict:
    """The reader's reads (x the analyst's sign: 1 right, -1 wrong, 0 unknown) of the P at
    epoch ``guest`` of vertical ``z`` (the analyst's time + D) and at the picker's P pick
    within 0.5 s of it (None: no pick), with that pick's onset error, confidence and
    :func:`pre_onset_level`."""
    sign = rec["polarity"]
    at_label, conf, _ = read_at(reader, z, guest)
    near = [p for p in picks if p.phase == "P" and not p.candidate
            and abs(p.time_epoch_s - guest) <= 0.5]  # fmt: skip
    at_pick = error = pick_conf = level = at_peak = as_stage = peak_error = None
    if near:  # the refined onset (PhaseNet's peak without one), the peak, and as the stage
        best = min(near, key=lambda p: abs(p.time_epoch_s - guest))
        onset = best.onset_epoch_s or best.time_epoch_s
        stage, stage_conf, at_second = read_at(reader, z, onset, best.time_epoch_s)
        as_stage = stage * sign
        # the read at the refined onset: the stage's, unless that was unknown (then read again
        # at the peak; its confidence is not kept)
        at_pick = 0 if at_second else as_stage
        pick_conf = None if at_second else round(stage_conf, 3)
        at_peak = read_at(reader, z, best.time_epoch_s)[0] * sign
        error = round(onset - guest, 4)
        peak_error = round(best.time_epoch_s - guest, 4)
        level = round(pre_onset_level(z, onset, history_s), 2)
    return {"read_at_label": at_label * sign, "read_confidence": round(conf, 3),
            "read_at_pick": at_pick, "read_at_pick_onset_error_s": error,
            "read_at_pick_confidence": pick_conf, "pick_level": level,
            "read_at_peak": at_peak, "read_at_peak_error_s": peak_error,
            "read_as_stage": as_stage, "level_history_s": history_s}  # fmt: skip


def polarity_table(rows: list[dict], scales, delays) -> list[str]:
    """Right-wrong-unknown of the guest P's first motion per scale and delay."""
    rows = [r for r in rows if "read_at_label" in r]
    if not rows:
        return []

    def rwu(values) -> str:
        v = [x for x in values if x is not None]
        return f"{v.count(1)}-{v.count(-1)}-{v.count(0)}"

    host = {(r["event"], r["station"]): r["host_read"] for r in rows}
    lines = [f"first motions: the host P alone at the analyst pick {rwu(list(host.values()))} "
             "(right-wrong-unknown); the guest P at the analyst's time + D / at the picker's "
             "P pick (rows the host reads right; wrong reads under 0.9 confidence)"]  # fmt: skip
    for s in scales:
        parts = []
        for d in delays:
            sel = [r for r in rows if r["scale"] == s and r["delay_s"] == d
                   and r["host_read"] == 1]  # fmt: skip
            low = sum(r["read_at_label"] == -1 and r["read_confidence"] < 0.9 for r in sel)
            parts.append(f"{d:g} s: {rwu([r['read_at_label'] for r in sel])} / "
                         f"{rwu([r['read_at_pick'] for r in sel])} ({low})")  # fmt: skip
        lines.append(f"  x{s:g}: " + "; ".join(parts))
    coda = [r for r in rows if r["read_at_pick"] is not None and r["delay_s"] <= 32
            and r["host_read"] == 1]  # fmt: skip
    for sign, name in ((1, "right"), (-1, "wrong"), (0, "unknown")):
        err = [1000 * r["read_at_pick_onset_error_s"] for r in coda if r["read_at_pick"] == sign]
        if err:
            p10, p50, p90 = np.percentile(err, [10, 50, 90])
            lines.append(f"  reads at the picker's picks, D <= 32 s, {name}: {len(err)}, the "
                         f"refined onset after the analyst's (ms) p10/50/90 {p10:.0f} / "
                         f"{p50:.0f} / {p90:.0f}, beyond 50 ms: "
                         f"{sum(abs(e) > 50 for e in err)}")  # fmt: skip

    def total(key: str) -> str:
        return rwu([r[key] for r in rows if r["delay_s"] <= 32 and r["host_read"] == 1])

    lines.append(f"  D <= 32 s, every size: at the analyst's time + D {total('read_at_label')}, "
                 f"at the picker's picks {total('read_at_pick')}")  # fmt: skip
    onset_err = [1000 * r["read_at_pick_onset_error_s"] for r in coda]
    peak_err = [1000 * r["read_at_peak_error_s"] for r in coda]
    if coda:
        lines.append(
            f"  the same picks at PhaseNet's peak {total('read_at_peak')}; as the polarity "
            f"stage reads them (the refined onset, the peak where that is unknown) "
            f"{total('read_as_stage')}; after the analyst's (ms) p10/50/90: refined onset "
            + " / ".join(f"{x:.0f}" for x in np.percentile(onset_err, [10, 50, 90]))
            + ", peak " + " / ".join(f"{x:.0f}" for x in np.percentile(peak_err, [10, 50, 90]))
        )  # fmt: skip
    sure = [
        r["read_at_pick"]
        for r in coda
        if r["read_at_pick"] and r["read_at_pick_confidence"] >= 0.95
    ]
    lines.append(f"  of those reads at 0.95 confidence or more: {sure.count(1)} right, "
                 f"{sure.count(-1)} wrong")  # fmt: skip
    hosts = {(r["event"], r["station"]): r for r in rows if r["host_alone_at_pick"] is not None}
    for flag in LEVEL_FLAGS if coda else ():
        hit = [r for r in coda if r["pick_level"] >= flag]
        iso = [r for r in hosts.values() if r["host_alone_level"] >= flag]
        lines.append(
            f"  level before the onset >= {flag:g}x the {coda[0]['level_history_s']:g} s "
            "background: "
            f"{len(hit)} of the {len(coda)} picks above, their reads "
            f"{rwu([r['read_at_pick'] for r in hit])}; the hosts' own picks on their records "
            f"alone {len(iso)} of {len(hosts)} (reads {rwu([r['host_alone_at_pick'] for r in iso])}"
            f"; all {rwu([r['host_alone_at_pick'] for r in hosts.values()])})"
        )
    if hosts:
        stage = rwu([r["host_alone_as_stage"] for r in hosts.values()])
        lines.append(
            f"  the hosts' own picks on their records alone, as the stage reads them: {stage}"
        )
    return lines


def table(rows: list[dict], scales, delays) -> list[str]:
    lines = []
    for s in scales:
        lines.append(f"guest scaled by {s:g}: guest P outcome per delay after the host P")
        lines.append(f"  {'delay':>6} {'n':>4} " + " ".join(f"{o:>11}" for o in OUTCOMES)
                     + "  onset SNR p10/50/90  host P picked (0.1 s)")  # fmt: skip
        for d in delays:
            sel = [r for r in rows if r["scale"] == s and r["delay_s"] == d]
            if not sel:
                continue
            counts = [sum(r["outcome"] == o for r in sel) for o in OUTCOMES]
            snr = np.percentile([r["onset_snr"] for r in sel], [10, 50, 90])
            host = sum(r["host_outcome"] == "pick 0.1 s" for r in sel)
            lines.append(f"  {d:>6g} {len(sel):>4} " + " ".join(f"{c:>11}" for c in counts)
                         + f"  {snr[0]:6.2f} {snr[1]:6.2f} {snr[2]:6.2f}  {host}")  # fmt: skip
    return lines


def s_table(rows: list[dict], scales, delays) -> list[str]:
    """The guest's S (stations with an S reading) beside its P, picked within 0.5 s."""
    lines = ["guest S and P picked within 0.5 s at the stations with an S reading:"]
    for s in scales:
        parts = []
        for d in delays:
            sel = [r for r in rows if r["scale"] == s and r["delay_s"] == d and r["s_outcome"]]
            n_s = sum(r["s_outcome"] != "nothing" for r in sel)
            n_p = sum(r["outcome"].startswith("pick") for r in sel)
            parts.append(f"{d:g} s: S {n_s} P {n_p} of {len(sel)}")
        lines.append(f"  x{s:g}: " + "; ".join(parts))
    return lines


def candidates_table(rows: list[dict], singles: list[dict]) -> list[str]:
    """The energy jump of the guests' candidate onsets beside that of the outputs in the
    single records' own codas."""

    def jumps(values) -> str:
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        if not v.size:
            return "none"
        p10, p50, p90 = np.percentile(v, [10, 50, 90])
        return f"onset SNR p10/50/90 {p10:.2f} / {p50:.2f} / {p90:.2f}, >= 3: {int(np.sum(v >= 3))}"

    guests = [r["candidate_onset_snr"] for r in rows if r["candidate_onset_snr"] is not None]
    own = [x for x in singles if x["kind"] != "pick"]
    return [
        f"guest P with a candidate onset only: {len(guests)}, {jumps(guests)}",
        f"the records alone, 0.5-60 s after their P (not at their S reading): "
        f"{sum(x['kind'] == 'pick' for x in singles)} P picks, {len(own)} candidate onsets, "
        f"{jumps([x['onset_snr'] for x in own])}",
    ]


def in_s_coda(rows: list[dict]) -> list[str]:
    """The guests arriving after the host's S reading, by time after it."""
    lines = ["guest P after the host's S reading (stations with one), all scales:"]
    bins = [(0, 5), (5, 10), (10, 20), (20, 60)]
    for a, b in bins:
        sel = [r for r in rows if r["after_host_s_s"] is not None and a < r["after_host_s_s"] <= b]
        if sel:
            got = sum(r["outcome"].startswith("pick") for r in sel)
            lines.append(f"  {a:>2}-{b:<2} s after S: {got} of {len(sel)} picked within 0.5 s")
    return lines


def plot(rows: list[dict], scales, delays, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(9, 4.2))
    for s in scales:
        frac, frac_s = [], []
        for d in delays:
            sel = [r for r in rows if r["scale"] == s and r["delay_s"] == d]
            frac.append(100.0 * np.mean([r["outcome"].startswith("pick") for r in sel]))
            with_s = [r for r in sel if r["s_outcome"]]
            frac_s.append(100.0 * np.mean([r["s_outcome"] != "nothing" for r in with_s]))
        line = ax.plot(delays, frac, "o-", label=f"repeat at {s:g}x the amplitude: P")[0]
        ax.plot(delays, frac_s, "s--", color=line.get_color(), alpha=0.6, label="... its S")
    ax.set_xscale("log")
    ax.set_xticks(delays, [f"{d:g}" for d in delays])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("repeat's P after the first P (s)")
    ax.set_ylabel("repeat's P / S picked within 0.5 s (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Real INGV records: a P in the same earthquake's coda")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--delays", default="2,4,8,16,32", help="seconds after the host P")
    ap.add_argument("--scales", default="1,0.3,0.1", help="the guest's amplitude factors")
    ap.add_argument("--second-look-s", type=float, default=PickerParams.second_look_s)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--polarity", action="store_true", help="also read the guest's first motion")
    ap.add_argument("--level-history-s", type=float, default=LEVEL_HISTORY_S,
                    help="--polarity: the background before an onset its level is measured "
                    "against")  # fmt: skip
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    delays = [float(x) for x in args.delays.split(",")]
    scales = [float(x) for x in args.scales.split(",")]
    data = shared_ingv()
    cards = [str(data / "Phases_file")]
    labels = read_labels(cards)
    motions = {(ev.event_id, p.station, round(p.time_epoch_s, 3)): p.analyst_polarity
               for ev in read_events(cards) for p in ev.picks}  # fmt: skip
    records = station_records(labels, Waveforms([str(data / "mseed")]), motions)
    model = PhaseNetModel.load(device="cpu", threads=args.threads)
    reader = None
    if args.polarity:
        from workers.polarity import PolarityClassifier

        reader = PolarityClassifier.load()
    params = PickerParams(second_look_s=args.second_look_s)
    rows, singles = run(records, delays, scales, model, params, reader, args.level_history_s)
    print(f"{len(records)} INGV analyst P with a three-component record")
    print("\n".join(table(rows, scales, delays) + s_table(rows, scales, delays)
                    + candidates_table(rows, singles)
                    + in_s_coda(rows) + polarity_table(rows, scales, delays)))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "own_coda": singles}, indent=1) + "\n")
    if args.plot:
        plot(rows, scales, delays, args.plot)


if __name__ == "__main__":
    main()
