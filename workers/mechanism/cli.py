"""``firstmotion invert``: batch focal mechanisms from JSONL events, SKHASH polarity CSV or
the live catalog's JSON export (``catalog export --format json``: the polarities each
mechanism used, e.g. to check the network's stations with ``--station-check``).

JSONL input, one event per line (DESIGN.md)::

    {"event_id": "...", "origin_time"?: ISO-8601 or epoch s,
     "picks": [{"station", "azimuth_deg", "takeoff_deg", "polarity", "weight"?,
                "azimuth_trials"?, "takeoff_trials"?, "azimuth_unc_deg"?, "takeoff_unc_deg"?,
                "sp_log_ratio"?}]}

``sp_log_ratio``: the pick's station's observed log10(S/P amplitude) (HASH's second data
type, :mod:`workers.mechanism.amplitude`); null or absent where there is none. Every ratio
gets ``--sp-correction`` added (the network's correction, as ``mechanism.sp_correction_log10``
in the worker); the rows of events with ratios say which in ``sp_correction_log10``.

SKHASH CSV input (``--format skhash-csv``): columns ``event_id``, ``station`` (optionally
``network``, ``location``, ``channel``), ``p_polarity`` (signed weight), ``azimuth``,
``takeoff`` (from vertical-up), ``azimuth_uncertainty``, ``takeoff_uncertainty``.

Output: one JSON object per event, ``event_id`` plus :class:`workers.mechanism.Mechanism`'s
fields. Events with fewer than ``--min-polarities`` usable polarities are skipped (logged).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from firstmotion.errors import InputError

log = logging.getLogger("firstmotion.invert")


@dataclass(frozen=True)
class EventPicks:
    """One event's picks as arrays, ready for :func:`workers.mechanism.invert`."""

    event_id: str
    time_s: float | None
    station: tuple[str, ...]
    azimuth_deg: np.ndarray
    takeoff_deg: np.ndarray
    polarity: np.ndarray
    weight: np.ndarray
    azimuth_unc_deg: np.ndarray | None = None
    takeoff_unc_deg: np.ndarray | None = None
    azimuth_trials: np.ndarray | None = None
    takeoff_trials: np.ndarray | None = None
    sp_log_ratio: np.ndarray | None = None  # NaN where a pick has none
    # the event's epicentre and depth where the input gives them (written with the mechanism:
    # what a stress map places it by)
    latitude_deg: float | None = None
    longitude_deg: float | None = None
    depth_km: float | None = None


def _time_s(value) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise InputError(f"origin time {value!r}: expected ISO-8601 or epoch seconds") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


def _event_from_json(obj: dict, where: str) -> EventPicks:
    try:
        picks = obj["picks"]
        event_id = str(obj["event_id"])
    except KeyError as exc:
        raise InputError(f"{where}: missing key {exc}") from None
    except TypeError:
        raise InputError(f"{where}: expected a JSON object with event_id and picks") from None
    origin = obj.get("origin") or {}
    time_s = _time_s(obj.get("origin_time", origin.get("time")))

    def where_of(*keys: str) -> float | None:  # the epicentre, as the origin names it
        for k in keys:
            v = origin.get(k, obj.get(k))
            if isinstance(v, (int, float)) and math.isfinite(v):
                return float(v)
        return None

    def col(key: str, default=None) -> np.ndarray | None:
        vals = [p.get(key, default) for p in picks]
        if all(v is None for v in vals):
            return None
        if any(v is None for v in vals):
            raise InputError(f"{where}: event {event_id}: {key!r} given for some picks only")
        try:
            return np.asarray(vals, dtype=float)
        except (TypeError, ValueError):
            raise InputError(f"{where}: event {event_id}: {key!r} must be numbers") from None

    for key in ("azimuth_deg", "takeoff_deg", "polarity"):
        if any(key not in p for p in picks):
            raise InputError(f"{where}: event {event_id}: every pick needs {key!r}")
    weight = col("weight")
    sp = [p.get("sp_log_ratio") for p in picks]
    sp_log_ratio = (
        None
        if all(v is None for v in sp)
        else np.array([np.nan if v is None else v for v in sp], dtype=float)
    )
    return EventPicks(
        event_id=event_id,
        time_s=time_s,
        station=tuple(str(p.get("station", "")) for p in picks),
        azimuth_deg=col("azimuth_deg"),
        takeoff_deg=col("takeoff_deg"),
        polarity=col("polarity"),
        weight=np.ones(len(picks)) if weight is None else weight,
        azimuth_unc_deg=col("azimuth_unc_deg"),
        takeoff_unc_deg=col("takeoff_unc_deg"),
        azimuth_trials=col("azimuth_trials"),
        takeoff_trials=col("takeoff_trials"),
        sp_log_ratio=sp_log_ratio,
        latitude_deg=where_of("latitude_deg", "latitude", "lat"),
        longitude_deg=where_of("longitude_deg", "longitude", "lon"),
        depth_km=where_of("depth_km", "depth"),
    )


def read_jsonl(path: Path) -> Iterator[EventPicks]:
    """Events from a JSONL file (blank lines skipped)."""
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(
                        f"{path}:{n}: not JSON ({exc.msg}); expected one event "
                        "per line, or SKHASH's CSV (--format skhash-csv)"
                    ) from None
                yield _event_from_json(obj, f"{path}:{n}")


def read_catalog_json(path: Path) -> list[EventPicks]:
    """Events of a live-catalog export (``firstmotion catalog export --format json``): each
    event with a mechanism, its polarities as the mechanism used them (station, azimuth,
    takeoff, polarity, weight) and its origin time; events without one, and retracted ones
    (an export with ``--include-deleted``), are left out."""
    from firstmotion.event_catalogs import read_catalog_export

    events = read_catalog_export(path)
    out = []
    for e in events:
        picks = e.mechanism.picks if e.mechanism is not None else ()
        if not picks or e.status == "deleted":
            continue
        out.append(
            EventPicks(
                event_id=e.event_id,
                time_s=e.origin.time_epoch_s,
                station=tuple(p.station_id for p in picks),
                azimuth_deg=np.array([p.azimuth_deg for p in picks], dtype=float),
                takeoff_deg=np.array([p.takeoff_deg for p in picks], dtype=float),
                polarity=np.array([p.polarity for p in picks], dtype=float),
                weight=np.array([p.weight for p in picks], dtype=float),
            )
        )
    return out


def read_skhash_csv(path: Path) -> list[EventPicks]:
    """Events from SKHASH's polarity CSV (``p_polarity`` = polarity x weight)."""
    with path.open() as f:
        rows = list(
            csv.DictReader((ln for ln in f if not ln.startswith("#")), skipinitialspace=True)
        )
    need = ("event_id", "p_polarity", "azimuth", "takeoff")
    if rows and any(k not in rows[0] for k in need):
        raise InputError(f"{path}: SKHASH CSV needs columns {need}, got {list(rows[0])}")
    by_event: dict[str, list[dict]] = {}
    for r in rows:
        by_event.setdefault(r["event_id"], []).append(r)

    def num(r: dict, key: str, default: float) -> float:
        v = (r.get(key) or "").strip()
        try:
            return float(v) if v else default
        except ValueError:
            raise InputError(
                f"{path}: event {r['event_id']}: {key} {v!r} is not a number"
            ) from None

    events = []
    for event_id, rs in by_event.items():
        pp = np.array([num(r, "p_polarity", 0.0) for r in rs])
        stations = tuple(
            ".".join(_skhash_code(r, k) for k in ("network", "station", "location", "channel"))
            if r.get("network")
            else (r.get("station") or "")
            for r in rs
        )
        events.append(
            EventPicks(
                event_id=event_id,
                time_s=_time_s(rs[0].get("origin_time") or None),
                station=stations,
                azimuth_deg=np.array([num(r, "azimuth", math.nan) for r in rs]),
                takeoff_deg=np.array([num(r, "takeoff", math.nan) for r in rs]),
                polarity=np.sign(pp),
                weight=np.abs(pp),
                azimuth_unc_deg=np.array([num(r, "azimuth_uncertainty", 5.0) for r in rs]),
                takeoff_unc_deg=np.array([num(r, "takeoff_uncertainty", 10.0) for r in rs]),
                latitude_deg=_finite_or_none(num(rs[0], "origin_latitude", math.nan)),
                longitude_deg=_finite_or_none(num(rs[0], "origin_longitude", math.nan)),
                depth_km=_finite_or_none(num(rs[0], "origin_depth_km", math.nan)),
            )
        )
    return events


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _skhash_code(row: dict, key: str) -> str:
    """A code of a SKHASH CSV row; SKHASH writes a blank location as ``--`` (SEED's way),
    which is the empty location of a SEED id (``NET.STA..CHA``)."""
    code = (row.get(key) or "").strip()
    return "" if key == "location" and code == "--" else code


def corrected_polarity(ev: EventPicks, reversals=None) -> np.ndarray:
    """The event's polarities with the station reversal list applied (as given without one)."""
    if reversals is None or not len(reversals):
        return ev.polarity
    return reversals.apply(ev.station, ev.time_s, ev.polarity)


def invert_event(ev: EventPicks, reversals=None, sp_correction_log10: float = 0.0, **params):
    """Apply reversals (and the network's S/P correction to the event's ratios), then invert
    one event; returns (Mechanism, polarity used)."""
    from workers.mechanism import invert

    pol = corrected_polarity(ev, reversals)
    kwargs = dict(params)
    if ev.sp_log_ratio is not None:
        kwargs["sp_log_ratio"] = ev.sp_log_ratio + sp_correction_log10
    if ev.azimuth_trials is not None:
        kwargs.update(azimuth_trials=ev.azimuth_trials, takeoff_trials=ev.takeoff_trials)
    else:
        if ev.azimuth_unc_deg is not None:
            kwargs["azimuth_unc_deg"] = ev.azimuth_unc_deg
        if ev.takeoff_unc_deg is not None:
            kwargs["takeoff_unc_deg"] = ev.takeoff_unc_deg
    m = invert(ev.azimuth_deg, ev.takeoff_deg, pol, ev.weight, **kwargs)
    return m, pol


def _subset(ev: EventPicks, keep: np.ndarray, polarity: np.ndarray) -> EventPicks:
    """``ev`` with only the picks where ``keep`` is true, polarities ``polarity``."""
    arrays = {f.name: getattr(ev, f.name)[keep] for f in fields(ev)
              if isinstance(getattr(ev, f.name), np.ndarray)}  # fmt: skip
    arrays["polarity"] = np.asarray(polarity)[keep]
    station = tuple(s for s, k in zip(ev.station, keep.tolist(), strict=True) if k)
    return replace(ev, station=station, **arrays)


def station_check_rows(ev: EventPicks, reversals, min_polarities: int, sp_correction: float,
                       **params) -> list:  # fmt: skip
    """The :func:`firstmotion.stationcheck.check_stations` rows of one event: each
    pick's polarity (after the reversal list) against the event inverted without it."""
    from firstmotion.stationcheck import left_out_predictions, station_rows

    pol = corrected_polarity(ev, reversals)
    usable = (pol != 0) & (ev.weight > 0)
    observed = np.where(usable, np.sign(pol), 0).astype(int)

    def invert_without(keep: np.ndarray):
        if int(np.sum(usable & keep)) < min_polarities:
            return None
        return invert_event(_subset(ev, keep, pol), None, sp_correction, **params)[0]

    predicted = left_out_predictions(ev.azimuth_deg, ev.takeoff_deg, observed, invert_without)
    return station_rows(ev.station, predicted, observed, ev.time_s)


def write_station_check(path: Path, checks) -> None:
    """The station check as CSV, least probable first; each likely reversed station logged."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def iso(t):
        return "" if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()

    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["station", "agree", "disagree", "p_value", "likely_reversed",
                    "first_disagree", "last_disagree"])  # fmt: skip
        for c in checks:
            first, last = iso(c.first_disagree_s), iso(c.last_disagree_s)
            w.writerow([c.station, c.agree, c.disagree, f"{c.p_value:.3g}",
                        int(c.likely_reversed), first, last])  # fmt: skip
            if c.likely_reversed:
                span = f", {first} to {last}" if first else ""
                log.warning(
                    "station %s: %d of %d reliable predictions disagree (p=%.2g)%s: likely "
                    "reversed; a reversal-list entry for %s would correct it",
                    c.station, c.disagree, c.n, c.p_value, span,
                    "that span" if first else "its time span",
                )  # fmt: skip


def _format_of(path: Path) -> str:
    """The input format of a file with none given (see ``--format``)."""
    if path.suffix.lower() == ".csv":
        return "skhash-csv"
    with path.open("rb") as fh:  # (a missing file: the command says so in one line)
        head = fh.read(256).lstrip()
    return "catalog-json" if head.startswith(b"[") else "jsonl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, type=Path, help="events (JSONL) or SKHASH CSV")
    parser.add_argument("--output", required=True, type=Path, help="mechanisms, JSONL")
    parser.add_argument(
        "--format",
        choices=("jsonl", "skhash-csv", "catalog-json"),
        default=None,
        help="input format (default: .csv = skhash-csv; a file holding a JSON array = "
        "catalog-json, the live catalog's `catalog export --format json`; else jsonl)",
    )
    parser.add_argument("--plot-dir", type=Path, default=None, help="write <event_id>.png here")
    parser.add_argument("--reversals", type=Path, default=None, help="station reversal list")
    parser.add_argument(
        "--inventory", type=Path, default=None,
        help="StationXML: its verticals documented as reversed (dip +90, negative "
        "sensitivity) join the reversal list, matched by full channel id (for polarities "
        "as recorded; a catalog export's have the live stages' reversals applied)",
    )  # fmt: skip
    parser.add_argument("--min-polarities", type=int, default=8, help="skip smaller events")
    parser.add_argument("--n-trials", type=int, default=30, help="trials when none are given")
    parser.add_argument("--dang", type=float, default=5.0, help="grid spacing, degrees")
    parser.add_argument("--badfrac", type=float, default=0.1, help="fraction assumed bad")
    parser.add_argument(
        "--badmin", type=float, default=2.0, help="misfit allowance floor, polarities (HASH: 2)"
    )
    parser.add_argument("--cangle", type=float, default=45.0, help="averaging angle, degrees")
    parser.add_argument("--prob-max", type=float, default=0.25, help="multiples threshold")
    parser.add_argument("--seed", type=int, default=0, help="seed for drawn trials")
    parser.add_argument(
        "--sp-correction", type=float, default=0.0, help="added to every sp_log_ratio (log10)"
    )
    parser.add_argument(
        "--sp-free-level", action="store_true",
        help="compare each event's ratios about their best-fitting level (no correction needed)",
    )  # fmt: skip
    parser.add_argument(
        "--station-check", type=Path, default=None, metavar="CSV",
        help="also compare each station's polarities with the events' mechanisms (each "
        "event inverted without the pick) and write per-station counts here; stations "
        "that are likely reversed are logged",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from workers.mechanism.reversals import read_reversals, with_documented_reversals

    fmt = args.format or _format_of(args.input)
    readers = {"skhash-csv": read_skhash_csv, "catalog-json": read_catalog_json,
               "jsonl": lambda path: list(read_jsonl(path))}  # fmt: skip
    events = readers[fmt](args.input)
    if fmt == "catalog-json" and (args.reversals or args.inventory):
        log.warning(
            "%s: a catalog export's polarities are those its mechanisms used, with the live "
            "reversal list and StationXML reversals applied; --reversals / --inventory flip "
            "the channels they name again (give them only for reversals the live stages did "
            "not have)", args.input,
        )  # fmt: skip
    reversals = read_reversals(args.reversals) if args.reversals else None
    if args.inventory:
        reversals = with_documented_reversals(reversals, args.inventory)
    params = dict(
        n_trials=args.n_trials,
        dang_deg=args.dang,
        badfrac=args.badfrac,
        badmin=args.badmin,
        cangle_deg=args.cangle,
        prob_max=args.prob_max,
        seed=args.seed,
    )
    if args.sp_free_level:
        params["sp_free_level"] = True
    args.output.parent.mkdir(parents=True, exist_ok=True)
    n_out = n_skipped = 0
    with args.output.open("w") as out:
        for ev in tqdm(events, desc="inverting", unit="event", disable=args.no_progress):
            usable = int(np.sum((ev.polarity != 0) & (ev.weight > 0)))
            if usable < args.min_polarities:
                log.warning(
                    "event %s: %d usable polarities < %d, skipped",
                    ev.event_id,
                    usable,
                    args.min_polarities,
                )
                n_skipped += 1
                continue
            rays = zip(ev.station, ev.azimuth_deg.tolist(), ev.takeoff_deg.tolist(), strict=True)
            repeats = len(ev.station) - len(set(rays))
            if repeats and all(ev.station):
                log.warning("event %s: %d pick(s) repeat a station's ray (the same station, "
                            "azimuth and takeoff), each counted", ev.event_id, repeats)  # fmt: skip
            try:
                m, pol = invert_event(ev, reversals, args.sp_correction, **params)
            except ValueError as exc:  # bad values in this event's rows: the others go on
                log.warning("event %s: %s, skipped", ev.event_id, exc)
                n_skipped += 1
                continue
            row = {"event_id": ev.event_id, **m.to_dict()}
            for key in ("latitude_deg", "longitude_deg", "depth_km"):  # for a stress map
                if getattr(ev, key) is not None:
                    row[key] = getattr(ev, key)
            if ev.sp_log_ratio is not None:
                row["sp_correction_log10"] = round(args.sp_correction, 4)
                row["sp_free_level"] = bool(args.sp_free_level)
            out.write(json.dumps(row) + "\n")
            n_out += 1
            if args.plot_dir is not None:
                from firstmotion.plot import plot_mechanism

                plot_mechanism(
                    args.plot_dir / f"{ev.event_id}.png",
                    m.strike,
                    m.dip,
                    m.rake,
                    ev.azimuth_deg[pol != 0],
                    ev.takeoff_deg[pol != 0],
                    pol[pol != 0],
                    title=f"{ev.event_id}  {m.strike:.0f}/{m.dip:.0f}/{m.rake:.0f}  {m.quality}",
                    alternatives=tuple((s.strike, s.dip, s.rake) for s in m.solutions[1:]),
                )
    log.info("wrote %d mechanisms to %s (%d events skipped)", n_out, args.output, n_skipped)
    if args.station_check is not None:
        from firstmotion.stationcheck import check_stations

        rows = []
        for ev in tqdm(events, desc="checking stations", unit="event", disable=args.no_progress):
            rows += station_check_rows(ev, reversals, args.min_polarities, args.sp_correction,
                                       **params)  # fmt: skip
        checks = check_stations(rows)
        write_station_check(args.station_check, checks)
        log.info(
            "station check: %d stations, %d likely reversed, written to %s",
            len(checks), sum(c.likely_reversed for c in checks), args.station_check,
        )  # fmt: skip
    return 0
