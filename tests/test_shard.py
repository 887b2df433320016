"""Replicas on one Redis: two sharded associators (and mechanism workers) make the events of one."""

from __future__ import annotations

import pytest
from test_associate import publish, scenario_picks
from test_associate_online import signature
from test_mechanism_worker import _event, _mechanisms

from firstmotion.bus import Bus
from firstmotion.messages import CatalogEvent, Origin
from firstmotion.shard import Shard
from firstmotion.velocity import VelocityModel
from workers.associate import AssociateWorker
from workers.associate_locate import AssociateParams, Associator
from workers.mechanism.worker import MechanismWorker, WorkerParams


@pytest.fixture(scope="module")
def scenario():
    from stream.scenario import ScenarioConfig, make_scenario

    return make_scenario(ScenarioConfig(n_stations=30, n_events=3, duration_s=150.0, seed=3))


def test_shard_bands_groups_and_keys():
    a, b = Shard.parse("0/2", 0.25), Shard.parse("1/2", 0.25)
    for lon in (-117.99, -117.78, -117.69, 0.1, 179.9, -179.9):
        assert a.owns(34.0, lon) != b.owns(34.0, lon)  # every epicentre has one owner
    assert a.owns(34.0, -117.99) and b.owns(34.0, -117.69)
    assert a.group("associate") == "associate-0of2" and a.tag == "s0of2"
    one = Shard()
    assert one.group("associate") == "associate" and one.tag == "" and one.owns(0.0, 0.0)
    # a station 10 km east of replica 0's band is within its reach, one 2 degrees off is not
    assert a.wants_station(34.0, -117.75 + 0.1, reach_km=30.0)
    assert not Shard(0, 2, 4.0).wants_station(34.0, -117.0 + 2.0 + 4.0, reach_km=30.0)
    ids = [f"ev{i}" for i in range(50)]
    assert sorted(ids) == sorted(
        [e for e in ids if a.owns_event(e)] + [e for e in ids if b.owns_event(e)]
    )
    with pytest.raises(ValueError, match="INDEX/COUNT"):
        Shard.parse("2")
    with pytest.raises(ValueError, match="index < count"):
        Shard.parse("2/2")


def standing(bus: Bus) -> dict[str, Origin]:
    latest, retracted = {}, set()
    for _, m in bus.messages("origins"):
        if isinstance(m, CatalogEvent):
            retracted.add(m.event_id)
        else:
            latest[m.event_id] = m
            retracted.discard(m.event_id)
    return {e: o for e, o in latest.items() if e not in retracted}


@pytest.mark.slow
def test_two_associator_replicas_make_the_events_of_one(redis_client, scenario):
    assoc = Associator(VelocityModel.default(), AssociateParams(min_picks=6))
    try:
        bus = Bus(redis_client)
        picks = scenario_picks(scenario, seed=31)
        publish(bus, picks.messages)
        AssociateWorker(bus, assoc, block_ms=50).run(drain=True, timeout_s=120)
        one = standing(bus)
        assert len(one) == 3

        redis_client.flushall()
        publish(bus, picks.messages)
        shards = [Shard.parse("0/2", 0.25), Shard.parse("1/2", 0.25)]
        published_by = []
        for s in shards:
            before = {e for e, _ in latest_origins_any(bus)[0].items()}
            AssociateWorker(bus, assoc, block_ms=50, shard=s).run(drain=True, timeout_s=120)
            published_by.append(set(latest_origins_any(bus)[0]) - before)
        two = standing(bus)
        assert signature(two) == signature(one)
        # each replica published only events in its own bands, and each made at least one
        assert all(published_by) and not (published_by[0] & published_by[1])
        for s, ids in zip(shards, published_by, strict=True):
            assert all(s.owns(two[e].latitude_deg, two[e].longitude_deg) for e in ids)
        _, revisions = latest_origins_any(bus)
        assert all(r == list(range(len(r))) for r in revisions.values())
        assert len(set(redis_client.keys("fm:assoc:{s0of2}:*"))) > 0
    finally:
        assoc.close()


def _own_picks(origin: Origin, pols: list) -> tuple[Origin, list]:
    """The event's picks renamed after the event (the helper reuses pick ids across events)."""
    from dataclasses import replace

    arrivals = tuple(replace(a, pick_id=f"{origin.event_id}/{a.pick_id}") for a in origin.arrivals)
    pols = [replace(p, pick_id=f"{origin.event_id}/{p.pick_id}") for p in pols]
    return replace(origin, arrivals=arrivals), pols


def latest_origins_any(bus: Bus):
    latest, revisions = {}, {}
    for _, m in bus.messages("origins"):
        if isinstance(m, Origin):
            revisions.setdefault(m.event_id, []).append(m.revision)
            latest[m.event_id] = m
    return latest, revisions


def test_two_mechanism_replicas_invert_each_event_once(redis_url, redis_client):
    bus = Bus.from_url(redis_url)
    try:
        events = [_own_picks(*_event(event_id=f"ev{k}", seed=k)) for k in range(6)]
        for origin, pols in events:
            bus.publish("origins", origin)
            for p in pols:
                bus.publish("polarities", p)
        MechanismWorker(bus, WorkerParams(), name="solo").run(drain=True, timeout_s=120)
        solo = {m.event_id: m for m in _mechanisms(bus)}  # the last revision of each
        assert len(solo) == 6

        redis_client.flushall()
        for origin, pols in events:
            bus.publish("origins", origin)
            for p in pols:
                bus.publish("polarities", p)
        assert all(any(Shard(i, 2).owns_event(e) for e in solo) for i in range(2))
        for i in range(2):
            w = MechanismWorker(bus, WorkerParams(), name=f"r{i}", shard=Shard(i, 2))
            w.run(drain=True, timeout_s=120)
        ms = _mechanisms(bus)
        revisions: dict[str, list[int]] = {}
        for m in ms:
            revisions.setdefault(m.event_id, []).append(m.revision)
        assert sorted(revisions) == sorted(solo)
        assert all(r == list(range(1, len(r) + 1)) for r in revisions.values())  # one writer
        for m in {m.event_id: m for m in ms}.values():
            s = solo[m.event_id]
            assert (m.strike, m.dip, m.rake, m.quality) == (s.strike, s.dip, s.rake, s.quality)
    finally:
        bus.close()
