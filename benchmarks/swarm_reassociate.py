"""Re-associate a swarm-proxy run's picks offline: a deterministic before/after for the associator.

Run from the repository root, after ``benchmarks/bench_swarm.py`` (which leaves the stages'
messages in ``OUT/logs_<picker>/messages.jsonl``)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/swarm_reassociate.py [--out /tmp/bench_swarm] \\
        [--picker phasenet] [--verbose] [--plot timeline.png] [--step-s 0.25] [--real-time]

The live run settles events on the wall clock of a 20x replay, so its event counts move by
+-2 between runs of the same stages. Here the run's picks are fed to
:class:`workers.associate_online.OnlineAssociator` in the order and at the wall times the stream
stage published them (``Pick.created_epoch_s``), stepping every 0.25 s as the worker does, then
flushed; the events are matched to the scenario's truth with
:func:`firstmotion.demo.match_events` (as ``bench_swarm.py``). Same picks, same code: same
answer, so an associator change is measured on the same picks before and after it.

``--step-s``: another step cadence (a starved associator steps less often). ``--real-time``:
each pick delivered as a real-time feed would deliver it, ``REAL_TIME_DELAY_S`` plus a random
0-``REAL_TIME_SPREAD_S`` after its own time (seeded), instead of when the replay's stream stage
published it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from obspy import UTCDateTime

from firstmotion import demo
from firstmotion.config import load_settings
from firstmotion.geodesy import epicentral_km
from firstmotion.velocity import VelocityModel
from workers.associate import stations_from_inventory
from workers.associate_locate import AssociateParams, Associator, WindowPick
from workers.associate_online import OnlineAssociator

STEP_S = 0.25  # the worker's debounce
REAL_TIME_DELAY_S = 2.5  # --real-time: a pick reaches the associator this long after its time
REAL_TIME_SPREAD_S = 1.5  # ... plus up to this much (records, picker windows)


def reassociate(
    out: Path, picker: str = "phasenet", *, step_s: float = STEP_S, real_time: bool = False
) -> tuple[dict, list, dict]:
    """Truth, the catalog standing at the end (origin, None) and the truth matches."""
    scen = out / "scenario"
    truth = json.loads((scen / "truth.json").read_text())
    path = out / f"logs_{picker.replace('+', '_')}" / "messages.jsonl"  # as bench_swarm.py
    rows = [json.loads(line) for line in open(path)]
    picks = [r for r in rows if r.get("type") == "Pick"]
    if not picks:
        raise SystemExit(f"no picks in {path}")
    picks.sort(key=lambda r: (r["time_epoch_s"], r["pick_id"]))
    if real_time:
        late = np.random.default_rng(0).uniform(0.0, REAL_TIME_SPREAD_S, len(picks))
        for r, dt in zip(picks, late, strict=True):
            r["created_epoch_s"] = r["time_epoch_s"] + REAL_TIME_DELAY_S + float(dt)
    picks.sort(key=lambda r: r["created_epoch_s"])
    settings = load_settings(None)
    assoc = Associator(VelocityModel.from_file(str(scen / "velocity_model.txt")),
                       AssociateParams.from_settings(settings.associate))  # fmt: skip
    counter = iter(range(1, 1_000_000))
    engine = OnlineAssociator(assoc, stations_from_inventory(str(scen / "stations.xml")),
                              new_id=lambda t: f"ev{next(counter):05d}")  # fmt: skip
    standing: dict[str, object] = {}

    def take(result) -> None:
        for o in result.origins:
            standing[o.event_id] = o
        for o in result.retracted:
            standing.pop(o.event_id, None)

    i = 0
    wall = picks[0]["created_epoch_s"]
    while i < len(picks):
        batch = []
        while i < len(picks) and picks[i]["created_epoch_s"] <= wall:
            p = picks[i]
            i += 1
            cand = assoc.params.is_candidate(bool(p.get("candidate")), p.get("probability", 1.0))
            batch.append(WindowPick(p["pick_id"], p["station_id"], p["time_epoch_s"],
                                    p["phase"].upper(), cand))  # fmt: skip
        if batch:
            engine.add(batch, wall)
        take(engine.step(wall))
        wall += step_s
    take(engine.step(wall + 1000.0, flush=True))
    assoc.close()
    catalog = [(o, None) for o in standing.values()]
    return truth, catalog, demo.match_events(truth, catalog)


def plot_timeline(truth: dict, catalog: list, matches: dict, path: Path) -> None:
    """The swarm on one time axis: the true earthquakes (top, size by magnitude; filled when
    found, red when missed), the catalog's events (bottom; grey crosses are false), and a
    line from each earthquake to the event matched to it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = UTCDateTime(truth["start_time"]).timestamp
    fig, ax = plt.subplots(figsize=(12, 3.2))
    matched = {v[0].event_id: k for k, v in matches.items() if v is not None}
    for e in truth["events"]:
        hit = matches[e["event_id"]]
        size = 20 + 40 * max(e["magnitude"], 0.0) ** 2
        colour = "tab:blue" if hit else "tab:red"
        ax.scatter(e["origin_time_s"], 1.0, s=size, c=colour, edgecolors="k", zorder=3)
        if hit:
            ax.plot([e["origin_time_s"], hit[0].time_epoch_s - t0], [1.0, 0.0], c="0.6", lw=0.8)
    for o, _ in catalog:
        t = o.time_epoch_s - t0
        if o.event_id in matched:
            ax.scatter(t, 0.0, s=30, c="tab:blue", marker="v", zorder=3)
        else:
            ax.scatter(t, 0.0, s=40, c="0.4", marker="x", zorder=3)
    found = sum(v is not None for v in matches.values())
    ax.set_yticks([0.0, 1.0], ["catalog", "earthquakes"])
    ax.set_ylim(-0.5, 1.5)
    ax.set_xlabel("origin time (s from the start of the scenario)")
    ax.set_title(f"{found} of {len(truth['events'])} earthquakes found (blue), missed (red); "
                 f"{len(catalog) - len(matched)} false events (grey x)")  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_swarm"))
    ap.add_argument("--picker", default="phasenet")
    ap.add_argument("--verbose", action="store_true", help="every truth and false event")
    ap.add_argument("--plot", type=Path, default=None, help="timeline of the events (PNG)")
    ap.add_argument("--step-s", type=float, default=STEP_S, help="wall time between steps")
    ap.add_argument(
        "--real-time",
        action="store_true",
        help="deliver each pick a few seconds after its own time, not when published",
    )
    args = ap.parse_args()
    truth, catalog, matches = reassociate(args.out, args.picker, step_s=args.step_s,
                                          real_time=args.real_time)  # fmt: skip
    if args.plot:
        plot_timeline(truth, catalog, matches, args.plot)
    matched = {v[0].event_id for v in matches.values() if v is not None}
    false = [o for o, _ in catalog if o.event_id not in matched]
    found = sum(v is not None for v in matches.values())
    epi, dep = [], []
    for e in truth["events"]:
        hit = matches[e["event_id"]]
        if hit:
            o = hit[0]
            epi.append(epicentral_km(e["latitude"], e["longitude"], o.latitude_deg,
                                     o.longitude_deg))  # fmt: skip
            dep.append(abs(o.depth_km - e["depth_km"]))
    print(f"events {found}/{len(truth['events'])} (+{len(false)} false)"
          + (f", epicentre median {np.median(epi):.2f} km, depth median {np.median(dep):.2f} km"
             f" (p90 {np.percentile(dep, 90):.2f} km)" if epi else ""))  # fmt: skip
    if args.verbose:
        t0 = UTCDateTime(truth["start_time"]).timestamp
        for e in truth["events"]:
            hit = matches[e["event_id"]]
            print(f"  {e['event_id']} Mw {e['magnitude']:.2f} t {e['origin_time_s']:7.2f} s  "
                  + (f"found, {len(hit[0].arrivals)} arrivals" if hit else "missed"))  # fmt: skip
        for o in sorted(false, key=lambda o: o.time_epoch_s):
            print(f"  false t {o.time_epoch_s - t0:7.2f} s  {o.latitude_deg:.3f} "
                  f"{o.longitude_deg:.3f} {o.depth_km:.1f} km  {len(o.arrivals)} arrivals  "
                  f"rms {o.rms_s or 0.0:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
