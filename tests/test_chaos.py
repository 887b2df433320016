"""Chaos: the whole pipeline as real processes (replay SeedLink server, stream, two polarity
workers, associator, mechanism, catalog) on a real Redis, run once undisturbed and once with
poison entries in every stream, a corrupt file in the replay data and a polarity worker
killed (kill -9) while it holds picks. The disturbed run must end with every other worker up
and healthy, every poison entry in the dead letters of every group that reads its stream, the
killed worker's picks handled by the other one within seconds, and the catalog of the
undisturbed run: the same events with the same picks, the same polarity per pick.

(Restarts of single stages, a Redis restart and SeedLink reconnects are covered in
test_run.py, test_bus.py, test_associate.py and test_stream_ingest.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest

from firstmotion.bus import Bus, as_text
from firstmotion.demo import GROUPS, _wait_quiet, read_catalog
from firstmotion.messages import (
    MAX_ENTRY_BYTES,
    Mechanism,
    MessageError,
    Origin,
    Pick,
    Polarity,
    decode,
    encode,
)
from firstmotion.redis_server import free_port
from firstmotion.run import stop_processes
from tests.test_robustness import corrupt_mseed

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "firstmotion.cli", *args]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chaos") / "scenario"
    subprocess.run(
        _cli("scenario", "--out", str(out), "--seed", "3", "--n-stations", "16",
             "--n-events", "2", "--duration-s", "150", "--region-km", "50"),
        check=True, cwd=REPO, capture_output=True, timeout=300,
    )  # fmt: skip
    return out


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def _tampered(message, **changes) -> dict[str, bytes]:
    obj = json.loads(message.to_json())
    obj.update(changes)
    return {"type": type(message).__name__.encode(), "data": json.dumps(obj).encode()}


def poison_entries() -> dict[str, list[dict]]:
    """Per stream: a deeply nested entry, an oversized one, a message of another stream's
    type, and messages with absurd values."""
    t = 1.7e9
    pick = Pick(
        pick_id="XX.P1..HHZ@1700000000.000", station_id="XX.P1..HHZ", time_epoch_s=t,
        sampling_rate_hz=100.0, start_time_epoch_s=t - 1, pick_index=10, samples=[0.0] * 20,
        snr=5.0, amplitude=1.0, created_epoch_s=t,
    )  # fmt: skip
    pol = Polarity(
        pick_id=pick.pick_id, station_id=pick.station_id, time_epoch_s=t, polarity=1,
        probabilities=(1.0, 0.0, 0.0), confidence=1.0, model_version="m", created_epoch_s=t,
    )  # fmt: skip
    origin = Origin(
        event_id="evpoison", revision=0, time_epoch_s=t, latitude_deg=0.0, longitude_deg=0.0,
        depth_km=5.0, created_epoch_s=t,
    )  # fmt: skip
    mech = Mechanism(
        event_id="evpoison", revision=0, origin_revision=0, strike=10.0, dip=50.0, rake=90.0,
        aux_strike=190.0, aux_dip=40.0, aux_rake=90.0, quality="A",
        fault_plane_uncertainty_deg=10.0, aux_plane_uncertainty_deg=10.0, misfit=0.0,
        probability=1.0, station_distribution_ratio=0.5, n_polarities=8, n_stations=8,
        model_version="m", created_epoch_s=t,
    )  # fmt: skip

    def common(kind: str, wrong) -> list[dict]:
        return [
            {"type": kind, "data": "[" * 100_000},
            {"type": kind, "data": b"0" * (MAX_ENTRY_BYTES + 1)},
            encode(wrong),
        ]

    return {
        "picks": [*common("Pick", origin), _tampered(pick, time_epoch_s=1e12)],
        "polarities": [*common("Polarity", pick), _tampered(pol, confidence=5.0)],
        "origins": [
            *common("Origin", pol),
            _tampered(origin, event_id="e" * 1_000_000),
            _tampered(origin, depth_km=1e6),
            _tampered(origin, time_epoch_s=1e12),
        ],
        "mechanisms": [*common("Mechanism", origin), _tampered(mech, strike=1e6)],
    }


def run_pipeline(scenario: Path, work: Path, redis_url: str, prefix: str, chaos: bool) -> dict:
    """Run every stage on ``scenario`` under key ``prefix``; returns what the run left."""
    work.mkdir(parents=True)
    data = work / "data"
    shutil.copytree(scenario / "mseed", data)
    env = {**os.environ, "PYTHONPATH": str(REPO), "FIRSTMOTION_REDIS__URL": redis_url,
           "FIRSTMOTION_REDIS__PREFIX": prefix}  # fmt: skip
    bus = Bus.from_url(redis_url, prefix)
    result: dict = {"poison": {}}
    if chaos:
        corrupt_mseed(data / "zz_corrupt.mseed")
        for stream, entries in poison_entries().items():
            result["poison"][stream] = [
                as_text(bus.client.xadd(bus.key(stream), e)) for e in entries
            ]
    inventory = str(scenario / "stations.xml")
    procs: dict[str, subprocess.Popen] = {}
    ports: dict[str, int] = {}
    with ExitStack() as stack:

        def start(name: str, cmd: list[str], extra_env: dict | None = None) -> None:
            log = stack.enter_context(open(work / f"{name}.log", "wb"))
            procs[name] = subprocess.Popen(
                cmd, cwd=REPO, env={**env, **(extra_env or {})}, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            stack.callback(lambda p=procs[name]: p.poll() is None and p.kill())

        seedlink = free_port()
        start("replay", _cli("replay", "--data", str(data), "--port", str(seedlink),
                             "--speed", "20"))  # fmt: skip
        workers = {
            "polarity-a": ["worker", "polarity", "--name", "polarity-a"],
            "polarity-b": ["worker", "polarity", "--name", "polarity-b"],
            "associate": ["worker", "associate", "--inventory", inventory],
            "mechanism": ["worker", "mechanism"],
            "catalog": ["worker", "catalog", "--no-web"],
        }
        for name, args in workers.items():
            ports[name] = free_port()
            # the victim blocks long in its reads, so that once stopped it still gets picks
            victim = chaos and name == "polarity-b"
            extra = {"FIRSTMOTION_REDIS__BLOCK_MS": "60000"} if victim else None
            start(name, _cli(*args, "--metrics-port", str(ports[name])), extra)
        for name, port in ports.items():
            _wait(lambda p=port: _get(f"http://127.0.0.1:{p}/healthz") == 200, 180,
                  f"{name} healthy")  # fmt: skip
        result["skipped_file_logged"] = False
        log_text = (work / "replay.log").read_text(errors="replace")
        result["skipped_file_logged"] = "skipping" in log_text and "zz_corrupt" in log_text
        if chaos:
            time.sleep(1.0)  # polarity-b is now blocked in its read
            procs["polarity-b"].send_signal(signal.SIGSTOP)
        # STA/LTA on the verticals: this test is about the stages' robustness; the learned
        # picker reads many of the scenario's S as P and opens extra events (docs/picker.md)
        start("stream", _cli("stream", "--seedlink", f"127.0.0.1:{seedlink}", "--streams",
                             "*_*:??Z", "--picker", "stalta", "--inventory", inventory,
                             "--exit-when-idle-s", "5",
                             "--statefile", str(work / "seedlink.state")))  # fmt: skip
        if chaos:

            def victim_holds() -> list[str]:
                rows = bus.client.xpending_range(
                    bus.key("picks"), "polarity", min="-", max="+", count=1000,
                    consumername="polarity-b",
                )  # fmt: skip
                return [as_text(r["message_id"]) for r in rows]

            held: list[str] = []
            _wait(lambda: held.extend(victim_holds()) or held, 120, "the victim got picks")
            procs["polarity-b"].kill()  # kill -9
            t_kill = time.monotonic()
            procs["polarity-b"].wait(10)

            def handled() -> bool:
                rows = bus.client.xpending_range(
                    bus.key("picks"), "polarity", min=held[0], max=held[-1], count=10_000
                )
                return not {as_text(r["message_id"]) for r in rows} & set(held)

            _wait(handled, 60, "the killed worker's picks handled by the other")
            result["takeover_s"] = time.monotonic() - t_kill
            result["held"] = len(held)
        procs["stream"].wait(300)
        assert procs["stream"].returncode == 0, (work / "stream.log").read_text()[-3000:]
        live = {n: p for n, p in procs.items() if n in workers and p.poll() is None}
        _wait_quiet(bus, live, 4.0, 300.0)
        result["alive"] = sorted(n for n in workers if procs[n].poll() is None)
        result["healthy"] = sorted(
            n for n in result["alive"] if _get(f"http://127.0.0.1:{ports[n]}/healthz") == 200
        )
        stop_processes(live, grace_s=20.0)
    result["catalog"] = read_catalog(bus)
    result["polarities"] = []
    for _, fields in bus.client.xrange(bus.key("polarities")):
        try:
            message = decode(fields)
        except MessageError:
            continue  # the poison put there
        if isinstance(message, Polarity):
            result["polarities"].append(message)
    result["dead"] = bus.dead_letters()
    bus.close()
    return result


def catalog_view(result: dict) -> list[tuple[float, frozenset, dict]]:
    """Per event (by origin time): its picks, and the polarity of each pick as published."""
    polarity: dict[str, int] = {}
    for p in result["polarities"]:
        assert polarity.setdefault(p.pick_id, p.polarity) == p.polarity  # duplicates agree
    out = []
    for origin, _mech in result["catalog"]:
        ids = frozenset(a.pick_id for a in origin.arrivals)
        out.append((origin.time_epoch_s, ids, {i: polarity.get(i) for i in sorted(ids)}))
    return sorted(out, key=lambda row: row[0])


@pytest.mark.timeout(900)
def test_poison_kill_and_corrupt_data_leave_the_catalog_of_an_undisturbed_run(
    scenario, tmp_path, redis_client, redis_url
):
    t0 = time.monotonic()
    calm = run_pipeline(scenario, tmp_path / "calm", redis_url, "calm:", chaos=False)
    t_calm = time.monotonic() - t0
    storm = run_pipeline(scenario, tmp_path / "storm", redis_url, "storm:", chaos=True)
    print(
        f"\nchaos: undisturbed run {t_calm:.0f} s, disturbed run "
        f"{time.monotonic() - t0 - t_calm:.0f} s; {storm['held']} picks of the killed "
        f"polarity worker handled by the other {storm['takeover_s']:.1f} s after kill -9"
    )
    workers = ["associate", "catalog", "mechanism", "polarity-a", "polarity-b"]
    assert calm["alive"] == calm["healthy"] == workers
    # every worker but the killed one is up and healthy after all the poison
    assert storm["alive"] == storm["healthy"] == [w for w in workers if w != "polarity-b"]
    assert storm["takeover_s"] < 15.0  # the lease is seconds, not the old minute

    # every poison entry is a dead letter once per group reading its stream, and nothing else
    readers = {}
    for stream, group in GROUPS:
        readers.setdefault(stream, set()).add(group)
    want = sorted(
        ("storm:" + stream, entry_id, group)
        for stream, ids in storm["poison"].items()
        for entry_id in ids
        for group in readers[stream]
    )
    got = sorted((d.stream, d.original_entry_id, d.group) for d in storm["dead"])
    assert got == want
    assert all(d.delivery_count == 1 for d in storm["dead"])  # at once, not after retries
    assert not calm["dead"]
    assert storm["skipped_file_logged"] and not calm["skipped_file_logged"]

    # the same catalog: events, picks, and polarity per pick
    calm_view, storm_view = catalog_view(calm), catalog_view(storm)
    assert len(calm_view) == 2, calm_view
    assert [ids for _, ids, _ in storm_view] == [ids for _, ids, _ in calm_view]
    assert [pol for _, _, pol in storm_view] == [pol for _, _, pol in calm_view]
    assert all(None not in pol.values() for _, _, pol in storm_view)
    for (t_storm, _, _), (t_calm, _, _) in zip(storm_view, calm_view, strict=True):
        assert abs(t_storm - t_calm) < 0.05
    assert all(m is not None for _, m in storm["catalog"])
