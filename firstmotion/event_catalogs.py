"""Event catalogs: origins and analyst picks from QuakeML, HYPO71 phase cards or CSV (the
input of ``firstmotion reprocess``, and the labels of ``polarity eval`` and ``picker eval``).

Every reader returns :class:`EventRecord` objects (origin time, hypocentre when known, and the
P picks with their station codes as written in the input). Station codes may be incomplete
(HYPO71 gives only a 4-letter station; QuakeML may leave the location or channel empty): the
archive reader resolves them against the waveforms (:mod:`firstmotion.archive`).

* QuakeML, and every other event format :func:`obspy.read_events` recognises by its content
  (SEISAN's Nordic S-files, NonLinLoc ``.hyp``, SeisComP's SCML, hypoDD's ``.pha``, ...): a
  file, or a folder of them, searched through its subfolders (one S-file per event, as a
  SEISAN database keeps them in ``REA/<DB>/<year>/<month>/``); the preferred
  origin (else the first), the picks whose phase hint (or arrival phase) starts with ``P``,
  their polarity (``positive`` / ``negative``; Nordic's C / D) and onset, and per station the
  arrival's azimuth (deg) and distance (deg) when given -- from which station coordinates can
  be derived when there is no StationXML (:func:`stations_from_arrivals`). Nordic's
  two-letter components (``HZ``, ``SZ``: band code and component) match the station's
  vertical of that band (:mod:`firstmotion.archive`).
* HYPO71 phase cards (a file or a folder of ``*.dat``/``*.pha``/``*.phs``): columns 1-4
  station, 5 onset (I/E), 6 ``P``, 7 first motion (U/D/blank), 8 weight, 10-19 ``YYMMDDhhmm``
  and 20-24 the seconds counted from that minute (may exceed 60). One event per file (or per
  block ended by a terminator line). Origins come from a separate file (QuakeML or the CSV
  events file) matched by event id (the file stem) or, failing that, by the nearest origin
  time before the first pick; without one the event has polarities only.
* CSV pair: ``events.csv`` (event_id, time, latitude, longitude, depth_km[, magnitude]) and
  ``picks.csv`` (event_id, station_id as NET.STA.LOC.CHA, phase, time[, polarity]); times
  ISO-8601 or epoch seconds. A picks CSV alone gives events without origins (grouped by its
  event_id column, or without one by gaps of more than 2 minutes between picks): the form of
  a list of analyst first motions (:func:`read_picks_csv`).

The readers take P picks (what reprocessing reads first motions at); ``phases=("P", "S")``
adds the S picks (QuakeML and CSV by their phase, HYPO71 the S reading of a card), as
``firstmotion picker eval`` scores both.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from firstmotion.errors import InputError

log = logging.getLogger(__name__)

HYPO71_SUFFIXES = (".dat", ".pha", ".phs", ".hyp", ".txt")
_EVENT_ID_BAD = re.compile(r"[^A-Za-z0-9_.\-:]")


@dataclass
class PickRecord:
    """One P pick of the input: station codes as given ('' where unknown), time in epoch s."""

    network: str
    station: str
    location: str
    channel: str
    time_epoch_s: float
    phase: str = "P"
    analyst_polarity: int = 0  # +1 / -1 / 0 (none), as read by the analyst when the input has it
    onset: str = ""  # 'impulsive' / 'emergent' / ''

    @property
    def label(self) -> str:
        return f"{self.network}.{self.station}.{self.location}.{self.channel}"


@dataclass
class EventRecord:
    """An event to reprocess. ``latitude_deg`` etc. are None when no origin is known."""

    event_id: str
    time_epoch_s: float
    latitude_deg: float | None = None
    longitude_deg: float | None = None
    depth_km: float | None = None
    magnitude: float | None = None
    picks: list[PickRecord] = field(default_factory=list)
    # station code -> (azimuth_deg, distance_deg) from the input's arrivals (QuakeML)
    arrival_geometry: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    @property
    def located(self) -> bool:
        return None not in (self.latitude_deg, self.longitude_deg, self.depth_km)


def _epoch(value: str) -> float:
    from obspy import UTCDateTime

    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        return float(UTCDateTime(text).timestamp)


def clean_event_id(text: str) -> str:
    """An event id usable in Redis keys, file names and QuakeML ids."""
    out = _EVENT_ID_BAD.sub("_", text.strip().rstrip("/").split("/")[-1].split("=")[-1])
    return out or "event"


# phase names of a first-arriving P or S after their letter (Pg, Pn, Pb, P*; any case)
FIRST_ARRIVAL_SUFFIXES = ("", "G", "N", "B", "*")


def arrival_phase(phase: str) -> str:
    """``"P"`` or ``"S"`` for the name of a first-arriving P or S phase (``P``, ``Pg``,
    ``Pn``, ``Pb``, ``P*``, the same for S; any case), ``""`` for any other: depth phases
    (``pP``, ``sP``), reflections and conversions (``PP``, ``PmP``, ``PcP``), whose first motion
    is not the direct P's."""
    text = (phase or "").strip()
    letter = text[:1].upper()
    if letter in ("P", "S") and text[1:].upper() in FIRST_ARRIVAL_SUFFIXES:
        return letter
    return ""


# --------------------------------------------------------------------------- QuakeML


def read_quakeml(
    path: str | Path,
    phases: tuple[str, ...] = ("P",),
    fmt: str | None = None,
    option: str = "--events",
) -> list[EventRecord]:
    """Events of a QuakeML file, or of another event format obspy reads (``fmt``: its obspy
    name where already known, else obspy detects it; see the module docstring); ``phases``:
    the first-arriving picks (:func:`arrival_phase`) of these phases (``("P", "S")`` for a
    picker's figures), each with that letter as its phase."""
    from obspy import read_events

    out = []
    try:
        catalog = read_events(str(path), format=fmt)
    except Exception as exc:  # obspy raises what its format readers raise
        raise InputError(f"{option} {path}: not an event file obspy can read ({exc})") from None
    text: list[bytes] = []  # the file, read only to tell an id obspy made up from its own

    def in_file(rid: str) -> bool:
        if not text:
            text.append(Path(path).read_bytes())
        return rid.encode() in text[0]

    for k, ev in enumerate(catalog):
        event_id = _obspy_event_id(ev, Path(path), k, len(catalog), in_file)
        origin = ev.preferred_origin() or (ev.origins[0] if ev.origins else None)
        mag = ev.preferred_magnitude() or (ev.magnitudes[0] if ev.magnitudes else None)
        phase_of = {}
        geometry = {}
        if origin is not None:
            for a in origin.arrivals:
                phase_of[str(a.pick_id)] = a.phase or ""
        picks = []
        for p in ev.picks:
            phase = arrival_phase(p.phase_hint or phase_of.get(str(p.resource_id), "") or "")
            if not phase or phase not in phases:
                continue
            w = p.waveform_id
            pol = {"positive": 1, "negative": -1}.get(p.polarity or "", 0)
            picks.append(
                PickRecord(
                    network=w.network_code or "",
                    station=w.station_code or "",
                    location=w.location_code or "",
                    channel=w.channel_code or "",
                    time_epoch_s=float(p.time.timestamp),
                    phase=phase,
                    analyst_polarity=pol,
                    onset=p.onset or "",
                )
            )
        if origin is not None:
            by_id = {str(p.resource_id): p for p in ev.picks}
            for a in origin.arrivals:
                p = by_id.get(str(a.pick_id))
                if p is None or a.azimuth is None or a.distance is None:
                    continue
                key = (p.waveform_id.network_code or "", p.waveform_id.station_code or "")
                geometry[key] = (float(a.azimuth), float(a.distance))
        if origin is None:
            if not picks:
                continue
            t0 = min(p.time_epoch_s for p in picks)
            rec = EventRecord(event_id, t0, picks=picks)
        else:
            depth = origin.depth / 1000.0 if origin.depth is not None else None
            rec = EventRecord(
                event_id,
                float(origin.time.timestamp),
                origin.latitude,
                origin.longitude,
                depth,
                float(mag.mag) if mag is not None and mag.mag is not None else None,
                picks,
                geometry,
            )
        out.append(rec)
    return out


_MADE_UP_ID = re.compile(r"smi:local/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")


def _obspy_event_id(ev, path: Path, k: int, n: int, in_file) -> str:
    """An event's id, the same on every read of the file (``firstmotion reprocess`` resumes
    by it): SEISAN's ``ID:`` where obspy keeps it (Nordic); the resource id where the file
    holds it (``in_file(rid)``: QuakeML's publicID, even an obspy-style ``smi:local`` UUID);
    else (an event without one: obspy makes up a random UUID, or none) the file's name, with
    the event's place in it."""
    nordic = (getattr(ev, "extra", None) or {}).get("nordic_event_id")
    if nordic:
        try:
            value = nordic["value"]  # obspy's AttribDict of an extra: {value, namespace}
        except (TypeError, KeyError):
            value = nordic
        return clean_event_id(str(value))
    rid = str(ev.resource_id)
    if rid in ("", "None") or (_MADE_UP_ID.fullmatch(rid) and not in_file(rid)):
        return clean_event_id(path.stem if n == 1 else f"{path.stem}_{k + 1}")
    return clean_event_id(rid)


def stations_from_arrivals(events: list[EventRecord]) -> dict[tuple[str, str], tuple[float, float]]:
    """(network, station) -> (latitude, longitude) from the arrivals' azimuth and distance.

    The point at great-circle distance ``distance_deg`` along ``azimuth_deg`` from the
    epicentre (spherical Earth; QuakeML distances are degrees of arc); the mean over events.
    """
    acc: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for ev in events:
        if ev.latitude_deg is None or ev.longitude_deg is None:
            continue
        for key, (az, dist) in ev.arrival_geometry.items():
            acc.setdefault(key, []).append(destination(ev.latitude_deg, ev.longitude_deg, az, dist))
    return {
        k: (sum(a for a, _ in v) / len(v), sum(b for _, b in v) / len(v)) for k, v in acc.items()
    }


def destination(lat_deg: float, lon_deg: float, azimuth_deg: float, distance_deg: float):
    """(lat, lon) at ``distance_deg`` of arc along ``azimuth_deg`` on a sphere."""
    p1, l1 = math.radians(lat_deg), math.radians(lon_deg)
    az, d = math.radians(azimuth_deg), math.radians(distance_deg)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(az))
    l2 = l1 + math.atan2(
        math.sin(az) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    lon = (math.degrees(l2) + 540.0) % 360.0 - 180.0
    return math.degrees(p2), lon


# --------------------------------------------------------------------------- HYPO71


def parse_hypo71_card(line: str) -> PickRecord | None:
    """One HYPO71 phase card's P reading, or None for a card without one (terminator, S only)."""
    line = line.rstrip("\r\n")
    if len(line) < 24 or line[5:6].upper() != "P":
        return None
    station = line[0:4].strip()
    stamp = line[9:19].strip()
    secs = line[19:24].strip()
    if not station or len(stamp) != 10 or not stamp.isdigit() or not secs:
        return None
    from obspy import UTCDateTime

    try:
        yy, mo, dd, hh, mi = (int(stamp[i : i + 2]) for i in range(0, 10, 2))
        year = 2000 + yy if yy < 70 else 1900 + yy
        t = UTCDateTime(year, mo, dd, hh, mi) + float(secs)
    except ValueError:
        return None
    motion = line[6:7].upper()
    return PickRecord(
        network="",
        station=station,
        location="",
        channel="",
        time_epoch_s=float(t.timestamp),
        analyst_polarity={"U": 1, "C": 1, "+": 1, "D": -1, "-": -1}.get(motion, 0),
        onset={"I": "impulsive", "E": "emergent"}.get(line[4:5].upper(), ""),
    )


def parse_hypo71_s(line: str, p: PickRecord) -> PickRecord | None:
    """The S reading of the HYPO71 card ``line`` whose P reading is ``p``: columns 32-36 the
    S seconds counted from the card's minute, 37 the onset, 38 ``S``; None without one."""
    line = line.rstrip("\r\n")
    secs = line[31:36].strip()
    if len(line) < 38 or line[37:38].upper() != "S" or not secs:
        return None
    from obspy import UTCDateTime

    try:
        minute = UTCDateTime.strptime(line[9:19], "%y%m%d%H%M")
        t = float((minute + float(secs)).timestamp)
    except ValueError:
        return None
    onset = {"I": "impulsive", "E": "emergent"}.get(line[36:37].upper(), "")
    return replace(p, time_epoch_s=t, phase="S", analyst_polarity=0, onset=onset)


def read_hypo71(
    path: str | Path, origins: list[EventRecord] | None = None, phases: tuple[str, ...] = ("P",)
) -> list[EventRecord]:
    """Events of HYPO71 phase files (a file or a folder), located from ``origins`` if given;
    ``phases`` ``("P", "S")`` adds the cards' S readings (:func:`parse_hypo71_s`)."""
    path = Path(path)
    files = (
        sorted(f for f in path.iterdir() if f.suffix.lower() in HYPO71_SUFFIXES)
        if path.is_dir()
        else [path]
    )
    by_id = {o.event_id: o for o in origins or []}
    out = []
    for f in files:
        blocks: list[list[PickRecord]] = [[]]
        for line in f.read_text(errors="replace").splitlines():
            if not line.strip() or (line.strip() and line[:4].strip() == "" and blocks[-1]):
                if blocks[-1]:
                    blocks.append([])
                continue
            rec = parse_hypo71_card(line)
            if rec is not None:
                if "P" in phases:
                    blocks[-1].append(rec)
                s_rec = parse_hypo71_s(line, rec) if "S" in phases else None
                if s_rec is not None:
                    blocks[-1].append(s_rec)
        blocks = [b for b in blocks if b]
        for i, picks in enumerate(blocks):
            eid = clean_event_id(f.stem if len(blocks) == 1 else f"{f.stem}_{i + 1}")
            first = min(p.time_epoch_s for p in picks)
            origin = by_id.get(eid) or _nearest_origin(origins or [], first)
            if origin is not None:
                out.append(
                    EventRecord(
                        origin.event_id if eid not in by_id else eid,
                        origin.time_epoch_s,
                        origin.latitude_deg,
                        origin.longitude_deg,
                        origin.depth_km,
                        origin.magnitude,
                        picks,
                    )
                )
            else:
                out.append(EventRecord(eid, first, picks=picks))
    return out


def _nearest_origin(origins: list[EventRecord], first_pick_s: float) -> EventRecord | None:
    """The latest origin within 120 s before the first pick."""
    best = None
    for o in origins:
        lead = first_pick_s - o.time_epoch_s
        if 0.0 <= lead <= 120.0 and (best is None or o.time_epoch_s > best.time_epoch_s):
            best = o
    return best


# --------------------------------------------------------------------------- CSV


def read_events_csv(path: str | Path) -> list[EventRecord]:
    """The events file of the CSV pair (picks empty)."""
    rows = _csv_rows(path, ("event_id", "time", "latitude", "longitude", "depth_km"))
    out = []
    for r in rows:
        mag = (r.get("magnitude") or "").strip()
        out.append(
            EventRecord(
                clean_event_id(r["event_id"]),
                _epoch(r["time"]),
                float(r["latitude"]),
                float(r["longitude"]),
                float(r["depth_km"]),
                float(mag) if mag else None,
            )
        )
    return out


def read_csv_pair(
    events_path: str | Path, picks_path: str | Path, phases: tuple[str, ...] = ("P",)
) -> list[EventRecord]:
    """Events of the CSV pair (the first-arriving picks of ``phases``,
    :func:`arrival_phase`); picks of unknown events are an error naming them."""
    events = {e.event_id: e for e in read_events_csv(events_path)}
    rows = _csv_rows(picks_path, ("event_id", "station_id", "phase", "time"))
    unknown = set()
    for r in rows:
        eid = clean_event_id(r["event_id"])
        pick = _csv_pick(r, picks_path, phases)
        if pick is None:
            continue
        if eid not in events:
            unknown.add(eid)
            continue
        events[eid].picks.append(pick)
    if unknown:
        raise InputError(f"{picks_path}: picks of events not in {events_path}: {sorted(unknown)}")
    return list(events.values())


CSV_EVENT_GAP_S = 120.0  # picks CSV without event ids: a longer gap between picks starts an event


def read_picks_csv(path: str | Path, phases: tuple[str, ...] = ("P",)) -> list[EventRecord]:
    """Events of a picks CSV alone (station_id, phase, time[, polarity][, event_id]; the
    picks file of the pair without its events file): events without origins, as analyst
    labels are kept where the hypocentres live elsewhere. Picks with the same ``event_id`` are
    one event; without that column, picks in time order are one event until a gap of more
    than ``CSV_EVENT_GAP_S`` (named by its first pick's time)."""
    picks = []
    for r in _csv_rows(path, ("station_id", "phase", "time")):
        pick = _csv_pick(r, path, phases)
        if pick is not None:
            eid = (r.get("event_id") or "").strip()
            picks.append((clean_event_id(eid) if eid else "", pick))
    picks.sort(key=lambda item: item[1].time_epoch_s)
    events: dict[str, EventRecord] = {}
    last_s = -math.inf
    key = ""
    for eid, pick in picks:
        if not eid:  # (rows without an id: grouped by time)
            if pick.time_epoch_s - last_s > CSV_EVENT_GAP_S:
                key = _time_event_id(pick.time_epoch_s)
            last_s = pick.time_epoch_s
        ev = events.setdefault(eid or key, EventRecord(eid or key, pick.time_epoch_s))
        ev.picks.append(pick)
    return list(events.values())


def _time_event_id(epoch_s: float) -> str:
    """An event id from a time: ``YYYYmmddTHHMMSS.ff`` (UTC)."""
    from obspy import UTCDateTime

    return clean_event_id(UTCDateTime(epoch_s).strftime("%Y%m%dT%H%M%S.%f")[:18])


def _csv_pick(r: dict[str, str], path: str | Path, phases: tuple[str, ...]) -> PickRecord | None:
    """The pick of a picks-CSV row (None: a phase not in ``phases``, or not a first arrival:
    :func:`arrival_phase`); its polarity (U / D,
    +1 / -1, positive / negative, C for compression) on P picks only."""
    phase = arrival_phase(r["phase"])
    if not phase or phase not in phases:
        return None
    parts = r["station_id"].strip().split(".")
    if len(parts) != 4:
        raise InputError(f"{path}: station_id {r['station_id']!r} is not NET.STA.LOC.CHA")
    pol = (r.get("polarity") or "").strip()
    return PickRecord(*parts, time_epoch_s=_epoch(r["time"]), phase=phase,
                      analyst_polarity=_sign(pol) if phase == "P" else 0)  # fmt: skip


def _is_events_csv(path: str | Path) -> bool:
    """Whether a CSV's header names the events file's columns (a hypocentre), not picks'."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = {c.strip() for c in next(csv.reader(fh), [])}
    return {"latitude", "longitude", "depth_km"} <= header and "station_id" not in header


def _sign(text: str) -> int:
    t = text.strip().upper()
    if t in ("1", "+1", "+", "U", "C", "UP", "POSITIVE"):
        return 1
    if t in ("-1", "-", "D", "DOWN", "NEGATIVE"):
        return -1
    return 0


def _csv_rows(path: str | Path, need: tuple[str, ...]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in need if c not in cols]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}; need {list(need)}, got {cols}")
        return [{k.strip(): (v or "") for k, v in r.items() if k} for r in reader]


def read_catalog_export(path: str | Path) -> list:
    """The :class:`~firstmotion.messages.CatalogEvent` objects of a live-catalog export
    (``firstmotion catalog export --format json``); an :class:`InputError` naming the file
    when it is not one."""
    from firstmotion.messages import CatalogEvent

    try:
        return [CatalogEvent.from_dict(o) for o in json.loads(Path(path).read_text("utf-8-sig"))]
    except (json.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a catalog export (a JSON array of events): {exc}") from None


# --------------------------------------------------------------------------- dispatch


def obspy_event_format(path: str | Path) -> str | None:
    """The name of the obspy event format whose own content check recognises the file
    (``QUAKEML``, ``NORDIC``, ``NLLOC_HYP``, ...; obspy's order, as :func:`obspy.read_events`
    detects it), or None."""
    from obspy.core.util.base import ENTRY_POINTS, buffered_load_entry_point

    for ep in ENTRY_POINTS["event"].values():
        try:
            is_format = buffered_load_entry_point(
                ep.dist.name, f"obspy.plugin.event.{ep.name}", "isFormat"
            )
            if is_format(str(path)):
                return ep.name
        except Exception:  # a plugin that cannot load or check is not this file's format
            continue
    return None


def files_in(folder: Path) -> list[Path]:
    """The files under ``folder`` and its subfolders (a SEISAN database keeps its S-files in
    ``REA/<DB>/<year>/<month>/``), hidden ones left out, sorted by path."""
    return sorted(
        f for f in folder.rglob("*")
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts)
    )  # fmt: skip


def detect_format(path: str | Path) -> str:
    """'quakeml' (any event format obspy reads), 'hypo71' or 'csv' from the path: ``.csv``;
    XML or a file obspy's content checks recognise; else HYPO71 phase cards. A folder is
    'quakeml' when obspy recognises one of its first files (a folder of S-files) and none of
    them is a HYPO71 file (a HYPO71 suffix obspy does not recognise: a folder of phase cards
    may also hold the origins' QuakeML), else 'hypo71'."""
    p = Path(path)
    if p.is_dir():
        kinds = [
            "quakeml" if obspy_event_format(f) else "hypo71" if f.suffix.lower() in
            HYPO71_SUFFIXES else "" for f in files_in(p)[:5]
        ]  # fmt: skip
        return "quakeml" if "quakeml" in kinds and "hypo71" not in kinds else "hypo71"
    if p.suffix.lower() == ".csv":
        return "csv"
    if p.read_bytes()[:2000].lstrip().startswith(b"<") or obspy_event_format(p):
        return "quakeml"  # NonLinLoc's .hyp too, whose suffix HYPO71 files also use
    return "hypo71"


def read_obspy_events(
    paths: list[str], phases: tuple[str, ...] = ("P",), option: str = "--events"
) -> list[EventRecord]:
    """:func:`read_quakeml` of every file named (a folder: each file in it and its subfolders
    that obspy recognises; the others are logged and left out)."""
    out = []
    for text in paths:
        path = Path(text)
        if not path.is_dir():
            out.extend(read_quakeml(path, phases, option=option))
            continue
        skipped = []
        for f in files_in(path):
            fmt = obspy_event_format(f)
            if fmt:
                out.extend(read_quakeml(f, phases, fmt, option=option))
            else:
                skipped.append(f.name)
        if skipped:
            log.warning("%s %s: %d file(s) not an event format obspy reads, left out: %s",
                        option, path, len(skipped), ", ".join(skipped[:10]))  # fmt: skip
    return out


def _without_repeated_picks(recs: list[EventRecord]) -> list[EventRecord]:
    """``recs`` with each pick once (the same station codes, phase and time to the
    millisecond: a file given twice, a catalog exported with its arrivals repeated); an
    event whose picks were all repeats of another's goes too. Logged."""
    seen: set[tuple] = set()
    repeated = 0
    out = []
    for r in recs:
        picks = []
        for p in r.picks:
            key = (p.network, p.station, p.location, p.channel, p.phase, round(p.time_epoch_s, 3))
            if key in seen:
                repeated += 1
                continue
            seen.add(key)
            picks.append(p)
        if r.picks and not picks:
            continue
        r.picks = picks
        out.append(r)
    if repeated:
        log.warning("%d pick(s) given more than once (the same station, phase and time), "
                    "read once", repeated)  # fmt: skip
    return out


def _read_format(
    kind: str, events: list[str], origins: str | None, phases: tuple[str, ...], option: str
) -> list[EventRecord]:
    """:func:`read_events` of files of one format."""
    if kind == "csv":
        if len(events) == 1 and not _is_events_csv(events[0]):
            return read_picks_csv(events[0], phases)
        if len(events) != 2:
            raise InputError(
                f"{option}: the CSV form takes two files, events.csv picks.csv, or a picks CSV "
                "alone (station_id, phase, time[, polarity])"
            )
        return read_csv_pair(events[0], events[1], phases)
    if kind == "quakeml":
        return read_obspy_events(events, phases, option)
    if kind == "hypo71":
        known = None
        if origins:
            okind = detect_format(origins)
            known = read_events_csv(origins) if okind == "csv" else read_quakeml(origins)
        recs = []
        for e in events:
            recs.extend(read_hypo71(e, known, phases))
        if not recs:
            raise InputError(
                f"{option} {' '.join(events)}: no HYPO71 phase card with a P reading (expected "
                "QuakeML or another event format obspy reads, HYPO71 phase cards or the CSV "
                "pair events.csv picks.csv)"
            )
        return recs
    raise InputError(f"unknown events format {kind!r} (quakeml, hypo71, csv)")


def read_events(
    events: list[str],
    *,
    origins: str | None = None,
    fmt: str | None = None,
    phases: tuple[str, ...] = ("P",),
    option: str = "--events",
) -> list[EventRecord]:
    """Events from ``events`` (one path, or two for the CSV pair: events then picks; files of
    other formats each read by their own), with their picks of ``phases`` (P: what
    reprocessing reads polarities at); ``option`` names the input in messages."""
    if not events:
        raise InputError(f"{option}: expected a file (or two for the CSV pair)")
    kinds = [fmt or detect_format(e) for e in events]
    if "csv" in kinds and len(set(kinds)) > 1:
        others = [e for e, k in zip(events, kinds, strict=True) if k != "csv"]
        raise InputError(f"{option}: the CSV pair or a picks CSV goes alone, not with "
                         f"{', '.join(others)}")  # fmt: skip
    recs = []
    for kind in dict.fromkeys(kinds):
        group = [e for e, k in zip(events, kinds, strict=True) if k == kind]
        recs += _read_format(kind, group, origins, phases, option)
    recs = _without_repeated_picks(recs)
    seen: dict[str, int] = {}
    for r in recs:  # unique ids
        n = seen.get(r.event_id, 0)
        seen[r.event_id] = n + 1
        if n:
            r.event_id = f"{r.event_id}_{n + 1}"
    return sorted(recs, key=lambda r: (r.time_epoch_s, r.event_id))
