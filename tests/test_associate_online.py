"""The incremental associator: one event per earthquake whatever the arrival order, no events
made of noise picks on a dense network, S picks used, and the worker's retractions."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from test_associate import (
    check_solutions,
    latest_origins,
    publish,
    scenario_picks,
    stations_of,
    window_picks,
)

from firstmotion.bus import Bus
from firstmotion.geodesy import epicentral_km
from firstmotion.messages import CatalogEvent, Origin, Pick, make_pick_id
from firstmotion.velocity import VelocityModel, trace_rays
from workers.associate import AssociateWorker
from workers.associate_locate import AssociateParams, Associator, StationCoords, WindowPick
from workers.associate_online import OnlineAssociator, station_support


@pytest.fixture(scope="module")
def scenario():
    from stream.scenario import ScenarioConfig, make_scenario

    return make_scenario(ScenarioConfig(n_stations=30, n_events=3, duration_s=150.0, seed=3))


@pytest.fixture(scope="module")
def associator():
    assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=6))
    yield assoc
    assoc.close()


def run_engine(associator, stations, picks, batch: int, *, wall_step_s: float = 0.01):
    """Feed ``picks`` in batches (wall clock ``wall_step_s`` apart), then flush; returns the
    events standing at the end (id -> last origin) and the retracted ids."""
    counter = iter(range(1, 10_000))
    eng = OnlineAssociator(associator, dict(stations), new_id=lambda t: f"e{next(counter)}")
    latest: dict[str, Origin] = {}
    retracted: set[str] = set()
    wall = 1000.0

    def take(result):
        for o in result.origins:
            latest[o.event_id] = o
            retracted.discard(o.event_id)
        for o in result.retracted:
            retracted.add(o.event_id)

    for k in range(0, len(picks), batch):
        wall += wall_step_s
        eng.add(picks[k : k + batch], wall)
        take(eng.step(wall))
    take(eng.step(wall + 1000.0, flush=True))
    assert not eng.events  # everything settled and closed
    return {e: o for e, o in latest.items() if e not in retracted}, retracted


def signature(events: dict[str, Origin]) -> list[tuple]:
    return sorted(
        (
            round(o.time_epoch_s, 6),
            round(o.latitude_deg, 6),
            round(o.longitude_deg, 6),
            round(o.depth_km, 4),
            tuple(sorted(a.pick_id for a in o.arrivals)),
        )
        for o in events.values()
    )


def test_same_picks_in_any_order_and_batches_give_the_same_events(scenario, associator):
    picks = scenario_picks(scenario, seed=21)
    wp = window_picks(picks)
    stations = stations_of(scenario)
    reference, _ = run_engine(associator, stations, wp, batch=len(wp))
    check_solutions(scenario, picks, list(reference.values()))
    rng = np.random.default_rng(5)
    runs = [(wp, 1), (wp, 13)]
    for _ in range(3):
        runs.append(([wp[i] for i in rng.permutation(len(wp))], int(rng.integers(2, 60))))
    for order, batch in runs:
        got, _ = run_engine(associator, stations, order, batch)
        assert signature(got) == signature(reference), batch


def test_station_support_rejects_scattered_stations():
    everyone = np.arange(1.0, 101.0)  # stations at 1, 2, ..., 100 km
    assert station_support(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), everyone, 4, 0.3)
    assert not station_support(np.array([3.0, 30.0, 60.0, 90.0]), everyone, 4, 0.3)
    assert not station_support(np.array([1.0, 2.0, 3.0]), everyone, 4, 0.3)  # too few


def dense_network(n: int = 300, seed: int = 1) -> dict[str, StationCoords]:
    rng = np.random.default_rng(seed)
    lat = 34.0 + rng.uniform(-0.45, 0.45, n)
    lon = -118.0 + rng.uniform(-0.55, 0.55, n)
    pairs = zip(lat, lon, strict=True)
    return {f"FM.S{i:03d}.": StationCoords(float(a), float(b)) for i, (a, b) in enumerate(pairs)}


def noise_picks(stations, rate_per_s: float, duration_s: float, seed: int) -> list[WindowPick]:
    rng = np.random.default_rng(seed)
    keys = sorted(stations)
    t0 = 1_735_689_600.0
    out = []
    for t in np.sort(t0 + rng.uniform(0.0, duration_s, int(rate_per_s * duration_s))):
        sid = keys[rng.integers(len(keys))] + ".HHZ"
        out.append(WindowPick(make_pick_id(sid, float(t)), sid, float(t)))
    return out


@pytest.mark.slow
def test_noise_picks_on_a_dense_network_make_no_events():
    """Four picks agree on some origin every few seconds among 300 stations' noise: PyOcto
    alone reports such events, the associator's station support does not."""
    stations = dense_network()
    assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=4))
    try:
        noise = noise_picks(stations, rate_per_s=2.0, duration_s=50.0, seed=2)
        raw = assoc.associate(noise, stations)
        assert len(raw) >= 2  # coincidences PyOcto accepts at min_picks = 4
        events, _ = run_engine(assoc, stations, noise, batch=20)
        assert events == {}
    finally:
        assoc.close()


def s_picks(scenario, picks, seed: int) -> list[Pick]:
    """Scenario S picks (truth S times + 0.1 s noise) at the stations with a P pick."""
    from obspy import UTCDateTime

    rng = np.random.default_rng(seed)
    t0 = UTCDateTime(scenario.truth["start_time"]).timestamp
    template = picks.messages[0]
    out = []
    for ev in scenario.truth["events"]:
        for row in ev["stations"]:
            if not row["p_in_data"]:
                continue
            t = t0 + row["s_time_s"] + rng.normal(0.0, 0.1)
            sid = row["station_id"]
            st = next(s for s in scenario.stations if sid.startswith(f"{s.network}.{s.code}."))
            out.append(
                replace(template, pick_id=make_pick_id(sid, t) + "S", station_id=sid, phase="S",
                        time_epoch_s=t, start_time_epoch_s=t - 0.02,
                        latitude_deg=st.latitude_deg, longitude_deg=st.longitude_deg,
                        elevation_m=st.elevation_m)
            )  # fmt: skip
    return out


def test_s_picks_are_associated_and_located_with(scenario, associator):
    picks = scenario_picks(scenario, seed=22)
    s = s_picks(scenario, picks, seed=3)
    merged = sorted([*picks.messages, *s], key=lambda p: p.time_epoch_s)
    wp = [WindowPick(p.pick_id, p.station_id, p.time_epoch_s, p.phase) for p in merged]
    events, _ = run_engine(associator, stations_of(scenario), wp, batch=25)
    check_solutions(scenario, picks, [_p_only(o) for o in events.values()])
    for o in events.values():
        got_s = [a for a in o.arrivals if a.phase == "S"]
        true_s = [p for p in s if abs(p.time_epoch_s - o.time_epoch_s) < 60.0]
        assert len(got_s) >= 0.8 * min(len(true_s), len(o.arrivals) - len(got_s))
        assert all(abs(a.residual_s) < 0.5 for a in got_s)
        dist = np.array([a.distance_km for a in got_s])
        rays = trace_rays(VelocityModel.default(), dist, np.full(dist.shape, o.depth_km), "S")
        assert np.allclose([a.takeoff_deg for a in got_s], rays.takeoff_deg, atol=0.5)


def _p_only(o: Origin) -> Origin:
    return replace(o, arrivals=tuple(a for a in o.arrivals if a.phase == "P"))


def test_without_s_the_associator_ignores_s_picks(scenario):
    picks = scenario_picks(scenario, seed=23)
    s = s_picks(scenario, picks, seed=4)
    assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=6, use_s=False))
    try:
        wp = [WindowPick(p.pick_id, p.station_id, p.time_epoch_s, p.phase)
              for p in sorted([*picks.messages, *s], key=lambda p: p.time_epoch_s)]  # fmt: skip
        events, _ = run_engine(assoc, stations_of(scenario), wp, batch=25)
        assert all(a.phase == "P" for o in events.values() for a in o.arrivals)
        check_solutions(scenario, picks, list(events.values()))
    finally:
        assoc.close()


def test_worker_retracts_a_false_event_with_a_deleted_catalog_event(redis_client, scenario):
    """An event published early and found false when it settles is retracted on the origins
    stream (CatalogEvent, status deleted), which the catalog honours."""
    from workers.catalog import CatalogStage

    bus = Bus(redis_client)
    picks = scenario_picks(scenario, seed=24)
    first = [p for p in picks.messages if picks.event_of[p.pick_id] == 0]
    first.sort(key=lambda p: p.time_epoch_s)
    assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=6, close_wall_s=0.0))
    try:
        worker = AssociateWorker(bus, assoc, block_ms=50)
        # the event's first picks make it; then those picks are shifted late (a bad station
        # clock in this drill), so that re-gathered at settlement it is supported by none
        publish(bus, first[:8])
        while worker.consumer.run_once(block_ms=10):
            pass
        worker.associate_now()
        latest, _ = latest_origins(bus)
        assert len(latest) == 1
        eid = next(iter(latest))
        ev = worker.engine.events[next(iter(worker.engine.events))]
        for pid in list(ev.pick_ids):
            wp = worker.engine.window[pid]
            worker.engine.window[pid] = replace(wp, time_epoch_s=wp.time_epoch_s + 7.0)
        worker.engine.newest_s += 1000.0
        worker.associate_now()
        entries = [m for _, m in bus.messages("origins")]
        assert isinstance(entries[-1], CatalogEvent) and entries[-1].status == "deleted"
        assert entries[-1].event_id == eid and redis_client.zscore("fm:assoc:open", eid) is None
        catalog = CatalogStage(bus)
        plan = catalog.compute(entries, redis_client)
        assert plan.states[eid].status == "deleted"
    finally:
        assoc.close()


def test_one_earthquake_found_twice_is_merged_and_the_copy_retracted(scenario, associator):
    """A second solution of the same earthquake, located 40 km and 4 s off (what a few early
    picks can give), joins the first: one event stays, the published copy is retracted."""
    from workers.associate_locate import LocatedEvent
    from workers.associate_online import OpenEvent

    picks = scenario_picks(scenario, seed=25)
    first = sorted(
        (p for p in window_picks(picks) if picks.event_of[p.pick_id] == 0),
        key=lambda p: p.time_epoch_s,
    )
    counter = iter(range(1, 100))
    eng = OnlineAssociator(associator, stations_of(scenario), new_id=lambda t: f"e{next(counter)}")
    eng.add(first[:12], 0.0)
    made = eng.step(0.0)
    assert [o.event_id for o in made.origins] == ["e1"] and not made.retracted
    good = next(iter(eng.events.values())).located
    eng.add(first[12:], 0.0)  # the rest, held back from attaching: a split in the making
    eng.fresh.clear()
    rest = tuple(
        replace(a, pick_id=p.pick_id, station_id=p.station_id)
        for a, p in zip(good.arrivals * 3, first[12:], strict=False)
    )
    copy = LocatedEvent(good.time_epoch_s + 4.0, good.latitude_deg + 0.36, good.longitude_deg,
                        good.depth_km, rest, 0.5)  # fmt: skip
    eng.events[99] = OpenEvent("e-copy", copy, copy.origin("e-copy", 0), 0.0, True, 0)
    for pid in copy.pick_ids:
        eng.owner[pid] = 99
    out = eng.step(1.0)
    assert [o.event_id for o in out.retracted] == ["e-copy"]
    assert len(eng.events) == 1
    merged = next(iter(eng.events.values()))
    assert merged.event_id == "e1"
    assert len(merged.pick_ids) >= 0.9 * len(first)
    assert any(o.event_id == "e1" and o.revision == 1 for o in out.origins)


def _synthetic_picks(
    stations, hypocentres, *, with_s_as_p: bool = False, with_s: bool = False
) -> list[WindowPick]:
    """Exact P times (and S times, labelled P with ``with_s_as_p``, S with ``with_s``) of
    ``hypocentres`` (lat, lon, depth, t0) at ``stations`` within 60 km, default model."""
    from workers.associate_locate import geodesic_distance_azimuth

    model = VelocityModel.default()
    keys = sorted(stations)
    lat = np.array([stations[k].latitude_deg for k in keys])
    lon = np.array([stations[k].longitude_deg for k in keys])
    out = []
    for lat0, lon0, z, t0 in hypocentres:
        d, _ = geodesic_distance_azimuth(lat0, lon0, lat, lon)
        zz = np.full(d.shape, z)
        for phase in ("P", "S") if with_s_as_p or with_s else ("P",):
            tt = trace_rays(model, d, zz, phase).time_s
            label = "S" if phase == "S" and with_s else "P"
            for k, dk, t in zip(keys, d, tt, strict=True):
                if dk <= 60.0:
                    sid = f"{k}.HHZ"
                    out.append(WindowPick(make_pick_id(sid, t0 + t), sid, t0 + t, label))
    return sorted(out, key=lambda k: k.time_epoch_s)


def test_a_burst_of_two_earthquakes_seconds_apart_gives_two_events(scenario, associator):
    stations = stations_of(scenario)
    lat, lon = scenario.config.centre_lat_deg, scenario.config.centre_lon_deg
    t0 = 1.7e9
    picks = _synthetic_picks(stations, [(lat, lon, 8.0, t0), (lat + 0.01, lon, 8.0, t0 + 2.5)])
    events, _ = run_engine(associator, stations, picks, batch=7)
    times = sorted(o.time_epoch_s for o in events.values())
    assert len(times) == 2, times
    assert abs(times[0] - t0) < 0.3 and abs(times[1] - t0 - 2.5) < 0.3
    for o in events.values():  # each keeps its own onsets: one per station, no mixing
        assert len({a.station_id for a in o.arrivals}) == len(o.arrivals)
        assert all(abs(a.residual_s) < 0.3 for a in o.arrivals)


def _settle_in_turn(associator, stations, *groups):
    """Each group of picks fed and settled (flushed) before the next arrives; the events
    standing at the end (id -> last origin)."""
    counter = iter(range(1, 100))
    eng = OnlineAssociator(associator, dict(stations), new_id=lambda t: f"e{next(counter)}")
    latest: dict[str, Origin] = {}
    for wall, group in enumerate(groups):
        eng.add(group, float(wall))
        out = eng.step(float(wall), flush=True)
        latest.update({o.event_id: o for o in out.origins})
        for o in out.retracted:
            latest.pop(o.event_id, None)
    return latest


def test_a_burst_follower_picked_at_other_stations_is_not_the_first_found_twice(
    scenario, associator
):
    """The next earthquake of a burst 2.5 s later at the same epicentre, picked at other
    stations than the first (the first's coda hides it at the others), is a second event: its
    onsets fit neither the first's picks nor its predicted P and S."""
    stations = stations_of(scenario)
    lat, lon = scenario.config.centre_lat_deg, scenario.config.centre_lon_deg
    t0 = 1.7e9
    first = _synthetic_picks(stations, [(lat, lon, 6.0, t0)])
    second = _synthetic_picks(stations, [(lat, lon, 6.0, t0 + 2.5)])
    names = sorted({k.station_key for k in first})
    assert len(names) >= 16
    half = set(names[::2])
    events = _settle_in_turn(
        associator, stations,
        [k for k in first if k.station_key in half],
        [k for k in second if k.station_key not in half],
    )  # fmt: skip
    times = sorted(o.time_epoch_s - t0 for o in events.values())
    assert len(times) == 2, times
    assert abs(times[0]) < 0.3 and abs(times[1] - 2.5) < 0.3


@pytest.mark.parametrize("gap_s", [1.5, 2.0, 2.5])
def test_a_small_burst_follower_is_not_joined_to_the_first(scenario, associator, gap_s):
    """A burst: the first earthquake picked (P and S) at half the stations, the next one
    ``gap_s`` later at the same epicentre at six others (P, two S) and one station of the
    first's (P; its coda hides the rest). Both are located from their own picks; one hypocentre
    fits 80% of the union within the residual rule, but the follower has onsets the first does
    not explain (and the first, onsets the follower does not): two earthquakes, not joined.
    One earthquake located twice from its two halves is still joined."""
    stations = stations_of(scenario)
    lat, lon = scenario.config.centre_lat_deg, scenario.config.centre_lon_deg
    t0 = 1.7e9
    first = _synthetic_picks(stations, [(lat, lon, 6.0, t0)], with_s=True)
    second = _synthetic_picks(stations, [(lat, lon, 6.0, t0 + gap_s)], with_s=True)
    order = list(np.random.default_rng(0).permutation(sorted({k.station_key for k in first})))
    half = set(order[: len(order) // 2])
    follower = order[len(order) // 2 - 1 : len(order) // 2 + 5]  # the first's last, six more
    g1 = [k for k in first if k.station_key in half]
    g2 = [k for k in second if k.station_key in follower
          and (k.phase == "P" or k.station_key in follower[1:3])]  # fmt: skip
    eng = OnlineAssociator(associator, dict(stations), new_id=str)
    eng.add(g1 + g2, 0.0)
    a, b = (eng._locate(g, eng.grid().best_start(g), from_latlon=False) for g in (g1, g2))
    assert abs(a.time_epoch_s - t0) < 0.1 and abs(b.time_epoch_s - t0 - gap_s) < 0.1
    assert len(a.arrivals) > len(b.arrivals)
    assert eng._joint(a, b) is None
    rest = [k for k in first if k.station_key not in half]
    c = eng._locate(rest, eng.grid().best_start(rest), from_latlon=False)
    joint = eng._joint(a, c)
    assert joint is not None and abs(joint.time_epoch_s - t0) < 0.1


def test_the_same_earthquake_picked_late_at_other_stations_is_not_a_second_event(
    scenario, associator
):
    """The mirror: picks of the same earthquake at the other stations, arriving after it
    settled, fit its predicted P: a second solution of them is the first found twice."""
    stations = stations_of(scenario)
    lat, lon = scenario.config.centre_lat_deg, scenario.config.centre_lon_deg
    t0 = 1.7e9
    picks = _synthetic_picks(stations, [(lat, lon, 6.0, t0)])
    half = set(sorted({k.station_key for k in picks})[::2])
    events = _settle_in_turn(
        associator, stations,
        [k for k in picks if k.station_key in half],
        [k for k in picks if k.station_key not in half],
    )  # fmt: skip
    assert len(events) == 1, sorted(o.time_epoch_s - t0 for o in events.values())
    (o,) = events.values()
    assert abs(o.time_epoch_s - t0) < 0.3


def test_a_late_p_that_fits_the_s_prediction_becomes_s(scenario, associator):
    stations = stations_of(scenario)
    lat, lon = scenario.config.centre_lat_deg, scenario.config.centre_lon_deg
    picks = _synthetic_picks(stations, [(lat, lon, 9.0, 1.7e9)], with_s_as_p=True)
    events, _ = run_engine(associator, stations, picks, batch=10)
    assert len(events) == 1
    (o,) = events.values()
    p = [a for a in o.arrivals if a.phase == "P"]
    s = [a for a in o.arrivals if a.phase == "S"]
    assert len(p) >= 6 and len(s) >= 0.8 * len(p)
    by_id = {k.pick_id: k for k in picks}
    for a in s:  # the S arrival is the later pick of its station
        later = max(
            (k for k in picks if k.station_id == a.station_id), key=lambda k: k.time_epoch_s
        )
        assert by_id[a.pick_id] == later
    assert abs(o.depth_km - 9.0) < 1.0
    # without S the same picks give P arrivals only
    assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=6, use_s=False))
    try:
        events, _ = run_engine(assoc, stations, picks, batch=10)
        assert all(a.phase == "P" for o in events.values() for a in o.arrivals)
    finally:
        assoc.close()


def _one_event(params: AssociateParams, stations, picks) -> Origin:
    """The one event ``picks`` make with an associator of ``params`` (asserted one)."""
    assoc = Associator(VelocityModel.default(), params)
    try:
        events, _ = run_engine(assoc, stations, picks, batch=10)
    finally:
        assoc.close()
    assert len(events) == 1, events
    return next(iter(events.values()))


def test_the_published_hypocentre_is_not_pulled_by_a_late_pick_at_the_nearest_station(
    scenario, associator
):
    """One earthquake's exact P and S picks, but the nearest station's P 0.45 s late (a later
    onset taken as P, within the residual rule): the association keeps the pick either way;
    the published hypocentre is the picks relocated under the Cauchy loss
    (``associate.final_loss``), which that one pick pulls less than half as far as the
    soft-L1 solution it is relocated from."""
    stations = stations_of(scenario)
    lat, lon = scenario.config.centre_lat_deg, scenario.config.centre_lon_deg
    t0, depth = 1.7e9, 6.0
    picks = _synthetic_picks(stations, [(lat, lon, depth, t0)], with_s=True)
    late = min(picks, key=lambda k: k.time_epoch_s)  # the nearest station's P
    moved = replace(late, time_epoch_s=late.time_epoch_s + 0.45)
    picks = sorted([moved if k is late else k for k in picks], key=lambda k: k.time_epoch_s)
    errors = {}
    for loss in ("soft_l1", "cauchy"):
        o = _one_event(AssociateParams(min_picks=6, final_loss=loss), stations, picks)
        assert moved.pick_id in {a.pick_id for a in o.arrivals}  # the association keeps it
        epi = epicentral_km(lat, lon, o.latitude_deg, o.longitude_deg)
        errors[loss] = (epi, abs(o.depth_km - depth), abs(o.time_epoch_s - t0))
        # the arrivals are those of the published hypocentre
        a = next(a for a in o.arrivals if a.pick_id == moved.pick_id)
        if loss == "cauchy":  # the late pick stands out
            assert a.residual_s > 0.3
    soft, cauchy = errors["soft_l1"], errors["cauchy"]
    assert soft[1] > 0.4  # the late pick pulls the soft-L1 depth (measured 0.50 km)
    assert cauchy[1] < 0.5 * soft[1] and cauchy[0] < 0.2 and cauchy[2] < 0.05, errors  # 0.21 km


def test_final_loss_is_checked():
    with pytest.raises(ValueError, match="final_loss"):
        AssociateParams(final_loss="l2")


def _picks_with_s_twins(stations, hypocentre, n_twin: int, seed: int = 0) -> list[WindowPick]:
    """P and S picks of one earthquake at ``stations`` within 60 km, and at the ``n_twin``
    nearest a second pick of the S onset labelled P (within 80 ms of it), as a learned
    picker gives when it reads an S onset as both phases."""
    from workers.associate_locate import geodesic_distance_azimuth

    lat0, lon0, z, t0 = hypocentre
    rng = np.random.default_rng(seed)
    model = VelocityModel.default()
    keys = sorted(stations)
    lat = np.array([stations[k].latitude_deg for k in keys])
    lon = np.array([stations[k].longitude_deg for k in keys])
    d, _ = geodesic_distance_azimuth(lat0, lon0, lat, lon)
    tp = trace_rays(model, d, np.full(d.shape, z), "P").time_s
    ts = trace_rays(model, d, np.full(d.shape, z), "S").time_s
    out = []
    for rank, i in enumerate(np.argsort(d)):
        if d[i] > 60.0:
            continue
        sid = f"{keys[i]}.HHZ"
        out.append(WindowPick(make_pick_id(sid, t0 + tp[i]), sid, t0 + tp[i], "P"))
        out.append(WindowPick(make_pick_id(sid, t0 + ts[i]) + ":S", sid, t0 + ts[i], "S"))
        if rank < n_twin:
            t = t0 + ts[i] + rng.uniform(-0.08, 0.08)
            out.append(WindowPick(make_pick_id(sid, t), sid, t, "P"))
    return sorted(out, key=lambda k: k.time_epoch_s)


@pytest.mark.parametrize("batch", [1, 3])
def test_s_onsets_also_picked_as_p_make_no_second_event(scenario, associator, batch, monkeypatch):
    """A picker that reads the S onsets of the nearest stations as P too (twins of their S
    picks) gives one earthquake, not a shallow ghost seconds after it: an event whose P
    picks another event explains as its S is neither published nor kept."""
    stations = stations_of(scenario)
    lat, lon = scenario.config.centre_lat_deg, scenario.config.centre_lon_deg
    t0 = 1.7e9
    picks = _picks_with_s_twins(stations, (lat, lon, 6.0, t0), n_twin=12)
    events, retracted = run_engine(associator, stations, picks, batch=batch)
    assert len(events) == 1 and not retracted, (events, retracted)
    (o,) = events.values()
    assert abs(o.time_epoch_s - t0) < 0.1 and abs(o.depth_km - 6.0) < 1.0
    assert sum(a.phase == "S" for a in o.arrivals) >= 20
    # without the check the twins make a second event, at the surface, seconds later
    monkeypatch.setattr(OnlineAssociator, "_s_ghost", lambda self, ev, key: False)
    events, _ = run_engine(associator, stations, picks, batch=batch)
    assert len(events) == 2
    ghost = max(events.values(), key=lambda e: e.time_epoch_s)
    assert ghost.time_epoch_s - t0 > 2.0 and ghost.depth_km < 2.0


def test_distinct_arrivals_counts_only_onsets_far_apart_at_shared_slots():
    from workers.associate_online import distinct_arrivals

    a = {("X.A", "P"): 10.0, ("X.B", "P"): 11.0, ("X.C", "P"): 12.0, ("X.D", "P"): 9.0}
    b = {("X.A", "P"): 10.3, ("X.B", "P"): 13.5, ("X.C", "S"): 12.0}
    assert distinct_arrivals(a, b) == 1  # B only: A is the same onset, C and D not shared
    assert distinct_arrivals(a, a) == 0


def test_residual_tolerance_grows_with_travel_time(scenario):
    assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=6))
    try:
        assert np.allclose(assoc.tolerance_s(np.array([0.0, 2.0, 5.0, 10.0, 30.0])),
                           [0.5, 0.7, 1.0, 1.5, 1.5])  # fmt: skip
    finally:
        assoc.close()
    stations = stations_of(scenario)
    lat, lon = scenario.config.centre_lat_deg, scenario.config.centre_lon_deg
    picks = _synthetic_picks(stations, [(lat, lon, 5.0, 1.7e9)])
    near = min(picks, key=lambda k: k.time_epoch_s)  # travel time ~1.3 s: tolerance ~0.6 s
    late = replace(near, pick_id=near.pick_id + "x", time_epoch_s=near.time_epoch_s + 1.4)
    picks = sorted([k for k in picks if k is not near] + [late], key=lambda k: k.time_epoch_s)
    for params, kept in ((AssociateParams(min_picks=6), False),
                         (AssociateParams(min_picks=6, residual_fraction=0.0,
                                          residual_floor_s=1.5), True)):  # fmt: skip
        o = _one_event(params, stations, picks)
        got = {a.pick_id: (a.phase, a.residual_s) for a in o.arrivals}
        assert (late.pick_id in got) == kept, got.get(late.pick_id)
        assert abs(o.time_epoch_s - 1.7e9) < 0.2


def _as_candidate(p: WindowPick, shift_s: float = 0.0) -> WindowPick:
    t = p.time_epoch_s + shift_s
    return WindowPick(f"{p.station_id}:Pc:{t:.3f}", p.station_id, t, "P", candidate=True)


def test_candidate_onsets_alone_never_make_an_event(scenario, associator):
    """Every true P of the scenario flagged as a candidate onset: no event, in the engine or
    in PyOcto's whole-set association."""
    picks = scenario_picks(scenario, seed=24)
    cands = [_as_candidate(p) for p in window_picks(picks)]
    stations = stations_of(scenario)
    assert associator.associate(cands, stations) == []
    events, _ = run_engine(associator, stations, cands, batch=20)
    assert events == {}


def test_candidates_join_a_located_event_only_at_its_predicted_p(scenario, associator):
    """At stations whose pick is taken away, a candidate at the true P time joins the event;
    one 3 s off does not; at a station that has its pick, a candidate near it is not used;
    the events are the same in any order and batch split."""
    picks = scenario_picks(scenario, seed=25)
    stations = stations_of(scenario)
    wp = window_picks(picks)
    # true picks with no false pick near them at their station (a pick that fits keeps the
    # station's P before any candidate)
    true = [p for p in wp if picks.event_of[p.pick_id] == 0
            and not any(q.station_id == p.station_id and q is not p
                        and abs(q.time_epoch_s - p.time_epoch_s) < 5.0 for q in wp)]  # fmt: skip
    true.sort(key=lambda p: p.pick_id)
    assert len(true) >= 8
    missing, off, doubled = true[:4], true[4:6], true[6:8]
    drop = {p.pick_id for p in missing + off}
    good = [_as_candidate(p, 0.05) for p in missing]
    bad = [_as_candidate(p, 3.0) for p in off]
    twin = [_as_candidate(p, 0.3) for p in doubled]
    feed = sorted([p for p in wp if p.pick_id not in drop] + good + bad + twin,
                  key=lambda p: p.time_epoch_s)  # fmt: skip
    events, _ = run_engine(associator, stations, feed, batch=len(feed))
    ids = {a.pick_id for o in events.values() for a in o.arrivals}
    assert {p.pick_id for p in good} <= ids
    assert not ids & {p.pick_id for p in bad + twin}
    assert {p.pick_id for p in doubled} <= ids  # the picks, not the candidates beside them
    rng = np.random.default_rng(7)
    for batch in (1, 17):
        order = [feed[i] for i in rng.permutation(len(feed))]
        got, _ = run_engine(associator, stations, order, batch)
        assert signature(got) == signature(events), batch


def test_candidates_do_not_count_toward_min_picks(scenario, associator):
    """An event whose true picks are below min_picks (6 here) once candidates are left out
    is not made, whatever candidates join it."""
    picks = scenario_picks(scenario, seed=26)
    stations = stations_of(scenario)
    wp = window_picks(picks)
    ev0 = sorted((p for p in wp if picks.event_of[p.pick_id] == 0), key=lambda p: p.time_epoch_s)
    others = [p for p in wp if picks.event_of[p.pick_id] != 0]
    few = ev0[:5] + [_as_candidate(p) for p in ev0[5:]]
    feed = sorted(others + few, key=lambda p: p.time_epoch_s)
    events, _ = run_engine(associator, stations, feed, batch=10)
    t0 = picks.start_epoch_s + scenario.truth["events"][0]["origin_time_s"]
    assert not [o for o in events.values() if abs(o.time_epoch_s - t0) < 3.0]
    assert len(events) == len(scenario.truth["events"]) - 1


def test_worker_keeps_the_candidate_flag_across_a_restart(redis_client, scenario, associator):
    """A candidate onset on the wire (a weak one: PhaseNet 0.2) reaches the window as one
    (and stays one when a restarted worker reloads its window); with use_candidates off it
    is not windowed."""
    bus = Bus(redis_client)
    picks = scenario_picks(scenario, seed=27)
    p = replace(picks.messages[0], pick_id=picks.messages[0].pick_id + "c", candidate=True,
                probability=0.2)  # fmt: skip
    publish(bus, [p])
    AssociateWorker(bus, associator, block_ms=50).run(drain=True, timeout_s=60)
    again = AssociateWorker(bus, associator, block_ms=50)
    again.load_state()
    assert again.engine.window[p.pick_id].candidate
    redis_client.flushall()
    off = Associator(VelocityModel.default(), AssociateParams(min_picks=6, use_candidates=False))
    try:
        publish(bus, [p, replace(p, pick_id=p.pick_id + "x", candidate=False)])
        worker = AssociateWorker(bus, off, block_ms=50)
        worker.run(drain=True, timeout_s=60)
        assert p.pick_id not in worker.engine.window
        assert p.pick_id + "x" in worker.engine.window
    finally:
        off.close()


def test_open_events_publish_fitting_candidates_and_a_restart_rebuilds_them_from_picks(
    scenario, associator
):
    """An open event's published revision carries the candidate that fits it (its
    hypocentre is the picks'); a restarted engine restores the event from its picks alone."""
    picks = scenario_picks(scenario, seed=28)
    stations = stations_of(scenario)
    wp = window_picks(picks)
    ev0 = sorted((p for p in wp if picks.event_of[p.pick_id] == 0), key=lambda p: p.pick_id)
    lone = [p for p in ev0
            if not any(q.station_id == p.station_id and q is not p
                       and abs(q.time_epoch_s - p.time_epoch_s) < 5.0 for q in wp)]  # fmt: skip
    gone = lone[0]
    cand = _as_candidate(gone, 0.05)
    feed = [p for p in wp if p.pick_id != gone.pick_id]
    end = max(p.time_epoch_s for p in ev0) + 1.0
    early = sorted([p for p in feed if p.time_epoch_s <= end] + [cand],
                   key=lambda p: p.time_epoch_s)  # fmt: skip

    def engine():
        return OnlineAssociator(associator, dict(stations), new_id=lambda t: f"e{t:.0f}")

    eng = engine()
    eng.add(early, 1000.0)
    result = eng.step(1000.0)
    with_cand = [o for o in result.origins if cand.pick_id in {a.pick_id for a in o.arrivals}]
    assert len(with_cand) == 1
    origin = with_cand[0]
    key = next(k for k, e in eng.events.items() if e.event_id == origin.event_id)
    assert cand.pick_id not in eng.events[key].pick_ids  # the solution is the picks'
    again = engine()
    again.add(early, 2000.0)
    again.restore([origin])
    restored = next(e for e in again.events.values() if e.event_id == origin.event_id)
    assert cand.pick_id not in restored.pick_ids
    assert len(restored.pick_ids) == len(origin.arrivals) - 1


def test_min_picks_below_four_is_refused_with_the_reason():
    """An event is first located from its P picks alone (four unknowns): three would never
    locate (the least-squares location needs four picks), so the setting is refused, in the
    engine's parameters and in the config check."""
    from firstmotion.config import ConfigError, settings_from_dict

    with pytest.raises(ValueError, match="min_picks: expected >= 4"):
        AssociateParams(min_picks=3)
    with pytest.raises(ConfigError, match="associate.min_picks: expected >= 4"):
        settings_from_dict({"associate": {"min_picks": 3}}, environ={})
    assert AssociateParams(min_picks=4).min_picks == 4


def test_a_model_above_sea_level_locates_below_sea_level():
    """A volcano's 1-D model starting 2 km above sea level (4 km/s down to 12 km), stations
    at 0.2-1.9 km elevation, an earthquake 5 km below sea level: exact straight-ray P and S
    times from the hypocentre to each station where it stands. The published depth is below
    sea level (not below the model's top: 2 km more), with the stations' negative statics
    (below the top); a restarted associator reads the origin back in the model's frame."""
    model = VelocityModel.from_text("# vp_vs: 1.75\n-2.0 4.0\n12.0 6.0\n")
    rng = np.random.default_rng(5)
    lat0, lon0, depth, t0 = 19.4, -155.3, 5.0, 1.7e9
    north, east = rng.uniform(-8.0, 8.0, (2, 14))
    elev = rng.uniform(200.0, 1900.0, 14)
    km_per_deg_lon = 111.2 * np.cos(np.radians(lat0))
    stations = {
        f"HV.V{k:02d}.": StationCoords(lat0 + n / 111.2, lon0 + e / km_per_deg_lon, float(h))
        for k, (n, e, h) in enumerate(zip(north, east, elev, strict=True))
    }
    picks = []
    for (key, st), h in zip(stations.items(), elev, strict=True):
        d = epicentral_km(lat0, lon0, st.latitude_deg, st.longitude_deg)
        r = np.hypot(d, depth + h / 1000.0)
        for phase, v in (("P", 4.0), ("S", 4.0 / 1.75)):
            t = t0 + r / v
            picks.append(WindowPick(make_pick_id(f"{key}.HHZ", t), f"{key}.HHZ", t, phase))
    picks.sort(key=lambda k: k.time_epoch_s)
    assoc = Associator(model, AssociateParams(min_picks=6))
    try:
        events, _ = run_engine(assoc, stations, picks, batch=10)
        assert len(events) == 1, events
        o = next(iter(events.values()))
        assert epicentral_km(lat0, lon0, o.latitude_deg, o.longitude_deg) < 0.3
        assert abs(o.depth_km - depth) < 0.4, o.depth_km  # 4.95 km
        # the statics are vertical: oblique rays keep residuals of a few hundredths of a second
        assert abs(o.time_epoch_s - t0) < 0.15 and o.rms_s < 0.1  # 0.10 s, 0.07 s
        assert len(o.arrivals) == len(picks)
        eng = OnlineAssociator(assoc, dict(stations), new_id=lambda t: "e1")
        eng.add(picks, 1000.0)
        eng.restore([o])
        (ev,) = eng.events.values()
        assert ev.located.depth_km == pytest.approx(o.depth_km + 2.0)
    finally:
        assoc.close()


@pytest.mark.parametrize("pick_p", [0.5, 0.0])
def test_a_sure_candidate_onset_counts_as_a_pick(redis_client, scenario, pick_p):
    """A small earthquake with three P picks and two candidate onsets: one PhaseNet was sure
    of (0.8; the picker's onset gate dropped it), one weak (0.2). With
    ``candidate_pick_p`` 0.5 the sure one counts as a pick (so stored in the worker's window
    state, for a restart) and the four P stations make the event (the weak one joins it as a
    candidate); with 0 no candidate counts: three picks, no event."""
    bus = Bus(redis_client)
    picks = scenario_picks(scenario, seed=24)
    first = sorted((p for p in picks.messages if picks.event_of[p.pick_id] == 0),
                   key=lambda p: p.time_epoch_s)  # fmt: skip
    sure = replace(first[3], candidate=True, probability=0.8)
    weak = replace(first[4], candidate=True, probability=0.2)
    params = AssociateParams(min_picks=4, close_wall_s=0.0, candidate_pick_p=pick_p)
    assert params.is_candidate(True, 0.8) == (pick_p == 0.0)
    assert params.is_candidate(True, 0.2) and not params.is_candidate(False, 0.2)
    assoc = Associator(VelocityModel.default(), params)
    try:
        worker = AssociateWorker(bus, assoc, block_ms=50)
        publish(bus, first[:3] + [sure, weak])
        while worker.consumer.run_once(block_ms=10):
            pass
        rows = {p.pick_id: json.loads(redis_client.hget("fm:assoc:window", p.pick_id))
                for p in (sure, weak)}  # fmt: skip
        assert rows[sure.pick_id].get("candidate", False) == (pick_p == 0.0)
        assert rows[weak.pick_id]["candidate"] is True
        worker.associate_now()
        worker.engine.newest_s += 1000.0
        worker.associate_now()
        latest, _ = latest_origins(bus)
    finally:
        assoc.close()
    if pick_p == 0.0:
        assert latest == {}
    else:
        assert len(latest) == 1
        (o,) = latest.values()
        assert {a.pick_id for a in o.arrivals} == {p.pick_id for p in first[:3] + [sure, weak]}
    with pytest.raises(ValueError, match="candidate_pick_p"):
        AssociateParams(candidate_pick_p=1.5)


SWARM_MODEL = """# depth_km vp_km_s vs_km_s
0.0 2.8 1.5909
1.0 3.9 2.2159
3.0 5.0 2.8409
6.0 5.9 3.3523
12.0 6.4 3.6364
25.0 7.0 3.9773
"""


def _swarm_network(tmp_path, xy: dict[str, tuple[float, float]]):
    """The swarm proxy's velocity model, an associator (``min_picks`` 4) and stations
    ``FM.<code>.`` at ``xy`` (km east, north of 18N 66.2W)."""
    path = tmp_path / "swarm.txt"
    path.write_text(SWARM_MODEL)
    model = VelocityModel.from_file(str(path))
    assoc = Associator(model, AssociateParams(min_picks=4))
    proj = assoc.projection(18.0, -66.2)
    stations = {}
    for code, (x, y) in xy.items():
        lat, lon = proj.to_latlon(x, y)
        stations[f"FM.{code}."] = StationCoords(float(lat), float(lon), 0.0)
    return model, assoc, proj, stations


def _assert_located_at(ev, proj, codes: str, hypocentre) -> None:
    """``ev`` has P arrivals at ``FM.<code>..EHZ`` for ``codes`` only and lies within 0.2 km
    and 0.02 s of ``hypocentre`` = (x_km, y_km, depth_km, origin epoch s)."""
    hx, hy, hz, t0 = hypocentre
    assert ev is not None
    assert sorted(a.station_id for a in ev.arrivals) == [f"FM.{c}..EHZ" for c in codes]
    x, y = proj.to_xy(ev.latitude_deg, ev.longitude_deg)
    assert abs(ev.time_epoch_s - t0) < 0.02 and abs(ev.depth_km - hz) < 0.2
    assert np.hypot(float(x) - hx, float(y) - hy) < 0.2


def test_one_wrong_pick_does_not_lose_the_event_the_others_fit_exactly(tmp_path):
    """A small earthquake under a swarm network: exact P picks at its four nearest stations and
    the S onset of a fifth labelled P (2.9 s after its P), located from the start PyOcto gave
    on the swarm proxy (5.7 km off, 0.3 km deep). The first fit, pulled by the wrong pick to
    the surface, puts a good pick beyond the residual rule too (0.94 s); cutting both left three
    P stations and no event (before: ``None``).
    Only the worst goes when the rest would be too few, and the four locate exactly."""
    xy = {"A": (-3.1, 2.5), "B": (4.1, -10.6), "C": (11.6, -4.0), "D": (-3.7, 13.9),
          "E": (7.1, -19.2)}  # fmt: skip
    model, assoc, proj, stations = _swarm_network(tmp_path, xy)
    try:
        hx, hy, hz, t0 = 1.55, -3.19, 5.9, 1.7e9
        picks = []
        for code, (x, y) in xy.items():
            phase = "S" if code == "E" else "P"  # E's S onset, labelled P
            tt = float(trace_rays(model, np.array([np.hypot(x - hx, y - hy)]),
                                  np.array([hz]), phase).time_s[0])  # fmt: skip
            sid = f"FM.{code}..EHZ"
            picks.append(WindowPick(make_pick_id(sid, t0 + tt), sid, t0 + tt, "P"))
        t_ref = float(np.floor(t0 + 1.0))
        ev = assoc.locate_picks(picks, stations, (4.4, 1.77, 0.31, t0 - t_ref), t_ref, proj)
    finally:
        assoc.close()
    _assert_located_at(ev, proj, "ABCD", (hx, hy, hz, t0))


def test_a_wrong_onset_the_fit_absorbs_is_cut_when_the_others_fit_without_it(tmp_path):
    """Five exact P picks of a small earthquake under a swarm network and a noise onset taken
    as P at a sixth station 4 s before its P, located from a start that the noise pick drew
    seconds early and tens of km off (as the swarm proxy's live run did: a surface event
    5.7 s early 30 km east, every residual within its tolerance, rms 0.39 s). The residual
    rule cuts nothing; without the noise pick the five fit exactly, so it goes, and the
    earthquake is located where it is."""
    xy = {"A": (-3.1, 2.5), "B": (4.1, -10.6), "C": (11.6, -4.0), "D": (-3.7, 13.9),
          "E": (7.1, -19.2), "F": (-15.0, -2.0)}  # fmt: skip
    model, assoc, proj, stations = _swarm_network(tmp_path, xy)
    try:
        hx, hy, hz, t0 = 1.55, -3.19, 5.9, 1.7e9
        picks = []
        for code, (x, y) in xy.items():
            tt = float(trace_rays(model, np.array([np.hypot(x - hx, y - hy)]),
                                  np.array([hz]), "P").time_s[0])  # fmt: skip
            if code == "F":
                tt -= 4.0  # a noise onset PhaseNet was sure of
            sid = f"FM.{code}..EHZ"
            picks.append(WindowPick(make_pick_id(sid, t0 + tt), sid, t0 + tt, "P"))
        t_ref = float(np.floor(t0 + 1.0))
        start = (-25.0, 5.0, 0.0, t0 - 3.0 - t_ref)
        ev = assoc.locate_picks(picks, stations, start, t_ref, proj)
    finally:
        assoc.close()
    _assert_located_at(ev, proj, "ABCDE", (hx, hy, hz, t0))


def test_a_burst_follower_whose_p_falls_on_the_first_ones_s_is_its_own_event(scenario):
    """Two earthquakes at one place, the second its S - P time at one station later: there
    its P is where the first one's S is due (the first has no pick there). The follower has
    four P picks (the minimum) and their S: its P at that station is its own arrival, not the
    first earthquake's S (the picker drops S onsets it reads as P by their polarization), so
    it has four onsets the first does not explain and stays an event (before: merged into the
    first, three unexplained)."""
    stations = stations_of(scenario)
    lat, lon = scenario.config.centre_lat_deg, scenario.config.centre_lon_deg
    t0, depth = 1.7e9, 6.0
    first = _synthetic_picks(stations, [(lat, lon, depth, t0)], with_s=True)
    p_at = {k.station_key: k.time_epoch_s for k in first if k.phase == "P"}
    s_minus_p = {k.station_key: k.time_epoch_s - p_at[k.station_key] for k in first
                 if k.phase == "S"}  # fmt: skip
    x = min(s_minus_p, key=lambda s: abs(s_minus_p[s] - 3.0))  # S - P of about 3 s
    dt = s_minus_p[x]
    first = [k for k in first if k.station_key != x]  # neither onset picked there
    follower = _synthetic_picks(stations, [(lat, lon, depth, t0 + dt)], with_s=True)
    # and the three nearest stations where its P is not at the first one's S
    apart = sorted((s for s in p_at if abs(s_minus_p[s] - dt) > 1.0), key=lambda s: p_at[s])
    mine = {x, *apart[:3]}
    follower = [k for k in follower if k.station_key in mine]
    picks = sorted(first + follower, key=lambda k: k.time_epoch_s)
    assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=4))
    try:
        events, _ = run_engine(assoc, stations, picks, batch=5)
    finally:
        assoc.close()
    times = sorted(o.time_epoch_s for o in events.values())
    assert len(times) == 2, times
    assert abs(times[0] - t0) < 0.1 and abs(times[1] - t0 - dt) < 0.1
    second = max(events.values(), key=lambda o: o.time_epoch_s)
    assert {a.pick_id for a in second.arrivals} == {k.pick_id for k in follower}


def _messy_burst(stations, lat, lon, t0, rng):
    """Two or three earthquakes 1-5 s apart within 15 km of (lat, lon): half their P and S
    onsets picked, with 50 ms of scatter, and 3-9 noise picks over 25 s."""
    keys = sorted(stations)
    n = rng.integers(2, 4)
    hyps = [(lat + rng.uniform(-0.15, 0.15), lon + rng.uniform(-0.15, 0.15), rng.uniform(2, 12),
             t0 + (0.0 if i == 0 else rng.uniform(1.0, 5.0) * i)) for i in range(n)]  # fmt: skip
    picks = _synthetic_picks(stations, hyps, with_s=True)
    keep = rng.random(len(picks)) > 0.5
    picks = [WindowPick(k.pick_id, k.station_id, k.time_epoch_s + rng.normal(0.0, 0.05), k.phase)
             for k, kept in zip(picks, keep, strict=True) if kept]  # fmt: skip
    for _ in range(int(rng.integers(3, 10))):
        sid = f"{keys[rng.integers(len(keys))]}.HHZ"
        t = t0 + rng.uniform(-5.0, 20.0)
        picks.append(WindowPick(make_pick_id(sid, t), sid, t, "P" if rng.random() < 0.7 else "S"))
    return [h[3] for h in hyps], sorted(picks, key=lambda k: k.time_epoch_s)


def test_a_backlog_of_picks_is_taken_in_slices_of_pick_time(scenario, associator, monkeypatch):
    """A step whose new picks span more than ``REVEAL_S`` (a replay faster than real time, an
    associator that fell behind, a restart) attaches and nucleates them slice by slice in
    pick-time order, each slice seeing only the picks up to its end, as a real-time feed
    would have shown them; every pick is taken once."""
    import workers.associate_online as online

    stations = stations_of(scenario)
    lat, lon = scenario.config.centre_lat_deg, scenario.config.centre_lon_deg
    _, picks = _messy_burst(stations, lat, lon, 1.7e9, np.random.default_rng(3))
    assert picks[-1].time_epoch_s - picks[0].time_epoch_s > 5 * online.REVEAL_S
    eng = OnlineAssociator(associator, dict(stations), new_id=str)
    slices, lasts, pools = [], [], []
    take, grid = eng._take, eng.grid()
    cluster = grid.cluster

    def spy_take(fresh, wall_s, result, *, last):
        slices.append([k.time_epoch_s for k in fresh])
        lasts.append(last)
        return take(fresh, wall_s, result, last=last)

    def spy_cluster(pool, min_picks, fresh):  # what the nucleation is shown
        pools.append(max(k.time_epoch_s for k in pool) <= slices[-1][-1])
        return cluster(pool, min_picks, fresh)

    monkeypatch.setattr(eng, "_take", spy_take)
    monkeypatch.setattr(grid, "cluster", spy_cluster)
    eng.add(picks, 0.0)
    eng.step(0.0)
    assert len(slices) > 5
    assert all(s[-1] - s[0] < online.REVEAL_S for s in slices)
    # in order, no overlap
    assert all(a[-1] < b[0] for a, b in zip(slices[:-1], slices[1:], strict=True))
    assert sorted(t for s in slices for t in s) == [k.time_epoch_s for k in picks]
    assert pools and all(pools)  # nucleation never saw a pick beyond its slice
    assert lasts == [False] * (len(slices) - 1) + [True]
    assert not eng._unrevealed and not eng._deferred and not eng._dirty


def test_a_backlog_gives_the_events_of_a_real_time_feed(scenario):
    """Two earthquakes 3.95 s apart, half their onsets picked, noise picks between: all the
    picks in one step give the two earthquakes, as the same picks two at a time do (before,
    one step nucleated them together into two solutions between them, 1.0 and 2.7 s)."""
    stations = stations_of(scenario)
    lat, lon = scenario.config.centre_lat_deg, scenario.config.centre_lon_deg
    rng = np.random.default_rng(7)
    for _ in range(9):  # the ninth draw
        truth, picks = _messy_burst(stations, lat, lon, 1.7e9, rng)
    assert len(truth) == 2 and abs(truth[1] - truth[0] - 3.95) < 0.01
    assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=4))
    try:
        backlog, _ = run_engine(assoc, stations, picks, batch=len(picks))
        live, _ = run_engine(assoc, stations, picks, batch=2)
    finally:
        assoc.close()
    for events in (backlog, live):
        times = sorted(o.time_epoch_s for o in events.values())
        assert len(times) == 2, [t - truth[0] for t in times]
        assert all(abs(a - b) < 0.1 for a, b in zip(times, truth, strict=True))
