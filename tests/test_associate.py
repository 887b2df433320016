"""The associator: pure association/location and the worker on a real Redis.

Picks come from a scenario's truth (``make_scenario``: true P times at every station) plus
Gaussian noise (0.05 s) and 20% false picks spread uniformly in time at random stations.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np
import pytest

from firstmotion.bus import Bus
from firstmotion.geodesy import distance_azimuth
from firstmotion.messages import CatalogEvent, Origin, Pick, make_pick_id
from firstmotion.velocity import VelocityModel, trace_rays
from workers.associate import (
    GROUP,
    AssociateWorker,
    new_event_id,
    stations_from_inventory,
)
from workers.associate_locate import (
    AssociateParams,
    Associator,
    KnownEvent,
    LocatedEvent,
    StationCoords,
    WindowPick,
    associate,
    match_events,
    origin_changed,
    pyocto_table_bytes,
    station_key,
)

PICK_SIGMA_S = 0.05
MODEL = VelocityModel.default()
FALSE_FRACTION = 0.2


@dataclass(frozen=True)
class Picks:
    """Scenario picks: messages in time order, truth per pick id (event index or -1)."""

    messages: list[Pick]
    event_of: dict[str, int]
    station_row: dict[str, dict]
    start_epoch_s: float


@pytest.fixture(scope="module")
def scenario():
    from stream.scenario import ScenarioConfig, make_scenario

    return make_scenario(ScenarioConfig(n_stations=30, n_events=3, duration_s=150.0, seed=3))


@pytest.fixture(scope="module")
def associator():
    assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=6))
    yield assoc
    assoc.close()


def scenario_picks(scenario, seed: int = 0, *, coordinates: bool = True) -> Picks:
    from obspy import UTCDateTime

    rng = np.random.default_rng(seed)
    t0 = UTCDateTime(scenario.truth["start_time"]).timestamp
    coords = {f"{s.network}.{s.code}": s for s in scenario.stations}
    rows: list[tuple[float, str, int, dict | None]] = []
    for i, ev in enumerate(scenario.truth["events"]):
        for row in ev["stations"]:
            if row["p_in_data"]:
                t = t0 + row["p_time_s"] + rng.normal(0.0, PICK_SIGMA_S)
                rows.append((t, row["station_id"], i, row))
    n_false = int(round(FALSE_FRACTION * len(rows)))
    ids = [r["station_id"] for r in scenario.truth["events"][0]["stations"]]
    for _ in range(n_false):
        t = t0 + rng.uniform(0.0, scenario.config.duration_s)
        rows.append((t, ids[rng.integers(len(ids))], -1, None))
    rows.sort(key=lambda r: r[0])
    messages, event_of, station_row = [], {}, {}
    for t, sid, i, row in rows:
        st = coords[".".join(sid.split(".")[:2])]
        pick = Pick(
            pick_id=make_pick_id(sid, t),
            station_id=sid,
            time_epoch_s=t,
            sampling_rate_hz=100.0,
            start_time_epoch_s=t - 0.02,
            pick_index=2,
            samples=np.zeros(4, dtype=np.float32),
            snr=5.0,
            amplitude=1.0,
            latitude_deg=st.latitude_deg if coordinates else None,
            longitude_deg=st.longitude_deg if coordinates else None,
            elevation_m=st.elevation_m if coordinates else None,
        )
        messages.append(pick)
        event_of[pick.pick_id] = i
        if row is not None:
            station_row[pick.pick_id] = row
    return Picks(messages, event_of, station_row, t0)


def stations_of(scenario) -> dict[str, StationCoords]:
    return {
        f"{s.network}.{s.code}.": StationCoords(s.latitude_deg, s.longitude_deg, s.elevation_m)
        for s in scenario.stations
    }


def window_picks(picks: Picks) -> list[WindowPick]:
    return [WindowPick(p.pick_id, p.station_id, p.time_epoch_s) for p in picks.messages]


def check_solutions(scenario, picks: Picks, solutions: list) -> None:
    """Every truth event found once, within a few km and 0.5 s; >= 90% of its true picks
    associated to it; false picks mostly left out; arrival angles as the truth's."""
    truth = scenario.truth["events"]
    assert len(solutions) == len(truth)
    n_false = sum(1 for i in picks.event_of.values() if i < 0)
    false_used = 0
    angle_errors = []
    for sol in sorted(solutions, key=lambda s: s.time_epoch_s):
        dt = [abs(sol.time_epoch_s - picks.start_epoch_s - ev["origin_time_s"]) for ev in truth]
        i = int(np.argmin(dt))
        ev = truth[i]
        assert dt[i] < 0.5
        epi, _, _ = distance_azimuth(
            sol.latitude_deg, sol.longitude_deg, ev["latitude"], ev["longitude"]
        )
        assert float(epi) < 3.0
        assert abs(sol.depth_km - ev["depth_km"]) < 3.0
        ids = {a.pick_id for a in sol.arrivals}
        true_ids = {pid for pid, j in picks.event_of.items() if j == i}
        assert len(ids & true_ids) >= 0.9 * len(true_ids)
        wrong = [pid for pid in ids if picks.event_of[pid] >= 0 and picks.event_of[pid] != i]
        assert not wrong
        false_used += sum(1 for pid in ids if picks.event_of[pid] < 0)
        # the arrivals' takeoff angles are the model's rays at the located hypocentre
        dist = np.array([a.distance_km for a in sol.arrivals])
        rays = trace_rays(MODEL, dist, np.full(dist.shape, sol.depth_km))
        assert np.allclose([a.takeoff_deg for a in sol.arrivals], rays.takeoff_deg, atol=0.5)
        # ... and the truth's where the source is located in its true layer: across an
        # interface (here a ~1 km depth error, the noise limit, next to the 5.5 km one) every
        # takeoff angle jumps with the source velocity, a real ambiguity of layered models
        same_layer = MODEL.source_layer_index(sol.depth_km) == MODEL.source_layer_index(
            ev["depth_km"]
        )
        for a in sol.arrivals:
            row = picks.station_row.get(a.pick_id)
            if row is None or picks.event_of[a.pick_id] != i:
                continue
            assert a.station_id == row["station_id"]
            assert abs(a.distance_km - row["distance_km"]) < 3.0
            d_az = abs((a.azimuth_deg - row["azimuth_deg"] + 180.0) % 360.0 - 180.0)
            d_takeoff = abs(a.takeoff_deg - row["takeoff_deg"]) if same_layer else np.nan
            angle_errors.append((d_az, d_takeoff))
    assert false_used <= 0.25 * n_false
    err = np.array(angle_errors)
    assert np.mean(err[:, 0] < 3.0) >= 0.95 and np.median(err[:, 0]) < 1.0
    # a station at the direct/head-wave crossover can flip branch with a small depth change:
    # a real ambiguity of 1-D takeoff angles, so a few arrivals may differ there
    takeoff = err[np.isfinite(err[:, 1]), 1]
    assert takeoff.size >= 0.5 * len(err)
    assert np.mean(takeoff < 5.0) >= 0.9 and np.median(takeoff) < 2.0


# --------------------------------------------------------------------------- pure parts


def test_pyocto_table_holds_exact_layered_first_arrivals():
    model = VelocityModel.default()
    raw = pyocto_table_bytes(model, 20.0, 10.0, 0.5)
    nx, nz, step = struct.unpack("iid", raw[:16])
    assert (nx, nz, step) == (41, 21, 0.5)
    p = np.frombuffer(raw[16 : 16 + nx * nz * 8], dtype="<f8").reshape(nx, nz)
    s = np.frombuffer(raw[16 + nx * nz * 8 :], dtype="<f8").reshape(nx, nz)
    assert p[0, 0] == 0.0 and len(raw) == 16 + 2 * nx * nz * 8
    for i, k in ((40, 0), (10, 20), (33, 7)):
        assert p[i, k] == pytest.approx(trace_rays(model, i * 0.5, k * 0.5, "P").time_s)
        assert s[i, k] == pytest.approx(trace_rays(model, i * 0.5, k * 0.5, "S").time_s)
    with pytest.raises(ValueError, match="extents"):
        pyocto_table_bytes(model, 0.0, 10.0, 0.5)


def test_associate_recovers_scenario_events_without_redis(scenario, associator):
    picks = scenario_picks(scenario, seed=0)
    solutions = associator.associate(window_picks(picks), stations_of(scenario))
    check_solutions(scenario, picks, solutions)
    for sol in solutions:
        true_res = [abs(a.residual_s) for a in sol.arrivals if picks.event_of[a.pick_id] >= 0]
        assert np.median(true_res) < 2 * PICK_SIGMA_S
        assert sol.rms_s == pytest.approx(np.sqrt(np.mean([a.residual_s**2 for a in sol.arrivals])))
        assert all(abs(a.residual_s) <= associator.params.max_residual_s for a in sol.arrivals)
        assert len({station_key(a.station_id) for a in sol.arrivals}) == len(sol.arrivals)


def test_associate_is_deterministic_and_order_free(scenario, associator):
    picks = window_picks(scenario_picks(scenario, seed=1))
    a = associator.associate(picks, stations_of(scenario))
    b = associator.associate(list(reversed(picks)), stations_of(scenario))
    assert [e.pick_ids for e in a] == [e.pick_ids for e in b]
    assert [e.time_epoch_s for e in a] == pytest.approx([e.time_epoch_s for e in b], abs=1e-6)


def test_one_shot_associate_and_edge_cases(scenario):
    stations = stations_of(scenario)
    assert associate([], stations) == []
    few = window_picks(scenario_picks(scenario, seed=2))[:3]
    assert associate(few, stations, params=AssociateParams(min_picks=4)) == []
    # picks at stations without coordinates are ignored, not an error
    unknown = [WindowPick(f"XX.Z{i:02d}..HHZ@1.0", f"XX.Z{i:02d}..HHZ", 1.0) for i in range(8)]
    assert associate(unknown, stations, params=AssociateParams(min_picks=4)) == []


def test_params_and_inputs_are_validated():
    with pytest.raises(ValueError, match="min_picks"):
        AssociateParams(min_picks=2)
    with pytest.raises(ValueError, match="max_residual_s"):
        AssociateParams(max_residual_s=0.0)
    with pytest.raises(ValueError, match="wait_s"):
        AssociateParams(wait_s=-1.0)
    with pytest.raises(ValueError, match="latitude"):
        StationCoords(91.0, 0.0)
    with pytest.raises(ValueError, match="NET.STA.LOC.CHA"):
        station_key("FM.S001")


def _event(t: float, lat: float, lon: float, depth: float, ids: list[str]) -> LocatedEvent:
    from firstmotion.messages import Arrival

    arrivals = tuple(
        Arrival(pick_id=i, station_id="FM.S001..HHZ", azimuth_deg=0.0, takeoff_deg=90.0,
                distance_km=10.0, residual_s=0.0)
        for i in ids
    )  # fmt: skip
    return LocatedEvent(t, lat, lon, depth, arrivals, 0.0)


def test_match_events_prefers_shared_picks_then_closeness():
    params = AssociateParams()
    a = _event(100.0, 34.0, -118.0, 5.0, ["a1", "a2", "a3"])
    b = _event(101.0, 34.0, -118.0, 5.0, ["b1", "b2"])
    known = [
        KnownEvent("A", a.origin("A", 0), a.pick_ids),
        KnownEvent("B", b.origin("B", 0), b.pick_ids),
    ]
    # B's picks but A's time and place: shared picks win
    found = [_event(100.0, 34.0, -118.0, 5.0, ["b1", "b2", "x"])]
    assert match_events(known, found, params) == [1]
    # no shared picks: the close one in time and space, one-to-one
    near = _event(100.2, 34.01, -118.0, 6.0, ["n1"])
    far = _event(100.2, 35.0, -118.0, 6.0, ["f1"])
    assert match_events(known, [far, near], params) == [None, 0]
    assert match_events([], [near], params) == [None]


def test_origin_changed_on_picks_time_or_place():
    params = AssociateParams(revise_min_move_km=0.3, revise_min_time_s=0.05)
    base = _event(100.0, 34.0, -118.0, 5.0, ["a", "b", "c", "d"])
    prev = base.origin("E", 0)
    assert not origin_changed(prev, base, params)
    assert not origin_changed(prev, _event(100.01, 34.0, -118.0, 5.1, list("abcd")), params)
    assert origin_changed(prev, _event(100.0, 34.0, -118.0, 5.0, list("abcde")), params)
    assert origin_changed(prev, _event(100.1, 34.0, -118.0, 5.0, list("abcd")), params)
    assert origin_changed(prev, _event(100.0, 34.01, -118.0, 5.0, list("abcd")), params)
    assert origin_changed(prev, _event(100.0, 34.0, -118.0, 5.5, list("abcd")), params)


def test_new_event_id_is_readable_and_unique():
    assert new_event_id(1735689629.6, 7) == "ev20250101T000029-00007"
    assert new_event_id(1735689629.6, 8) != new_event_id(1735689629.6, 7)


# --------------------------------------------------------------------------- worker


def publish(bus: Bus, picks: list[Pick]) -> None:
    for k in range(0, len(picks), 50):
        bus.publish_many("picks", picks[k : k + 50])


def latest_origins(bus: Bus) -> tuple[dict[str, Origin], dict[str, list[int]]]:
    """The standing events (last origin of each event not retracted) and every event's
    published revisions; retractions are CatalogEvents with status deleted."""
    latest: dict[str, Origin] = {}
    revisions: dict[str, list[int]] = defaultdict(list)
    retracted: set[str] = set()
    for _, msg in bus.messages("origins"):
        if isinstance(msg, CatalogEvent):
            assert msg.status == "deleted" and msg.event_id in latest
            retracted.add(msg.event_id)
            continue
        assert isinstance(msg, Origin)
        revisions[msg.event_id].append(msg.revision)
        latest[msg.event_id] = msg
    return {e: o for e, o in latest.items() if e not in retracted}, dict(revisions)


def make_worker(bus: Bus, associator: Associator, **kw) -> AssociateWorker:
    kw.setdefault("block_ms", 100)
    return AssociateWorker(bus, associator, **kw)


def test_worker_publishes_one_event_per_scenario_event(redis_client, scenario, associator):
    bus = Bus(redis_client)
    picks = scenario_picks(scenario, seed=3)
    publish(bus, picks.messages)
    worker = make_worker(bus, associator)
    assert worker.run(drain=True, timeout_s=60) == len(picks.messages)
    latest, revisions = latest_origins(bus)
    check_solutions(scenario, picks, list(latest.values()))
    for eid, revs in revisions.items():
        assert revs == list(range(len(revs))), eid  # 0, 1, 2, ... per event
    assert bus.pending_count("picks", GROUP) == 0
    # the state in Redis says the same
    for eid, origin in latest.items():
        state = redis_client.hgetall(f"fm:assoc:event:{eid}")
        assert Origin.from_json(state[b"origin"]) == origin
        assert int(state[b"revision"]) == origin.revision
        for a in origin.arrivals:
            assert redis_client.get(f"fm:assoc:pick:{a.pick_id}") == eid.encode()


def test_worker_streaming_keeps_ids_revises_and_closes(redis_client, scenario, associator):
    """Picks arriving in time order, associating after each chunk: each event keeps its id
    through its revisions, events close after wait_s, and closed events' picks leave."""
    bus = Bus(redis_client)
    picks = scenario_picks(scenario, seed=4)
    now = Associator(associator.model, replace(associator.params, close_wall_s=0.0))
    worker = make_worker(bus, now)
    msgs = picks.messages
    chunk_s = 4.0
    t = msgs[0].time_epoch_s
    k = 0
    n_runs = 0
    while k < len(msgs):
        t += chunk_s
        j = k
        while j < len(msgs) and msgs[j].time_epoch_s < t:
            j += 1
        if j > k:
            publish(bus, msgs[k:j])
            worker.consumer.run_once(block_ms=10)
            while worker.consumer.run_once(block_ms=10):
                pass
            worker.associate_now()
            n_runs += 1
        k = j
    assert n_runs > 10
    latest, revisions = latest_origins(bus)
    check_solutions(scenario, picks, list(latest.values()))
    assert max(len(r) for r in revisions.values()) > 1  # events grew as picks arrived
    for revs in revisions.values():
        assert revs == list(range(len(revs)))
    # the first two events closed (the newest pick is far past them); their picks left the window
    closed = [eid for eid in latest if eid not in worker.open]
    assert len(closed) >= 2
    for eid in closed:
        assert not any(a.pick_id in worker.window for a in latest[eid].arrivals)
        assert redis_client.zscore("fm:assoc:open", eid) is None
    assert set(worker.window) == {k.decode() for k in redis_client.hkeys("fm:assoc:window")}


def test_worker_restart_and_redelivery_make_no_duplicates(redis_client, scenario, associator):
    bus = Bus(redis_client)
    picks = scenario_picks(scenario, seed=5)
    half = len(picks.messages) // 2
    # a worker that crashed after reading the first half without acknowledging it
    bus.ensure_group("picks", GROUP)
    publish(bus, picks.messages[:half])
    redis_client.xreadgroup(GROUP, "crashed", {"fm:picks": ">"}, count=half)
    assert bus.pending_count("picks", GROUP) == half
    publish(bus, picks.messages[half:])
    first = make_worker(bus, associator, lease_ms=200, name="w1")
    first.run(drain=True, timeout_s=60)
    assert bus.pending_count("picks", GROUP) == 0
    latest, _ = latest_origins(bus)
    check_solutions(scenario, picks, list(latest.values()))
    n_origins = bus.length("origins")

    # a restarted worker (fresh memory) sees every pick again: nothing new is published
    publish(bus, picks.messages)
    second = make_worker(bus, associator, name="w2")
    assert second.run(drain=True, timeout_s=60) == len(picks.messages)
    assert second.open.keys() == first.open.keys()
    assert bus.length("origins") == n_origins
    assert redis_client.get("fm:assoc:seq") == str(len(latest)).encode()

    # and re-associating its reloaded window changes nothing either
    third = make_worker(bus, associator, name="w3")
    third.load_state()
    assert third.associate_now() == []
    assert bus.length("origins") == n_origins


def test_worker_uses_inventory_for_picks_without_coordinates(
    redis_client, scenario, associator, tmp_path
):
    path = tmp_path / "stations.xml"
    scenario.inventory().write(str(path), format="STATIONXML")
    stations = stations_from_inventory(str(path))
    assert stations["FM.S001."].latitude_deg == pytest.approx(scenario.stations[0].latitude_deg)
    bus = Bus(redis_client)
    picks = scenario_picks(scenario, seed=6, coordinates=False)
    publish(bus, picks.messages)
    blind = make_worker(bus, associator)
    dropped = blind.picks_total.labels(outcome="no_station")
    before = dropped._value.get()
    blind.run(drain=True, timeout_s=60)
    assert dropped._value.get() - before == len(picks.messages)
    assert bus.length("origins") == 0

    redis_client.flushall()
    publish(bus, picks.messages)
    seeing = make_worker(bus, associator, stations=stations)
    seeing.run(drain=True, timeout_s=60)
    latest, _ = latest_origins(bus)
    check_solutions(scenario, picks, list(latest.values()))


def test_worker_metrics_count_picks_events_and_origins(redis_client, scenario, associator):
    from firstmotion.metrics import registry

    def value(name: str, **labels: str) -> float:
        return registry().get_sample_value(name, labels) or 0.0

    before = {
        "windowed": value("firstmotion_associate_picks_total", outcome="windowed"),
        "events": value("firstmotion_associate_events_total"),
        "origins": value("firstmotion_associate_origins_total"),
        "runs": value("firstmotion_associate_seconds_count"),
        "in": value("firstmotion_stage_items_in_total", stage="associate"),
    }
    bus = Bus(redis_client)
    picks = scenario_picks(scenario, seed=7)
    publish(bus, picks.messages)
    make_worker(bus, associator).run(drain=True, timeout_s=60)
    n = len(picks.messages)
    assert value("firstmotion_associate_picks_total", outcome="windowed") - before["windowed"] == n
    assert value("firstmotion_stage_items_in_total", stage="associate") - before["in"] == n
    assert value("firstmotion_associate_events_total") - before["events"] == 3
    assert value("firstmotion_associate_origins_total") - before["origins"] == bus.length("origins")
    assert value("firstmotion_associate_seconds_count") > before["runs"]
    assert value("firstmotion_stage_last_processed_timestamp_seconds", stage="associate") > 0


def test_cli_worker_associate_drains(redis_url, redis_client, scenario):
    from firstmotion.cli import main

    bus = Bus(redis_client)
    picks = scenario_picks(scenario, seed=8)
    publish(bus, picks.messages)
    assert main(["worker", "associate", "--redis", redis_url, "--drain"]) == 0
    latest, _ = latest_origins(bus)
    assert len(latest) == 3  # min_picks = 4 from the default config
    assert bus.pending_count("picks", GROUP) == 0


def publish_late_picks(bus: Bus, scenario) -> tuple[Picks, dict[str, float]]:
    """The scenario's picks (seed 9) with every true P late by +-0.25 s, station by station
    (a 1-D model's station delays), published; the picks and {station code: delay}."""
    picks = scenario_picks(scenario, seed=9)
    codes = sorted({s.code for s in scenario.stations})
    shift = {c: 0.25 if i % 2 else -0.25 for i, c in enumerate(codes)}
    late = [p if picks.event_of[p.pick_id] < 0 else
            replace(p, time_epoch_s=p.time_epoch_s + shift[p.station_id.split(".")[1]])
            for p in picks.messages]  # fmt: skip
    publish(bus, late)
    return picks, shift


def median_true_residual(bus: Bus, picks: Picks) -> float:
    """Median |residual| (s) of the true picks among the standing events' arrivals (three
    events: the scenario's)."""
    latest, _ = latest_origins(bus)
    assert len(latest) == 3
    true_ids = {pid for pid, i in picks.event_of.items() if i >= 0}
    return float(np.median([abs(a.residual_s) for o in latest.values() for a in o.arrivals
                            if a.pick_id in true_ids]))  # fmt: skip


def test_cli_worker_associate_takes_station_delays_from_a_file(
    tmp_path, redis_url, redis_client, scenario
):
    """`worker associate --station-delays F`: P picks late by +-0.25 s station by station,
    and the file saying so; the published arrivals fit the model (median residual under
    0.1 s, the picks' own noise; 0.21 s without the file)."""
    from firstmotion.cli import main

    bus = Bus(redis_client)
    picks, shift = publish_late_picks(bus, scenario)
    delays = tmp_path / "delays.csv"
    delays.write_text("station,p_delay_s,s_delay_s\n"
                      + "".join(f"{c},{d},0\n" for c, d in shift.items()))  # fmt: skip
    assert main(["worker", "associate", "--redis", redis_url, "--drain",
                 "--station-delays", str(delays)]) == 0  # fmt: skip
    assert median_true_residual(bus, picks) < 0.1


def _hyp_station_line(code: str, lat: float, lon: float, elev_m: float, p_delay: float) -> str:
    """A STATION0.HYP (HYPO71) station line with its P delay in columns 28-33."""
    ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
    la, lo = abs(lat), abs(lon)
    lat_txt = f"{int(la):2d}{(la - int(la)) * 60:5.2f}{ns}"
    lon_txt = f"{int(lo):3d}{(lo - int(lo)) * 60:5.2f}{ew}"
    return f"  {code:<4}{lat_txt}{lon_txt}{int(round(elev_m)):4d}{p_delay:6.2f}"


def test_a_station0_hyp_velocity_model_brings_its_station_delays(
    tmp_path, redis_url, redis_client, scenario
):
    """SEISAN keeps a network's model and its stations' delays in one STATION0.HYP; given as
    the associator's velocity model (`worker associate --velocity-model`), the file's delays
    apply too: P picks late by +-0.25 s station by station fit the model (median residual
    under 0.1 s)."""
    from firstmotion.cli import main

    bus = Bus(redis_client)
    picks, shift = publish_late_picks(bus, scenario)
    stations = [_hyp_station_line(s.code, s.latitude_deg, s.longitude_deg, s.elevation_m,
                                  shift[s.code]) for s in scenario.stations]  # fmt: skip
    model = ["  5.500     0.0  3.175", "  6.300     5.5  3.637", "  6.700    16.0  3.868",
             "  7.800    32.0  4.503  N"]  # fmt: skip
    hyp = tmp_path / "STATION0.HYP"
    hyp.write_text("RESET TEST(02)=500.0\n\n" + "\n".join(stations) + "\n\n"
                   + "\n".join(model) + "\n\n10.0  50. 200. 1.73\nAGY\n")  # fmt: skip
    assert main(["worker", "associate", "--redis", redis_url, "--drain",
                 "--velocity-model", str(hyp)]) == 0  # fmt: skip
    assert median_true_residual(bus, picks) < 0.1


def test_worker_ignores_unused_phases_and_future_picks_and_associates_before_stopping(
    redis_client, scenario, associator
):
    import time

    bus = Bus(redis_client)
    picks = scenario_picks(scenario, seed=9)
    s_pick = replace(picks.messages[0], pick_id="s-pick", phase="Lg")  # a phase not associated
    # a station with a bad clock: an hour ahead of now
    late = time.time() + 3600.0
    future = replace(picks.messages[0], pick_id="future", time_epoch_s=late,
                     start_time_epoch_s=late - 0.02)  # fmt: skip
    publish(bus, [s_pick, future, *picks.messages])
    worker = make_worker(bus, associator, debounce_s=3600.0, debounce_picks=10_000)
    not_p = worker.picks_total.labels(outcome="not_p")
    in_future = worker.picks_total.labels(outcome="future")
    before = not_p._value.get(), in_future._value.get()
    while worker.consumer.run_once(block_ms=10):
        pass
    assert worker.dirty and bus.length("origins") == 0  # windowed, not yet associated
    assert "s-pick" not in worker.window and not_p._value.get() - before[0] == 1
    assert "future" not in worker.window and in_future._value.get() - before[1] == 1
    assert worker.newest_s == max(p.time_epoch_s for p in picks.messages)
    worker.request_stop()
    worker.run()  # returns at once, after associating what it holds
    latest, _ = latest_origins(bus)
    check_solutions(scenario, picks, list(latest.values()))


def test_a_failing_association_is_logged_and_counted_not_fatal(
    redis_client, scenario, associator, monkeypatch, caplog
):
    from firstmotion.metrics import registry

    bus = Bus(redis_client)
    picks = scenario_picks(scenario, seed=10)
    publish(bus, picks.messages)
    worker = make_worker(bus, associator)

    def broken(*_a, **_k):
        raise RuntimeError("degenerate window")

    errors = ("firstmotion_stage_errors_total", {"stage": "associate"})
    before = registry().get_sample_value(*errors) or 0.0
    monkeypatch.setattr(worker.associator, "associate", broken)
    assert worker.run(drain=True, timeout_s=60) == len(picks.messages)
    assert registry().get_sample_value(*errors) - before >= 1
    assert "degenerate window" in caplog.text
    assert bus.length("origins") == 0 and bus.pending_count("picks", GROUP) == 0
    # the picks were kept: a restarted worker associates them
    monkeypatch.undo()
    again = make_worker(bus, associator)
    again.run(drain=True, timeout_s=60)
    latest, _ = latest_origins(bus)
    check_solutions(scenario, picks, list(latest.values()))


def test_a_network_too_sparse_for_the_settings_is_named_at_start():
    """Stations 150 km apart with the local-network defaults (200 km): a warning naming the
    keys to raise; the same stations 15 km apart, or a 400 km reach: none."""
    from workers.associate import sparse_network_warning
    from workers.associate_locate import AssociateParams, StationCoords

    def grid(step_deg):
        return {f"XX.S{i}{j}.": StationCoords(30.0 + i * step_deg, -100.0 + j * step_deg)
                for i in range(3) for j in range(3)}  # fmt: skip

    wide = sparse_network_warning(grid(1.35), AssociateParams())
    assert wide is not None and "max_distance_km" in wide and "window_s" in wide
    assert sparse_network_warning(grid(0.135), AssociateParams()) is None
    assert sparse_network_warning(grid(1.35), AssociateParams(max_distance_km=400.0)) is None
    assert sparse_network_warning(dict(list(grid(1.35).items())[:4]), AssociateParams()) is None


def test_haversine_distances_agree_with_each_other_and_with_the_geodesic():
    """epicentral_km (floats) and pairwise_km (arrays) give the same numbers, within 0.5% of
    the WGS84 geodesic at network distances, and 0 on the diagonal."""
    from firstmotion.geodesy import epicentral_km, pairwise_km

    lat = np.array([35.0, 35.3, 34.1, 36.9])
    lon = np.array([-117.5, -117.1, -118.6, -115.2])
    d = pairwise_km(lat, lon)
    assert np.allclose(np.diag(d), 0.0) and np.allclose(d, d.T)
    for i in range(4):
        for j in range(4):
            assert d[i, j] == pytest.approx(
                epicentral_km(lat[i], lon[i], lat[j], lon[j]), rel=1e-12
            )
            if i != j:
                exact = distance_azimuth(lat[i], lon[i], lat[j], lon[j])[0]
                assert d[i, j] == pytest.approx(float(exact), rel=5e-3)


def test_deleted_sse_equals_refitting_without_each_row():
    """The jackknife's screen: for a linear least-squares fit the leave-one-out sums of
    squared residuals follow from one fit's residuals and leverages."""
    from workers.associate_locate import deleted_sse

    rng = np.random.default_rng(3)
    jac = rng.normal(size=(9, 4))
    y = jac @ rng.normal(size=4) + rng.normal(0.0, 0.05, 9)
    y[5] += 3.0  # an outlier the fit bends to
    beta = np.linalg.lstsq(jac, y, rcond=None)[0]
    got = deleted_sse(jac, y - jac @ beta)
    for i in range(9):
        keep = np.arange(9) != i
        b = np.linalg.lstsq(jac[keep], y[keep], rcond=None)[0]
        assert got[i] == pytest.approx(np.sum((y[keep] - jac[keep] @ b) ** 2), rel=1e-9)
    assert int(np.argmin(got)) == 5
    # a row without which the others leave a parameter free: no finite score
    square = np.eye(3)
    assert np.all(np.isinf(deleted_sse(square, np.zeros(3))))


def test_station_delays_are_added_to_the_times_the_locator_predicts(scenario):
    """Each station's P time late by its own delay (a 1-D model's station residual): given
    the delays (half keyed NET.STA, half STA), the associator locates the earthquake where it
    is with near-zero residuals; without them the same picks sit 0.2 s from the model and
    the epicentre moves."""
    from obspy import UTCDateTime

    rng = np.random.default_rng(5)
    t0 = UTCDateTime(scenario.truth["start_time"]).timestamp
    ev = scenario.truth["events"][0]
    delays, picks = {}, []
    for i, row in enumerate(r for r in ev["stations"] if r["p_in_data"]):
        net, sta = row["station_id"].split(".")[:2]
        d = float(rng.choice([-0.3, 0.3]))
        delays[f"{net}.{sta}" if i % 2 else sta] = (d, 1.7 * d)
        t = t0 + row["p_time_s"] + d
        picks.append(WindowPick(make_pick_id(row["station_id"], t), row["station_id"], t))
    params = AssociateParams(min_picks=6, use_s=False)
    errors, residuals = {}, {}
    for name, table in (("with", delays), ("without", {})):
        assoc = Associator(MODEL, params, table)
        try:
            (sol,) = assoc.associate(picks, stations_of(scenario))
        finally:
            assoc.close()
        errors[name] = float(distance_azimuth(sol.latitude_deg, sol.longitude_deg,
                                              ev["latitude"], ev["longitude"])[0])  # fmt: skip
        residuals[name] = float(np.median([abs(a.residual_s) for a in sol.arrivals]))
        if name == "with":
            assert abs(sol.time_epoch_s - t0 - ev["origin_time_s"]) < 0.05
            assert abs(sol.depth_km - ev["depth_km"]) < 0.5
    assert errors["with"] < 0.3 and residuals["with"] < 0.01
    assert residuals["without"] > 0.1 and errors["without"] > errors["with"]


def test_station_delays_estimated_from_the_catalogs_residuals_relocate_it_better(scenario):
    """The loop a network runs: its events located without the stations' delays, the delays
    estimated from the located arrivals' residuals (median per station less the median over
    stations), the events located again with them: the estimates follow the true delays
    (up to what the three events' locations trade with them) and the epicentres move closer
    to the truth (0.65 / 0.28 / 0.23 km -> 0.21 km each, here)."""
    from obspy import UTCDateTime

    from firstmotion.station_delays import estimate_station_delays

    rng = np.random.default_rng(8)
    t0 = UTCDateTime(scenario.truth["start_time"]).timestamp
    true_delay = {f"{s.network}.{s.code}": float(rng.uniform(-0.3, 0.3)) for s in scenario.stations}
    picks = []
    for ev in scenario.truth["events"]:
        for row in (r for r in ev["stations"] if r["p_in_data"]):
            key = ".".join(row["station_id"].split(".")[:2])
            t = t0 + row["p_time_s"] + true_delay[key] + rng.normal(0.0, 0.02)
            picks.append(WindowPick(make_pick_id(row["station_id"], t), row["station_id"], t))
    params = AssociateParams(min_picks=6, use_s=False)

    def locate(delays):
        assoc = Associator(MODEL, params, delays)
        try:
            sols = assoc.associate(picks, stations_of(scenario))
        finally:
            assoc.close()
        assert len(sols) == len(scenario.truth["events"])
        errors = []
        for sol in sorted(sols, key=lambda s: s.time_epoch_s):
            ev = min(scenario.truth["events"],
                     key=lambda e: abs(sol.time_epoch_s - t0 - e["origin_time_s"]))  # fmt: skip
            errors.append(float(distance_azimuth(sol.latitude_deg, sol.longitude_deg,
                                                 ev["latitude"], ev["longitude"])[0]))  # fmt: skip
        return sols, np.array(errors)

    first, before = locate({})
    rows = [(".".join(a.station_id.split(".")[:2]), a.phase, a.residual_s)
            for sol in first for a in sol.arrivals]  # fmt: skip
    est = estimate_station_delays(rows, min_arrivals=3)
    keys = [k for k, v in est.items() if v[2] >= 3]
    assert len(keys) >= 20
    truth = np.array([true_delay[k] for k in keys])
    got = np.array([est[k][0] for k in keys])
    assert np.corrcoef(truth, got)[0, 1] > 0.9
    assert np.median(np.abs((got - np.median(got)) - (truth - np.median(truth)))) < 0.05
    _, after = locate({k: est[k][:2] for k in keys})
    assert after.max() < 0.5 and after.mean() < 0.7 * before.mean()
