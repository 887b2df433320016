"""A volcanic-swarm proxy through every stage: picks, events, locations and mechanisms.

Run from the repository root::

    FIRSTMOTION_SHARED=../shared .venv/bin/python benchmarks/bench_swarm.py \\
        [--pickers phasenet,stalta,phasenet+stalta] [--json benchmarks/results/swarm.json] \\
        [--model-top-km -1.5]

(``--model-top-km``: the same layers under a top that far above sea level, a volcano's
model; the stations stand on it and the truth's depths are below sea level.)

The scenario (built once, deterministic in ``--seed``): 12 stations within ~25 km, 27
earthquakes Mw 0.5-2.5 over 9 minutes inside a 4 km radius at 1-8 km depth, about 40% of them
in bursts (following another within 2-6 s), REAL noise (the Puerto Rico hour of
``$FIRSTMOTION_SHARED/data/pr2017_noise``, scaled per station) under the synthetic waveforms,
and a two-column (depth_km, vp_km_s) velocity model with a ``# vp_vs`` line, the same file the
scenario and the associator (``--velocity-model``) use.

Per picker, every stage runs as its own process on a private Redis, as in ``firstmotion
demo``: replay SeedLink server at ``--speed`` (20x), ``firstmotion stream`` (two of them, one
per picker, for ``phasenet+stalta``), ``worker polarity``, ``worker associate``, ``worker
mechanism`` and ``worker catalog``. Scores:

* P (S) picks: of the visible reference P (S) arrivals (P in the data with a first-motion SNR
  >= ``VISIBLE_SNR``; every S in the data), the share with a pick of that phase at the station
  within 0.5 s (any phase label for "any phase"); candidate P onsets (``Pick.candidate``)
  count only where a catalog event took them as an arrival (``P_with_all_candidates``: every
  candidate counted, an upper bound; ``candidates``: published and associated);
* events: truth events matched one to one (:func:`firstmotion.demo.match_events`: 3 s, 25 km),
  false events; epicentre and depth median absolute error;
* mechanisms: count by quality, Kagan angle to the truth (median, of quality A-C).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VISIBLE_SNR = 3.0
PICK_TOLERANCE_S = 0.5
# A layered volcanic-arc crust (depth of the layer top km, vp km/s); vs = vp / vp_vs.
MODEL_TEXT = """# name: swarm_1d
# vp_vs: 1.76
0.0 2.8
1.0 3.9
3.0 5.0
6.0 5.9
12.0 6.4
25.0 7.0
"""


def _shared() -> Path:
    return Path(os.environ.get("FIRSTMOTION_SHARED", ROOT.parent / "shared"))


def model_file(out: Path, top_km: float = 0.0) -> Path:
    """The swarm's model file in ``out``; with ``top_km`` < 0 the same layers under a top
    that far above sea level (a volcano's model: the stations stand on it, depths below sea
    level are ``top_km`` shallower than below the top)."""
    if top_km == 0.0:
        return out / "swarm_1d.txt"
    return out / f"swarm_1d_top{-top_km:g}km.txt"


def model_text(top_km: float = 0.0) -> str:
    if top_km == 0.0:
        return MODEL_TEXT
    lines = []
    for line in MODEL_TEXT.splitlines():
        if line.startswith("#") or not line.strip():
            lines.append(line)
            continue
        depth, vp = (float(v) for v in line.split())
        lines.append(f"{depth + top_km:g} {vp:g}")
    return "\n".join(lines) + "\n"


def build_scenario(
    out: Path, seed: int, noise_dir: Path | None, top_km: float = 0.0
) -> dict[str, Any]:
    from stream.scenario import ScenarioConfig, make_scenario, write_scenario

    out.mkdir(parents=True, exist_ok=True)
    model = model_file(out, top_km)
    model.write_text(model_text(top_km))
    config = ScenarioConfig(
        seed=seed, n_stations=12, n_events=27, duration_s=540.0, region_km=40.0,
        swarm_radius_km=4.0, burst_fraction=0.4, burst_gap_s=6.0,
        magnitude_range=(0.5, 2.5), depth_range_km=(1.0, 8.0), velocity_model=str(model),
        noise_dir=str(noise_dir) if noise_dir else None, sensor="short_period",
        noise_level_range_m_s=(1e-7, 1e-6), centre_lat_deg=18.0, centre_lon_deg=-66.5,
    )  # fmt: skip
    truth_path = out / "scenario" / "truth.json"
    if truth_path.exists():
        truth = json.loads(truth_path.read_text())
        if truth.get("config") == json.loads(json.dumps(config.to_dict())):
            return truth
    scenario = make_scenario(config)
    write_scenario(scenario, out / "scenario")
    return json.loads(truth_path.read_text())


def _station_key(station_id: str) -> str:
    return ".".join(station_id.split(".")[:2])


def score_picks(truth: dict[str, Any], picks: list, associated: set[str]) -> dict[str, Any]:
    """Share of the visible reference arrivals picked within ``PICK_TOLERANCE_S``: by the picks
    (candidate onsets only where an event in the catalog took them, ``associated`` pick ids),
    and (``P_with_all_candidates``) by every pick, candidates included."""
    used = [p for p in picks if not getattr(p, "candidate", False) or p.pick_id in associated]
    out = _score_picks(truth, used)
    every = _score_picks(truth, picks)
    out["P_with_all_candidates"] = every["P"]
    from obspy import UTCDateTime

    cands = [p for p in picks if getattr(p, "candidate", False)]
    true_p: dict[str, list[float]] = {}
    for ev in truth["events"]:
        for arr in ev["stations"]:
            key = _station_key(arr["station_id"])
            true_p.setdefault(key, []).append(UTCDateTime(arr["p_time"]).timestamp)
    taken = [p for p in cands if p.pick_id in associated]
    right = sum(
        1
        for p in taken
        if any(abs(t - p.time_epoch_s) <= PICK_TOLERANCE_S
               for t in true_p.get(_station_key(p.station_id), []))
    )  # fmt: skip
    # associated: taken by a catalog event; at_a_true_p: of those, within 0.5 s of a true P
    out["candidates"] = {"published": len(cands), "associated": len(taken), "at_a_true_p": right}
    return out


def _score_picks(truth: dict[str, Any], picks: list) -> dict[str, Any]:
    from obspy import UTCDateTime

    by_station: dict[tuple[str, str], list[float]] = {}
    for p in picks:
        by_station.setdefault((_station_key(p.station_id), p.phase.upper()), []).append(
            p.time_epoch_s
        )
    times = {k: np.sort(v) for k, v in by_station.items()}

    def near(key: tuple[str, str], t: float) -> bool:
        a = times.get(key)
        if a is None or not a.size:
            return False
        i = np.searchsorted(a, t)
        return any(abs(a[j] - t) <= PICK_TOLERANCE_S for j in (i - 1, i) if 0 <= j < a.size)

    out: dict[str, Any] = {}
    for phase in ("P", "S"):
        n_ref = hit = hit_any = 0
        for ev in truth["events"]:
            for arr in ev["stations"]:
                if not arr.get("p_in_data", True):
                    continue
                if phase == "P" and not (arr.get("snr") or 0.0) >= VISIBLE_SNR:
                    continue
                t = UTCDateTime(arr[f"{phase.lower()}_time"]).timestamp
                if phase == "S" and t > UTCDateTime(truth["end_time"]).timestamp:
                    continue
                key = _station_key(arr["station_id"])
                n_ref += 1
                hit += near((key, phase), t)
                hit_any += near((key, phase), t) or near((key, "PS"[phase == "P"]), t)
        out[phase] = {"reference": n_ref, "within_0.5s": hit, "share": hit / max(n_ref, 1),
                      "any_phase_share": hit_any / max(n_ref, 1)}  # fmt: skip
    out["n_picks"] = {ph: sum(1 for p in picks if p.phase.upper() == ph) for ph in ("P", "S")}
    return out


def score_events(rows: list[dict[str, Any]], false_events: int) -> dict[str, Any]:
    found = [r for r in rows if r["detected"]]
    epi = [r["epicentre_error_km"] for r in found]
    dep = [abs(r["depth_error_km"]) for r in found]
    quality: dict[str, int] = {}
    for r in rows:
        if "quality" in r:
            quality[r["quality"]] = quality.get(r["quality"], 0) + 1
    good = [r["kagan_deg"] for r in rows if r.get("quality") in ("A", "B", "C")]
    every = [r["kagan_deg"] for r in rows if "kagan_deg" in r]
    return {
        "events_found": len(found), "events_true": len(rows), "false_events": false_events,
        "epicentre_median_km": float(np.median(epi)) if epi else None,
        "depth_median_km": float(np.median(dep)) if dep else None,
        "median_arrivals": float(np.median([r["n_picks"] for r in found])) if found else None,
        "mechanisms": quality, "mechanisms_a_to_c": len(good),
        "kagan_median_a_to_c_deg": float(np.median(good)) if good else None,
        "kagan_median_all_deg": float(np.median(every)) if every else None,
    }  # fmt: skip


def run_pipeline(
    picker: str, scen: Path, model: Path, out: Path, speed: float, extra_env: dict[str, str]
) -> dict[str, Any]:
    """:func:`run_stages` on the scenario, scored against its truth."""
    from firstmotion import demo

    truth = json.loads((scen / "truth.json").read_text())
    run = run_stages(picker, scen, model, out, speed, extra_env)
    catalog, picks, mechanisms = run["catalog"], run["picks"], run["mechanisms"]
    rows, false_events = demo.summarise_pipeline(truth, catalog, run["polarities"], mechanisms)
    associated = {a.pick_id for o, _ in catalog for a in o.arrivals}
    result = {"picker": picker, "wall_s": run["wall_s"],
              "picks": score_picks(truth, picks, associated), **score_events(rows, false_events),
              "n_origin_messages": len(run["origins"])}  # fmt: skip
    last: dict[str, Any] = {}
    for m in mechanisms:  # the newest revision of each event's mechanism
        last[m.event_id] = m
    result["sp_ratios_per_mechanism"] = sorted(m.n_sp_ratios for m in last.values())
    result["polarities_per_mechanism"] = sorted(m.n_polarities for m in last.values())
    result["events"] = [
        {k: r.get(k) for k in ("event_id", "magnitude", "detected", "epicentre_error_km",
                               "depth_error_km", "n_picks", "quality", "kagan_deg",
                               "n_polarities", "polarity_correct", "polarity_wrong")}
        for r in rows
    ]  # fmt: skip
    return result


def run_stages(
    picker: str, scen: Path, model: Path, out: Path, speed: float, extra_env: dict[str, str]
) -> dict[str, Any]:
    """Every stage on ``scen/mseed`` replayed over SeedLink (``scen/stations.xml``, velocity
    model ``model``) on a private Redis until the stages are quiet: the catalog standing at
    the end (``[(origin, mechanism)]``), every pick, polarity, mechanism and origin message,
    and the wall time. What the stages published is also written to
    ``out/logs_<picker>/messages.jsonl`` for diagnosis."""
    from firstmotion import demo
    from firstmotion.bus import Bus
    from firstmotion.messages import Origin, Pick, Polarity
    from firstmotion.redis_server import RedisServer
    from firstmotion.run import stop_processes

    logs = out / f"logs_{picker.replace('+', '_')}"
    logs.mkdir(parents=True, exist_ok=True)
    inventory = str(scen / "stations.xml")
    t0 = time.perf_counter()
    with ExitStack() as stack:
        url = stack.enter_context(RedisServer()).url
        bus = Bus.from_url(url)
        port = demo._replay(stack, scen, logs, speed)
        commands: dict[str, list[str]] = {}
        for name in picker.split("+"):
            state = logs / f"{name}.state"
            state.unlink(missing_ok=True)
            commands[f"stream_{name}"] = demo._cli(
                "stream", "--seedlink", f"127.0.0.1:{port}",
                "--streams", "*_*" if name == "phasenet" else "*_*:??Z", "--picker", name,
                "--inventory", inventory, "--redis", url, "--exit-when-idle-s", "5",
                "--statefile", str(state),
            )  # fmt: skip
        commands |= {
            "polarity": demo._cli("worker", "polarity", "--redis", url),
            "associate": demo._cli("worker", "associate", "--redis", url, "--inventory",
                                   inventory, "--velocity-model", str(model)),
            "mechanism": demo._cli("worker", "mechanism", "--redis", url),
            "catalog": demo._cli("worker", "catalog", "--redis", url, "--web-port",
                                 str(demo._free_port()), "--inventory", inventory),
        }  # fmt: skip
        env = {**os.environ, **extra_env}
        procs: dict[str, subprocess.Popen] = {}
        for name, cmd in commands.items():
            log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the stack)
            stack.callback(log.close)
            cmd = [*cmd, "--metrics-port", str(demo._free_port())]
            procs[name] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )  # ``python -m`` puts the working folder first on the path: this checkout
        stack.callback(stop_processes, procs, 20.0)
        streams = [p for n, p in procs.items() if n.startswith("stream_")]
        for p in streams:
            p.wait()
        demo._wait_quiet(bus, {k: v for k, v in procs.items() if not k.startswith("stream_")},
                         4.0, 600.0)  # fmt: skip
        stop_processes(procs, 20.0)
        catalog = demo.read_catalog(bus)
        picks = [m for _, m in bus.messages("picks") if isinstance(m, Pick)]
        polarities = [m for _, m in bus.messages("polarities") if isinstance(m, Polarity)]
        mechanisms = [m for _, m in bus.messages("mechanisms")]
        origins = [m for _, m in bus.messages("origins") if isinstance(m, Origin)]
    with open(logs / "messages.jsonl", "w") as f:  # what the stages published, for diagnosis
        for m in [*origins, *mechanisms, *polarities]:
            f.write(m.to_json().decode() + "\n")
        for p in picks:
            f.write(json.dumps(p.to_dict_meta()) + "\n")
    return {"catalog": catalog, "picks": picks, "polarities": polarities,
            "mechanisms": mechanisms, "origins": origins,
            "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip


def _print(result: dict[str, Any]) -> None:
    p, s = result["picks"]["P"], result["picks"]["S"]

    def f(v: Any, fmt: str = ".2f") -> str:
        return "n/a" if v is None else format(v, fmt)

    print(
        f"{result['picker']:<16} P {p['within_0.5s']}/{p['reference']} "
        f"({100 * p['share']:.0f}%; every candidate counted "
        f"{result['picks']['P_with_all_candidates']['within_0.5s']}, candidates "
        f"{result['picks']['candidates']['associated']}/"
        f"{result['picks']['candidates']['published']} associated, "
        f"{result['picks']['candidates']['at_a_true_p']} at a true P)  "
        f"S {s['within_0.5s']}/{s['reference']} "
        f"({100 * s['share']:.0f}%)  events {result['events_found']}/{result['events_true']} "
        f"(+{result['false_events']} false)  epicentre {f(result['epicentre_median_km'])} km  "
        f"depth {f(result['depth_median_km'])} km  mechanisms {result['mechanisms']} "
        f"A-C {result['mechanisms_a_to_c']} "
        f"Kagan(A-C) {f(result['kagan_median_a_to_c_deg'], '.0f')}"
        f"  polarities/ratios per mechanism {result['polarities_per_mechanism']}"
        f"/{result['sp_ratios_per_mechanism']}"
        f"  [{result['wall_s']:.0f} s]",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pickers", default="phasenet,stalta,phasenet+stalta")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--speed", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_swarm"))
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--synthetic-noise", action="store_true", help="not the real noise hour")
    ap.add_argument(
        "--model-top-km", type=float, default=0.0,
        help="the model's top this far below sea level (negative: a volcano's model above "
        "it, the stations on its top)",
    )  # fmt: skip
    ap.add_argument(
        "--stage-root", type=Path, default=None,
        help="run the stages from this checkout (PYTHONPATH), e.g. another branch for a "
        "before/after on the same scenario; default: this one",
    )  # fmt: skip
    args = ap.parse_args()
    noise = None if args.synthetic_noise else _shared() / "data" / "pr2017_noise"
    if noise is not None and not noise.exists():
        sys.exit(f"no real noise at {noise} (set FIRSTMOTION_SHARED or --synthetic-noise)")
    if args.model_top_km > 0:
        sys.exit("--model-top-km: expected <= 0 (a top above sea level is negative)")
    truth = build_scenario(args.out, args.seed, noise, args.model_top_km)
    n_vis = sum(
        1 for e in truth["events"] for a in e["stations"]
        if a.get("p_in_data", True) and (a.get("snr") or 0.0) >= VISIBLE_SNR
    )  # fmt: skip
    times = sorted(e["origin_time_s"] for e in truth["events"])
    print(f"scenario: {len(truth['events'])} events, {len(truth['stations'])} stations, "
          f"{n_vis} visible P; origin-time gaps < 10 s: "
          f"{sum(1 for a, b in zip(times, times[1:], strict=False) if b - a < 10)}")  # fmt: skip
    results = []
    for picker in [p.strip() for p in args.pickers.split(",") if p.strip()]:
        env = {} if args.stage_root is None else {"PYTHONPATH": str(args.stage_root.resolve())}
        res = run_pipeline(
            picker, args.out / "scenario", model_file(args.out, args.model_top_km), args.out,
            args.speed, env,
        )  # fmt: skip
        _print(res)
        results.append(res)
    if args.json:
        for res in results:
            res["stage_root"] = str(args.stage_root or ROOT)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seed": args.seed, "speed": args.speed,
                                         "results": results}, indent=1, default=float))  # fmt: skip


if __name__ == "__main__":
    main()
