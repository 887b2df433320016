"""``firstmotion dead-letters {list,requeue,drop}``: the dead-letter stream ``<prefix>dead``.

A consumer moves an entry there (and acknowledges it) when it cannot be decoded (too big, too
deeply nested, invalid, absurd values), when its type does not belong to the stream, or when
handling it failed ``redis.max_deliveries`` times; the letter keeps the entry's original fields
and says where it came from (``stream``, ``group``, ``entry_id``, ``consumer``), why
(``error``) and after how many deliveries.

* ``list`` prints one line per letter (``--json``: one JSON object per letter, with the size
  and type of the original entry).
* ``requeue`` puts letters back on the stream they came from as new entries (after a fix was
  deployed); every group reading that stream sees them again (handlers are idempotent).
* ``drop`` deletes letters once they have been looked at.

``--id`` (repeatable) selects letters by their id in the dead-letter stream, ``--stream``
(``picks``, ``origins``...) by the stream they came from; ``requeue`` and ``drop`` want one of
them, or ``--all``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from firstmotion.bus import DEAD_STREAM, Bus, DeadLetter, as_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "requeue", "drop"))
    parser.add_argument("--config", default=None, help="TOML config file")
    parser.add_argument("--redis", default=None, help="Redis URL (overrides redis.url)")
    parser.add_argument("--id", action="append", default=[], help="a dead letter's id")
    parser.add_argument("--stream", default=None, help="only letters from this stream (picks)")
    parser.add_argument("--all", action="store_true", help="requeue or drop every letter")
    parser.add_argument("--json", action="store_true", help="list: one JSON object per line")


def select(letters: list[DeadLetter], prefix: str, ids: list[str], stream: str | None):
    """The letters matching ``ids`` (if any) and coming from ``stream`` (if given)."""
    key = None if stream is None else prefix + stream
    return [
        d for d in letters if (not ids or d.entry_id in ids) and (key is None or d.stream == key)
    ]


def describe(letter: DeadLetter, now_s: float) -> dict:
    data = letter.fields.get("data", b"")
    kind = letter.fields.get("type", b"")
    return {
        "id": letter.entry_id,
        "stream": letter.stream,
        "group": letter.group,
        "entry_id": letter.original_entry_id,
        "consumer": letter.consumer,
        "deliveries": letter.delivery_count,
        "age_s": round(now_s - letter.dead_epoch_s, 1),
        "type": as_text(kind)[:64] if isinstance(kind, (bytes, str)) else "",
        "bytes": sum(len(v) for v in letter.fields.values()),
        "data_bytes": len(data),
        "error": letter.error,
    }


def run(args: argparse.Namespace) -> int:
    from firstmotion.config import load_settings

    settings = load_settings(args.config)
    bus = Bus.from_settings(settings.redis, url=args.redis)
    try:
        chosen = select(bus.dead_letters(), bus.prefix, args.id, args.stream)
        if args.action == "list":
            now = time.time()
            for letter in chosen:
                row = describe(letter, now)
                if args.json:
                    print(json.dumps(row))
                else:
                    print(
                        f"{row['id']}  {row['stream']} [{row['group']}] entry {row['entry_id']} "
                        f"{row['type'] or '?'} {row['bytes']} B, {row['deliveries']} deliveries, "
                        f"{row['age_s']:.0f} s ago: {row['error'][:200]}"
                    )
            print(f"{len(chosen)} dead letters in {bus.key(DEAD_STREAM)}", file=sys.stderr)
            return 0
        if not (args.id or args.stream or args.all):
            print(f"dead-letters {args.action}: give --id, --stream or --all", file=sys.stderr)
            return 2
        if args.action == "requeue":
            n = bus.requeue_dead_letters([d.entry_id for d in chosen])
            print(f"requeued {n} dead letters", file=sys.stderr)
        else:
            n = (
                bus.client.xdel(bus.key(DEAD_STREAM), *[d.entry_id for d in chosen])
                if chosen
                else 0
            )
            print(f"dropped {n} dead letters", file=sys.stderr)
        return 0
    finally:
        bus.close()
