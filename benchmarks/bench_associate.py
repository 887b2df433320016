"""Association: latency and accuracy vs number of stations and events.

Run from the repository root::

    .venv/bin/python benchmarks/bench_associate.py [--repeats 3] [--skip-worker]

Picks come from a scenario's geometry (``stream.scenario``: stations, events, exact layered
rays; the truth of ``firstmotion scenario`` without synthesizing waveforms): true P times plus
Gaussian noise (0.05 s) and 20% false picks uniform in time at random stations, with
``--events`` events spread over 60 s each. In the same run, for each (stations, events):

* baseline: PyOcto alone with its homogeneous ``VelocityModel0D`` (vp 6.0 km/s, vs vp/sqrt 3,
  tolerance 1.5 s) and its own locations -- the plain way to use PyOcto;
* ours: :class:`workers.associate_locate.Associator` (PyOcto with the exact 1-D layered table,
  then least-squares relocation on the travel-time table, residual screening, arrivals with
  takeoff angles).

Each prints the wall time of one association of the whole pick set (median of ``--repeats``,
tables already built, one thread), the ratio ours/baseline, events found / true, median and
max epicentral, depth and origin-time errors of the matched events, the fraction of true picks
associated to the right event and the fraction of false picks associated at all.

Worker latency (unless ``--skip-worker``): the associate worker in a thread on a private
``redis-server``; picks published in 1 s chunks of data time as fast as the worker takes them
(each chunk after the previous one was handled); latency = publishing a chunk -> the origin
revision it caused readable in ``fm:origins`` (XREAD BLOCK), p50/p95/max, with the default
debounce (the worker associates as soon as the stream goes idle).

Streaming (``--stream [--stations 300 --events 20 --duration 900 --speeds max,10,20
--replicas 1,2 --s-picks]``): the scenario's picks (as above, in ``--duration`` s of data) as
``Pick`` messages with 300-sample windows through associator *processes* (``--shard i/N`` for N
replicas) on a private ``redis-server``, replayed at each speed (``max``: all published first,
then drained). Prints per replica picks per wall second and per CPU second (the one-core rate),
events found / extra / retracted against the truth, the latency from the completing pick (the
last published pick of an event's first origin) to that origin, the origin revisions, and for
paced runs the backlog (unread + pending picks of the slowest replica) every second and how long
after the data's end it emptied.

The machine may be shared with other work: both sides run in the same invocation so the ratio
is fair; rerun when quiet for absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PICK_SIGMA_S = 0.05
FALSE_FRACTION = 0.2
T0_EPOCH_S = 1_735_689_600.0


def make_case(
    n_stations: int,
    n_events: int,
    seed: int,
    duration_s: float | None = None,
    s_picks: bool = False,
):
    """(stations dict, WindowPick list, truth events, pick -> event index or -1); with
    ``s_picks`` also S picks (true S time + 0.1 s noise) at every station."""
    from firstmotion.velocity import VelocityModel
    from stream.scenario.build import _rngs
    from stream.scenario.config import ScenarioConfig
    from stream.scenario.events import make_events
    from stream.scenario.geometry import pair_geometry
    from stream.scenario.network import make_stations
    from workers.associate_locate import StationCoords, WindowPick

    duration_s = duration_s or 60.0 * n_events + 30.0
    cfg = ScenarioConfig(n_stations=n_stations, n_events=n_events, duration_s=duration_s, seed=seed)
    rngs = _rngs(cfg.seed)
    stations = make_stations(cfg, rngs["stations"])
    events = make_events(cfg, rngs["events"])
    g = pair_geometry(events, stations, VelocityModel.default())
    rng = np.random.default_rng(seed)
    picks, event_of = [], {}
    for i, ev in enumerate(events):
        for j, st in enumerate(stations):
            t = T0_EPOCH_S + ev.origin_time_s + g.p_travel_time_s[i, j]
            t += rng.normal(0.0, PICK_SIGMA_S)
            sid = f"{st.network}.{st.code}..HHZ"
            pid = f"{sid}@{t:.3f}"
            picks.append(WindowPick(pid, sid, t))
            event_of[pid] = i
            if s_picks:
                ts = T0_EPOCH_S + ev.origin_time_s + g.s_travel_time_s[i, j]
                ts += rng.normal(0.0, 2 * PICK_SIGMA_S)
                pid = f"{sid}@{ts:.3f}S"
                picks.append(WindowPick(pid, sid, ts, "S"))
                event_of[pid] = i
    for _ in range(int(round(FALSE_FRACTION * len(picks)))):
        st = stations[rng.integers(len(stations))]
        sid = f"{st.network}.{st.code}..HHZ"
        t = T0_EPOCH_S + rng.uniform(0.0, duration_s)
        pid = f"{sid}@{t:.3f}"
        picks.append(WindowPick(pid, sid, t))
        event_of[pid] = -1
    coords = {
        f"{s.network}.{s.code}.": StationCoords(s.latitude_deg, s.longitude_deg, s.elevation_m)
        for s in stations
    }
    picks.sort(key=lambda p: p.time_epoch_s)
    return coords, picks, events, event_of


def score(solutions, events, event_of) -> dict:
    """solutions: (time_epoch_s, lat, lon, depth_km, pick ids) tuples."""
    from firstmotion.geodesy import distance_azimuth

    used: set[int] = set()
    epi, dz, dt = [], [], []
    right = 0
    false_used = 0
    for t, lat, lon, depth, ids in solutions:
        cand = [
            (abs(t - T0_EPOCH_S - e.origin_time_s), i)
            for i, e in enumerate(events)
            if i not in used
        ]
        if not cand:
            continue
        d, i = min(cand)
        false_used += sum(1 for p in ids if event_of.get(p, -1) < 0)
        if d > 2.0:
            continue
        used.add(i)
        e = events[i]
        epi.append(float(distance_azimuth(lat, lon, e.latitude_deg, e.longitude_deg)[0]))
        dz.append(abs(depth - e.depth_km))
        dt.append(d)
        right += sum(1 for p in ids if event_of.get(p) == i)
    n_true = sum(1 for v in event_of.values() if v >= 0)
    n_false = len(event_of) - n_true
    return {
        "found": len(solutions),
        "matched": len(used),
        "epi": epi,
        "dz": dz,
        "dt": dt,
        "true_ok": right / n_true,
        "false_in": false_used / max(n_false, 1),
    }


def pyocto_0d(picks, coords, max_distance_km: float, min_picks: int):
    """Plain PyOcto: homogeneous model, its own locations (the baseline)."""
    import pandas as pd
    import pyocto
    from pyproj import CRS, Transformer

    keys = sorted(coords)
    lat = np.array([coords[k].latitude_deg for k in keys])
    lon = np.array([coords[k].longitude_deg for k in keys])
    crs = CRS(f"+proj=tmerc +lat_0={lat.mean()} +lon_0={lon.mean()} +units=km")
    fwd = Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True)
    inv = Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)
    x, y = fwd.transform(lon, lat)
    vm = pyocto.VelocityModel0D(6.0, 6.0 / np.sqrt(3.0), 1.5, max_distance_km)
    assoc = pyocto.OctoAssociator(
        xlim=(x.min() - 50, x.max() + 50), ylim=(y.min() - 50, y.max() + 50), zlim=(0, 40),
        velocity_model=vm, time_before=40.0, min_node_size=10.0, min_node_size_location=1.0,
        pick_match_tolerance=1.5, min_interevent_time=2.0, n_picks=min_picks,
        n_p_picks=min_picks, n_s_picks=0, n_p_and_s_picks=0, n_threads=1,
    )  # fmt: skip
    t_ref = np.floor(picks[0].time_epoch_s)
    st = pd.DataFrame({"id": keys, "x": x, "y": y, "z": 0.0})
    pk = pd.DataFrame(
        {
            "station": [".".join(p.station_id.split(".")[:3]) for p in picks],
            "time": [p.time_epoch_s - t_ref for p in picks],
            "phase": ["P"] * len(picks),
        }
    )
    events, assignments = assoc.associate(pk, st)
    out = []
    for row in events.itertuples():
        ids = [
            picks[int(i)].pick_id
            for i in assignments.loc[assignments.event_idx == row.idx].pick_idx
        ]
        lo, la = inv.transform(row.x, row.y)
        out.append((row.time + t_ref, la, lo, row.z, ids))
    return out


def timed(fn, repeats: int):
    fn()  # warm
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def fmt_err(values: list[float]) -> str:
    if not values:
        return "     -/-    "
    return f"{statistics.median(values):5.2f}/{max(values):5.2f}"


def bench_core(cases, repeats: int) -> None:
    from firstmotion.velocity import VelocityModel
    from workers.associate_locate import AssociateParams, Associator

    min_picks = 6
    assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=min_picks))
    print("association of the whole pick set (one thread); errors median/max")
    head = (
        f"{'stations':>8} {'events':>6} {'picks':>6} | {'method':<16} {'time ms':>8} "
        f"{'ratio':>6} {'found':>7} {'epi km':>11} {'depth km':>11} {'t0 s':>11} "
        f"{'true ok':>7} {'false in':>8}"
    )
    print(head)
    print("-" * len(head))
    for n_st, n_ev in cases:
        coords, picks, events, event_of = make_case(n_st, n_ev, seed=11)
        assoc.tables(400.0)
        t_base, base = timed(lambda p=picks, c=coords: pyocto_0d(p, c, 200.0, min_picks), repeats)
        t_ours, ours = timed(lambda p=picks, c=coords: assoc.associate(p, c), repeats)
        rows = [
            ("pyocto 0-D", t_base, score(base, events, event_of)),
            (
                "1-D table + lsq",
                t_ours,
                score(
                    [
                        (
                            e.time_epoch_s,
                            e.latitude_deg,
                            e.longitude_deg,
                            e.depth_km,
                            list(e.pick_ids),
                        )
                        for e in ours
                    ],
                    events,
                    event_of,
                ),  # fmt: skip
            ),
        ]
        for name, t, s in rows:
            print(
                f"{n_st:>8} {n_ev:>6} {len(picks):>6} | {name:<16} {t * 1e3:8.1f} "
                f"{t / t_base:6.2f} {s['found']:>3}/{n_ev:<3} {fmt_err(s['epi'])} "
                f"{fmt_err(s['dz'])} {fmt_err(s['dt'])} {s['true_ok']:7.1%} {s['false_in']:8.1%}"
            )
    assoc.close()


def bench_worker(n_stations: int, n_events: int) -> None:
    import redis

    from firstmotion.bus import Bus
    from firstmotion.messages import Pick
    from firstmotion.redis_server import RedisServer
    from firstmotion.velocity import VelocityModel
    from workers.associate import GROUP, AssociateWorker
    from workers.associate_locate import AssociateParams, Associator

    coords, picks, events, event_of = make_case(n_stations, n_events, seed=12)
    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url)
        bus = Bus(client)
        assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=6))
        assoc.tables(400.0)
        worker = AssociateWorker(bus, assoc, block_ms=50)
        bus.ensure_group("picks", GROUP)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        latencies = []
        last_id = "0-0"
        t_data = picks[0].time_epoch_s
        k = 0
        while k < len(picks):
            t_data += 1.0
            chunk = []
            while k < len(picks) and picks[k].time_epoch_s < t_data:
                p = picks[k]
                c = coords[".".join(p.station_id.split(".")[:3])]
                chunk.append(
                    Pick(
                        pick_id=p.pick_id, station_id=p.station_id,
                        time_epoch_s=p.time_epoch_s, sampling_rate_hz=100.0,
                        start_time_epoch_s=p.time_epoch_s - 0.02, pick_index=2,
                        samples=np.zeros(4, np.float32), snr=5.0, amplitude=1.0,
                        latitude_deg=c.latitude_deg, longitude_deg=c.longitude_deg,
                        elevation_m=c.elevation_m,
                    )
                )  # fmt: skip
                k += 1
            if not chunk:
                continue
            runs = worker.runs
            t_pub = time.perf_counter()
            bus.publish_many("picks", chunk)
            while True:  # until the worker associated this chunk; note when an origin shows
                done = worker.runs > runs and not worker.dirty
                got = client.xread({"fm:origins": last_id})
                if got:
                    latencies.append(time.perf_counter() - t_pub)
                    last_id = got[0][1][-1][0]
                    break
                if done:
                    break
                time.sleep(0.002)
            while worker.runs == runs or worker.dirty:
                time.sleep(0.002)
        worker.request_stop()
        thread.join(timeout=10)
        n_origins = bus.length("origins")
        n_ids = len({m.event_id for _, m in bus.messages("origins")})
        print(
            f"\nworker: {n_stations} stations, {n_events} events, {len(picks)} picks in 1 s "
            f"chunks; {n_origins} origin revisions, {n_ids} event ids"
        )
        if latencies:
            q = np.percentile(np.array(latencies) * 1e3, [50, 95, 100])
            print(
                f"chunk published -> origin readable: p50 {q[0]:.0f} ms, p95 {q[1]:.0f} ms, "
                f"max {q[2]:.0f} ms (n={len(latencies)})"
            )
        assoc.close()
    finally:
        server.stop()


# --------------------------------------------------------------------------- streaming


def _pick_messages(picks, coords, n_samples: int = 300):
    from firstmotion.messages import Pick

    samples = np.zeros(n_samples, np.float32)
    out = []
    for p in picks:
        c = coords[".".join(p.station_id.split(".")[:3])]
        out.append(
            Pick(
                pick_id=p.pick_id, station_id=p.station_id, phase=p.phase,
                time_epoch_s=p.time_epoch_s, sampling_rate_hz=100.0,
                start_time_epoch_s=p.time_epoch_s - 1.0, pick_index=100, samples=samples,
                snr=5.0, amplitude=1.0, latitude_deg=c.latitude_deg,
                longitude_deg=c.longitude_deg, elevation_m=c.elevation_m,
            )
        )  # fmt: skip
    return out


def _replica(url: str, shard: str, stop, done, results, drain: bool) -> None:
    """One associator process (its own Redis connection); reports processed picks and CPU."""
    import resource

    import redis

    from firstmotion.bus import Bus
    from firstmotion.shard import Shard
    from firstmotion.velocity import VelocityModel
    from workers.associate import AssociateWorker
    from workers.associate_locate import AssociateParams, Associator

    bus = Bus(redis.Redis.from_url(url))
    assoc = Associator(VelocityModel.default(), AssociateParams())
    sh = Shard.parse(shard)
    worker = AssociateWorker(bus, assoc, block_ms=50, shard=sh, debounce_s=0.25)
    worker.warm_up()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if drain:
        done.wait()
        worker.run(drain=True, timeout_s=3600)
    else:
        threading.Thread(target=lambda: (stop.wait(), worker.request_stop()), daemon=True).start()
        worker.run()
        worker.associate_now(flush=True)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    results.put((shard, worker.consumer.processed, wall, cpu))


def bench_stream(n_stations: int, n_events: int, duration_s: float, speed: float | None,
                 replicas: int, s_picks: bool, seed: int = 13) -> dict:  # fmt: skip
    """Picks of a scenario through associator process(es) on a private Redis: replayed at
    ``speed`` x real time (None: all published first, then drained as fast as possible)."""
    import multiprocessing as mp

    import redis

    from firstmotion.bus import Bus
    from firstmotion.messages import CatalogEvent, Origin
    from firstmotion.redis_server import RedisServer

    coords, picks, events, event_of = make_case(n_stations, n_events, seed, duration_s, s_picks)
    msgs = _pick_messages(picks, coords)
    ctx = mp.get_context("fork")
    stop, done, results = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = []
    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url)
        bus = Bus(client)
        shards = [f"{i}/{replicas}" for i in range(replicas)] if replicas > 1 else ["0/1"]
        procs = [ctx.Process(target=_replica, args=(server.url, sh, stop, done, results,
                                                    speed is None)) for sh in shards]  # fmt: skip
        for pr in procs:
            pr.start()
        time.sleep(3.0)  # imports and tables
        published_at: dict[str, float] = {}
        backlog: list[tuple[float, int]] = []
        t_start = time.perf_counter()
        groups = [_group_of(sh) for sh in shards]

        def lag() -> int:
            worst = 0
            for g in groups:
                try:
                    rows = client.xinfo_groups("fm:picks")
                except redis.ResponseError:
                    return len(published_at)
                info = {_text(d["name"]): d for d in rows}
                row = info.get(g)
                if row is None:
                    worst = max(worst, len(published_at))
                    continue
                last = _text(row["last-delivered-id"])
                unread = len(client.xrange("fm:picks", min="(" + last, count=100_000))
                worst = max(worst, unread + int(row["pending"]))
            return worst

        if speed is None:
            for k in range(0, len(msgs), 500):
                bus.publish_many("picks", msgs[k : k + 500])
            t_pub = time.perf_counter()
            for m in msgs:
                published_at[m.pick_id] = time.time()
            done.set()
            t_data_end = t_pub
        else:
            t_data0 = msgs[0].time_epoch_s
            next_sample = 0.0
            k = 0
            while k < len(msgs):
                now = time.perf_counter() - t_start
                upto = t_data0 + now * speed
                j = k
                while j < len(msgs) and msgs[j].time_epoch_s <= upto:
                    j += 1
                if j > k:
                    bus.publish_many("picks", msgs[k:j])
                    wall = time.time()
                    for m in msgs[k:j]:
                        published_at[m.pick_id] = wall
                    k = j
                if now >= next_sample:
                    backlog.append((now, lag()))
                    next_sample += 1.0
                time.sleep(0.01)
            t_data_end = time.perf_counter()
            while True:
                now = time.perf_counter() - t_start
                b = lag()
                backlog.append((now, b))
                if b == 0 or now - (t_data_end - t_start) > 300:
                    break
                time.sleep(1.0)
            empty_after = time.perf_counter() - t_data_end
            stop.set()
        stats = [results.get(timeout=600) for _ in procs]
        for pr in procs:
            pr.join(timeout=30)
        latest: dict[str, Origin] = {}
        first_lat: dict[str, float] = {}
        retracted: set[str] = set()
        for _, m in bus.messages("origins"):
            if isinstance(m, CatalogEvent):
                retracted.add(m.event_id)
                continue
            latest[m.event_id] = m
            retracted.discard(m.event_id)
            if m.event_id not in first_lat:
                done_at = max(published_at.get(a.pick_id, 0.0) for a in m.arrivals)
                first_lat[m.event_id] = m.created_epoch_s - done_at
        final = [o for e, o in latest.items() if e not in retracted]
        rows = [(o.time_epoch_s, o.latitude_deg, o.longitude_deg, o.depth_km,
                 [a.pick_id for a in o.arrivals]) for o in final]  # fmt: skip
        sc = score(rows, events, event_of)
        out = {
            "picks": len(msgs), "stats": stats, "found": sc["found"], "matched": sc["matched"],
            "true_events": len(events), "epi": sc["epi"], "dz": sc["dz"],
            "latency": [first_lat[e] for e in latest if e in first_lat],
            "backlog": backlog, "retracted": len(retracted),
            "revisions": sum(1 for _, m in bus.messages("origins") if isinstance(m, Origin)),
        }  # fmt: skip
        if speed is not None:
            out["empty_after_s"] = empty_after
        return out
    finally:
        stop.set()
        done.set()
        for pr in procs:
            pr.join(timeout=5)
            if pr.is_alive():
                pr.terminate()
        server.stop()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _group_of(shard: str) -> str:
    from firstmotion.shard import Shard

    return Shard.parse(shard).group("associate")


def print_stream(label: str, r: dict) -> None:
    stats = r["stats"]
    rate = min(n / w for _, n, w, _ in stats)
    cpu_rate = min(n / max(c, 1e-9) for _, n, _, c in stats)
    lat = np.array(r["latency"]) if r["latency"] else np.array([np.nan])
    extra = r["found"] - r["matched"]
    print(
        f"{label:<22} picks {r['picks']:>6} | per replica {rate:7.0f} picks/s wall, "
        f"{cpu_rate:7.0f} picks/CPU-s | events {r['matched']}/{r['true_events']} found, "
        f"{extra} extra, {r['retracted']} retracted | epi med {fmt_err(r['epi'])} km | "
        f"first-origin latency p50 {np.nanpercentile(lat, 50):.2f} s p95 "
        f"{np.nanpercentile(lat, 95):.2f} s | {r.get('revisions', 0)} origin revisions"
    )
    if "empty_after_s" in r:
        peak = max(b for _, b in r["backlog"]) if r["backlog"] else 0
        every = max(1, len(r["backlog"]) // 12)
        series = " ".join(f"{b}" for _, b in r["backlog"][::every])
        print(f"{'':<22} backlog peak {peak} picks, empty {r['empty_after_s']:.0f} s after the "
              f"data ended; over time (every ~{every} s): {series}")  # fmt: skip


def bench_s_depth(station_counts=(15, 30), seeds=(1, 2, 3), n_events: int = 5) -> None:
    """Depth error of the settled events with and without S picks (true S + 0.1 s noise),
    through the incremental engine (picks in time order, 10 per step)."""
    from firstmotion.velocity import VelocityModel
    from workers.associate_locate import AssociateParams, Associator
    from workers.associate_online import OnlineAssociator

    print("\nS picks and depth (incremental engine, settled events)")
    for n_st in station_counts:
        for s_picks in (False, True):
            dz, found, n_true = [], 0, 0
            for seed in seeds:
                coords, picks, events, event_of = make_case(n_st, n_events, seed, None, s_picks)
                assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=4))
                ids = iter(range(1, 10_000))
                eng = OnlineAssociator(assoc, dict(coords), new_id=lambda t, i=ids: f"e{next(i)}")
                pub, gone = {}, set()
                results = []
                for k in range(0, len(picks), 10):
                    eng.add(picks[k : k + 10], 0.0)
                    results.append(eng.step(0.0))
                results.append(eng.step(100.0, flush=True))
                for r in results:
                    pub.update({o.event_id: o for o in r.origins})
                    gone |= {o.event_id for o in r.retracted}
                rows = [(o.time_epoch_s, o.latitude_deg, o.longitude_deg, o.depth_km,
                         [x.pick_id for x in o.arrivals])
                        for e, o in pub.items() if e not in gone]  # fmt: skip
                sc = score(rows, events, event_of)
                dz += sc["dz"]
                found += sc["matched"]
                n_true += len(events)
                assoc.close()
            print(f"{n_st:>4} stations, {'P+S' if s_picks else 'P  '}: {found}/{n_true} found; "
                  f"depth error median {statistics.median(dz):.2f} km, "
                  f"p90 {np.percentile(dz, 90):.2f} km, max {max(dz):.2f} km")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-worker", action="store_true")
    ap.add_argument(
        "--stream",
        action="store_true",
        help="only the streaming runs (associator processes on a private Redis)",
    )
    ap.add_argument("--stations", type=int, default=300)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--duration", type=float, default=900.0)
    ap.add_argument(
        "--speeds",
        default="max,10,20",
        help="replay speeds (x real time); 'max': publish all, then drain",
    )
    ap.add_argument("--replicas", default="1,2")
    ap.add_argument("--s-picks", action="store_true", help="add S picks at every station")
    ap.add_argument("--s-depth", action="store_true", help="only the S-picks depth comparison")
    args = ap.parse_args()
    if args.s_depth:
        bench_s_depth()
        return
    if args.stream:
        print(f"streaming: {args.stations} stations, {args.events} events in {args.duration:.0f} s"
              f" of data, 20% false picks{', S picks' if args.s_picks else ''}")  # fmt: skip
        for n_rep in (int(x) for x in args.replicas.split(",")):
            for sp in args.speeds.split(","):
                speed = None if sp == "max" else float(sp)
                r = bench_stream(args.stations, args.events, args.duration, speed, n_rep,
                                 args.s_picks)  # fmt: skip
                print_stream(f"{n_rep} replica(s), {sp}{'x' if speed else ''}", r)
        return
    cases = [(15, 2), (30, 5), (60, 10), (120, 20)]
    bench_core(cases, args.repeats)
    if not args.skip_worker:
        bench_worker(30, 5)


if __name__ == "__main__":
    main()
