"""``firstmotion catalog station-delays``: station delays from a catalog's own arrivals.

A 1-D model leaves each station a systematic residual; the associator takes them as station
delays (``associate.station_delays``, docs/association.md). This command estimates them from
located events, as VELEST's station corrections are: the live catalog in Redis
(``--redis``; its standing events, retracted ones left out), or a catalog file (``--input``:
the export of ``firstmotion catalog export --format quakeml``, or any QuakeML, or other event
format obspy reads, whose arrivals carry time residuals), per station and phase the median
residual less the median over stations
(:func:`firstmotion.station_delays.estimate_station_delays`). Given the delays the catalog
was located with (``--current``), the result adds to them: run the network with it, estimate
again, until the delays stop moving.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firstmotion.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+",
                        help="a catalog file: QuakeML (or another event format obspy reads) "
                             "with arrival time residuals; files or folders")  # fmt: skip
    source.add_argument("--redis", help="the live catalog in this Redis (URL)")
    parser.add_argument("--config", default=None, help="TOML config file (with --redis)")
    parser.add_argument("--prefix", default=None, help="key prefix (default: redis.prefix)")
    parser.add_argument("--output", required=True, help="the delays CSV to write")
    parser.add_argument(
        "--current", default=None,
        help="the station delays the catalog was located with (a file "
             "associate.station_delays reads): the result adds to them",
    )  # fmt: skip
    parser.add_argument("--min-arrivals", type=int, default=10,
                        help="a station's phase needs this many arrivals for a delay")  # fmt: skip


def catalog_residuals(paths: list[str]) -> tuple[list[tuple[str, str, float]], int]:
    """``(station NET.STA, phase, residual s)`` of every arrival with a time residual in the
    preferred origins of ``paths`` (events marked ``not existing`` and rejected origins left
    out), and the number of events they came from."""
    from obspy import read_events

    from firstmotion.event_catalogs import files_in, obspy_event_format

    files: list[Path] = []
    for text in paths:
        p = Path(text)
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        # a folder: the files obspy recognises as events (others, such as a README, skipped)
        files.extend([f for f in files_in(p) if obspy_event_format(f)] if p.is_dir() else [p])
    rows, events = [], 0
    for f in files:
        try:
            catalog = read_events(str(f))
        except Exception as exc:  # obspy raises many kinds on a file that is no catalog
            raise InputError(f"{f}: not an event catalog obspy reads ({exc})") from None
        for ev in catalog:
            origin = ev.preferred_origin() or (ev.origins[0] if ev.origins else None)
            if origin is None or ev.event_type == "not existing":
                continue
            if origin.evaluation_status == "rejected":
                continue
            picks = {str(p.resource_id): p for p in ev.picks}
            used = 0
            for a in origin.arrivals:
                pick = picks.get(str(a.pick_id))
                if a.time_residual is None or pick is None or pick.waveform_id is None:
                    continue
                w = pick.waveform_id
                phase = a.phase or pick.phase_hint or ""
                rows.append(
                    (f"{w.network_code or ''}.{w.station_code}", phase, float(a.time_residual))
                )
                used += 1
            events += used > 0
    return rows, events


def live_residuals(args: argparse.Namespace) -> tuple[list[tuple[str, str, float]], int]:
    """:func:`catalog_residuals` of the live catalog's standing events (Redis); arrivals
    without a residual (origins located elsewhere, as a reprocessed catalog's) are left out."""
    from workers.catalog import CatalogReader
    from workers.catalog_export import catalog_bus

    bus = catalog_bus(args)
    try:
        events = CatalogReader(bus.client, bus.prefix).all_events()
    finally:
        bus.close()
    rows = [(".".join(a.station_id.split(".")[:2]), a.phase, a.residual_s)
            for ev in events for a in ev.origin.arrivals
            if a.residual_s is not None]  # fmt: skip
    return rows, sum(1 for ev in events if ev.origin.arrivals)


def run(args: argparse.Namespace) -> int:
    import redis

    from firstmotion.bus import describe_redis_error
    from firstmotion.station_delays import (
        estimate_station_delays,
        read_station_delays,
        write_station_delays,
    )

    if args.redis is not None:
        try:
            rows, events = live_residuals(args)
        except redis.RedisError as exc:  # one line, no traceback
            print(f"firstmotion catalog station-delays: {describe_redis_error(exc, args.redis)}",
                  file=sys.stderr)  # fmt: skip
            return 1
    else:
        rows, events = catalog_residuals(args.input)
    if not rows:
        where = f"--redis {args.redis}" if args.redis else f"--input {' '.join(args.input)}"
        raise InputError(f"{where}: no arrival with a time residual")
    current = read_station_delays(args.current) if args.current else None
    try:
        delays = estimate_station_delays(rows, min_arrivals=args.min_arrivals, current=current)
    except ValueError as exc:
        raise InputError(f"--min-arrivals: {exc}") from None
    write_station_delays(args.output, delays)
    n_p = sum(1 for d in delays.values() if d[2] >= args.min_arrivals)
    n_s = sum(1 for d in delays.values() if d[3] >= args.min_arrivals)
    print(f"{len(rows)} arrivals of {events} events at {len(delays)} stations: P delays "
          f"for {n_p}, S for {n_s} (>= {args.min_arrivals} arrivals) -> {args.output}")  # fmt: skip
    for st, (p, s, cp, cs) in sorted(delays.items()):
        print(f"  {st:<12} P {p:+.3f} s ({cp})  S {s:+.3f} s ({cs})")
    return 0
