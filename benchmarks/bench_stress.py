"""Stress inversion: real Northridge aftershocks, synthetic recovery and coverage, speed.

Run from the repository root::

    .venv/bin/python benchmarks/bench_stress.py [--draws 40] [--coverage-draws 200] [--quick]

In one run:

* real: the 24 mechanisms SKHASH finds for HASH's example 1 (Northridge aftershocks, January
  1994; ``../shared/data/hash1/skhash_no_subsample/mechs.jsonl``) inverted with 1,000 bootstrap
  resamples; the map goes to ``benchmarks/figures/stress_northridge.png``.
* recovery: per faulting regime (strike-slip, normal, thrust tensors), ``--draws`` sets of 100
  synthetic mechanisms (well-oriented faults, slip along the resolved shear traction, 10 degree
  slip noise, the reported nodal plane random): the errors of sigma1, sigma3, R and SHmax of
  :func:`workers.stress.invert_stress` beside the baseline of the same run, Vavrycuk's
  iterative linear (Michael) inversion with instability plane choice; and the same with
  less well-oriented faults (instability >= 0.5) and 5 degree mechanism errors.
* coverage: over ``--coverage-draws`` draws, how often the 95% regions of sigma1, sigma3, R
  and SHmax hold the truth.
* speed: 10,000 mechanisms with 1,000 resamples on 2 threads (and on 1, the ratio), and one
  live cell update through ``firstmotion worker stress`` on a private redis-server (a 100-
  mechanism cell gains one: publish -> the new stress on the pub/sub channel, p50/p95).

The machine may be shared: both sides of each comparison run in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.stress.invert import (  # noqa: E402
    _axial_angle_deg,
    _azimuth_diff_deg,
    fault_vectors,
    invert_stress,
    iterative_linear,
    principal,
    shmax_azimuth,
)
from workers.stress.synthetic import (  # noqa: E402
    REGIMES,
    random_stress,
    regime_stress,
    synthetic_mechanisms,
)

ROOT = Path(__file__).resolve().parents[1]
HASH1 = ROOT.parent.parent / "shared" / "data" / "hash1"
if not HASH1.is_dir():
    HASH1 = Path("/work/shared/data/hash1")


def real_northridge(plot: bool) -> dict:
    rows = [json.loads(x) for x in (HASH1 / "skhash_no_subsample" / "mechs.jsonl").open()]
    s, d, r = (np.array([x[k] for x in rows]) for k in ("strike", "dip", "rake"))
    res = invert_stress(s, d, r, n_bootstrap=1000, seed=0)
    out = res.to_dict()
    out["regime"] = res.regime
    out["qualities"] = {q: sum(x["quality"] == q for x in rows) for q in "ABCD"}
    ab = np.array([x["quality"] in "AB" for x in rows])
    out["quality_AB"] = invert_stress(s[ab], d[ab], r[ab], n_bootstrap=1000).to_dict()
    # the mainshock (Wald, Heaton & Hudnut 1996: strike 122, dip 40, rake 101): its P axis
    from firstmotion.radiation import moment_tensor

    w, v = np.linalg.eigh(moment_tensor(122.0, 40.0, 101.0))
    p = v[:, 0] * np.sign(v[2, 0] or 1.0)
    out["mainshock_p_axis_azimuth_deg"] = round(float(np.degrees(np.arctan2(p[1], p[0])) % 180), 1)
    if plot:
        from workers.stress.cells import MechanismTable
        from workers.stress.plot import plot_stress_map

        table = MechanismTable.from_rows(
            [{"strike": x["strike"], "dip": x["dip"], "rake": x["rake"], "latitude": x["lat"],
              "longitude": x["lon"], "quality": x["quality"]} for x in rows]
        )  # fmt: skip
        cell = {**res.to_dict(), "regime": res.regime, "count": len(rows), "_half_deg": 0.03,
                "centre": {"latitude_deg": float(np.mean([x["lat"] for x in rows])),
                           "longitude_deg": float(np.mean([x["lon"] for x in rows]))}}  # fmt: skip
        (ROOT / "benchmarks" / "figures").mkdir(parents=True, exist_ok=True)
        path = ROOT / "benchmarks" / "figures" / "stress_northridge.png"
        title = "HASH example 1 (Northridge aftershocks): SHmax, 95% range"
        plot_stress_map([cell], table, path, title=title)
    return out


def _errors(truth, axes, r) -> tuple[float, float, float, float]:
    tensor = (axes * np.array([1.0, 1.0 - r, 0.0])) @ axes.T
    return (
        float(_axial_angle_deg(axes[:, 0], truth.axes[:, 0])),
        float(_axial_angle_deg(axes[:, 2], truth.axes[:, 2])),
        float(abs(r - truth.shape_ratio)),
        float(abs(_azimuth_diff_deg(shmax_azimuth(tensor), truth.shmax_azimuth_deg))),
    )


ERROR_KEYS = ("sigma1_deg", "sigma3_deg", "shape_ratio", "shmax_deg")


def summary(values: np.ndarray) -> dict:
    return dict(zip(ERROR_KEYS, np.round(values, 3).tolist(), strict=True))


def recovery(draws: int, **gen) -> dict:
    out = {}
    for name in list(REGIMES) + ["random R 0.3-0.7"]:
        ours, lin = [], []
        for k in range(draws):
            if name in REGIMES:
                t = regime_stress(name)
            else:
                rng = np.random.default_rng(50_000 + k)
                t = random_stress(rng)
                t = type(t)(t.axes, 0.3 + 0.4 * rng.random())
            s, d, r, _ = synthetic_mechanisms(t, 100, seed=10_000 + k, **gen)
            res = invert_stress(s, d, r, n_bootstrap=0)
            ours.append(_errors(t, res.axes, res.shape_ratio))
            n2, s2 = fault_vectors(s, d, r)
            tl, _ = iterative_linear(n2, s2, res.friction)
            lv, lr = principal(tl)
            lin.append(_errors(t, lv, lr))
        ours, lin = np.array(ours), np.array(lin)
        out[name] = {
            "nonlinear_median": summary(np.median(ours, 0)),
            "nonlinear_max": summary(ours.max(0)),
            "linear_median": summary(np.median(lin, 0)),
            "linear_max": summary(lin.max(0)),
            "within_spec_fraction": float(np.mean(
                (ours[:, 0] <= 10) & (ours[:, 1] <= 10) & (ours[:, 2] <= 0.15) & (ours[:, 3] <= 10)
            )),
        }  # fmt: skip
    return out


def coverage(draws: int) -> dict:
    hits = np.zeros(4)
    widths = np.zeros(4)
    for k in range(draws):
        t = regime_stress(list(REGIMES)[k % 3])
        s, d, r, _ = synthetic_mechanisms(t, 100, seed=20_000 + k)
        res = invert_stress(s, d, r, n_bootstrap=1000, seed=k)
        u = res.uncertainty
        e = _errors(t, res.axes, res.shape_ratio)
        hits += [
            e[0] <= u["sigma1_deg"],
            e[1] <= u["sigma3_deg"],
            u["shape_ratio"][0] <= t.shape_ratio <= u["shape_ratio"][1],
            e[3] <= u["shmax_half_width_deg"],
        ]
        widths += [u["sigma1_deg"], u["sigma3_deg"], u["shape_ratio"][1] - u["shape_ratio"][0],
                   u["shmax_half_width_deg"]]  # fmt: skip
    keys = ("sigma1", "sigma3", "shape_ratio", "shmax")
    return {
        "draws": draws,
        "stated": 0.95,
        "covered": dict(zip(keys, np.round(hits / draws, 3).tolist(), strict=True)),
        "mean_size": dict(zip(keys, np.round(widths / draws, 3).tolist(), strict=True)),
    }


def speed(n: int = 10_000, n_boot: int = 1000) -> dict:
    t = regime_stress("normal")
    s, d, r, _ = synthetic_mechanisms(t, n, seed=0)
    invert_stress(s[:50], d[:50], r[:50], n_bootstrap=10)  # compile / load the kernels
    out = {"mechanisms": n, "bootstrap": n_boot}
    for threads in (2, 1):
        t0 = time.perf_counter()
        invert_stress(s, d, r, n_bootstrap=n_boot, threads=threads)
        out[f"seconds_{threads}_threads"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    invert_stress(s, d, r, n_bootstrap=0)
    out["seconds_estimate_only"] = round(time.perf_counter() - t0, 2)
    out["speedup_2_threads"] = round(out["seconds_1_threads"] / out["seconds_2_threads"], 2)
    out["target_seconds"] = 10.0
    return out


def live_update(samples: int = 20) -> dict:
    from firstmotion.bus import Bus
    from firstmotion.kagan import auxiliary_plane
    from firstmotion.messages import Mechanism, Origin
    from firstmotion.redis_server import RedisServer
    from workers.stress.worker import StressParams, StressWorker

    t = regime_stress("thrust")
    s, d, r, _ = synthetic_mechanisms(t, 100 + samples, seed=3)

    def mech(i: int) -> Mechanism:
        a = auxiliary_plane(s[i], d[i], r[i])
        return Mechanism(
            event_id=f"e{i}", revision=1, origin_revision=0, strike=float(s[i]) % 360,
            dip=float(d[i]), rake=float(r[i]), aux_strike=float(a[0]), aux_dip=float(a[1]),
            aux_rake=float(a[2]), quality="A", fault_plane_uncertainty_deg=20.0,
            aux_plane_uncertainty_deg=20.0, misfit=0.05, probability=0.9,
            station_distribution_ratio=0.6, n_polarities=20, n_stations=20, model_version="b",
        )  # fmt: skip

    def origin(i: int) -> Origin:
        return Origin(event_id=f"e{i}", revision=0, time_epoch_s=1.7e9, latitude_deg=34.2,
                      longitude_deg=-118.6, depth_km=10.0)  # fmt: skip

    params = StressParams()  # the [stress] defaults: 0.5 degree cells, 300 resamples
    with RedisServer() as server:
        bus = Bus.from_url(server.url)
        for i in range(100):
            bus.publish("origins", origin(i))
            bus.publish("mechanisms", mech(i))
        worker = StressWorker(bus, params, name="bench", block_ms=50)
        worker.run(drain=True, timeout_s=300)
        th = threading.Thread(target=worker.run, daemon=True)
        th.start()
        pubsub = bus.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe("fm:events")
        lat = []
        for i in range(100, 100 + samples):
            bus.publish("origins", origin(i))
            time.sleep(0.2)  # the origin first, as in the pipeline (it precedes its mechanism)
            t0 = time.perf_counter()
            bus.publish("mechanisms", mech(i))
            while True:
                m = pubsub.get_message(timeout=5.0)
                if m is not None and json.loads(m["data"]).get("kind") == "stress":
                    break
            lat.append(time.perf_counter() - t0)
        worker.request_stop()
        th.join(10)
        pubsub.close()
        inv = [1000 * x for x in lat]
        bus.close()
    return {
        "cell_mechanisms": "100-119",
        "n_bootstrap": params.n_bootstrap,
        "p50_ms": round(statistics.median(inv), 1),
        "p95_ms": round(float(np.quantile(inv, 0.95)), 1),
        "target_ms": 100.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--draws", type=int, default=40)
    ap.add_argument("--coverage-draws", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="10 draws, 30 coverage draws")
    ap.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "stress.json"))
    args = ap.parse_args()
    if args.quick:
        args.draws, args.coverage_draws = 10, 30
    from tqdm import tqdm

    steps = ["real", "recovery", "recovery_hard", "coverage", "speed", "live"]
    out: dict = {}
    for step in tqdm(steps, desc="bench_stress"):
        if step == "real":
            out["northridge_hash1"] = real_northridge(plot=True)
        elif step == "recovery":
            out["recovery_well_oriented"] = recovery(args.draws)
        elif step == "recovery_hard":
            out["recovery_instability_0.5_rotation_5deg"] = recovery(
                args.draws, min_instability=0.5, rotation_noise_deg=5.0
            )
        elif step == "coverage":
            out["coverage"] = coverage(args.coverage_draws)
        elif step == "speed":
            out["speed"] = speed()
        else:
            out["live_cell_update"] = live_update()
    text = json.dumps(out, indent=1)
    print(text)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
