"""What the live page shows besides the events: pipeline health, stations, stress cells.

Pure functions turn Redis replies into plain JSON-able dicts; thin readers fetch them. All
reads are bounded (a fixed number of streams and groups, at most ``MAX_STRESS_CELLS`` stress
keys, at most ``LAG_COUNT_CAP`` entries counted per group), so the page's cost does not grow
with the catalog.

* :func:`read_health`: per stream its length and the age of its newest entry; per consumer
  group its backlog (entries not yet delivered) and pending entries (delivered, not acked);
  the dead letters in ``<prefix>dead``; and the latency of the newest events (origin time to
  the first location, to the newest mechanism: wall-clock seconds after the earthquake).
* :func:`stations_of_events`: station positions placed from each origin's arrivals (azimuth
  and distance from the epicentre), merged with the inventory's stations when one is known,
  with each station's first motions against the final mechanisms
  (:func:`read_station_polarities`: a vertical read upside down mostly disagrees).
* :func:`read_stress`: the stress cells ``<prefix>stress:<cell>`` (a hash or a JSON string
  with ``shmax_azimuth_deg`` and a position); none present is an empty list.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections.abc import Iterable
from typing import Any

from firstmotion.messages import CatalogEvent

#: (stream, consumer group) pairs of the pipeline, in data-flow order
PIPELINE_GROUPS = (
    ("picks", "polarity"),
    ("picks", "associate"),
    ("polarities", "mechanism"),
    ("origins", "mechanism"),
    ("origins", "catalog"),
    ("mechanisms", "catalog"),
)
STREAMS = ("picks", "polarities", "origins", "mechanisms", "dead")
LAG_COUNT_CAP = 10_000
MAX_STRESS_CELLS = 2000


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def entry_age_s(entry_id: str, now_s: float) -> float:
    """Seconds since a stream entry id ``<ms>-<seq>`` was written (Redis's clock)."""
    return max(now_s - int(entry_id.split("-", 1)[0]) / 1000.0, 0.0)


def event_latencies(events: Iterable[CatalogEvent]) -> dict[str, Any]:
    """Latency of the given events: seconds from origin time to the first location
    (``origin.created_epoch_s``) and to the newest mechanism (``mechanism.created_epoch_s``).

    Returns ``{"n_events", "location_s": {"last", "median"}, "mechanism_s": {...},
    "processing_s": {...}}`` with ``None`` where there is nothing to measure; ``processing_s``
    is location to mechanism (the mechanism of the stored origin revision), which means the
    same on replayed data. ``last`` is the newest event by origin time.
    """
    evs = sorted(events, key=lambda e: e.origin.time_epoch_s, reverse=True)

    def stats(values: list[float]) -> dict[str, float | None]:
        return {
            "last": values[0] if values else None,
            "median": statistics.median(values) if values else None,
        }

    loc = [e.origin.created_epoch_s - e.origin.time_epoch_s for e in evs]
    mech = [e.mechanism.created_epoch_s - e.origin.time_epoch_s for e in evs if e.mechanism]
    proc = [
        e.mechanism.created_epoch_s - e.origin.created_epoch_s
        for e in evs
        if e.mechanism and e.mechanism.origin_revision == e.origin.revision
    ]
    return {
        "n_events": len(evs),
        "location_s": stats(loc),
        "mechanism_s": stats(mech),
        "processing_s": stats(proc),
    }


def read_health(client: Any, prefix: str, events: Iterable[CatalogEvent]) -> dict[str, Any]:
    """The pipeline's health as the page shows it (see the module doc)."""
    import redis

    now_s = _redis_time(client)
    streams = {}
    for name in STREAMS:
        key = prefix + name
        length = int(client.xlen(key))
        newest = client.xrevrange(key, count=1) if length else []
        streams[name] = {
            "length": length,
            "newest_age_s": entry_age_s(_s(newest[0][0]), now_s) if newest else None,
        }
    groups = []
    for stream, group in PIPELINE_GROUPS:
        key = prefix + stream
        row: dict[str, Any] = {"stream": stream, "group": group, "backlog": None, "pending": None}
        try:
            infos = {_s(g["name"]): g for g in client.xinfo_groups(key)}
        except redis.ResponseError:  # no such stream yet
            infos = {}
        info = infos.get(group)
        if info is not None:
            row["pending"] = int(info.get("pending", 0))
            lag = info.get("lag")
            if lag is None:
                last = _s(info.get("last-delivered-id", b"0-0"))
                lag = len(client.xrange(key, f"({last}", "+", count=LAG_COUNT_CAP))
            row["backlog"] = int(lag)
        groups.append(row)
    return {
        "now_epoch_s": now_s,
        "streams": streams,
        "groups": groups,
        "dead_letters": streams["dead"]["length"],
        "latency": event_latencies(events),
    }


def _redis_time(client: Any) -> float:
    try:
        sec, usec = client.time()
        return float(sec) + float(usec) / 1e6
    except Exception:  # noqa: BLE001 - a proxy without TIME: the local clock will do
        return time.time()


# --------------------------------------------------------------------------- stations


def station_polarity_counts(fields: dict) -> dict[str, dict[str, int]]:
    """``{NET.STA: {"agree": n, "disagree": n}}`` from the catalog's
    ``catalog:station_polarities`` hash fields (``<station_id>|agree`` -> count; bytes or
    str), a station's channels summed."""
    out: dict[str, dict[str, int]] = {}
    for key, value in fields.items():
        key = key.decode() if isinstance(key, bytes) else str(key)
        station_id, _, agreement = key.rpartition("|")
        if agreement not in ("agree", "disagree") or not station_id:
            continue
        sta = ".".join(station_id.split(".")[:2])
        counts = out.setdefault(sta, {"agree": 0, "disagree": 0})
        counts[agreement] += int(value)
    return out


UPSIDE_DOWN_MIN = 6  # reliable predictions before a station's disagreement is shown


def mostly_disagree(counts: dict[str, int]) -> bool:
    """Whether a station's first motions mostly disagree with the final mechanisms over at
    least :data:`UPSIDE_DOWN_MIN` reliable predictions: its vertical may read upside down
    (the rule of ``deploy/prometheus/alerts.yml``'s ``FirstmotionStationPolarityReversed``,
    over the catalog's life; ``firstmotion invert --station-check`` confirms)."""
    agree, disagree = counts.get("agree", 0), counts.get("disagree", 0)
    return disagree > agree and agree + disagree >= UPSIDE_DOWN_MIN


def read_station_polarities(client: Any, prefix: str) -> dict[str, dict[str, int]]:
    """:func:`station_polarity_counts` of the stored hash (one HGETALL: a field per channel)."""
    from workers.catalog import STATION_POLARITIES_KEY

    return station_polarity_counts(client.hgetall(prefix + STATION_POLARITIES_KEY))


def stations_of_events(
    events: Iterable[CatalogEvent],
    inventory: dict[str, tuple[float, float]] | None = None,
    polarities: dict[str, dict[str, int]] | None = None,
) -> list[dict[str, Any]]:
    """Stations as ``{"station", "latitude_deg", "longitude_deg", "source"}``, with
    ``"polarities": {"agree", "disagree"}`` and ``"mostly_disagree"`` (:func:`mostly_disagree`)
    where ``polarities`` (:func:`read_station_polarities`) counts the station.

    ``inventory`` maps ``NET.STA`` to (latitude, longitude) (source ``inventory``); a station
    only seen in an origin's arrivals is placed at its azimuth and distance from that
    epicentre on the local tangent plane (source ``arrivals``; accurate to ~0.1% within
    200 km, see :func:`firstmotion.geodesy.offset_latlon`). Sorted by station.
    """
    from firstmotion.geodesy import offset_latlon

    out: dict[str, dict[str, Any]] = {}
    for sta, (lat, lon) in (inventory or {}).items():
        out[sta] = {"station": sta, "latitude_deg": lat, "longitude_deg": lon,
                    "source": "inventory"}  # fmt: skip
    for ev in events:
        o = ev.origin
        if not -89.0 < o.latitude_deg < 89.0:
            continue
        for a in o.arrivals:
            sta = ".".join(a.station_id.split(".")[:2])
            if sta in out:
                continue
            az = math.radians(a.azimuth_deg)
            lat, lon = offset_latlon(
                o.latitude_deg, o.longitude_deg,
                a.distance_km * math.cos(az), a.distance_km * math.sin(az),
            )  # fmt: skip
            out[sta] = {"station": sta, "latitude_deg": round(float(lat), 5),
                        "longitude_deg": round(float(lon), 5), "source": "arrivals"}  # fmt: skip
    for sta, counts in (polarities or {}).items():
        if sta in out:
            out[sta]["polarities"] = dict(counts)
            out[sta]["mostly_disagree"] = mostly_disagree(counts)
    return [out[k] for k in sorted(out)]


# --------------------------------------------------------------------------- stress cells

_CELL_RE = re.compile(r"\s*([-+]?\d+(?:\.\d+)?)\s*[_,/ ]\s*([-+]?\d+(?:\.\d+)?)\s*")
_LAT_KEYS = ("latitude_deg", "latitude", "lat", "lat_deg", "center_latitude_deg")
_LON_KEYS = ("longitude_deg", "longitude", "lon", "lon_deg", "center_longitude_deg")


def _number(value: Any) -> float | None:
    try:
        out = float(_s(value)) if isinstance(value, (bytes, str)) else float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def parse_stress_cell(cell: str, raw: Any) -> dict[str, Any] | None:
    """One stress cell as ``{"cell", "latitude_deg", "longitude_deg", "shmax_azimuth_deg",
    "n_mechanisms", "shmax_uncertainty_deg", "shape_ratio"}``, or ``None`` when ``raw`` (a
    hash or a JSON object, fields as bytes or str) has no SHmax azimuth or no position.

    The position is the first of ``latitude_deg``/``latitude``/``lat`` (and the longitude
    twins), else ``center``/``centre`` ``[lat, lon]``, else a cell name ``<lat>_<lon>``.
    """
    if isinstance(raw, (bytes, str)):
        try:
            raw = json.loads(_s(raw))
        except (ValueError, RecursionError):
            return None
    if not isinstance(raw, dict):
        return None
    f = {_s(k): v for k, v in raw.items()}
    for k, v in list(f.items()):
        if isinstance(v, bytes):
            text = v.decode(errors="replace")
            try:
                f[k] = json.loads(text)
            except ValueError:
                f[k] = text
    shmax = _number(f.get("shmax_azimuth_deg"))
    lat = next((_number(f[k]) for k in _LAT_KEYS if k in f), None)
    lon = next((_number(f[k]) for k in _LON_KEYS if k in f), None)
    centre = f.get("center", f.get("centre"))
    if isinstance(centre, dict):  # the stress worker's {"latitude_deg", "longitude_deg"}
        centre = (centre.get("latitude_deg"), centre.get("longitude_deg"))
    if (lat is None or lon is None) and isinstance(centre, (list, tuple)) and len(centre) == 2:
        lat, lon = _number(centre[0]), _number(centre[1])
    if lat is None or lon is None:
        m = _CELL_RE.fullmatch(cell)
        if m:
            lat, lon = float(m.group(1)), float(m.group(2))
    if shmax is None or lat is None or lon is None or not -90 <= lat <= 90:
        return None
    unc = f.get("shmax_uncertainty_deg")
    if unc is None and isinstance(f.get("uncertainty"), dict):
        unc = f["uncertainty"].get("shmax_azimuth_deg")
    n = _number(f.get("n_mechanisms"))
    return {
        "cell": cell,
        "latitude_deg": lat,
        "longitude_deg": lon,
        "shmax_azimuth_deg": shmax % 180.0,
        "n_mechanisms": None if n is None else int(n),
        "shmax_uncertainty_deg": _number(unc),
        "shape_ratio": _number(f.get("shape_ratio")),
    }


def read_stress(client: Any, prefix: str) -> list[dict[str, Any]]:
    """The stress cells under ``<prefix>stress:*`` that carry an SHmax (hash or JSON string
    keys; other types are skipped); at most :data:`MAX_STRESS_CELLS`, sorted by cell."""
    import redis

    # the stress worker lists its cells in <prefix>stress:cells (newest first here); other
    # writers may only set <prefix>stress:<cell> keys, found by a bounded scan
    keys = (
        [
            f"{prefix}stress:{_s(c)}"
            for c in client.zrevrange(f"{prefix}stress:cells", 0, MAX_STRESS_CELLS - 1)
        ]
        if _s(client.type(f"{prefix}stress:cells")) == "zset"
        else []
    )
    if not keys:
        for key in client.scan_iter(match=f"{prefix}stress:*", count=500):
            keys.append(_s(key))
            if len(keys) >= MAX_STRESS_CELLS:
                break
    out = []
    for key in sorted(keys):
        try:
            kind = _s(client.type(key))
            if kind == "hash":
                raw: Any = client.hgetall(key)
            elif kind == "string":
                raw = client.get(key)
            else:
                continue
        except redis.ResponseError:
            continue
        cell = parse_stress_cell(key[len(prefix) + len("stress:") :], raw)
        if cell is not None:
            out.append(cell)
    return out


def read_station_coordinates(path: str) -> dict[str, tuple[float, float]]:
    """``NET.STA`` -> (latitude, longitude) from a StationXML file (the map's stations)."""
    from firstmotion.inventory import read_sites

    return {s.station_id: (s.latitude, s.longitude) for s in read_sites(path) if s.channel is None}
