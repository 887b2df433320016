"""``firstmotion polarity show``: one first motion as the model sees it, with its evidence.

::

    firstmotion polarity show --mseed F.mseed --pick 2011-01-13T19:59:41.50 \\
        [--station IV.CAMP..HHZ] [--model NAME_OR_PATH] --out fig.png
    firstmotion polarity show --event EVENT_ID [--station IV.CAMP] [--redis URL] --out fig.png

Reads the vertical trace (``--station`` NET.STA.LOC.CHA, else the first trace whose channel
ends in Z) or, with ``--event``, takes a catalog event's P arrival at ``--station`` (NET.STA or
more of the id) and the window the stream stage sent with that pick (``fm:picks``; the read the
polarity stage published for it, ``fm:polarities``, is printed beside the new one), classifies
the pick through :meth:`PolarityClassifier.classify` and draws three panels: the raw trace
around the pick; the model's input window (the unit-peak channel, the noise-scaled channel on
a second axis) with the pick, the onset the reading refers to and the first lobe marked; the
window in noise sigmas around the onset with the 4-sigma band, so the first lobe, a precursor
and the main swing can be checked by eye. The title gives the probabilities, the decision and
the evidence (first-lobe sign and size in noise sigmas, onset sharpness, the onset offset, the
precursor flag). The same numbers are printed as JSON.

``--event`` without ``--station`` draws the whole event on one page: a panel per P arrival, by
azimuth, the window in noise sigmas as the model reads it, coloured by the read (red up, blue
down, grey unknown), with the station's azimuth and takeoff angle: the first motions a
mechanism was made from, checked at a glance. One JSON line per arrival.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from firstmotion.channels import is_vertical
from workers.polarity.preprocess import MIN_SAMPLING_RATE_HZ

log = logging.getLogger(__name__)
NAMES = {1: "up", -1: "down", 0: "unknown"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--mseed", help="miniSEED file holding the vertical (with --pick)")
    source.add_argument(
        "--event", help="catalog event id: its P pick at --station (or all of them), from Redis"
    )
    parser.add_argument("--pick", default=None, help="P pick time (UTC, ISO-8601; with --mseed)")
    parser.add_argument(
        "--station",
        default=None,
        help="NET.STA.LOC.CHA (with --mseed; default: first *Z); NET.STA or more (with --event; "
        "without it, every P arrival of the event on one page)",
    )
    parser.add_argument("--model", default=None, help="model stem or shipped name (default)")
    parser.add_argument("--redis", default=None, help="Redis URL (default: redis.url of config)")
    parser.add_argument("--config", default=None, help="TOML config file (with --event)")
    parser.add_argument("--prefix", default=None, help="key prefix (default: redis.prefix)")
    parser.add_argument(
        "--stationxml", default=None,
        help="StationXML with responses: read each window after removing its channel's "
        "linear-phase FIR precursor (as the polarity stage does with polarity.fir_correction)",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="PNG to write")


def read_pick(mseed: str, pick: str, station: str | None = None) -> dict:
    """The trace of ``station`` (or the first vertical) around ``pick``: ``data`` float64,
    ``sampling_rate_hz``, ``pick_index``, ``station_id``. ``ValueError`` when no trace holds
    the pick."""
    import obspy

    try:
        when = obspy.UTCDateTime(pick)
    except (TypeError, ValueError):
        raise ValueError(f"--pick {pick!r}: expected a UTC time (ISO-8601)") from None
    try:
        stream = obspy.read(mseed)
    except FileNotFoundError:
        raise ValueError(f"--mseed {mseed}: no such file") from None
    except Exception as exc:  # obspy raises what its format readers raise
        raise ValueError(f"--mseed {mseed}: not seismic data obspy can read ({exc})") from None
    if station:
        if station.count(".") != 3:
            raise ValueError(f"--station {station!r}: expected NET.STA.LOC.CHA")
        net, sta, loc, cha = station.split(".")
        stream = stream.select(network=net, station=sta, location=loc, channel=cha)
    else:
        stream = obspy.Stream([tr for tr in stream if is_vertical(tr.stats.channel)])
    held = [tr for tr in stream if tr.stats.starttime <= when < tr.stats.endtime]
    if not held:
        raise ValueError(f"no {station or 'vertical'} trace in {mseed} holds {when}")
    tr = held[0]
    rate = float(tr.stats.sampling_rate)
    if rate < MIN_SAMPLING_RATE_HZ:
        raise ValueError(f"{tr.id} in {mseed} is sampled at {rate:g} Hz: the reader reads "
                         f"records of {MIN_SAMPLING_RATE_HZ:g} Hz and more")  # fmt: skip
    return {
        "station_id": tr.id,
        "sampling_rate_hz": rate,
        "data": tr.data.astype(np.float64),
        "pick_index": int(round((when - tr.stats.starttime) * rate)),
        "time": str(when),
    }


def station_matches(station_id: str, wanted: str) -> bool:
    """Whether ``station_id`` (NET.STA.LOC.CHA) is the station ``wanted`` names: its first
    components (NET.STA, NET.STA.LOC or the whole id)."""
    want = wanted.split(".")
    return station_id.split(".")[: len(want)] == want


def _scan(
    bus, stream: str, kind: type, pick_ids: set[str], *, after: str | None = None,
    before: str | None = None, chunk: int = 500,
) -> dict[str, tuple[str, object]]:  # fmt: skip
    """``{pick_id: (entry_id, message)}`` of the ``kind`` messages of ``stream`` with these
    pick ids (the first met of each): read forwards from entry ``after`` (exclusive) or
    backwards from entry ``before`` (inclusive), ``chunk`` entries at a time, until all are
    found or the stream ends; entries that do not decode are skipped."""
    from firstmotion.messages import MessageError, decode

    def text(v) -> str:
        return v.decode() if isinstance(v, bytes) else v

    key = bus.key(stream)
    cursor = before if after is None else after
    found: dict[str, tuple[str, object]] = {}
    while len(found) < len(pick_ids):
        if after is None:
            rows = bus.client.xrevrange(key, max=cursor or "+", min="-", count=chunk)
        else:
            rows = bus.client.xrange(key, min=f"({cursor}" if cursor else "-", max="+",
                                     count=chunk)  # fmt: skip
        for entry_id, fields in rows:
            try:
                msg = decode(fields)
            except MessageError:
                continue
            if isinstance(msg, kind) and msg.pick_id in pick_ids and msg.pick_id not in found:
                found[msg.pick_id] = (text(entry_id), msg)
        if len(rows) < chunk:
            break
        last = text(rows[-1][0])
        if after is None:  # the next page ends just before the last entry read
            ms, seq = (int(v) for v in last.split("-"))
            if ms == 0 and seq == 0:
                break
            cursor = f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{2**64 - 1}"
        else:
            cursor = last
    return found


def _stored_origin(bus, event_id: str):
    """The catalog's origin of ``event_id`` (the catalog's contract: ``<prefix>event:<id>`` is
    a hash whose ``origin`` is the Origin's JSON); ``ValueError`` when there is none."""
    from firstmotion.messages import Origin

    key = bus.key(f"event:{event_id}")
    stored = bus.client.hget(key, "origin")
    if stored is None:
        raise ValueError(f"no event {event_id!r} in the catalog ({key})")
    return Origin.from_json(stored)


def _windows_and_reads(bus, origin, pick_ids: list[str]) -> tuple[dict, dict]:
    """The Pick messages of ``pick_ids`` (read back from the origin's creation, then on, for
    a clock skewed against Redis's) and the Polarity messages published for them (read on
    from the earliest pick's entry)."""
    from firstmotion.messages import Pick, Polarity

    wanted = set(pick_ids)
    before = f"{int(origin.created_epoch_s * 1000) + 1}-0"
    picks = _scan(bus, "picks", Pick, wanted, before=before)
    if len(picks) < len(wanted):
        picks |= _scan(bus, "picks", Pick, wanted - set(picks), after=before)
    reads: dict = {}
    if picks:
        ms = min(int(entry.split("-")[0]) for entry, _ in picks.values())
        reads = _scan(bus, "polarities", Polarity, set(picks), after=f"{ms - 1}-{2**64 - 1}")
    return ({k: m for k, (_e, m) in picks.items()}, {k: m for k, (_e, m) in reads.items()})


def _pick_view(pick) -> dict:
    """A Pick message's window in the form :func:`read_pick` gives."""
    import obspy

    from workers.polarity.worker import arrival_index

    return {
        "station_id": pick.station_id,
        "sampling_rate_hz": float(pick.sampling_rate_hz),
        "data": np.asarray(pick.samples, dtype=np.float64),
        "pick_index": int(pick.pick_index),
        # read there where the reader leaves the pick_index unknown, as the polarity stage
        "second_index": arrival_index(pick),
        "time": str(obspy.UTCDateTime(pick.time_epoch_s)),
    }


def _second(p: dict) -> list[float]:
    """The second onset estimate of a window (:func:`_pick_view`; NaN: none)."""
    return [float(p.get("second_index", np.nan))]


def read_catalog_pick(bus, event_id: str, station: str) -> tuple[dict, object]:
    """The window the stream stage sent with catalog event ``event_id``'s P pick at
    ``station``, as :func:`read_pick` gives it, and the polarity stage's read of it (a
    :class:`~firstmotion.messages.Polarity`, or None when not in ``fm:polarities``).
    ``ValueError`` saying what is missing: the event, a P arrival at the station, or the pick
    (trimmed from ``fm:picks`` by ``redis.stream_maxlen``)."""
    origin = _stored_origin(bus, event_id)
    p_arrivals = [a for a in origin.arrivals if a.phase == "P"]
    at = [a for a in p_arrivals if station_matches(a.station_id, station)]
    if not at:
        have = ", ".join(sorted({a.station_id for a in p_arrivals})) or "none"
        raise ValueError(f"event {event_id} has no P arrival at {station} (P arrivals: {have})")
    picks, reads = _windows_and_reads(bus, origin, [at[0].pick_id])
    if at[0].pick_id not in picks:
        raise ValueError(
            f"pick {at[0].pick_id} is no longer in {bus.key('picks')} (trimmed by "
            "redis.stream_maxlen?)"
        )
    return _pick_view(picks[at[0].pick_id]), reads.get(at[0].pick_id)


def read_catalog_event(bus, event_id: str) -> tuple[object, list[tuple]]:
    """Catalog event ``event_id``'s origin and, for each of its P arrivals (by azimuth),
    ``(arrival, window as read_pick gives it or None when trimmed, published Polarity or
    None)``."""
    origin = _stored_origin(bus, event_id)
    p_arrivals = sorted((a for a in origin.arrivals if a.phase == "P"),
                        key=lambda a: a.azimuth_deg)  # fmt: skip
    picks, reads = _windows_and_reads(bus, origin, [a.pick_id for a in p_arrivals])
    rows = []
    for a in p_arrivals:
        pick = picks.get(a.pick_id)
        rows.append((a, None if pick is None else _pick_view(pick), reads.get(a.pick_id)))
    return origin, rows


def fir_corrected(p: dict | None, firs) -> dict | None:
    """Window ``p`` (as :func:`read_pick` gives it) with its channel's linear-phase FIR
    precursor removed and ``fir_corrected`` set (``firs``: a
    :class:`~workers.polarity.fircorrect.ChannelFirs`; a channel without FIR stages, or a
    window with a gap, stays as it is with ``fir_corrected`` False)."""
    if p is None or firs is None:
        return p
    import obspy

    from workers.polarity.fircorrect import fir_precursor_correction

    stages = firs.get(p["station_id"], obspy.UTCDateTime(p["time"]).timestamp)
    data = np.asarray(p["data"], dtype=np.float64)
    if not stages or not np.isfinite(data).all():
        return {**p, "fir_corrected": False}
    for taps, rate in stages:
        data = fir_precursor_correction(data, p["sampling_rate_hz"], taps, rate)
    return {**p, "data": data, "fir_corrected": True}


def describe(res, j: int = 0) -> dict:
    """The decision, probabilities and evidence of row ``j`` of a classifier result."""
    out = {
        "polarity": NAMES[int(res.polarity[j])],
        "p_up": round(float(res.probabilities[j, 0]), 4),
        "p_down": round(float(res.probabilities[j, 1]), 4),
        "p_unknown": round(float(res.probabilities[j, 2]), 4),
        "reason": str(res.reason[j]),
    }
    if res.first_lobe_sign is not None:

        def num(v, d):
            return round(float(v), d) if np.isfinite(v) else None

        out.update(
            first_lobe_sign=int(res.first_lobe_sign[j]),
            first_lobe_snr=num(res.first_lobe_snr[j], 1),
            onset_sharpness=num(res.onset_sharpness[j], 1),
            onset_offset_s=num(res.onset_offset_s[j], 3),
            # where the read window was centred, from the pick (the onset refinement's move,
            # the stage's second onset estimate, or the reader's own onset estimate)
            window_offset_s=num(res.window_offset_s[j], 3),
            precursor=bool(res.precursor[j]),
        )
    if getattr(res, "own_onset_read", None) is not None:
        out["read_at_own_onset"] = bool(res.own_onset_read[j])
    return out


def plot_pick(clf, p: dict, path: str) -> dict:
    """Classify ``p`` (as from :func:`read_pick`) and write the figure; returns
    :func:`describe` of the read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workers.polarity.preprocess import linear_windows, normalise_windows

    rate_in, k = p["sampling_rate_hz"], p["pick_index"]
    res = clf.classify(p["data"][None, :], rate_in, [k], second_index=_second(p))
    info = describe(res)
    cfg = clf.config
    offset_s = info.get("onset_offset_s") or 0.0
    moved_s = float(res.window_offset_s[0]) if res.window_offset_s is not None else 0.0
    k_read = k + int(round(moved_s * rate_in))  # the window the read was made on
    lin, reasons = linear_windows(p["data"][None, :], rate_in, [k_read], cfg, despike=True)
    win, _ = normalise_windows(lin, reasons, cfg)
    rate = cfg.sampling_rate_hz
    t = (np.arange(cfg.window_samples) - cfg.window_pre_samples) / rate + moved_s

    fig, axes = plt.subplots(3, 1, figsize=(9, 8.5))
    a, b, c = axes
    lo, hi = max(0, k - int(2 * rate_in)), min(p["data"].size, k + int(2 * rate_in))
    raw = p["data"][lo:hi]
    a.plot((np.arange(lo, hi) - k) / rate_in, raw - raw[: k - lo].mean(), lw=0.7, color="k")
    a.axvline(0, color="r", lw=0.8, label="pick")
    kind = "FIR-corrected" if p.get("fir_corrected") else "raw"
    a.set(ylabel="counts (demeaned)", title=f"{p['station_id']}  pick {p['time']}  {kind}")
    a.legend(loc="upper left", fontsize=8)

    unit = win[0, 0] if win.ndim == 3 else win[0]
    b.plot(t, unit, lw=0.9, label="model input (unit peak)")
    if win.ndim == 3:
        b2 = b.twinx()
        b2.plot(t, win[0, 1], lw=0.6, color="tab:orange", alpha=0.7)
        b2.set_ylabel("asinh(x / noise) / 10", color="tab:orange", fontsize=8)
    b.axvline(0, color="r", lw=0.8, label="pick")
    if "onset_offset_s" in info:
        b.axvline(offset_s, color="g", lw=0.8, ls="--", label="onset read")
    b.axhline(0, color="k", lw=0.3)
    what = f"window moved {moved_s:+.2f} s to the onset" if moved_s else "window at the pick"
    b.set(ylabel="model input", xlabel=f"s from the pick ({rate:g} Hz, model band; {what})")
    b.legend(loc="upper left", fontsize=8)
    b.set_title(
        f"{info['polarity']}  (up {info['p_up']:.2f}, down {info['p_down']:.2f}, "
        f"unknown {info['p_unknown']:.2f}) {info['reason']}",
        fontsize=9,
    )

    quiet_end = max(2, cfg.window_pre_samples - int(round(0.1 * rate)))
    sigma = float(lin[0, :quiet_end].std()) or 1.0
    z = lin[0] / sigma
    c.plot(t, z, ".-", lw=0.8, ms=3)
    c.axhspan(-4, 4, color="grey", alpha=0.2, label="4 noise sigmas")
    c.axvline(0, color="r", lw=0.8)
    if "onset_offset_s" in info:
        c.axvline(offset_s, color="g", lw=0.8, ls="--")
    around = (t > offset_s - 0.15) & (t < offset_s + 0.15)
    span = float(np.max(np.abs(z[around]))) if around.any() else 10.0
    lobe = info.get("first_lobe_snr") or 10.0
    if 3 * lobe < span:  # zoom on the first lobe when the main swing dwarfs it
        c.set_ylim(-max(8.0, 3 * lobe), max(8.0, 3 * lobe))
    c.set_xlim(offset_s - 0.15, offset_s + 0.2)
    c.set(ylabel="noise sigmas", xlabel="s from the pick")
    if "first_lobe_sign" in info:
        c.set_title(
            f"first lobe {NAMES[info['first_lobe_sign']]} {info['first_lobe_snr']} sigma, "
            f"sharpness {info['onset_sharpness']} sigma/10 ms, onset {offset_s:+.3f} s, "
            f"precursor {'yes' if info['precursor'] else 'no'}",
            fontsize=9,
        )
    c.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return info


def plot_event(clf, origin, rows: list[tuple], path: str) -> list[dict]:
    """One page for an event: a panel per P arrival (by azimuth) with its window in noise
    sigmas as the model reads it (model band; 0.25 s before to 0.35 s after the onset read,
    the first lobe kept visible when the swings after it are far larger), the pick and the read;
    returns per arrival its station, azimuth, takeoff, the read (:func:`describe`) and the
    published read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workers.polarity.preprocess import linear_windows

    cfg = clf.config
    colours = {"up": "tab:red", "down": "tab:blue", "unknown": "0.5"}
    n = max(1, len(rows))
    ncols = min(4, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.2 * nrows + 0.6),
                             squeeze=False)  # fmt: skip
    out = []
    for ax, (arrival, p, read) in zip(axes.ravel(), rows, strict=False):
        row = {"station_id": arrival.station_id, "azimuth_deg": round(arrival.azimuth_deg, 1),
               "takeoff_deg": round(arrival.takeoff_deg, 1), "published": _live(read)}  # fmt: skip
        if p is None:
            ax.text(0.5, 0.5, "window no longer\nin the picks stream", ha="center",
                    va="center", transform=ax.transAxes, fontsize=8)  # fmt: skip
            ax.set_title(arrival.station_id, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            out.append({**row, "polarity": None})
            continue
        rate_in, k = p["sampling_rate_hz"], p["pick_index"]
        res = clf.classify(p["data"][None, :], rate_in, [k], second_index=_second(p))
        info = describe(res)
        moved_s = float(res.window_offset_s[0]) if res.window_offset_s is not None else 0.0
        k_read = k + int(round(moved_s * rate_in))
        lin, _ = linear_windows(p["data"][None, :], rate_in, [k_read], cfg, despike=True)
        rate = cfg.sampling_rate_hz
        t = (np.arange(cfg.window_samples) - cfg.window_pre_samples) / rate + moved_s
        quiet_end = max(2, cfg.window_pre_samples - int(round(0.1 * rate)))
        sigma = float(lin[0, :quiet_end].std()) or 1.0
        z = lin[0] / sigma
        ax.plot(t, z, lw=0.8, color=colours[info["polarity"]])
        ax.axhspan(-4, 4, color="grey", alpha=0.15)
        ax.axvline(0, color="k", lw=0.6)
        onset_s = info.get("onset_offset_s") or 0.0
        ax.set_xlim(onset_s - 0.25, onset_s + 0.35)  # the first motion, not the coda
        near = (t > onset_s - 0.25) & (t < onset_s + 0.35)
        lobe = info.get("first_lobe_snr") or 10.0
        if near.any() and 3 * lobe < float(np.max(np.abs(z[near]))):
            ax.set_ylim(-max(8.0, 3 * lobe), max(8.0, 3 * lobe))  # the first lobe stays visible
        ax.tick_params(labelsize=6)
        ax.set_title(
            f"{arrival.station_id}  az {arrival.azimuth_deg:.0f}  takeoff "
            f"{arrival.takeoff_deg:.0f}\n"
            f"{info['polarity']} (up {info['p_up']:.2f} down {info['p_down']:.2f})"
            f"{' ' + info['reason'] if info['reason'] else ''}",
            fontsize=7,
        )
        if "fir_corrected" in p:
            info["fir_corrected"] = p["fir_corrected"]
        out.append({**row, **info})
    for ax in axes.ravel()[len(rows) :]:
        ax.axis("off")
    import obspy

    fig.suptitle(
        f"{origin.event_id}  {obspy.UTCDateTime(origin.time_epoch_s)}  {origin.latitude_deg:.3f} "
        f"{origin.longitude_deg:.3f} {origin.depth_km:.1f} km: P first motions in noise sigmas "
        "(grey: 4 sigmas; red up, blue down, grey unknown)",
        fontsize=8,
    )
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.4 / fig.get_figheight()))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return out


def _live(read) -> dict | None:
    """The polarity stage's published read, for the JSON beside the new one."""
    if read is None:
        return None
    return {
        "polarity": NAMES[int(read.polarity)],
        "p_up": round(read.probabilities[0], 4),
        "p_down": round(read.probabilities[1], 4),
        "p_unknown": round(read.probabilities[2], 4),
        "reason": read.reason,
        "model_version": read.model_version,
    }


def _from_catalog(args: argparse.Namespace, reader):
    """``reader(bus)`` on the configured Redis (``--prefix`` or ``redis.prefix``); Redis errors
    as ``ValueError``."""
    import redis

    from firstmotion.bus import Bus, describe_redis_error
    from firstmotion.config import load_settings

    settings = load_settings(args.config)
    bus = Bus.from_settings(
        settings.redis, url=args.redis, prefix=args.prefix, socket_timeout_s=10.0
    )
    try:
        return reader(bus)
    except redis.RedisError as exc:
        raise ValueError(describe_redis_error(exc, bus.url)) from None
    finally:
        bus.close()


def run(args: argparse.Namespace) -> int:
    import torch

    from workers.polarity.classifier import PolarityClassifier

    if args.mseed and not args.pick:
        log.error("--mseed needs --pick (the P pick time)")
        return 2
    try:
        if args.event and not args.station:  # the whole event on one page
            origin, rows = _from_catalog(args, lambda bus: read_catalog_event(bus, args.event))
        elif args.event:
            p, read = _from_catalog(
                args, lambda bus: read_catalog_pick(bus, args.event, args.station)
            )
            extra = {"event_id": args.event, "published": _live(read)}
        else:
            p, extra = read_pick(args.mseed, args.pick, args.station), {}
    except ValueError as exc:
        log.error("%s", exc)
        return 1
    if args.stationxml:
        from workers.polarity.fircorrect import ChannelFirs

        firs = ChannelFirs.read(args.stationxml)
        if args.event and not args.station:
            rows = [(a, fir_corrected(p, firs), read) for a, p, read in rows]
        else:
            p = fir_corrected(p, firs)
            extra["fir_corrected"] = p["fir_corrected"]
    torch.set_num_threads(1)
    clf = PolarityClassifier.load(args.model, device="cpu")
    if args.event and not args.station:
        if not rows:
            log.error("event %s has no P arrival", args.event)
            return 1
        for row in plot_event(clf, origin, rows, args.out):
            print(json.dumps({"event_id": args.event, **row}))
        log.info("wrote %s", args.out)
        return 0
    info = plot_pick(clf, p, args.out)
    print(json.dumps({"station_id": p["station_id"], "time": p["time"], **info, **extra}))
    log.info("wrote %s", args.out)
    return 0
