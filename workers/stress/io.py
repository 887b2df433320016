"""Reading mechanisms (CSV, QuakeML, the live catalog in Redis) and writing GeoJSON.

JSON lines (``firstmotion invert``'s output, SKHASH mechanisms): the same fields per object.
CSV: a header with ``strike``, ``dip``, ``rake`` (degrees, Aki & Richards; either nodal plane)
and optional ``latitude``/``latitude_deg``, ``longitude``/``longitude_deg``, ``depth_km``,
``quality`` (A-D) and ``event_id`` (``firstmotion catalog export --format csv`` is read as is).
QuakeML: each event's preferred focal mechanism (else its first), nodal plane 1, the preferred
origin's epicentre and the quality letter from the ``quality=X`` comment that firstmotion writes.
Redis: the live catalog (``<prefix>catalog`` and ``<prefix>event:<id>``), with the stations
placed from each origin's arrivals (azimuth and distance).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from workers.stress.cells import MechanismTable, cell_centre, parse_cell_id

_ALIASES = {
    "latitude": ("latitude", "latitude_deg", "lat"),
    "longitude": ("longitude", "longitude_deg", "lon", "long"),
    "depth_km": ("depth_km", "depth"),
    "quality": ("quality",),
    "event_id": ("event_id", "id"),
}
_QUALITY_RE = re.compile(r"quality\s*=\s*([ABCD])")
_BOM = b"\xef\xbb\xbf"

log = logging.getLogger(__name__)


def _checked(rows: list[dict[str, Any]], dropped: int, path: str | Path) -> MechanismTable:
    """The table of ``rows`` whose angles are a mechanism's (dip 0-90, |rake| <= 360; strike
    any, taken modulo 360), each event once (a repeated ``event_id`` counted twice would make
    the stress look better constrained than it is); what was left out is said."""
    keep, bad, seen, repeated = [], 0, set(), 0
    for r in rows:
        if not (0.0 <= r["dip"] <= 90.0 and abs(r["rake"]) <= 360.0):
            bad += 1
            continue
        eid = str(r.get("event_id") or "")
        if eid and eid in seen:
            repeated += 1
            continue
        seen.add(eid)
        keep.append(r)
    if dropped or bad:
        log.warning("%s: %d mechanism(s) left out: %d without a number for strike, dip or rake, "
                    "%d with a dip outside 0-90 or a rake beyond +-360", path, dropped + bad,
                    dropped, bad)  # fmt: skip
    if repeated:
        log.warning("%s: %d mechanism(s) of an event given before, read once", path, repeated)
    return MechanismTable.from_rows(keep)


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


def read_csv(path: str | Path) -> MechanismTable:
    """Mechanisms from a CSV file (see the module docstring); rows without a finite strike,
    dip and rake are skipped."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise ValueError(f"{path}: empty CSV")
        names = {n.strip().lower(): n for n in reader.fieldnames}
        missing = [c for c in ("strike", "dip", "rake") if c not in names]
        if missing:
            raise ValueError(f"{path}: missing CSV columns {missing} (have {list(names)})")
        cols = {k: next((names[a] for a in al if a in names), None) for k, al in _ALIASES.items()}
        rows, dropped = [], 0
        for raw in reader:
            row: dict[str, Any] = {c: _float(raw[names[c]]) for c in ("strike", "dip", "rake")}
            if not all(np.isfinite(list(row.values()))):
                dropped += 1
                continue
            for key in ("latitude", "longitude", "depth_km"):
                row[key] = _float(raw[cols[key]]) if cols[key] else float("nan")
            row["quality"] = (raw[cols["quality"]] or "").strip().upper() if cols["quality"] else ""
            row["event_id"] = (raw[cols["event_id"]] or "") if cols["event_id"] else ""
            rows.append(row)
    return _checked(rows, dropped, path)


def read_quakeml(path: str | Path) -> MechanismTable:
    """Mechanisms from a QuakeML catalog (obspy)."""
    from obspy import read_events

    rows = []
    for ev in read_events(str(path)):
        fm = ev.preferred_focal_mechanism() or (
            ev.focal_mechanisms[0] if ev.focal_mechanisms else None
        )
        if fm is None or fm.nodal_planes is None or fm.nodal_planes.nodal_plane_1 is None:
            continue
        np1 = fm.nodal_planes.nodal_plane_1
        if None in (np1.strike, np1.dip, np1.rake):
            continue
        org = ev.preferred_origin() or (ev.origins[0] if ev.origins else None)
        quality = ""
        for c in fm.comments:
            m = _QUALITY_RE.search(c.text or "")
            if m:
                quality = m.group(1)
        rows.append(
            {
                "strike": float(np1.strike), "dip": float(np1.dip), "rake": float(np1.rake),
                "latitude": float(org.latitude) if org and org.latitude is not None else np.nan,
                "longitude": float(org.longitude) if org and org.longitude is not None else np.nan,
                "depth_km": float(org.depth) / 1000.0 if org and org.depth is not None else np.nan,
                "quality": quality,
                "event_id": str(ev.resource_id).rsplit("/", 1)[-1],
            }
        )  # fmt: skip
    return _checked(rows, 0, path)


def read_jsonl(path: str | Path) -> MechanismTable:
    """One JSON object per line with ``strike``, ``dip``, ``rake`` and optional epicentre
    (``latitude``/``lat``, ``longitude``/``lon``), ``depth_km``, ``quality``, ``event_id``: the
    output of ``firstmotion invert`` and SKHASH's mechanisms as JSON lines."""
    rows, dropped = [], 0
    for line in Path(path).read_text(encoding="utf-8-sig").splitlines():
        if not line.strip():
            continue
        obj = {k.lower(): v for k, v in json.loads(line).items()}
        row: dict[str, Any] = {c: _float(obj.get(c)) for c in ("strike", "dip", "rake")}
        if not all(np.isfinite(list(row.values()))):
            dropped += 1
            continue
        for key, aliases in _ALIASES.items():
            value = next((obj[a] for a in aliases if obj.get(a) not in (None, "")), None)
            if key in ("latitude", "longitude", "depth_km"):
                row[key] = _float(value)
            else:
                row[key] = "" if value is None else str(value)
        row["quality"] = row["quality"].upper()
        rows.append(row)
    return _checked(rows, dropped, path)


def read_mechanisms(path: str | Path) -> MechanismTable:
    """QuakeML, JSON lines, a catalog export's JSON or CSV, by content."""
    head = Path(path).read_bytes()[:512].removeprefix(_BOM).lstrip()
    if head.startswith(b"<"):
        return read_quakeml(path)
    if head.startswith(b"{"):
        return read_jsonl(path)
    if head.startswith(b"["):
        return read_catalog_export(path)
    return read_csv(path)


def read_redis(client: Any, prefix: str = "fm:") -> MechanismTable:
    """The live catalog's events that have a mechanism (deleted events excluded)."""
    from firstmotion.messages import Mechanism, Origin

    ids = [
        i.decode() if isinstance(i, bytes) else i for i in client.zrange(f"{prefix}catalog", 0, -1)
    ]
    pipe = client.pipeline(transaction=False)
    for eid in ids:
        pipe.hmget(f"{prefix}event:{eid}", "origin", "mechanism", "status")
    found = []
    for eid, (origin, mech, status) in zip(ids, pipe.execute(), strict=True):
        if mech is None or origin is None or (status or b"") == b"deleted":
            continue
        found.append((eid, Origin.from_json(origin), Mechanism.from_json(mech)))
    return _catalog_table(found)


def read_catalog_export(path: str | Path) -> MechanismTable:
    """``firstmotion catalog export --format json``: its events with a mechanism (retracted
    ones excluded), as from the live catalog."""
    from firstmotion import event_catalogs

    events = event_catalogs.read_catalog_export(path)
    return _catalog_table([(e.event_id, e.origin, e.mechanism) for e in events
                           if e.mechanism is not None and e.status != "deleted"])  # fmt: skip


def _catalog_table(events: list) -> MechanismTable:
    """Mechanisms of ``(event_id, Origin, Mechanism)``, with the stations placed from each
    origin's arrivals (azimuth and distance)."""
    from firstmotion.geodesy import offset_latlon

    rows, stations = [], {}
    for eid, o, m in events:
        rows.append(
            {
                "strike": m.strike, "dip": m.dip, "rake": m.rake, "latitude": o.latitude_deg,
                "longitude": o.longitude_deg, "depth_km": o.depth_km, "quality": m.quality,
                "event_id": eid,
            }
        )  # fmt: skip
        for a in o.arrivals:
            if a.station_id not in stations:
                az = np.radians(a.azimuth_deg)
                lat, lon = offset_latlon(
                    o.latitude_deg, o.longitude_deg, a.distance_km * np.cos(az),
                    a.distance_km * np.sin(az),
                )  # fmt: skip
                stations[a.station_id] = (float(lat), float(lon))
    return MechanismTable.from_rows(rows, stations)


def _bar(lat: float, lon: float, azimuth_deg: float, half_km: float) -> list[list[float]]:
    """Endpoints [lon, lat] of a bar centred on (lat, lon) along an azimuth."""
    a = np.radians(azimuth_deg)
    dlat = half_km / 111.195 * np.cos(a)
    dlon = half_km / (111.195 * max(np.cos(np.radians(lat)), 1e-6)) * np.sin(a)
    return [
        [round(lon - dlon, 6), round(lat - dlat, 6)],
        [round(lon + dlon, 6), round(lat + dlat, 6)],
    ]


def to_geojson(cells: list[dict[str, Any]], *, bar_km: float | None = None) -> dict[str, Any]:
    """A FeatureCollection: per cell a Point at its centre (all the cell's fields as
    properties) and a LineString along SHmax (``kind: "shmax"``)."""
    feats = []
    for c in cells:
        lat, lon = c["centre"]["latitude_deg"], c["centre"]["longitude_deg"]
        props = {k: v for k, v in c.items() if k != "centre"}
        feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                      "properties": {**props, "kind": "cell"}})  # fmt: skip
        half = bar_km if bar_km is not None else 0.35 * _cell_km(c)
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString",
                             "coordinates": _bar(lat, lon, c["shmax_azimuth_deg"], half)},
                "properties": {"kind": "shmax", "cell": c.get("cell"), "regime": c.get("regime"),
                               "shmax_azimuth_deg": c["shmax_azimuth_deg"]},
            }
        )  # fmt: skip
    return {"type": "FeatureCollection", "features": feats}


def _cell_km(c: dict[str, Any]) -> float:
    try:
        g, _, _ = parse_cell_id(c["cell"])
        return g * 111.195
    except (KeyError, ValueError):
        return 20.0


def write_json(path: str | Path, obj: Any) -> None:
    Path(path).write_text(json.dumps(obj, indent=2) + "\n")


__all__ = ["read_csv", "read_jsonl", "read_quakeml", "read_mechanisms", "read_redis", "to_geojson",
           "write_json", "cell_centre"]  # fmt: skip
