"""Catalog stage: worker throughput, change latency, beachball and page rendering.

Run from the repository root::

    .venv/bin/python benchmarks/bench_catalog.py [--events 500] [--repeats 3]

On a private ``redis-server`` (:mod:`firstmotion.redis_server`), in the same run:

* throughput: ``--events`` events, each an Origin, a second Origin revision and a Mechanism
  (3 messages per event), drained by :class:`workers.catalog.CatalogWorker`; baseline: the same
  messages drained by a plain :class:`firstmotion.bus.Consumer` per stream whose handler does
  nothing (read + XACK only: the bus's floor). Prints messages/s of both and the ratio.
* latency: one Origin published while the worker runs in a thread -> its CatalogEvent
  received on the pub/sub channel ``fm:events`` (p50/p95 of ``--latency-samples``).
* rendering: :func:`workers.web.beachball_svg` per ball (uncached), and the page of 200
  events (cached beachballs) against ``json.dumps`` of the same events (the JSON API).

The machine may be shared: both sides of each ratio run in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firstmotion.bus import Bus  # noqa: E402
from firstmotion.messages import Arrival, Mechanism, MechanismPick, Origin, make_pick_id  # noqa: E402
from firstmotion.redis_server import RedisServer  # noqa: E402

T0 = 1_700_000_000.0


def origin(i: int, revision: int, n: int = 12) -> Origin:
    t = T0 + 30.0 * i
    arrivals = tuple(
        Arrival(
            pick_id=make_pick_id(f"XX.S{k:02d}..HHZ", t + 2 + k),
            station_id=f"XX.S{k:02d}..HHZ",
            azimuth_deg=30.0 * k,
            takeoff_deg=95.0 + 5 * k,
            distance_km=5.0 + 4 * k,
        )
        for k in range(n)
    )
    return Origin(
        event_id=f"ev{i:06d}", revision=revision, time_epoch_s=t, latitude_deg=35.0,
        longitude_deg=-117.0, depth_km=8.0 + revision, magnitude=2.0, arrivals=arrivals,
    )  # fmt: skip


def mechanism(o: Origin, i: int) -> Mechanism:
    picks = tuple(
        MechanismPick(
            station_id=a.station_id, pick_id=a.pick_id, azimuth_deg=a.azimuth_deg,
            takeoff_deg=a.takeoff_deg, polarity=1 if k % 3 else -1,
        )
        for k, a in enumerate(o.arrivals)
    )  # fmt: skip
    return Mechanism(
        event_id=o.event_id, revision=0, origin_revision=o.revision, strike=float(i % 360),
        dip=60.0, rake=-90.0 + (i % 180), aux_strike=float((i + 180) % 360), aux_dip=30.0,
        aux_rake=-90.0, quality="ABCD"[i % 4], fault_plane_uncertainty_deg=20.0,
        aux_plane_uncertainty_deg=20.0, misfit=0.1, probability=0.5,
        station_distribution_ratio=0.5, n_polarities=len(picks), n_stations=len(picks),
        model_version="bench", picks=picks,
    )  # fmt: skip


def fill(bus: Bus, n_events: int) -> int:
    origins, mechs = [], []
    for i in range(n_events):
        o0, o1 = origin(i, 0), origin(i, 1)
        origins += [o0, o1]
        mechs.append(mechanism(o1, i))
    for start in range(0, len(origins), 500):
        bus.publish_many("origins", origins[start : start + 500])
    for start in range(0, len(mechs), 500):
        bus.publish_many("mechanisms", mechs[start : start + 500])
    return len(origins) + len(mechs)


def drain_baseline(bus: Bus) -> int:
    n = 0
    for stream in ("origins", "mechanisms"):
        c = bus.consumer(stream, "baseline", lambda batch: [], block_ms=50, stage="bench")
        n += c.run(drain=True)
    return n


def drain_catalog(bus: Bus) -> int:
    from workers.catalog import CatalogWorker

    return CatalogWorker(bus, block_ms=50).run(drain=True)


def latency(bus: Bus, samples: int) -> list[float]:
    from workers.catalog import CatalogWorker

    worker = CatalogWorker(bus, block_ms=1000)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    pubsub = bus.client.pubsub()
    pubsub.subscribe("fm:events")
    pubsub.get_message(timeout=1.0)
    out = []
    for k in range(samples):
        o = origin(1_000_000 + k, 0)
        t = time.perf_counter()
        bus.publish("origins", o)
        while True:
            msg = pubsub.get_message(timeout=5.0)
            if msg and msg["type"] == "message" and o.event_id.encode() in msg["data"]:
                break
        out.append(time.perf_counter() - t)
        time.sleep(0.02)
    worker.request_stop()
    thread.join(timeout=5)
    pubsub.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--latency-samples", type=int, default=50)
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)
    from workers.catalog import CatalogReader
    from workers.web import _cached_svg, beachball_svg, page_html

    with RedisServer() as server:
        bus = Bus.from_url(server.url)
        base_s, cat_s = [], []
        for _ in range(args.repeats):
            bus.client.flushall()
            n = fill(bus, args.events)
            t = time.perf_counter()
            assert drain_baseline(bus) == n
            base_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            assert drain_catalog(bus) == n
            cat_s.append(time.perf_counter() - t)
        b, c = statistics.median(base_s), statistics.median(cat_s)
        print(f"throughput ({n} messages, {args.events} events, median of {args.repeats}):")
        print(f"  baseline consumer (read + ack only): {n / b:8.0f} msg/s")
        print(f"  catalog worker:                      {n / c:8.0f} msg/s")
        print(f"  ratio catalog/baseline time:         {c / b:8.2f}")

        lat = sorted(latency(bus, args.latency_samples))
        p50, p95 = lat[len(lat) // 2], lat[int(0.95 * (len(lat) - 1))]
        print(f"origin published -> CatalogEvent on pub/sub ({len(lat)} samples):")
        print(f"  p50 {p50 * 1e3:6.1f} ms   p95 {p95 * 1e3:6.1f} ms   max {lat[-1] * 1e3:6.1f} ms")

        events = CatalogReader(bus.client).events(limit=200)
        bus.close()

    t = time.perf_counter()
    reps = 50
    for k in range(reps):
        beachball_svg(float(k), 45.0 + k % 40, -90.0 + 3 * k)
    ball_s = (time.perf_counter() - t) / reps
    _cached_svg.cache_clear()
    page_html(events)  # warm the beachball cache (the live page re-renders with warm caches)
    t = time.perf_counter()
    for _ in range(20):
        html = page_html(events)
    page_s = (time.perf_counter() - t) / 20
    t = time.perf_counter()
    for _ in range(20):
        js = json.dumps([e.to_dict() for e in events])
    json_s = (time.perf_counter() - t) / 20
    print("rendering:")
    print(f"  beachball_svg (uncached): {ball_s * 1000:6.2f} ms per ball")
    print(
        f"  page of {len(events)} events: {page_s * 1000:6.2f} ms ({len(html) / 1e3:.0f} kB); "
        f"JSON API baseline {json_s * 1000:6.2f} ms ({len(js) / 1e3:.0f} kB); "
        f"ratio page/JSON {page_s / json_s:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
