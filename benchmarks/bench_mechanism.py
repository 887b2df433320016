"""Mechanism inversion: `workers.mechanism.invert` against SKHASH 1.1.5 on HASH example 1.

Run from the repository root::

    .venv/bin/python benchmarks/bench_mechanism.py [--repeats 3] [--skip-skhash] [--n-big 5000]

In the same run:

* SKHASH 1.1.5 (its own venv, benchmarks/.venv-skhash, created by benchmarks/skhash_env.sh if
  missing) on ../shared/data/hash1 with the recorded control file (maxout=100000: the whole
  accepted set, no random subsampling), Python grid search, one BLAS thread. SKHASH prints its
  "Mech computation runtime" (the per-event mechanism step, what timing.json recorded): that is
  the baseline; its whole wall time (with input parsing) is printed too. Peak memory is
  ru_maxrss of the SKHASH process.
* ``invert`` on the same 24 events with the exact trials of inputs_trials.jsonl (the numba
  crossing kernel, warm: compilation is cached and reported separately), single-threaded (the
  headline ratio) and with threads=2 (reported separately), in a child process whose
  ru_maxrss is its peak memory (interpreter, numpy, numba included); tracemalloc's peak of the
  inversion's own allocations is printed too. The grid search alone is also timed against
  the previous kernel (every slip's sign, full misfit table) on the same rays.
* Agreement: Kagan angle between our preferred mechanism and SKHASH's (this run's out.csv and
  the recorded skhash_no_subsample/mechs.jsonl), quality letters equal.
* Scale: a synthetic composite of --n-big weighted polarities x 30 trials (time, peak memory).
* Worker latency (--latency-events N, default 10): the mechanism worker on a private
  ``redis-server`` in a thread; per event an origin, then its 30 polarities one at a time, each
  published only after the previous one was handled; ``revise_min_change_deg`` 0 so every
  changed solution is published. Latency = publishing a polarity -> the revised Mechanism
  readable in ``fm:mechanisms`` (XREAD BLOCK), p50/p95/max.

Threads: OMP/OPENBLAS/MKL/NUMBA threads are pinned to 1 for both sides. The machine may be
shared with other work: both sides run in the same invocation so the ratio is fair; rerun when
quiet for absolute numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HASH1 = ROOT.parent / "shared" / "data" / "hash1"
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}


def _child_rss_mb(cmd: list[str], cwd: Path | None = None, env: dict | None = None):
    """Run cmd in a wrapper process; return (stdout, wall s, peak RSS of cmd in MB)."""
    wrapper = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "sys.stdout.write(p.stdout)\n"
        "sys.stderr.write(p.stderr)\n"
        "print('@@' + json.dumps({'rc': p.returncode, 'wall': wall, 'rss': ru.ru_maxrss / 1024,\n"
        "                        'cpu': ru.ru_utime + ru.ru_stime}))\n"
    )
    full_env = {**os.environ, **ONE_THREAD, **(env or {})}
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )
    meta = json.loads(out.stdout.rsplit("@@", 1)[1])
    if meta["rc"] != 0:
        raise RuntimeError(f"{cmd[0]} failed ({meta['rc']}):\n{out.stdout[-2000:]}{out.stderr}")
    _child_rss_mb.last_cpu_s = meta["cpu"]
    return out.stdout.rsplit("@@", 1)[0], meta["wall"], meta["rss"]


def run_skhash() -> dict:
    """SKHASH on hash1 in a scratch directory laid out as its control file expects."""
    py = (
        subprocess.run(
            ["bash", str(ROOT / "benchmarks" / "skhash_env.sh")],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    skhash_py = subprocess.run(
        [py, "-c", "import SKHASH, os; print(os.path.join(SKHASH.__path__[0], 'SKHASH.py'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="skhash_"))
    try:
        (work / "hash1" / "IN").mkdir(parents=True)
        (work / "hash1" / "OUT").mkdir(parents=True)
        for name in ("north1.phase", "scsn.reverse"):
            shutil.copy(HASH1 / name, work / "hash1" / "IN" / name)
        shutil.copy(HASH1 / "skhash_no_subsample" / "control_file.txt", work / "control.txt")
        stdout, wall, rss = _child_rss_mb([py, skhash_py, "control.txt"], cwd=work)
        cpu = _child_rss_mb.last_cpu_s
        mech = re.search(r"Mech computation runtime:\s*([\d.]+)", stdout)
        with (work / "hash1" / "OUT" / "out.csv").open() as f:
            rows = list(csv.DictReader(f))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first = {}
    for r in rows:  # multiple solutions: the first row per event is the preferred one
        first.setdefault(r["event_id"], r)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "mech_s": float(mech.group(1)) if mech else float("nan"),
        "rss_mb": rss,
        "mechs": {
            k: {
                "strike": float(r["strike"]),
                "dip": float(r["dip"]),
                "rake": float(r["rake"]),
                "quality": r["quality"],
            }
            for k, r in first.items()
        },
    }


# ------------------------------------------------------------------------------------------
# child modes (run in a fresh process so ru_maxrss is the inversion's own footprint)


def _child_hash1(repeats: int) -> None:
    import tracemalloc

    import numpy as np

    from workers.mechanism import invert

    events = [json.loads(line) for line in (HASH1 / "inputs_trials.jsonl").open()]
    args = []
    for e in events:
        p = e["picks"]
        cols = {
            k: np.array([x[k] for x in p], dtype=float)
            for k in (
                "azimuth_deg",
                "takeoff_deg",
                "polarity",
                "weight",
                "azimuth_trials",
                "takeoff_trials",
            )
        }
        args.append((e["event_id"], cols))

    def one(cols, threads=1):
        return invert(
            cols["azimuth_deg"],
            cols["takeoff_deg"],
            cols["polarity"],
            cols["weight"],
            azimuth_trials=cols["azimuth_trials"],
            takeoff_trials=cols["takeoff_trials"],
            threads=threads,
        )

    t = time.perf_counter()
    one(args[0][1])  # numba: load from cache or compile
    first_call_s = time.perf_counter() - t
    one(args[0][1], threads=2)
    per_run, cpu_run, per_run_2 = [], [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        results = {eid: one(cols) for eid, cols in args}
        per_run.append((time.perf_counter() - t) / len(args))
        cpu_run.append((time.process_time() - c) / len(args))
        t = time.perf_counter()
        results_2 = {eid: one(cols, threads=2) for eid, cols in args}
        per_run_2.append((time.perf_counter() - t) / len(args))
        assert all(results_2[k] == results[k] for k in results), "threads changed an answer"
    grid_search = _grid_search_only(args, repeats)
    tracemalloc.start()
    one(max(args, key=lambda a: a[1]["polarity"].size)[1])
    traced_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    out = {
        "first_call_s": first_call_s,
        "s_per_event_runs": per_run,
        "cpu_s_per_event_runs": cpu_run,
        "s_per_event_runs_2threads": per_run_2,
        "grid_search": grid_search,
        "traced_peak_mb": traced_peak_mb,
        "mechs": {
            k: {"strike": m.strike, "dip": m.dip, "rake": m.rake, "quality": m.quality}
            for k, m in results.items()
        },
    }
    print(json.dumps(out))


def _grid_search_only(args: list, repeats: int) -> dict:
    """The grid search alone, s/event: the kernel ``invert`` used before (every slip's sign
    evaluated, full misfit table, then acceptance) against ``accepted_set`` (crossing kernel,
    no table), on the same rays; and whether their accepted sets are identical."""
    import numpy as np

    from workers.mechanism.grid import focal_grid
    from workers.mechanism.search import (
        accepted_mask,
        accepted_set,
        misfit_allowances,
        misfit_table_direct,
        rays_from_angles,
    )

    g = focal_grid(5.0)
    cases = []
    for _, c in args:
        use = c["polarity"] != 0
        rays = rays_from_angles(c["azimuth_trials"][use], c["takeoff_trials"][use])
        signed = (c["polarity"] * c["weight"])[use]
        cases.append((rays, signed, *misfit_allowances(float(np.abs(signed).sum()), 0.1, 2.0)))

    def direct(r, s, nx, nt):
        return np.flatnonzero(accepted_mask(misfit_table_direct(r, s, g), nx, nt))

    def crossing(r, s, nx, nt):
        return accepted_set(r, s, g, nx, nt)[0]

    same = all(np.array_equal(direct(*c), crossing(*c)) for c in cases)
    out = {"identical_accepted_sets": same}
    for name, f in (("direct", direct), ("crossing", crossing)):
        runs = []
        for _ in range(repeats):
            t = time.process_time()
            for c in cases:
                f(*c)
            runs.append((time.process_time() - t) / len(cases))
        out[name] = runs
    return out


def _child_big(n: int) -> None:
    import tracemalloc

    import numpy as np

    from firstmotion.kagan import kagan_angle_deg
    from firstmotion.radiation import p_polarity
    from workers.mechanism import invert

    rng = np.random.default_rng(0)
    truth = (35.0, 60.0, 75.0)
    az = rng.uniform(0, 360, n)
    to = np.degrees(np.arccos(rng.uniform(-1, 1, n)))
    pol = p_polarity(*truth, az, to).astype(float)
    pol[rng.random(n) < 0.15] *= -1  # 15% wrong, as pooled automatic picks might be
    w = rng.uniform(0.1, 1.0, n)  # fractional weights (confidence x 1/events-per-station ...)
    invert(az[:20], to[:20], pol[:20], w[:20], n_trials=2)  # warm the kernel
    tracemalloc.start()
    t = time.perf_counter()
    m = invert(az, to, pol, w, n_trials=30, azimuth_unc_deg=5.0, takeoff_unc_deg=10.0)
    dt = time.perf_counter() - t
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    err = float(kagan_angle_deg(m.strike, m.dip, m.rake, *truth))
    print(json.dumps({"s": dt, "traced_peak_mb": traced, "kagan_deg": err, "quality": m.quality}))


def _wait_handled(bus, timeout_s: float = 2.0) -> None:
    """Until the worker has read and acknowledged every polarity (published or not)."""
    key = bus.key("polarities")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        newest = bus.client.xrevrange(key, count=1)
        groups = {g["name"]: g for g in bus.client.xinfo_groups(key)}
        g = groups.get(b"mechanism", groups.get("mechanism"))
        if g is not None and newest and g["last-delivered-id"] == newest[0][0]:
            if int(g["pending"]) == 0:
                return
        time.sleep(0.0005)


def worker_latency(n_events: int) -> dict:
    """Polarity published -> revised mechanism readable, through the real worker and Redis."""
    import threading

    import numpy as np

    from firstmotion.bus import Bus
    from firstmotion.messages import Arrival, Origin, Polarity, make_pick_id
    from firstmotion.radiation import p_polarity
    from firstmotion.redis_server import RedisServer
    from workers.mechanism.worker import MechanismWorker, WorkerParams

    server = RedisServer().start()
    lat, n_pol = [], 0
    try:
        bus = Bus.from_url(server.url)
        worker = MechanismWorker(bus, WorkerParams(revise_min_change_deg=0.0), name="bench")
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        key = bus.key("mechanisms")
        last_id = "0-0"
        rng = np.random.default_rng(1)
        for e in range(n_events):
            sdr = (rng.uniform(0, 360), rng.uniform(20, 90), rng.uniform(-180, 180))
            i = np.arange(30) + 0.5
            az = np.mod(i * 137.50776405 + rng.uniform(0, 360), 360.0)
            to = np.degrees(np.arccos(-i / 30))
            pol = p_polarity(*sdr, az, to)
            t0 = 1.7e9 + 100 * e
            ids = [make_pick_id(f"XX.S{k:02d}..HHZ", t0 + 5 + 0.1 * k) for k in range(30)]
            arrivals = tuple(
                Arrival(
                    pick_id=ids[k],
                    station_id=f"XX.S{k:02d}..HHZ",
                    azimuth_deg=float(az[k]),
                    takeoff_deg=float(to[k]),
                    distance_km=40.0,
                )
                for k in range(30)
            )
            bus.publish(
                "origins",
                Origin(
                    event_id=f"bench{e}",
                    revision=0,
                    time_epoch_s=t0,
                    latitude_deg=0.0,
                    longitude_deg=0.0,
                    depth_km=10.0,
                    arrivals=arrivals,
                ),
            )
            for n_in, k in enumerate(rng.permutation(30), 1):
                p = int(pol[k])
                msg = Polarity(
                    pick_id=ids[k],
                    station_id=f"XX.S{k:02d}..HHZ",
                    time_epoch_s=t0 + 5 + 0.1 * k,
                    polarity=p,
                    probabilities=(0.9, 0.08, 0.02) if p > 0 else (0.08, 0.9, 0.02),
                    confidence=0.9,
                    model_version="bench",
                )
                t = time.perf_counter()
                bus.publish("polarities", msg)
                n_pol += 1
                if n_in < 8:  # below min_polarities: nothing can be published
                    _wait_handled(bus)
                    continue
                resp = bus.client.xread({key: last_id}, block=300, count=10)
                if resp:
                    lat.append(time.perf_counter() - t)
                    last_id = resp[0][1][-1][0]
                _wait_handled(bus)
        worker.request_stop()
        thread.join(5)
        bus.close()
    finally:
        server.stop()
    a = np.array(lat) * 1000
    return {
        "n_polarities": n_pol,
        "n_revisions": len(a),
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "max_ms": float(a.max()),
    }


def _run_child(mode: str, value: int) -> tuple[dict, float, float]:
    stdout, wall, rss = _child_rss_mb(
        [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--value", str(value)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )
    return json.loads(stdout.strip().splitlines()[-1]), wall, rss


def _agreement(ours: dict, ref: dict) -> tuple[list[float], int]:
    import numpy as np

    from firstmotion.kagan import kagan_angle_deg

    rot, same = [], 0
    for k, r in ref.items():
        m = ours[k]
        rot.append(
            float(
                kagan_angle_deg(m["strike"], m["dip"], m["rake"], r["strike"], r["dip"], r["rake"])
            )
        )
        same += m["quality"] == r["quality"]
    return list(np.round(rot, 2)), same


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed passes over the 24 events")
    ap.add_argument("--skip-skhash", action="store_true", help="only time invert")
    ap.add_argument("--n-big", type=int, default=5000, help="polarities in the composite case")
    ap.add_argument("--latency-events", type=int, default=10, help="events for worker latency")
    ap.add_argument("--child", choices=("hash1", "big"), help=argparse.SUPPRESS)
    ap.add_argument("--value", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "hash1":
        _child_hash1(a.value)
        return 0
    if a.child == "big":
        _child_big(a.value)
        return 0
    if not (HASH1 / "inputs_trials.jsonl").exists():
        print(f"shared data absent: {HASH1}", file=sys.stderr)
        return 2

    import numpy as np

    print("== HASH example 1: 24 events, 1,039 polarities, 31,032 mechanisms x 30 trials ==")
    sk = None
    if not a.skip_skhash:
        sk = run_skhash()
        print(
            f"SKHASH 1.1.5  mechanism step {sk['mech_s'] / 24:.3f} s/event "
            f"(whole run {sk['wall_s']:.1f} s = {sk['wall_s'] / 24:.3f} s/event), "
            f"peak RSS {sk['rss_mb']:.0f} MB"
        )
    ours, wall, rss = _run_child("hash1", a.repeats)
    s_ev = statistics.median(ours["s_per_event_runs"])
    print(
        f"invert        {s_ev * 1000:.1f} ms/event (median of {a.repeats} passes; "
        f"runs {[round(x * 1000, 1) for x in ours['s_per_event_runs']]} ms), "
        f"peak RSS {rss:.0f} MB (whole process), traced peak {ours['traced_peak_mb']:.1f} MB, "
        f"first call {ours['first_call_s']:.2f} s (numba cache load or compile)"
    )
    s_ev2 = statistics.median(ours["s_per_event_runs_2threads"])
    print(
        f"invert 2 thr  {s_ev2 * 1000:.1f} ms/event (threads=2, median; runs "
        f"{[round(x * 1000, 1) for x in ours['s_per_event_runs_2threads']]} ms; same answers; "
        "only faster when a second core is free)"
    )
    gs = ours["grid_search"]
    g_old, g_new = statistics.median(gs["direct"]), statistics.median(gs["crossing"])
    print(
        f"grid search   CPU {g_new * 1000:.2f} ms/event (crossing kernel, accepted_set) vs "
        f"{g_old * 1000:.2f} ms (previous kernel: every slip, full table + accepted_mask): "
        f"{g_old / g_new:.1f}x; accepted sets identical: {gs['identical_accepted_sets']}"
    )
    if sk is not None:
        print(
            f"ratio         {sk['mech_s'] / 24 / s_ev:.0f}x faster than SKHASH's mechanism step, "
            f"{sk['wall_s'] / 24 / s_ev:.0f}x its whole run; memory {sk['rss_mb'] / rss:.1f}x less"
            f" (best pass: {sk['mech_s'] / 24 / min(ours['s_per_event_runs']):.0f}x; single "
            "thread both sides)"
        )
        cpu_ev = statistics.median(ours["cpu_s_per_event_runs"])
        print(
            f"CPU time      SKHASH whole run {sk['cpu_s'] / 24:.3f} s/event (user+sys), invert "
            f"{cpu_ev * 1000:.1f} ms/event: {sk['cpu_s'] / 24 / cpu_ev:.0f}x (less sensitive to "
            "other load on a shared machine than wall time)"
        )
    refs = {"recorded skhash_no_subsample/mechs.jsonl": {}}
    for line in (HASH1 / "skhash_no_subsample" / "mechs.jsonl").open():
        d = json.loads(line)
        refs["recorded skhash_no_subsample/mechs.jsonl"][d["event_id"]] = d
    if sk is not None:
        refs["this run's SKHASH out.csv"] = sk["mechs"]
    for name, ref in refs.items():
        rot, same = _agreement(ours["mechs"], ref)
        r = np.array(rot)
        print(
            f"agreement vs {name}: Kagan median {np.median(r):.2f} deg, max {r.max():.2f}, "
            f"<= 10 deg {int((r <= 10).sum())}/{len(r)}, quality equal {same}/{len(r)}"
        )

    print(f"== composite: {a.n_big} weighted polarities x 30 trials (synthetic, 15% wrong) ==")
    big, wall, rss = _run_child("big", a.n_big)
    print(
        f"invert        {big['s']:.2f} s, peak RSS {rss:.0f} MB (whole process), traced peak "
        f"{big['traced_peak_mb']:.1f} MB, Kagan to truth {big['kagan_deg']:.1f} deg, "
        f"quality {big['quality']}"
    )
    if a.latency_events > 0:
        print(f"== worker latency: {a.latency_events} events x 30 polarities, one at a time ==")
        lat = worker_latency(a.latency_events)
        print(
            f"polarity -> revised mechanism published: p50 {lat['p50_ms']:.1f} ms, "
            f"p95 {lat['p95_ms']:.1f} ms, max {lat['max_ms']:.1f} ms "
            f"({lat['n_revisions']} revisions from {lat['n_polarities']} polarities)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
