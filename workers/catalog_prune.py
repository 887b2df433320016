"""``firstmotion catalog prune``: remove old events from the live catalog.

The live catalog keeps every event it is given (about 22 KB of Redis each, docs/operations.md)
unless ``catalog.retention_days`` is set for the catalog worker. This command does the same
once: the events whose origin time is more than ``--older-than-days`` ago (or before
``--before``), retracted ones included, with their history, leave Redis
(:meth:`workers.catalog.CatalogStage.prune_before`). ``--dry-run`` only counts them. Export
them first to keep them (``firstmotion catalog export --before`` the same date).
"""

from __future__ import annotations

import argparse
import sys
import time

from firstmotion.errors import InputError
from workers.catalog_export import catalog_bus, utc_epoch_s


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", default=None, help="Redis URL (default: redis.url of config)")
    parser.add_argument("--config", default=None, help="TOML config file")
    parser.add_argument("--prefix", default=None, help="key prefix (default: redis.prefix)")
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--older-than-days", type=float, default=None,
        help="remove events whose origin time is more than this many days ago",
    )  # fmt: skip
    when.add_argument(
        "--before", default=None, help="remove events whose origin time is before this (UTC, ISO)"
    )
    parser.add_argument("--dry-run", action="store_true", help="count them, remove nothing")


def cut_epoch_s(args: argparse.Namespace, now_s: float) -> float:
    """The origin time before which events go, from ``--older-than-days`` or ``--before``."""
    if args.before is not None:
        return utc_epoch_s(args.before, "--before")
    if not args.older_than_days > 0:
        raise InputError(f"--older-than-days: expected > 0, got {args.older_than_days}")
    return now_s - args.older_than_days * 86400.0


def run(args: argparse.Namespace) -> int:
    import redis
    from obspy import UTCDateTime

    from firstmotion.bus import describe_redis_error
    from workers.catalog import CatalogStage

    before_s = cut_epoch_s(args, time.time())
    bus = catalog_bus(args)
    try:
        ids = CatalogStage(bus).prune_before(before_s, dry_run=args.dry_run)
    except redis.RedisError as exc:  # one line, no traceback
        print(f"firstmotion catalog prune: {describe_redis_error(exc, bus.url)}", file=sys.stderr)
        return 1
    finally:
        bus.close()
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(ids)} events with an origin before {UTCDateTime(before_s)}")
    return 0
