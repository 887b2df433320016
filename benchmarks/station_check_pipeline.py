"""Reversed stations found from the live catalog: a scenario with stations wired upside down,
the whole pipeline run without the reversal list, then ``invert --station-check`` on the
catalog's JSON export.

Run from the repository root::

    .venv/bin/python benchmarks/station_check_pipeline.py [--out /tmp/station_check] \\
        [--seed 21] [--n-events 10] [--reversed 3] [--documented]

The scenario (``firstmotion scenario --reversed N``: N stations' verticals upside down, listed
in its ``reversals.csv``) is replayed at 10x over SeedLink into ``firstmotion run`` with a
network config that gives the inventory and velocity model but no ``mechanism.reversals_file``
(as a network that does not know yet), on a private Redis. When every event has a mechanism
(or the time is up) the catalog is exported (``catalog export --format json``) and
``firstmotion invert --input cat.json --station-check stations.csv`` compares each station's
polarities with the mechanisms. Printed: events and mechanisms, the stations the scenario
reversed, those flagged, the station table's head, the catalog worker's live count
(``firstmotion_catalog_station_polarities_total`` of the events made final in the run) and
the stations the live page outlines (``/api/stations``).

``--documented``: the network's StationXML says what the scenario did (the reversed
verticals at dip +90, pointing down), and the mechanism worker reads it
(``mechanism.stationxml_reversals``): the export carries the polarities its mechanisms used,
so no station should be flagged and the reversed stations' live counts should agree.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "firstmotion.cli", *args]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/station_check"))
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--n-events", type=int, default=10)
    parser.add_argument("--reversed", type=int, default=3)
    parser.add_argument(
        "--documented", action="store_true",
        help="the StationXML documents the reversed verticals (dip +90)",
    )  # fmt: skip
    args = parser.parse_args()
    from firstmotion.bus import Bus
    from firstmotion.demo import _free_port, match_events, read_catalog
    from firstmotion.redis_server import RedisServer

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    scen = out / "scenario"
    duration = 90 * args.n_events
    if not (scen / "truth.json").exists():
        subprocess.run(_cli("scenario", "--out", str(scen), "--seed", str(args.seed),
                            "--n-stations", "30", "--n-events", str(args.n_events),
                            "--duration-s", str(duration), "--region-km", "60",
                            "--reversed", str(args.reversed)), check=True, cwd=ROOT)  # fmt: skip
    with (scen / "reversals.csv").open() as fh:
        reversed_ids = {f"{r['network']}.{r['station']}.{r['location']}.{r['channel']}"
                        for r in csv.DictReader(fh)}  # fmt: skip
    truth = json.loads((scen / "truth.json").read_text())
    inventory = scen / "stations.xml"
    if args.documented:
        inventory = document_reversed(inventory, reversed_ids, out / "stations_documented.xml")
    (out / "seedlink.state").unlink(missing_ok=True)  # a rerun reads the records again
    port, metrics_port, web_port = _free_port(), _free_port(), _free_port()
    with RedisServer() as server:
        replay = subprocess.Popen(
            _cli("replay", "--data", str(scen / "mseed"), "--port", str(port), "--speed", "10"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
        )  # fmt: skip
        config = out / "network.toml"
        config.write_text(
            f'[redis]\nurl = "{server.url}"\n'
            f'[seedlink]\nserver = "127.0.0.1:{port}"\nstreams = ["FM_*"]\n'
            f'statefile = "{out / "seedlink.state"}"\n'
            f'[inventory]\nstationxml = "{inventory}"\n'
            f'[associate]\nvelocity_model = "{scen / "velocity_model.txt"}"\n'
            f"[catalog]\nweb_port = {web_port}\n[metrics]\nport = {metrics_port}\n"
        )
        bus = Bus.from_url(server.url)
        with (out / "run.log").open("wb") as log:
            time.sleep(2)
            run = subprocess.Popen(_cli("run", "--config", str(config), "--grace-s", "20"),
                                   stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)  # fmt: skip
            deadline = time.monotonic() + duration / 10 + 120
            n_mech = 0
            while time.monotonic() < deadline and run.poll() is None:
                found = match_events(truth, read_catalog(bus))
                n_mech = sum(1 for v in found.values() if v is not None and v[1] is not None)
                if n_mech == len(found):
                    break
                time.sleep(3)
            export = _cli("catalog", "export", "--redis", server.url, "--format", "json",
                          "--output", str(out / "cat.json"))  # fmt: skip
            subprocess.run(export, check=True, cwd=ROOT)
            live = live_counts(metrics_port)
            page = page_counts(web_port)
            run.send_signal(signal.SIGTERM)
            run.wait(60)
        replay.terminate()
        replay.wait(20)
        bus.close()
    report = out / "stations.csv"
    subprocess.run(_cli("invert", "--input", str(out / "cat.json"), "--output",
                        str(out / "mechanisms.jsonl"), "--station-check", str(report),
                        "--no-progress"), check=True, cwd=ROOT)  # fmt: skip
    rows = list(csv.DictReader(report.open()))
    flagged = {r["station"] for r in rows if r["likely_reversed"] == "1"}
    print(f"{len(truth['events'])} events, {n_mech} with a mechanism in the catalog")
    print(f"reversed in the scenario: {sorted(reversed_ids)}")
    print(f"flagged likely reversed:  {sorted(flagged)}")
    if args.documented:  # the StationXML says so: the stages correct them, none to flag
        print(f"documented in the StationXML (dip +90), so none expected: {len(flagged)} "
              f"flagged (of {len(rows)} stations checked)")  # fmt: skip
    else:
        right, missed = len(flagged & reversed_ids), len(reversed_ids - flagged)
        print(f"right: {right}, missed: {missed}, false: {len(flagged - reversed_ids)} "
              f"(of {len(rows)} stations checked)")  # fmt: skip
    for r in rows[:6]:
        print("  ", ", ".join(f"{k}={v}" for k, v in r.items()))
    # the live count: events made final during the run (quality B or better here)
    others = [0, 0]
    print("live, firstmotion_catalog_station_polarities_total (agree / disagree):")
    for station, (agree, disagree) in sorted(live.items()):
        if station in reversed_ids:
            print(f"   {station}: {agree:.0f} / {disagree:.0f}")
        else:
            others[0], others[1] = others[0] + agree, others[1] + disagree
    print(f"   the other stations together: {others[0]:.0f} / {others[1]:.0f}")
    outlined = sorted(k for k, s in page.items() if s["mostly_disagree"])
    print(
        f"the page's /api/stations: {len(page)} stations counted; outlined (most of >= 6 "
        f"disagree): {outlined}"
    )
    return 0


def document_reversed(path: Path, channel_ids: set[str], out: Path) -> Path:
    """A copy of the StationXML at ``path`` with the verticals ``channel_ids`` at dip +90
    (pointing down: what a network's metadata says of a sensor installed that way)."""
    from obspy import read_inventory

    inv = read_inventory(str(path))
    for net in inv:
        for sta in net:
            for cha in sta:
                if f"{net.code}.{sta.code}.{cha.location_code}.{cha.code}" in channel_ids:
                    cha.dip = 90.0
    inv.write(str(out), "STATIONXML")
    return out


def page_counts(web_port: int) -> dict[str, dict]:
    """Each counted station as the live page's ``/api/stations`` serves it (its
    ``polarities`` and ``mostly_disagree``)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/api/stations", timeout=10) as resp:
        return {s["station"]: s for s in json.loads(resp.read()) if "polarities" in s}


def live_counts(first_port: int) -> dict[str, list[float]]:
    """The catalog worker's per-station polarity counter, read from the run's metrics ports
    (``firstmotion run`` gives its stages consecutive ports from ``metrics.port``)."""
    import re
    import urllib.request

    counts: dict[str, list[float]] = {}
    pattern = re.compile(r"^firstmotion_catalog_station_polarities_total\{(.*)\} (\S+)$")
    for port in range(first_port, first_port + 8):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            m = pattern.match(line)
            if m:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
                slot = counts.setdefault(labels["station"], [0.0, 0.0])
                slot[labels["agreement"] == "disagree"] += float(m.group(2))
    return counts


if __name__ == "__main__":
    raise SystemExit(main())
