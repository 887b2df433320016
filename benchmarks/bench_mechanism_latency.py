"""Latency of the whole chain at real-time replay: record -> P pick -> polarity -> origin ->
(revised) mechanism, every stage its own process on a real Redis.

Run from the repository root::

    .venv/bin/python benchmarks/bench_mechanism_latency.py [--n-stations 30] [--n-events 4] \\
        [--duration-s 240] [--speed 1] [--config firstmotion.toml]

A synthetic scenario (:mod:`stream.scenario`) is served by the replay SeedLink server in this
process (real time, ``--speed 1``), and ``firstmotion stream`` (learned picker),
``worker polarity``, ``worker associate``, ``worker mechanism`` and ``worker catalog`` run as
in ``firstmotion demo`` (its command lines). Every mechanism the mechanism worker publishes
(each revision) lists the P picks it used; its latency is its creation time minus the wall
time at which the replay released the record holding the onset of the pick it waited for
(the one of them published last). Reported per revision and for each event's first
mechanism (p50/p95), with the P-pick latency (record holding the onset -> pick in Redis) of
the same run, and the revisions' latency from the newest record they used (smaller where a
pick from an earlier record was published later). At ``--speed`` above 1 the wall times are
scaled back to data seconds (the stages' own work is then a larger share).
"""

from __future__ import annotations

import argparse
import io
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np


def record_ends(files: list[str]) -> dict[str, list[tuple[float, float]]]:
    """``{trace id: [(start, end)]}`` data seconds of every 512-byte record."""
    from obspy import read

    out: dict[str, list[tuple[float, float]]] = {}
    for path in files:
        raw = Path(path).read_bytes()
        for i in range(0, len(raw), 512):
            tr = read(io.BytesIO(raw[i : i + 512]))[0]
            end = tr.stats.endtime.timestamp + tr.stats.delta
            out.setdefault(tr.id, []).append((tr.stats.starttime.timestamp, end))
    return out


def percentiles(values) -> str:
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        return "none"
    return f"p50 {np.median(v):.2f} s, p95 {np.percentile(v, 95):.2f} s (n={v.size})"


def main(argv: list[str] | None = None) -> None:
    from pipeline_processes import (
        add_scenario_arguments,
        start_stages,
        warn_tracebacks,
        write_scenario_files,
    )

    from firstmotion.bus import Bus
    from firstmotion.demo import _wait_quiet
    from firstmotion.redis_server import RedisServer
    from stream.replay import ReplayServer, ReplayThread

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scenario_arguments(ap, n_events=4, duration_s=240.0, speed=1.0, seed=7)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        out = Path(tmp)
        files = write_scenario_files(args, out)
        records = record_ends(files)
        server = stack.enter_context(RedisServer())
        bus = Bus.from_url(server.url)
        inventory = str(out / "stations.xml")
        conf = ["--config", args.config] if args.config else []
        replay = ReplayThread(ReplayServer(files, port=0, speed=args.speed))
        # the workers first (they load their models), the replay once they are up
        procs = start_stages(stack, server.url, inventory, out, replay, conf)
        stream = procs.pop("stream")
        stream.wait(args.duration_s / args.speed + 300)
        _wait_quiet(bus, procs, 4.0, 300.0)
        origin_wall_s = replay.server.started_ns / 1e9
        data_start_s = float(replay.server.plan.start_ns.min()) / 1e9
        replay.stop()
        picks = {p.pick_id: p for _, p in bus.messages("picks")}
        mechanisms = [m for _, m in bus.messages("mechanisms")]
        warn_tracebacks(out, ("stream", *procs))

    def released_wall_s(pick) -> float | None:
        ends = [e for s0, e in records.get(pick.station_id, []) if s0 <= pick.time_epoch_s < e]
        if not ends:
            return None
        return origin_wall_s + (ends[0] - data_start_s) / args.speed

    def scaled(wall_delta_s: float) -> float:
        return wall_delta_s * args.speed  # data seconds

    pick_lat = []
    for p in picks.values():
        r = released_wall_s(p)
        if p.phase == "P" and r is not None:
            pick_lat.append(scaled(p.created_epoch_s - r))
    revisions, first, newest = [], {}, []
    for m in sorted(mechanisms, key=lambda m: m.created_epoch_s):
        used = [picks[mp.pick_id] for mp in m.picks if mp.pick_id in picks]
        rel = [r for r in (released_wall_s(p) for p in used) if r is not None]
        if not rel:
            continue
        # the pick published last is the one the revision waited for
        last = max(used, key=lambda p: p.created_epoch_s)
        r = released_wall_s(last)
        if r is None:
            continue
        lat = scaled(m.created_epoch_s - r)
        revisions.append(lat)
        newest.append(scaled(m.created_epoch_s - max(rel)))
        first.setdefault(m.event_id, lat)
    print(f"{args.n_stations} stations, {args.n_events} events, {args.duration_s:g} s at "
          f"{args.speed:g}x real time: {len(picks)} picks, {len(mechanisms)} mechanisms "
          f"({len(first)} events)")  # fmt: skip
    print(f"  record holding the onset -> P pick in Redis: {percentiles(pick_lat)}")
    print("  record holding the onset of the last-published pick used -> mechanism published "
          f"(every revision): {percentiles(revisions)}")  # fmt: skip
    print(f"  from the newest record used instead: {percentiles(newest)}")
    print(f"  the same, each event's first mechanism: {percentiles(first.values())}")


if __name__ == "__main__":
    main()
