"""``firstmotion run --config F`` as a network centre runs it: one config file names the
SeedLink server and its stream selection, the StationXML inventory, the 1-D velocity model,
the reversal list and a Redis with a password; the catalog fills with the scenario's events."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from firstmotion.bus import Bus
from firstmotion.config import load_settings
from firstmotion.demo import match_events, read_catalog
from firstmotion.redis_server import RedisServer, free_port

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "firstmotion.cli", *args]


def _wait_port(port: int, proc: subprocess.Popen, timeout_s: float) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the replay server exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(port)


def network_config(tmp_path: Path, scen: Path, *, redis_url: str, seedlink: str) -> Path:
    """A config file for the scenario's network, paths relative to the file (as shipped)."""
    config = tmp_path / "network.toml"
    rel = Path("scenario")
    config.write_text(
        f"""
[redis]
url = "{redis_url}"
[seedlink]
server = "{seedlink}"
streams = ["FM_*"]
statefile = "seedlink.state"
[inventory]
stationxml = "{rel / "stations.xml"}"
[associate]
velocity_model = "{rel / "velocity_model.txt"}"
[mechanism]
reversals_file = "{rel / "reversals.csv"}"
[catalog]
web_port = {free_port()}
[metrics]
port = {free_port()}
"""
    )
    return config


def test_network_config_resolves_paths_next_to_the_file(tmp_path):
    scen = tmp_path / "scenario"
    scen.mkdir()
    (scen / "stations.xml").write_text("<x/>")
    (scen / "velocity_model.txt").write_text("0 5.5\n5.5 6.3\n")
    (scen / "reversals.csv").write_text("station,start_time,end_time\n")
    cfg = network_config(tmp_path, scen, redis_url="redis://:pw@127.0.0.1:6379/0",
                         seedlink="127.0.0.1:18000")  # fmt: skip
    s = load_settings(cfg, environ={})
    assert s.inventory.stationxml == str(scen / "stations.xml")
    assert s.associate.velocity_model == str(scen / "velocity_model.txt")
    assert s.mechanism.reversals_file == str(scen / "reversals.csv")
    # every file the stages will read is checked as they will read it, all at once
    (scen / "stations.xml").unlink()
    (scen / "reversals.csv").unlink()
    (scen / "velocity_model.txt").write_text("0 5500\n5500 6300\n")  # m/s
    with pytest.raises(ValueError) as err:
        load_settings(cfg, environ={})
    for problem in ("inventory.stationxml: no such file", "mechanism.reversals_file: no such file",
                    "associate.velocity_model: .*velocity_model.txt: .*must be km/s"):  # fmt: skip
        assert re.search(problem, str(err.value)), problem


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_run_with_a_network_config_finds_the_scenario_events(tmp_path):
    scen = tmp_path / "scenario"
    subprocess.run(
        _cli("scenario", "--out", str(scen), "--seed", "3", "--n-stations", "14",
             "--n-events", "2", "--duration-s", "120", "--region-km", "45"),
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    truth = json.loads((scen / "truth.json").read_text())
    assert {s["network"] for s in truth["stations"]} == {"FM"}
    port = free_port()
    with RedisServer(password="s3cret pass/word") as redis_server:
        replay = subprocess.Popen(
            _cli("replay", "--data", str(scen / "mseed"), "--port", str(port), "--speed", "20"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        run = None
        bus = Bus.from_url(redis_server.url)
        try:
            _wait_port(port, replay, 60)
            config = network_config(tmp_path, scen, redis_url=redis_server.url,
                                    seedlink=f"127.0.0.1:{port}")  # fmt: skip
            settings = load_settings(config, environ={})
            log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - closed below
            run = subprocess.Popen(_cli("run", "--config", str(config), "--grace-s", "20"),
                                   stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)  # fmt: skip
            deadline = time.monotonic() + 300
            found: dict = {}
            while time.monotonic() < deadline:
                assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
                found = match_events(truth, read_catalog(bus))
                if all(v is not None and v[1] is not None for v in found.values()):
                    break
                time.sleep(2)
            tail = (tmp_path / "run.log").read_text(errors="replace")[-3000:]
            assert all(v is not None for v in found.values()), f"events not located:\n{tail}"
            assert all(v[1] is not None for v in found.values()), f"no mechanisms:\n{tail}"
            # the page of the run shows them, with the inventory's stations on the map
            web = f"http://127.0.0.1:{settings.catalog.web_port}"
            with urllib.request.urlopen(web + "/api/stations", timeout=10) as resp:
                stations = json.loads(resp.read())
            assert {s["station"] for s in stations} >= {
                f"FM.{s['station']}" for s in truth["stations"]
            }
            assert {s["source"] for s in stations} == {"inventory"}
            run.send_signal(signal.SIGTERM)
            assert run.wait(60) == 0
            log.close()
        finally:
            if run is not None and run.poll() is None:
                run.kill()
                run.wait()
            replay.terminate()
            replay.wait(20)
            bus.close()


def test_the_documented_network_example_is_a_valid_config(tmp_path):
    example = REPO / "docs" / "examples" / "puerto_rico.toml"
    (tmp_path / "net.toml").write_text(example.read_text())
    (tmp_path / "pr_stations.xml").write_text("<FDSNStationXML/>")
    s = load_settings(
        tmp_path / "net.toml", environ={"FIRSTMOTION_REDIS__URL": "redis://:pw@h:6379/0"}
    )
    assert s.seedlink.server == "rtserve.iris.washington.edu:18000"
    assert s.inventory.stationxml == str(tmp_path / "pr_stations.xml")
    assert s.redis.url == "redis://:pw@h:6379/0"
