"""Real continuous data through every stage: the two TexNet earthquakes replayed over SeedLink.

Run from the repository root (``FIRSTMOTION_SHARED`` names the shared folder when it is not
``../shared``)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_texnet_pipeline.py [--pickers phasenet] \\
        [--velocity-model FILE] [--associate KEY=VALUE ...] [--out /tmp/bench_texnet] \\
        [--json out.json] [--plot map.png]

``$FIRSTMOTION_SHARED/data/texnet2017`` holds two West-Texas earthquakes (ML 1.85 and 1.63,
five days apart, 13 and 12 stations mostly 100-334 km away, 40 and 200 Hz, two minutes of
three-component data each) with the analysts' QuakeML: origins, P and S picks, six P
first motions. There is no StationXML: the stations are placed from the QuakeML arrivals'
azimuth and distance (:func:`firstmotion.event_catalogs.stations_from_arrivals`) and written
as a StationXML for the stages. The records are replayed by ``firstmotion replay`` (20x, the
five-day gap skipped) through the stages as ``benchmarks/bench_swarm.py`` runs them:
``stream`` (the learned picker, all components), ``worker polarity``, ``worker associate``
(with ``--velocity-model``, default the built-in southern-California model: no West-Texas
model ships with the data), ``worker mechanism`` and ``worker catalog``.

Scores, against the analysts: P and S picks at the stations within 0.1 / 0.5 s of their picks;
events matched (:func:`firstmotion.demo.match_events`: origin time within 3 s, epicentre
within 25 km), epicentre and depth errors; at the analysts' first motions, the polarity the
pipeline read for the arrival it located with.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_swarm import _station_key, run_stages  # noqa: E402

NAMES = ("texnet2017cvmt", "texnet2017dfac")


def _shared() -> Path:
    return Path(os.environ.get("FIRSTMOTION_SHARED", ROOT.parent / "shared"))


def build_folder(out: Path) -> dict[str, Any]:
    """``out/scenario``: ``mseed/`` (links to the two records), ``stations.xml`` (placed from
    the arrivals) and ``truth.json`` (the analysts' origins and picks in the scenario form
    the pipeline benchmark reads: per station P and S times and the P first motion)."""
    from obspy import UTCDateTime, read
    from obspy import read_events as obspy_events
    from obspy.core.inventory import Channel, Inventory, Network, Site, Station

    from firstmotion.event_catalogs import read_events, stations_from_arrivals

    base = _shared() / "data" / "texnet2017"
    scen = out / "scenario"
    (scen / "mseed").mkdir(parents=True, exist_ok=True)
    records = [base / f"{n}.mseed" for n in NAMES]
    if not all(p.exists() for p in records):
        raise SystemExit(f"no TexNet records in {base} (set FIRSTMOTION_SHARED)")
    for p in records:
        link = scen / "mseed" / p.name
        if not link.exists():
            link.symlink_to(p.resolve())
    events = [e for n in NAMES for e in read_events([str(base / f"{n}.qml")])]
    coords = stations_from_arrivals(events)
    traces: dict[tuple[str, str], dict[str, float]] = {}
    for p in records:
        for tr in read(str(p), headonly=True):
            key = (tr.stats.network, tr.stats.station)
            traces.setdefault(key, {})[f"{tr.stats.location}.{tr.stats.channel}"] = float(
                tr.stats.sampling_rate
            )
    networks: dict[str, Network] = {}
    placed = 0
    for (net, sta), chans in sorted(traces.items()):
        if (net, sta) not in coords:
            continue  # no arrival places it
        lat, lon = coords[(net, sta)]
        channels = []
        for loc_cha, rate in sorted(chans.items()):
            loc, cha = loc_cha.split(".")
            az, dip = {"Z": (0.0, -90.0), "N": (0.0, 0.0), "1": (0.0, 0.0)}.get(
                cha[-1], (90.0, 0.0)
            )
            channels.append(Channel(cha, loc, lat, lon, 0.0, 0.0, azimuth=az, dip=dip,
                                    sample_rate=rate))  # fmt: skip
        station = Station(sta, lat, lon, 0.0, channels=channels, site=Site(name=sta))
        networks.setdefault(net, Network(net)).stations.append(station)
        placed += 1
    Inventory(networks=list(networks.values()), source="firstmotion bench_texnet_pipeline").write(
        str(scen / "stations.xml"), format="STATIONXML"
    )
    truth_events = []
    for n in NAMES:
        cat = obspy_events(str(base / f"{n}.qml"))
        ev = cat[0]
        o = ev.preferred_origin() or ev.origins[0]
        mag = ev.preferred_magnitude() or (ev.magnitudes[0] if ev.magnitudes else None)
        stations: dict[str, dict[str, Any]] = {}
        for pk in ev.picks:
            phase = (pk.phase_hint or "")[:1].upper()
            if phase not in ("P", "S"):
                continue
            w = pk.waveform_id
            row = stations.setdefault(
                f"{w.network_code}.{w.station_code}",
                {"station_id": f"{w.network_code}.{w.station_code}", "polarity": 0},
            )
            row[f"{phase.lower()}_time"] = str(pk.time)
            if phase == "P" and pk.polarity in ("positive", "negative"):
                row["polarity"] = 1 if pk.polarity == "positive" else -1
        truth_events.append({
            "event_id": n, "origin_time": str(o.time), "origin_time_s": float(o.time.timestamp),
            "latitude": o.latitude, "longitude": o.longitude, "depth_km": (o.depth or 0.0) / 1e3,
            "magnitude": mag.mag if mag else None, "strike": None, "dip": None, "rake": None,
            "stations": list(stations.values()),
        })  # fmt: skip
    last_s = max(e["origin_time_s"] for e in truth_events)
    truth = {"events": truth_events, "stations_placed": placed,
             "end_time": str(UTCDateTime(last_s + 120))}  # fmt: skip
    (scen / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def score(truth: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Picks, events and polarities of one run (:func:`bench_swarm.run_stages`) against the
    analysts."""
    from obspy import UTCDateTime

    from firstmotion import demo

    picks = [p for p in run["picks"] if not p.candidate]
    catalog = run["catalog"]
    out: dict[str, Any] = {"wall_s": run["wall_s"], "picks": {}, "events": []}
    by: dict[tuple[str, str], list[float]] = {}
    for p in picks:
        by.setdefault((_station_key(p.station_id), p.phase.upper()), []).append(p.time_epoch_s)
    for phase in ("P", "S"):
        errs = []
        for e in truth["events"]:
            for a in e["stations"]:
                t = a.get(f"{phase.lower()}_time")
                if t is None:
                    continue
                got = np.asarray(by.get((a["station_id"], phase), []))
                t_s = UTCDateTime(t).timestamp
                errs.append(float(np.min(np.abs(got - t_s))) if got.size else np.inf)
        e_arr = np.asarray(errs)
        out["picks"][phase] = {"readings": int(e_arr.size),
                               "within_0.1": int(np.sum(e_arr <= 0.1)),
                               "within_0.5": int(np.sum(e_arr <= 0.5))}  # fmt: skip
    out["picks_published"] = {ph: sum(1 for p in picks if p.phase.upper() == ph)
                              for ph in ("P", "S")}  # fmt: skip
    matches = demo.match_events(truth, catalog)
    pols = {p.pick_id: p for p in run["polarities"]}
    every = {p.pick_id: p for p in run["picks"]}
    names = {1: "up", -1: "down", 0: "unknown"}
    for e in truth["events"]:
        hit = matches[e["event_id"]]
        row: dict[str, Any] = {"event_id": e["event_id"], "found": hit is not None}
        if hit is not None:
            o, mech = hit
            labels = {a["station_id"]: a["polarity"] for a in e["stations"] if a["polarity"]}
            judged = []
            for a in o.arrivals:
                label = labels.get(_station_key(a.station_id))
                if a.phase == "P" and label:
                    read = pols.get(a.pick_id)
                    judged.append(f"{_station_key(a.station_id)} analyst {names[label]}, read "
                                  f"{names[read.polarity] if read else 'none'}")  # fmt: skip
            # the located P arrivals at the analysts' P stations (picks and the candidate
            # onsets the event took): what event-guided picking gives on these onsets
            located = {_station_key(a.station_id): every[a.pick_id]
                       for a in o.arrivals if a.phase == "P" and a.pick_id in every}  # fmt: skip
            errs = []
            for a in e["stations"]:
                pk = located.get(a["station_id"])
                if a.get("p_time") is not None and pk is not None:
                    errs.append((abs(pk.time_epoch_s - UTCDateTime(a["p_time"]).timestamp),
                                 pk.candidate))  # fmt: skip
            row["analyst_p"] = sum(1 for a in e["stations"] if a.get("p_time") is not None)
            row["located_p_within"] = {
                str(lim): {
                    "all": sum(1 for d, _ in errs if d <= lim),
                    "candidates": sum(1 for d, c in errs if d <= lim and c),
                }
                for lim in (0.1, 0.5)
            }
            row.update(
                epicentre_error_km=round(demo._distance_km(e, o), 2),
                depth_km=round(o.depth_km, 1),
                depth_error_km=round(o.depth_km - e["depth_km"], 2),
                origin_time_error_s=round(o.time_epoch_s - e["origin_time_s"], 2),
                arrivals=len(o.arrivals),
                p_arrivals=sum(1 for a in o.arrivals if a.phase == "P"),
                first_motions=judged,
                mechanism=None
                if mech is None
                else f"quality {mech.quality}, {mech.n_polarities} polarities",
            )
        out["events"].append(row)
    matched = {h[0].event_id for h in matches.values() if h is not None}
    out["false_events"] = [
        {"time": str(UTCDateTime(o.time_epoch_s)), "latitude": round(o.latitude_deg, 3),
         "longitude": round(o.longitude_deg, 3), "arrivals": len(o.arrivals)}
        for o, _ in catalog if o.event_id not in matched
    ]  # fmt: skip
    return out


def plot_map(truth: dict[str, Any], run: dict[str, Any], scen: Path, path: Path) -> None:
    """Stations (filled where a P pick lies within 0.5 s of an analyst's P), the analysts'
    epicentres and the pipeline's, joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from obspy import UTCDateTime, read_inventory

    from firstmotion import demo

    picked = set()
    for e in truth["events"]:
        for a in e["stations"]:
            if "p_time" not in a:
                continue
            t = UTCDateTime(a["p_time"]).timestamp
            if any(_station_key(p.station_id) == a["station_id"] and p.phase == "P"
                   and not p.candidate and abs(p.time_epoch_s - t) <= 0.5
                   for p in run["picks"]):  # fmt: skip
                picked.add(a["station_id"])
    fig, ax = plt.subplots(figsize=(7, 6))
    for net in read_inventory(str(scen / "stations.xml")):
        for sta in net:
            key = f"{net.code}.{sta.code}"
            ax.plot(sta.longitude, sta.latitude, "^", ms=9, mec="k",
                    mfc="tab:green" if key in picked else "white")  # fmt: skip
            ax.annotate(sta.code, (sta.longitude, sta.latitude), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")  # fmt: skip
    matches = demo.match_events(truth, run["catalog"])
    notes = []
    for i, e in enumerate(truth["events"]):
        ax.plot(e["longitude"], e["latitude"], "*", ms=16, color="gold", mec="k")
        ax.annotate(str(i + 1), (e["longitude"], e["latitude"]), fontsize=9, weight="bold",
                    xytext=(-14, 6) if i % 2 == 0 else (8, -14),
                    textcoords="offset points")  # fmt: skip
        hit = matches[e["event_id"]]
        note = f"{i + 1}: {e['event_id']} ML {e['magnitude']:.2f}"
        if hit is not None:
            o = hit[0]
            ax.plot([e["longitude"], o.longitude_deg], [e["latitude"], o.latitude_deg], "r-",
                    lw=0.8)  # fmt: skip
            ax.plot(o.longitude_deg, o.latitude_deg, "o", ms=7, mfc="none", mec="r")
            note += f", located {demo._distance_km(e, o):.1f} km off"
        else:
            note += ", not found"
        notes.append(note)
    ax.plot([], [], "^", mfc="tab:green", mec="k", label="station, P picked within 0.5 s")
    ax.plot([], [], "^", mfc="white", mec="k", label="station, no P pick")
    ax.plot([], [], "*", color="gold", mec="k", label="analysts' epicentre")
    ax.plot([], [], "o", mfc="none", mec="r", label="located by the pipeline")
    ax.legend(fontsize=7, loc="lower left")
    ax.set(xlabel="longitude", ylabel="latitude", aspect=1.0 / np.cos(np.radians(31.5)),
           title="TexNet 2017 through every stage\n" + "; ".join(notes))  # fmt: skip
    ax.title.set_fontsize(9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    from firstmotion.velocity import DEFAULT_MODEL_FILE

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pickers", default="phasenet")
    ap.add_argument("--speed", type=float, default=20.0)
    ap.add_argument("--velocity-model", type=Path, default=DEFAULT_MODEL_FILE)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_texnet"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None, help="station and epicentre map (PNG)")
    ap.add_argument(
        "--associate", action="append", default=[], metavar="KEY=VALUE",
        help="an [associate] setting for the stages (repeatable); the defaults suit a local "
        "network, these stations are 100-334 km away: window_s=120 max_distance_km=400",
    )  # fmt: skip
    args = ap.parse_args()
    env = {}
    for item in args.associate:
        key, _, value = item.partition("=")
        env[f"FIRSTMOTION_ASSOCIATE__{key.strip().upper()}"] = value.strip()
    truth = build_folder(args.out)
    print(f"TexNet: {len(truth['events'])} events, {truth['stations_placed']} stations placed "
          f"from the arrivals")  # fmt: skip
    results = []
    for picker in [p.strip() for p in args.pickers.split(",") if p.strip()]:
        run = run_stages(picker, args.out / "scenario", args.velocity_model, args.out, args.speed,
                         env)  # fmt: skip
        res = {"picker": picker, "associate": args.associate, **score(truth, run)}
        print(json.dumps(res, indent=1, default=str))
        results.append(res)
        if args.plot:
            plot_map(truth, run, args.out / "scenario", args.plot)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
