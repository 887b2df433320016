"""The mechanism worker on a real Redis: origins and polarities from a synthetic truth."""

import numpy as np
import pytest

from firstmotion.bus import Bus
from firstmotion.kagan import kagan_angle_deg
from firstmotion.messages import Arrival, Origin, Polarity, make_pick_id
from firstmotion.metrics import registry
from firstmotion.radiation import p_polarity
from workers.mechanism.reversals import Reversal, ReversalList
from workers.mechanism.worker import MechanismWorker, WorkerParams

TRUTH = (35.0, 60.0, 75.0)
T0 = 1.7e9


def _network(n=30, seed=0):
    rng = np.random.default_rng(seed)
    i = np.arange(n) + 0.5
    az = np.mod(i * 137.50776405 + rng.uniform(0, 360), 360.0)
    to = np.degrees(np.arccos(-i / n))
    return az, to


def _event(event_id="ev1", n=30, seed=0, flip_station=None, revision=0):
    """Origin with n arrivals and their Polarity messages (classifier-like probabilities)."""
    az, to = _network(n, seed)
    pol = p_polarity(*TRUTH, az, to)
    arrivals, polarities = [], []
    for k in range(n):
        sid = f"XX.S{k:02d}..HHZ"
        t = T0 + 5 + k * 0.1
        pid = make_pick_id(sid, t)
        arrivals.append(
            Arrival(
                pick_id=pid,
                station_id=sid,
                azimuth_deg=float(az[k]),
                takeoff_deg=float(to[k]),
                distance_km=40.0,
            )
        )
        recorded = int(pol[k]) * (-1 if k == flip_station else 1)
        probs = (0.95, 0.03, 0.02) if recorded > 0 else (0.03, 0.95, 0.02)
        polarities.append(
            Polarity(
                pick_id=pid,
                station_id=sid,
                time_epoch_s=t,
                polarity=recorded,
                probabilities=probs,
                confidence=0.95,
                model_version="test",
            )
        )
    origin = Origin(
        event_id=event_id,
        revision=revision,
        time_epoch_s=T0,
        latitude_deg=10.0,
        longitude_deg=20.0,
        depth_km=10.0,
        arrivals=tuple(arrivals),
    )
    return origin, polarities


def _mechanisms(bus):
    return [m for _, m in bus.messages("mechanisms")]


@pytest.fixture
def bus(redis_client, redis_url):
    b = Bus.from_url(redis_url)
    yield b
    b.close()


def test_first_solution_then_revision_as_polarities_arrive(bus):
    origin, pols = _event()
    bus.publish("origins", origin)
    for p in pols[:7]:
        bus.publish("polarities", p)
    w = MechanismWorker(bus, WorkerParams(), name="w1")
    w.run(drain=True, timeout_s=60)
    assert _mechanisms(bus) == []  # 7 < min_polarities

    bus.publish("polarities", pols[7])
    w.run(drain=True, timeout_s=60)
    first = _mechanisms(bus)
    assert len(first) == 1 and first[0].revision == 1 and first[0].n_polarities == 8
    assert first[0].event_id == "ev1" and first[0].origin_revision == 0
    assert {p.pick_id for p in first[0].picks} <= {p.pick_id for p in pols[:8]}

    # a restarted worker (new process, new name) continues from the state in Redis
    w2 = MechanismWorker(bus, WorkerParams(), name="w2")
    for p in pols[8:]:
        bus.publish("polarities", p)
    w2.run(drain=True, timeout_s=60)
    ms = _mechanisms(bus)
    assert [m.revision for m in ms] == list(range(1, len(ms) + 1))
    last = ms[-1]
    assert kagan_angle_deg(last.strike, last.dip, last.rake, *TRUTH) <= 25.0
    assert last.n_polarities >= 8


def test_polarities_before_origin_and_idempotent_redelivery(bus):
    origin, pols = _event()
    for p in pols:
        bus.publish("polarities", p)
    bus.publish("origins", origin)
    w = MechanismWorker(bus, WorkerParams(), name="w1")
    w.run(drain=True, timeout_s=60)
    ms = _mechanisms(bus)
    assert len(ms) == 1 and ms[0].n_polarities == 30 and ms[0].n_stations == 30
    assert kagan_angle_deg(ms[0].strike, ms[0].dip, ms[0].rake, *TRUTH) <= 20.0
    assert ms[0].quality in "AB"
    # the same polarities and origin delivered again: nothing materially new, no new revision
    for p in pols[:5]:
        bus.publish("polarities", p)
    bus.publish("origins", origin)
    w.run(drain=True, timeout_s=60)
    assert len(_mechanisms(bus)) == 1
    assert bus.pending_count("polarities", "mechanism") == 0


def test_reversal_list_is_applied(bus):
    origin, pols = _event(flip_station=3)
    bad = pols[3]
    rev = ReversalList((Reversal(bad.station_id, T0 - 86400, T0 + 86400),))
    bus.publish("origins", origin)
    for p in pols:
        bus.publish("polarities", p)
    w = MechanismWorker(bus, WorkerParams(), reversals=rev, name="w1")
    w.run(drain=True, timeout_s=60)
    m = _mechanisms(bus)[-1]
    used = {p.pick_id: p.polarity for p in m.picks}
    assert used[bad.pick_id] == -bad.polarity  # flipped back to the truth before inverting
    assert m.misfit < 0.05


def test_older_origin_revision_does_not_replace_newer(bus):
    origin1, pols = _event(revision=1)
    origin0, _ = _event(revision=0, n=10)
    bus.publish("origins", origin1)
    bus.publish("origins", origin0)  # late, older revision with fewer arrivals
    for p in pols:
        bus.publish("polarities", p)
    MechanismWorker(bus, WorkerParams(), name="w1").run(drain=True, timeout_s=60)
    ms = _mechanisms(bus)
    assert ms and all(m.origin_revision == 1 for m in ms)
    assert ms[-1].n_polarities == 30


def test_metrics_count_inversions_and_revisions(bus):
    def value(name, **labels):
        v = registry().get_sample_value(name, labels)
        return 0.0 if v is None else v

    before = value("firstmotion_mechanism_inversions_total")
    before_rev = value("firstmotion_mechanism_revisions_total")
    origin, pols = _event(event_id="ev-m")
    bus.publish("origins", origin)
    for p in pols:
        bus.publish("polarities", p)
    MechanismWorker(bus, WorkerParams(), name="w1").run(drain=True, timeout_s=60)
    n = len(_mechanisms(bus))
    assert value("firstmotion_mechanism_inversions_total") >= before + 1
    assert value("firstmotion_mechanism_revisions_total") == before_rev + n
    assert value("firstmotion_mechanism_inversion_seconds_count") >= 1


@pytest.mark.parametrize("new_polarities", [4, 1000])
def test_a_revision_follows_the_polarity_count_when_the_solution_holds(
    redis_client, redis_url, new_polarities
):
    """Polarities arriving one by one: with the solution not allowed to 'move' (180° needed),
    a revision comes when its quality changes or, with ``revise_min_new_polarities``, when it
    uses that many more polarities; the catalog's last revision then counts (nearly) all."""
    redis_client.flushdb()
    bus = Bus.from_url(redis_url)
    origin, pols = _event(seed=1)  # at HASH's fixed floor its quality settles at 20 of 30
    bus.publish("origins", origin)
    params = WorkerParams(
        misfit_floor="fixed",
        revise_min_change_deg=180.0,
        revise_min_new_polarities=new_polarities,
    )
    w = MechanismWorker(bus, params, name="w1")
    for p in pols:
        bus.publish("polarities", p)
        w.run(drain=True, timeout_s=60)
    ms = _mechanisms(bus)
    counts = [m.n_polarities for m in ms]
    for a, b in zip(ms, ms[1:], strict=False):  # each revision had a reason
        assert a.quality != b.quality or b.n_polarities - a.n_polarities >= new_polarities
    if new_polarities == 4:
        assert counts[-1] >= len(pols) - 3
    else:  # quality changes alone leave the count behind
        assert counts[-1] < len(pols) - 3
    bus.close()


def test_the_worker_takes_the_misfit_floor_from_the_reads(redis_client, redis_url):
    """Twelve polarities: HASH's fixed floor of two allowed misfits leaves the mechanism
    quality D; the floor from the reads is one for sure reads (better than D) and grows for
    unsure ones (D again), and the message says which floor was used."""
    from dataclasses import replace

    from firstmotion.config import settings_from_dict

    origin, pols = _event(n=12, seed=3)

    def reads(up: float, down: float) -> list:
        return [
            replace(p, probabilities=(up, down, 1 - up - down) if p.polarity > 0
                    else (down, up, 1 - up - down))
            for p in pols
        ]  # fmt: skip

    cases = {
        "fixed": ({"FIRSTMOTION_MECHANISM__MISFIT_FLOOR": "fixed"}, reads(0.99, 0.005)),
        "sure": ({}, reads(0.99, 0.005)),
        "unsure": ({}, reads(0.8, 0.15)),
    }
    out = {}
    for name, (env, rows) in cases.items():
        params = WorkerParams.from_settings(settings_from_dict({}, environ=env).mechanism)
        b = Bus.from_url(redis_url, f"fm-floor-{name}:")
        try:
            b.publish("origins", origin)
            for p in rows:
                b.publish("polarities", p)
            MechanismWorker(b, params, name="w").run(drain=True, timeout_s=60)
            (m,) = _mechanisms(b)
            assert m.n_polarities == 12
            out[name] = (m.quality, m.misfit_floor)
        finally:
            b.close()
    assert out["fixed"] == ("D", 2.0), out
    assert out["sure"][1] == 1.0 and out["sure"][0] < "D", out
    assert out["unsure"][1] >= 3.0 and out["unsure"][0] == "D", out


def test_a_small_network_is_told_about_the_misfit_floor():
    from dataclasses import replace

    from workers.mechanism.worker import misfit_floor_hint

    fixed = WorkerParams(misfit_floor="fixed")
    hint = misfit_floor_hint(12, fixed)
    assert hint is not None and 'misfit_floor = "reads"' in hint and "12 stations" in hint
    assert misfit_floor_hint(29, fixed) is not None  # round(1.45) = 1 < 2
    assert misfit_floor_hint(30, fixed) is None  # badfrac's 2 (half to even) decides
    assert misfit_floor_hint(300, fixed) is None
    assert misfit_floor_hint(12, replace(fixed, badmin=1.0)) is None  # already set
    assert misfit_floor_hint(12, replace(fixed, badfrac=0.5)) is None  # round(3.0) >= 2
    assert misfit_floor_hint(12, WorkerParams()) is None  # the default floor follows the reads


def _stationxml_with_a_vertical_pointing_down(path, station_id):
    from obspy.core.inventory import Channel, Inventory, Network, Station

    net, sta, loc, cha = station_id.split(".")
    station = Station(sta, 10.0, 20.0, 0.0)
    station.channels = [Channel(cha, loc, 10.0, 20.0, 0.0, 0.0, dip=90.0, azimuth=0.0)]
    Inventory([Network(net, stations=[station])], source="test").write(str(path), "STATIONXML")
    return path


def test_a_vertical_the_stationxml_documents_pointing_down_is_flipped(bus, redis_url, tmp_path):
    """The stage's command line: ``--inventory`` documents station 3's vertical at dip +90,
    so its recorded first motion (the ground's, negated) is flipped before inverting."""
    from firstmotion import cli

    origin, pols = _event(flip_station=3)
    bad = pols[3]
    xml = _stationxml_with_a_vertical_pointing_down(tmp_path / "st.xml", bad.station_id)
    bus.publish("origins", origin)
    for p in pols:
        bus.publish("polarities", p)
    config = tmp_path / "f.toml"
    config.write_text("[mechanism]\n")
    rc = cli.main(["worker", "mechanism", "--config", str(config), "--redis", redis_url,
                   "--inventory", str(xml), "--drain"])  # fmt: skip
    assert rc == 0
    m = _mechanisms(bus)[-1]
    used = {p.pick_id: p.polarity for p in m.picks}
    assert used[bad.pick_id] == -bad.polarity
    assert m.misfit < 0.05
    # with the documented reversals off, the read stays as recorded
    bus.client.flushdb()
    bus.publish("origins", origin)
    for p in pols:
        bus.publish("polarities", p)
    config.write_text("[mechanism]\nstationxml_reversals = false\n")
    rc = cli.main(["worker", "mechanism", "--config", str(config), "--redis", redis_url,
                   "--inventory", str(xml), "--drain"])  # fmt: skip
    assert rc == 0
    m = _mechanisms(bus)[-1]
    assert {p.pick_id: p.polarity for p in m.picks}[bad.pick_id] == bad.polarity


def test_documented_reversals_join_a_list_and_a_station_in_both_is_flipped_once(tmp_path):
    from workers.mechanism.reversals import with_documented_reversals

    sid = "XX.S03..HHZ"
    xml = _stationxml_with_a_vertical_pointing_down(tmp_path / "st.xml", sid)
    documented = with_documented_reversals(None, xml)
    assert documented.apply([sid, "XX.S04..HHZ"], T0, [1, 1]).tolist() == [-1, 1]
    listed = ReversalList((Reversal("S03", T0 - 1, T0 + 1), Reversal("S05", T0 - 1, T0 + 1)))
    both = with_documented_reversals(listed, xml)
    assert len(both) == 3
    assert both.apply([sid, "XX.S05..HHZ"], T0, [1, 1]).tolist() == [-1, -1]
    # a StationXML that documents none leaves the list as it was
    from obspy.core.inventory import Channel, Inventory, Network, Station

    up = Station("S03", 10.0, 20.0, 0.0)
    up.channels = [Channel("HHZ", "", 10.0, 20.0, 0.0, 0.0, dip=-90.0, azimuth=0.0)]
    inventory = Inventory([Network("XX", stations=[up])], source="test")
    inventory.write(str(tmp_path / "up.xml"), "STATIONXML")
    assert with_documented_reversals(listed, tmp_path / "up.xml") is listed
    assert with_documented_reversals(None, tmp_path / "up.xml") is None


def test_metadata_documenting_most_verticals_reversed_is_warned_about(tmp_path, caplog):
    """Metadata that writes +90 for verticals pointing up would turn every first motion: where
    most of a StationXML's verticals are documented reversed, the worker says so."""
    from obspy.core.inventory import Channel, Inventory, Network, Station

    from workers.mechanism.reversals import with_documented_reversals

    def inventory(dips, path):
        stations = []
        for k, dip in enumerate(dips):
            sta = Station(f"S{k}", 10.0, 20.0, 0.0)
            sta.channels = [Channel("HHZ", "", 10.0, 20.0, 0.0, 0.0, dip=dip, azimuth=0.0)]
            stations.append(sta)
        Inventory([Network("XX", stations=stations)], source="test").write(str(path), "STATIONXML")
        return path

    most = inventory([90.0, 90.0, 90.0, -90.0], tmp_path / "a.xml")
    with caplog.at_level("WARNING", logger="workers.mechanism.reversals"):
        listed = with_documented_reversals(None, most)
    assert len(listed) == 3  # still applied: the metadata is the network's word
    assert "documents 3 of its 4 vertical channel epochs as reversed" in caplog.text
    caplog.clear()
    one = inventory([90.0, -90.0, -90.0, -90.0], tmp_path / "b.xml")
    with caplog.at_level("WARNING", logger="workers.mechanism.reversals"):
        with_documented_reversals(None, one)
    assert "vertical channel epochs as reversed" not in caplog.text


def test_one_polarity_per_site_the_most_confident():
    """Two sensors of one site (location codes '' and '00', HH and HN) see one ray: the
    inversion takes one read per NET.STA, the most confident (counted twice, a site weighed
    double and moved mechanisms)."""
    from dataclasses import replace

    from workers.mechanism.worker import one_per_site

    origin, pols = _event(n=4)
    rows = list(zip(origin.arrivals, pols, strict=True))
    a0, p0 = rows[0]
    twin = replace(a0, pick_id=a0.pick_id + "b", station_id="XX.S00.00.HHZ")
    strong = replace(p0, pick_id=twin.pick_id, station_id=twin.station_id, confidence=0.99)
    accel = replace(a0, pick_id=a0.pick_id + "c", station_id="XX.S00..HNZ")
    weak = replace(p0, pick_id=accel.pick_id, station_id=accel.station_id, confidence=0.6)
    kept = one_per_site([*rows, (twin, strong), (accel, weak)])
    assert [a.station_id for a, _ in kept] == ["XX.S01..HHZ", "XX.S02..HHZ", "XX.S03..HHZ",
                                               "XX.S00.00.HHZ"]  # fmt: skip
    assert one_per_site(rows) == rows
    assert one_per_site(rows * 3) == rows  # an origin listing its arrivals three times
