"""``firstmotion scenario``: write synthetic network data with known mechanisms.

firstmotion scenario --out DIR [--seed N] [--n-stations 30] [--n-events 5] [--duration-s 600]
                     [--region-km 100] [--sampling-rate 100] [--gaps] [--spikes]
                     [--mechanism strike/dip/rake] [--magnitudes 1.5/4] [--depths 3/15]
                     [--sensor broadband] [--reversed N] [--plot]
firstmotion scenario plot DIR
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger("firstmotion.scenario")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["make", "plot"], default="make",
                        help="make (default) a scenario, or plot an existing one")  # fmt: skip
    parser.add_argument("dir", nargs="?", help="scenario directory (for `plot`)")
    parser.add_argument("--out", help="output directory (for `make`)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n-stations", type=int, default=30)
    parser.add_argument("--n-events", type=int, default=5)
    parser.add_argument("--duration-s", type=float, default=600.0)
    parser.add_argument("--region-km", type=float, default=100.0)
    parser.add_argument("--sampling-rate", type=float, default=100.0, help="Hz")
    parser.add_argument("--gaps", action="store_true", help="drop 2-30 s of some channels")
    parser.add_argument("--spikes", action="store_true", help="add single-sample glitches")
    parser.add_argument("--mechanism", help="strike/dip/rake (deg) for every event; default random")
    parser.add_argument("--magnitudes", default="1.5/4.0", help="min/max Mw (default 1.5/4.0)")
    parser.add_argument("--depths", default="3/15", help="min/max depth km (default 3/15)")
    parser.add_argument("--centre", default="34.0/-118.0", help="lat/lon of the network centre")
    parser.add_argument("--start", default="2025-01-01T00:00:00Z", help="data start time (UTC)")
    profiles = ["broadband", "short_period", "accelerometer", "geophone"]
    parser.add_argument(
        "--sensor", default="broadband", choices=profiles,
        help="sensor kind of every station (channel codes, response, units)",
    )  # fmt: skip
    parser.add_argument("--noise-profile", choices=profiles, help="default: the sensor's own")
    parser.add_argument("--velocity-model", help="model file (default: built-in socal_hk1977)")
    parser.add_argument(
        "--reversed", type=int, default=0, metavar="N",
        help="N stations with the vertical wired upside down (listed in reversals.csv)",
    )  # fmt: skip
    parser.add_argument("--plot", action="store_true", help="also write DIR/scenario.png")


def _pair(text: str, name: str) -> tuple[float, float]:
    parts = text.split("/")
    if len(parts) != 2:
        raise ValueError(f"{name} must look like a/b, got {text!r}")
    return float(parts[0]), float(parts[1])


def run(args: argparse.Namespace) -> int:
    from stream.scenario.plot import plot_scenario_dir

    if args.action == "plot":
        target = args.dir or args.out
        if not target:
            print("firstmotion scenario plot: give the scenario directory", file=sys.stderr)
            return 2
        print(plot_scenario_dir(target))
        return 0
    if not args.out:
        print("firstmotion scenario: --out DIR is required", file=sys.stderr)
        return 2
    from stream.scenario import ScenarioConfig, make_scenario, write_scenario
    from stream.scenario.config import parse_mechanism

    try:
        lat, lon = _pair(args.centre, "--centre")
        config = ScenarioConfig(
            seed=args.seed, n_stations=args.n_stations, n_events=args.n_events,
            duration_s=args.duration_s, region_km=args.region_km,
            sampling_rate_hz=args.sampling_rate, gaps=args.gaps, spikes=args.spikes,
            mechanism=parse_mechanism(args.mechanism) if args.mechanism else None,
            magnitude_range=_pair(args.magnitudes, "--magnitudes"),
            depth_range_km=_pair(args.depths, "--depths"), centre_lat_deg=lat,
            centre_lon_deg=lon, start_time=args.start, noise_profile=args.noise_profile,
            sensor=args.sensor,
            velocity_model=args.velocity_model, reversed_stations=args.reversed,
        )  # fmt: skip
    except ValueError as exc:
        print(f"firstmotion scenario: {exc}", file=sys.stderr)
        return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)  # an unwritable --out fails first
    t0 = time.perf_counter()
    scenario = make_scenario(config, progress=True)
    paths = write_scenario(scenario, args.out)
    n_pol = sum(e["n_polarities"] for e in scenario.truth["events"])
    log.info(
        "scenario written",
        extra={"out": str(args.out), "stations": len(scenario.stations),
               "events": len(scenario.events), "polarities": n_pol,
               "mseed_files": len(paths["mseed"]), "seconds": round(time.perf_counter() - t0, 2)},
    )  # fmt: skip
    print(f"wrote {len(paths['mseed'])} miniSEED files, {paths['stationxml'].name}, "
          f"{paths['truth_json'].name}, {paths['quakeml'].name} to {args.out}")  # fmt: skip
    for ev in scenario.truth["events"]:
        print(f"  {ev['event_id']} {ev['origin_time']} Mw {ev['magnitude']:.2f} "
              f"depth {ev['depth_km']:.1f} km  {ev['strike']:.0f}/{ev['dip']:.0f}/{ev['rake']:.0f}"
              f"  {ev['n_polarities']} polarities")  # fmt: skip
    if args.plot:
        print(plot_scenario_dir(args.out))
    return 0
