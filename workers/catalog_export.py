"""``firstmotion catalog export``: the live catalog as QuakeML, JSON or CSV.

Reads the catalog keys (``<prefix>catalog`` sorted set and ``<prefix>event:<id>`` hashes, see
:mod:`workers.catalog`) and writes, newest event first:

* ``quakeml`` -- QuakeML 1.2 through obspy's :class:`~obspy.core.event.Catalog`: per event the
  origin (with its arrivals), the magnitude when known, and the focal mechanism with both nodal
  planes (plane 1 preferred), misfit, station polarity count, station distribution ratio and
  azimuthal gap; the quality letter, probability and fault-plane uncertainty are in a comment
  (``quality=B; ...``) and the creation info's version (``catalog revision N``). The
  polarities used are P picks with ``polarity`` positive/negative, each tied to the origin by
  an arrival. QuakeML's takeoff angle is from the downward vertical: written as
  ``180 - takeoff_deg`` (firstmotion's takeoff is from vertical-up).
* ``json`` -- a JSON array of :class:`firstmotion.messages.CatalogEvent` objects (each readable
  with ``CatalogEvent.from_dict``).
* ``csv`` -- one row per event: :data:`CSV_COLUMNS`.

Deleted (retracted) events are left out unless ``--include-deleted``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from firstmotion.geodesy import KM_PER_DEG
from firstmotion.messages import CatalogEvent

log = logging.getLogger(__name__)

FORMATS = ("quakeml", "json", "csv")
CSV_COLUMNS = (
    "event_id", "status", "revision", "origin_time_utc", "latitude_deg", "longitude_deg",
    "depth_km", "magnitude", "strike", "dip", "rake", "aux_strike", "aux_dip", "aux_rake",
    "quality", "fault_plane_uncertainty_deg", "misfit", "probability", "n_polarities",
    "origin_revision", "mechanism_revision", "updated_epoch_s",
)  # fmt: skip
_PICK_TIME_RE = re.compile(r"@(\d+(?:\.\d+)?)$")
_URI_BAD_RE = re.compile(r"[^\w\-.*()~'+?=,;#/]")
_POLARITY = {1: "positive", -1: "negative", 0: "undecidable"}


def _uri_part(text: str) -> str:
    """``text`` as a valid QuakeML resource-id path part (``@`` -> ``/``, others -> ``_``)."""
    return _URI_BAD_RE.sub("_", text.replace("@", "/"))


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def pick_time_epoch_s(pick_id: str) -> float | None:
    """The pick time encoded in a firstmotion pick id (``NET.STA.LOC.CHA@<epoch s>``)."""
    m = _PICK_TIME_RE.search(pick_id)
    return float(m.group(1)) if m else None


# --------------------------------------------------------------------------- formats (pure)


def to_obspy_catalog(events: list[CatalogEvent]) -> Any:
    """An :class:`obspy.core.event.Catalog` of ``events`` (see the module docstring)."""
    from obspy import UTCDateTime
    from obspy.core.event import (
        Arrival,
        Catalog,
        Comment,
        CreationInfo,
        FocalMechanism,
        Magnitude,
        NodalPlane,
        NodalPlanes,
        OriginQuality,
        Pick,
        ResourceIdentifier,
        WaveformStreamID,
    )
    from obspy.core.event import Event as QEvent
    from obspy.core.event import Origin as QOrigin

    cat = Catalog(
        resource_id=ResourceIdentifier("smi:firstmotion/catalog"),
        creation_info=CreationInfo(agency_id="FM", author="firstmotion", creation_time=None),
        description="firstmotion live catalog",
    )
    for ev in events:
        o, m = ev.origin, ev.mechanism
        base = f"smi:firstmotion/{_uri_part(ev.event_id)}"
        info = CreationInfo(
            agency_id="FM",
            author="firstmotion",
            creation_time=UTCDateTime(ev.updated_epoch_s),
            version=f"catalog revision {ev.revision}",
        )
        origin = QOrigin(
            resource_id=ResourceIdentifier(f"{base}/origin/{o.revision}"),
            time=UTCDateTime(o.time_epoch_s),
            latitude=o.latitude_deg,
            longitude=o.longitude_deg,
            depth=o.depth_km * 1000.0,
            method_id=ResourceIdentifier(f"smi:firstmotion/method/{_uri_part(o.method)}"),
            evaluation_mode="automatic",
            evaluation_status="rejected" if ev.status == "deleted" else ev.status,
            quality=OriginQuality(
                associated_phase_count=len(o.arrivals),
                standard_error=o.rms_s,
            ),
            creation_info=CreationInfo(
                agency_id="FM", creation_time=UTCDateTime(o.created_epoch_s),
                version=str(o.revision),
            ),
        )  # fmt: skip
        polarity_of = {p.pick_id: p.polarity for p in (m.picks if m is not None else ())}
        picks = []
        pick_ids = {}
        for a in o.arrivals:
            pid = ResourceIdentifier(f"{base}/pick/{_uri_part(a.pick_id)}")
            pick_ids[a.pick_id] = pid
            net, sta, loc, cha = a.station_id.split(".")
            t = pick_time_epoch_s(a.pick_id)
            picks.append(
                Pick(
                    resource_id=pid,
                    time=UTCDateTime(t) if t is not None else None,
                    waveform_id=WaveformStreamID(net, sta, loc, cha),
                    phase_hint=a.phase,
                    polarity=_POLARITY.get(polarity_of.get(a.pick_id, 0)),
                    evaluation_mode="automatic",
                )
            )
            origin.arrivals.append(
                Arrival(
                    pick_id=pid,
                    phase=a.phase,
                    azimuth=a.azimuth_deg,
                    distance=a.distance_km / KM_PER_DEG,
                    takeoff_angle=180.0 - a.takeoff_deg,
                    time_residual=a.residual_s,
                )
            )
        for p in m.picks if m is not None else ():  # polarities without an arrival
            if p.pick_id in pick_ids:
                continue
            pid = ResourceIdentifier(f"{base}/pick/{_uri_part(p.pick_id)}")
            net, sta, loc, cha = p.station_id.split(".")
            t = pick_time_epoch_s(p.pick_id)
            picks.append(
                Pick(
                    resource_id=pid,
                    time=UTCDateTime(t) if t is not None else None,
                    waveform_id=WaveformStreamID(net, sta, loc, cha),
                    phase_hint="P",
                    polarity=_POLARITY[p.polarity],
                    evaluation_mode="automatic",
                )
            )
            origin.arrivals.append(
                Arrival(
                    pick_id=pid, phase="P", azimuth=p.azimuth_deg,
                    takeoff_angle=180.0 - p.takeoff_deg,
                )
            )  # fmt: skip
        qevent = QEvent(
            resource_id=ResourceIdentifier(base),
            event_type="not existing" if ev.status == "deleted" else "earthquake",
            origins=[origin],
            picks=picks,
            creation_info=info,
        )
        qevent.preferred_origin_id = origin.resource_id
        if o.magnitude is not None:
            mag = Magnitude(
                resource_id=ResourceIdentifier(f"{base}/magnitude/{o.revision}"),
                mag=o.magnitude,
                magnitude_type="M",
                origin_id=origin.resource_id,
            )
            qevent.magnitudes.append(mag)
            qevent.preferred_magnitude_id = mag.resource_id
        if m is not None:
            fm = FocalMechanism(
                resource_id=ResourceIdentifier(f"{base}/focal_mechanism/{m.revision}"),
                triggering_origin_id=origin.resource_id,
                nodal_planes=NodalPlanes(
                    nodal_plane_1=NodalPlane(strike=m.strike, dip=m.dip, rake=m.rake),
                    nodal_plane_2=NodalPlane(strike=m.aux_strike, dip=m.aux_dip, rake=m.aux_rake),
                    preferred_plane=1,
                ),
                azimuthal_gap=m.azimuthal_gap_deg,
                station_polarity_count=m.n_polarities,
                misfit=m.misfit,
                station_distribution_ratio=m.station_distribution_ratio,
                method_id=ResourceIdentifier("smi:firstmotion/method/hash-grid-search"),
                evaluation_mode="automatic",
                evaluation_status="final" if ev.status == "final" else "preliminary",
                comments=[
                    Comment(
                        text=(
                            f"quality={m.quality}; probability={m.probability:.3f}; "
                            f"fault_plane_uncertainty_deg={m.fault_plane_uncertainty_deg:.1f}; "
                            f"aux_plane_uncertainty_deg={m.aux_plane_uncertainty_deg:.1f}; "
                            f"mechanism_revision={m.revision}; "
                            f"model_version={m.model_version}"
                        ),
                        resource_id=ResourceIdentifier(f"{base}/focal_mechanism/quality"),
                    )
                ],
                creation_info=CreationInfo(
                    agency_id="FM",
                    creation_time=UTCDateTime(m.created_epoch_s),
                    version=f"quality {m.quality}",
                ),
            )
            qevent.focal_mechanisms.append(fm)
            qevent.preferred_focal_mechanism_id = fm.resource_id
        cat.append(qevent)
    return cat


def to_quakeml(events: list[CatalogEvent]) -> bytes:
    """QuakeML 1.2 bytes of ``events``."""
    buf = io.BytesIO()
    to_obspy_catalog(events).write(buf, format="QUAKEML")
    return buf.getvalue()


def to_json(events: list[CatalogEvent]) -> bytes:
    """A JSON array of CatalogEvent objects."""
    return json.dumps([e.to_dict() for e in events], indent=1).encode() + b"\n"


def csv_row(event: CatalogEvent) -> dict[str, Any]:
    """One CSV row (``CSV_COLUMNS``); mechanism columns empty without a mechanism."""
    o, m = event.origin, event.mechanism
    row: dict[str, Any] = {
        "event_id": event.event_id,
        "status": event.status,
        "revision": event.revision,
        "origin_time_utc": _iso(o.time_epoch_s),
        "latitude_deg": f"{o.latitude_deg:.5f}",
        "longitude_deg": f"{o.longitude_deg:.5f}",
        "depth_km": f"{o.depth_km:.3f}",
        "magnitude": "" if o.magnitude is None else f"{o.magnitude:.2f}",
        "origin_revision": o.revision,
        "updated_epoch_s": f"{event.updated_epoch_s:.3f}",
    }
    if m is not None:
        row.update(
            strike=f"{m.strike:.1f}", dip=f"{m.dip:.1f}", rake=f"{m.rake:.1f}",
            aux_strike=f"{m.aux_strike:.1f}", aux_dip=f"{m.aux_dip:.1f}",
            aux_rake=f"{m.aux_rake:.1f}", quality=m.quality,
            fault_plane_uncertainty_deg=f"{m.fault_plane_uncertainty_deg:.1f}",
            misfit=f"{m.misfit:.4f}", probability=f"{m.probability:.3f}",
            n_polarities=m.n_polarities, mechanism_revision=m.revision,
        )  # fmt: skip
    return {c: row.get(c, "") for c in CSV_COLUMNS}


def to_csv(events: list[CatalogEvent]) -> bytes:
    """CSV with a header row (``CSV_COLUMNS``)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for ev in events:
        writer.writerow(csv_row(ev))
    return buf.getvalue().encode()


def export(events: list[CatalogEvent], fmt: str) -> bytes:
    """``events`` in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "quakeml":
        return to_quakeml(events)
    if fmt == "json":
        return to_json(events)
    if fmt == "csv":
        return to_csv(events)
    raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")


# --------------------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", default=None, help="Redis URL (default: redis.url of config)")
    parser.add_argument("--config", default=None, help="TOML config file")
    parser.add_argument("--prefix", default=None, help="key prefix (default: redis.prefix)")
    parser.add_argument("--format", choices=FORMATS, default="quakeml", help="output format")
    parser.add_argument("--output", default=None, help="file to write (default: stdout)")
    parser.add_argument("--limit", type=int, default=None, help="newest N events only")
    parser.add_argument(
        "--include-deleted", action="store_true", help="also the retracted (deleted) events"
    )


def run(args: argparse.Namespace) -> int:
    import redis

    from firstmotion.bus import Bus, describe_redis_error
    from firstmotion.config import load_settings
    from workers.catalog import CatalogReader

    settings = load_settings(args.config)
    url = args.redis or settings.redis.require_url()
    prefix = settings.redis.prefix if args.prefix is None else args.prefix
    if args.limit is not None and args.limit <= 0:
        print(f"--limit: expected a positive integer, got {args.limit}", file=sys.stderr)
        return 2
    bus = Bus.from_url(url, prefix, socket_timeout_s=10.0)
    try:
        reader = CatalogReader(bus.client, prefix)
        events = reader.all_events(include_deleted=args.include_deleted)
    except redis.RedisError as exc:  # say what went wrong in one line, no traceback
        print(f"firstmotion catalog export: {describe_redis_error(exc, url)}", file=sys.stderr)
        return 1
    finally:
        bus.close()
    if args.limit is not None:
        events = events[: args.limit]
    data = export(events, args.format)
    if args.output:
        Path(args.output).write_bytes(data)
        log.info("wrote %d events (%s) to %s", len(events), args.format, args.output)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
