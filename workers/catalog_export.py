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

Deleted (retracted) events are left out unless ``--include-deleted``. ``--since`` and
``--before`` keep the events whose origin time is in ``[since, before)`` (UTC): ``--before``
with the date given to ``firstmotion catalog prune --before`` exports what it removes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from firstmotion.errors import InputError
from firstmotion.messages import CatalogEvent
from firstmotion.quakeml import to_obspy_catalog

log = logging.getLogger(__name__)

FORMATS = ("quakeml", "json", "csv")
CSV_COLUMNS = (
    "event_id", "status", "revision", "origin_time_utc", "latitude_deg", "longitude_deg",
    "depth_km", "magnitude", "strike", "dip", "rake", "aux_strike", "aux_dip", "aux_rake",
    "quality", "fault_plane_uncertainty_deg", "misfit", "probability", "n_polarities",
    "origin_revision", "mechanism_revision", "updated_epoch_s",
)  # fmt: skip


def catalog_bus(args: argparse.Namespace):
    """The :class:`~firstmotion.bus.Bus` of a catalog command's ``--redis`` / ``--config`` /
    ``--prefix`` (a 10 s socket timeout: a command, not a stage)."""
    from firstmotion.bus import Bus
    from firstmotion.config import load_settings

    settings = load_settings(args.config)
    return Bus.from_settings(
        settings.redis, url=args.redis, prefix=args.prefix, socket_timeout_s=10.0
    )


def utc_epoch_s(text: str, option: str) -> float:
    """Epoch seconds of a UTC date and time given to ``option`` (ISO, as obspy reads it)."""
    from obspy import UTCDateTime

    try:
        return float(UTCDateTime(text).timestamp)
    except Exception:  # obspy raises several kinds on a bad date
        raise InputError(f"{option}: not a date and time: {text!r}") from None


def in_span(events: list[CatalogEvent], since_s: float | None, before_s: float | None):
    """The events whose origin time is in ``[since_s, before_s)`` (None: open)."""
    return [
        e for e in events
        if (since_s is None or e.origin.time_epoch_s >= since_s)
        and (before_s is None or e.origin.time_epoch_s < before_s)
    ]  # fmt: skip


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- formats (pure)


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
    parser.add_argument("--since", default=None, help="origin time at or after this (UTC, ISO)")
    parser.add_argument("--before", default=None, help="origin time before this (UTC, ISO)")


def run(args: argparse.Namespace) -> int:
    import redis

    from firstmotion.bus import describe_redis_error
    from workers.catalog import CatalogReader

    if args.limit is not None and args.limit <= 0:
        print(f"--limit: expected a positive integer, got {args.limit}", file=sys.stderr)
        return 2
    since_s = None if args.since is None else utc_epoch_s(args.since, "--since")
    before_s = None if args.before is None else utc_epoch_s(args.before, "--before")
    bus = catalog_bus(args)
    try:
        reader = CatalogReader(bus.client, bus.prefix)
        events = reader.all_events(include_deleted=args.include_deleted)
    except redis.RedisError as exc:  # say what went wrong in one line, no traceback
        print(f"firstmotion catalog export: {describe_redis_error(exc, bus.url)}", file=sys.stderr)
        return 1
    finally:
        bus.close()
    events = in_span(events, since_s, before_s)
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
