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


def make_case(n_stations: int, n_events: int, seed: int):
    """(stations dict, WindowPick list, truth events, pick -> event index or -1)."""
    from firstmotion.velocity import VelocityModel
    from stream.scenario.build import _rngs
    from stream.scenario.config import ScenarioConfig
    from stream.scenario.events import make_events
    from stream.scenario.geometry import pair_geometry
    from stream.scenario.network import make_stations
    from workers.associate_locate import StationCoords, WindowPick

    duration_s = 60.0 * n_events + 30.0
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-worker", action="store_true")
    args = ap.parse_args()
    cases = [(15, 2), (30, 5), (60, 10), (120, 20)]
    bench_core(cases, args.repeats)
    if not args.skip_worker:
        bench_worker(30, 5)


if __name__ == "__main__":
    main()
