"""The catalog worker on a real Redis: keys, pub/sub, revisions, retraction, finalisation,
alert hooks, the command."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from firstmotion.bus import Bus
from firstmotion.messages import (
    Arrival,
    CatalogEvent,
    Mechanism,
    MechanismPick,
    Origin,
    Polarity,
    make_pick_id,
)
from firstmotion.metrics import registry
from workers.catalog import (
    AlertSender,
    CatalogRules,
    CatalogWorker,
    EventState,
    apply_mechanism,
    apply_origin,
    finalize_if_quiet,
    retract_origin,
)

T0 = 1_700_000_000.0


def make_origin(event_id="ev1", revision=0, t=T0, magnitude=2.1, n=6, lat=35.0):
    arrivals = tuple(
        Arrival(
            pick_id=make_pick_id(f"XX.S{i:02d}..HHZ", t + 3.0 + i),
            station_id=f"XX.S{i:02d}..HHZ",
            azimuth_deg=60.0 * i,
            takeoff_deg=100.0 + 5 * i,
            distance_km=10.0 + 3 * i,
            residual_s=0.05,
        )
        for i in range(n)
    )
    return Origin(
        event_id=event_id,
        revision=revision,
        time_epoch_s=t,
        latitude_deg=lat,
        longitude_deg=-117.5,
        depth_km=8.0,
        magnitude=magnitude,
        arrivals=arrivals,
        rms_s=0.1,
        created_epoch_s=T0 + 10,
    )


def make_mechanism(event_id="ev1", revision=0, quality="C", strike=30.0, origin=None):
    origin = origin or make_origin(event_id)
    picks = tuple(
        MechanismPick(
            station_id=a.station_id,
            pick_id=a.pick_id,
            azimuth_deg=a.azimuth_deg,
            takeoff_deg=a.takeoff_deg,
            polarity=1 if i % 2 else -1,
        )
        for i, a in enumerate(origin.arrivals)
    )
    return Mechanism(
        event_id=event_id,
        revision=revision,
        origin_revision=origin.revision,
        strike=strike,
        dip=60.0,
        rake=90.0,
        aux_strike=(strike + 180.0) % 360.0,
        aux_dip=30.0,
        aux_rake=90.0,
        quality=quality,
        fault_plane_uncertainty_deg=20.0,
        aux_plane_uncertainty_deg=22.0,
        misfit=0.05,
        probability=0.6,
        station_distribution_ratio=0.5,
        n_polarities=len(picks),
        n_stations=len(picks),
        model_version="test",
        picks=picks,
        azimuthal_gap_deg=60.0,
        created_epoch_s=T0 + 20,
    )


class Clock:
    def __init__(self, t=T0 + 100.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def bus(redis_client, redis_url):
    b = Bus.from_url(redis_url)
    yield b
    b.close()


def worker_for(bus, **kw):
    return CatalogWorker(bus, kw.pop("rules", CatalogRules()), block_ms=50, lease_ms=500, **kw)


def collect(pubsub, timeout_s=1.0):
    out, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = pubsub.get_message(timeout=0.05)
        if msg is None:
            if out:
                break
            continue
        if msg["type"] == "message":
            out.append(CatalogEvent.from_json(msg["data"]))
    return out


def test_origins_and_mechanisms_make_the_contract_keys(bus, redis_client):
    pubsub = redis_client.pubsub()
    pubsub.subscribe("fm:events")
    pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    o1, o2 = make_origin("ev1"), make_origin("ev2", t=T0 + 60, magnitude=None)
    m1 = make_mechanism("ev1", quality="C", origin=o1)
    bus.publish("origins", o1)
    bus.publish("origins", o2)
    bus.publish("mechanisms", m1)
    clock = Clock()
    assert worker_for(bus, clock=clock).run(drain=True, timeout_s=20) == 3

    h = {k.decode(): v.decode() for k, v in redis_client.hgetall("fm:event:ev1").items()}
    assert Origin.from_json(h["origin"]) == o1
    assert Mechanism.from_json(h["mechanism"]) == m1
    assert h["revision"] == "2" and h["status"] == "preliminary"
    assert float(h["updated_epoch_s"]) == pytest.approx(clock.t)
    h2 = redis_client.hgetall("fm:event:ev2")
    assert b"mechanism" not in h2 and h2[b"revision"] == b"1"
    # sorted set by origin time
    assert redis_client.zrange("fm:catalog", 0, -1, withscores=True) == [
        (b"ev1", T0),
        (b"ev2", T0 + 60),
    ]
    # one pub/sub message per change, the last one of ev1 with its mechanism
    events = collect(pubsub)
    assert [(e.event_id, e.revision) for e in events] == [("ev1", 1), ("ev2", 1), ("ev1", 2)]
    assert events[-1].mechanism == m1 and events[0].mechanism is None
    assert all(e.status == "preliminary" for e in events)
    # everything acknowledged
    assert bus.pending_count("origins", "catalog") == 0
    assert bus.pending_count("mechanisms", "catalog") == 0
    pubsub.close()


def test_older_revision_redelivered_does_not_overwrite(bus, redis_client):
    o_new, o_old = make_origin(revision=3, lat=35.5), make_origin(revision=2, lat=35.0)
    m_new = make_mechanism(revision=2, strike=40.0, origin=o_new)
    m_old = make_mechanism(revision=1, strike=10.0, origin=o_old)
    for stream, msg in [("origins", o_new), ("mechanisms", m_new)]:
        bus.publish(stream, msg)
    worker_for(bus).run(drain=True, timeout_s=20)
    before = redis_client.hgetall("fm:event:ev1")
    # the older revisions, and an exact duplicate of the newest (a redelivery), arrive later
    for stream, msg in [("origins", o_old), ("mechanisms", m_old), ("origins", o_new)]:
        bus.publish(stream, msg)
    pubsub = redis_client.pubsub()
    pubsub.subscribe("fm:events")
    pubsub.get_message(timeout=1.0)
    assert worker_for(bus).run(drain=True, timeout_s=20) == 3
    assert redis_client.hgetall("fm:event:ev1") == before
    state = EventState.from_hash("ev1", before)
    assert state.origin.revision == 3 and state.origin.latitude_deg == 35.5
    assert state.mechanism.revision == 2 and state.mechanism.strike == 40.0
    assert collect(pubsub, timeout_s=0.3) == []  # nothing changed, nothing published
    pubsub.close()


def test_conflicting_writer_between_plan_and_commit_is_recomputed(bus, redis_client):
    """WATCH: a concurrent change after the handler planned makes the commit replan."""
    w = worker_for(bus)
    bus.publish("origins", make_origin(revision=1))
    w.run(drain=True, timeout_s=20)
    from firstmotion.bus import Delivery

    w.stage.handle([Delivery("0-1", make_mechanism(revision=1), 1)])
    # another catalog writer applies a newer origin meanwhile
    other = worker_for(bus)
    bus.publish("origins", make_origin(revision=2, lat=36.0))
    other.run(drain=True, timeout_s=20)
    plan = w.stage.commit(None, None, [])
    state = EventState.from_hash("ev1", redis_client.hgetall("fm:event:ev1"))
    assert state.revision == 3  # 1 (origin 1) + 1 (origin 2) + 1 (mechanism)
    assert state.origin.latitude_deg == 36.0 and state.mechanism.revision == 1
    assert [e.revision for _, e in plan.changes] == [3]


def test_crash_before_commit_is_reclaimed_and_applied_once(bus, redis_client):
    """At-least-once: a consumer that read an entry and died leaves it pending; another
    reclaims it after the lease and applies it exactly once."""
    bus.publish("origins", make_origin("evC"))
    bus.ensure_group("origins", "catalog")
    got = redis_client.xreadgroup("catalog", "dead-one", {"fm:origins": ">"}, count=10)
    assert len(got[0][1]) == 1  # delivered to a consumer that never commits
    assert not redis_client.exists("fm:event:evC")
    time.sleep(0.1)
    w = CatalogWorker(bus, block_ms=50, lease_ms=50)
    assert w.run(drain=True, timeout_s=20) == 1
    assert redis_client.hget("fm:event:evC", "revision") == b"1"
    assert bus.pending_count("origins", "catalog") == 0


def test_mechanism_before_its_origin_waits_then_applies(bus, redis_client):
    o = make_origin("ev9")
    bus.publish("mechanisms", make_mechanism("ev9", revision=1, origin=o))
    w = worker_for(bus)
    w.run(drain=True, timeout_s=20)
    assert not redis_client.exists("fm:event:ev9")
    assert redis_client.zcard("fm:catalog") == 0
    assert redis_client.exists("fm:catalog:orphan:ev9")
    bus.publish("origins", o)
    w.run(drain=True, timeout_s=20)
    state = EventState.from_hash("ev9", redis_client.hgetall("fm:event:ev9"))
    assert state.mechanism is not None and state.mechanism.revision == 1
    assert state.revision == 2
    assert not redis_client.exists("fm:catalog:orphan:ev9")


def test_quality_a_or_b_is_final_and_quiet_events_become_final(bus, redis_client):
    clock = Clock()
    rules = CatalogRules(final_after_s=600.0, final_max_quality="B")
    bus.publish("origins", make_origin("evA"))
    bus.publish("origins", make_origin("evQ", t=T0 + 5))
    bus.publish("mechanisms", make_mechanism("evA", quality="B"))
    w = worker_for(bus, rules=rules, clock=clock)
    w.run(drain=True, timeout_s=20)
    status = lambda eid: redis_client.hget(f"fm:event:{eid}", "status").decode()  # noqa: E731
    assert status("evA") == "final" and status("evQ") == "preliminary"
    assert redis_client.zrange("fm:catalog:preliminary", 0, -1) == [b"evQ"]
    clock.t += 599.0
    assert w.stage.finalize_quiet() == 0
    clock.t += 2.0
    assert w.stage.finalize_quiet() == 1
    assert status("evQ") == "final"
    assert redis_client.zcard("fm:catalog:preliminary") == 0
    assert redis_client.hget("fm:event:evQ", "revision") == b"2"
    # a new origin revision is a change: preliminary again until quiet (or a good mechanism)
    bus.publish("origins", make_origin("evQ", revision=1, t=T0 + 5))
    w.run(drain=True, timeout_s=20)
    assert status("evQ") == "preliminary"


def test_retracted_origin_is_deleted_and_stays_deleted(bus, redis_client):
    o = make_origin("evR", revision=1)
    bus.publish("origins", o)
    w = worker_for(bus)
    w.run(drain=True, timeout_s=20)
    assert redis_client.zscore("fm:catalog", "evR") == T0
    retract_origin(bus, o)
    bus.publish("origins", make_origin("evR", revision=0))  # an older one, redelivered
    bus.publish("mechanisms", make_mechanism("evR", revision=0))
    w.run(drain=True, timeout_s=20)
    assert redis_client.hget("fm:event:evR", "status") == b"deleted"
    assert redis_client.zscore("fm:catalog", "evR") is None
    assert redis_client.hget("fm:event:evR", "revision") == b"2"
    bus.publish("origins", make_origin("evR", revision=2))  # a newer origin revives it
    w.run(drain=True, timeout_s=20)
    assert redis_client.hget("fm:event:evR", "status") == b"preliminary"
    assert redis_client.zscore("fm:catalog", "evR") == T0


def test_wrong_message_type_is_dead_lettered_not_applied(bus, redis_client):
    pol = Polarity(
        pick_id="p1",
        station_id="XX.S01..HHZ",
        time_epoch_s=T0,
        polarity=1,
        probabilities=(0.9, 0.05, 0.05),
        confidence=0.9,
        model_version="m",
    )
    bus.publish("origins", pol)
    bus.publish("origins", make_origin("ok1"))
    CatalogWorker(bus, block_ms=50, lease_ms=50, max_deliveries=1).run(drain=True, timeout_s=20)
    dead = bus.dead_letters()
    assert len(dead) == 1 and "expected Origin" in dead[0].error
    assert redis_client.exists("fm:event:ok1")


def test_pure_rules():
    rules = CatalogRules()
    o = make_origin(revision=1)
    s = apply_origin(None, o, 5.0, rules)
    assert (s.revision, s.status, s.updated_epoch_s) == (1, "preliminary", 5.0)
    assert apply_origin(s, make_origin(revision=1), 6.0, rules) is None
    s2 = apply_mechanism(s, make_mechanism(revision=0, quality="A"), 7.0, rules)
    assert (s2.revision, s2.status) == (2, "final")
    assert apply_mechanism(s2, make_mechanism(revision=0, quality="D"), 8.0, rules) is None
    assert finalize_if_quiet(s, 5.0 + 599.0, rules) is None
    assert finalize_if_quiet(s, 5.0 + 600.0, rules).status == "final"
    with pytest.raises(ValueError, match="final_max_quality"):
        CatalogRules(final_max_quality="E")


# --------------------------------------------------------------------------- alert hooks


class Receiver:
    """A webhook receiver on 127.0.0.1 that records POSTed JSON bodies."""

    def __init__(self, delay_s=0.0):
        self.bodies: list[dict] = []
        self.got = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                data = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay_s)
                outer.bodies.append(json.loads(data))
                outer.got.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_alerts_fire_once_per_kind_for_big_events_and_good_mechanisms(bus, redis_client):
    rx = Receiver()
    sender = AlertSender([rx.url], timeout_s=2.0).start()
    rules = CatalogRules(alerts_enabled=True, alert_min_magnitude=3.0, alert_max_quality="B")
    w = worker_for(bus, rules=rules, alerts=sender)
    bus.publish("origins", make_origin("small", magnitude=2.0))
    bus.publish("origins", make_origin("big", magnitude=3.5))
    bus.publish("origins", make_origin("big", revision=1, magnitude=3.6))  # no second alert
    bus.publish("mechanisms", make_mechanism("small", quality="C"))  # not good enough
    bus.publish("mechanisms", make_mechanism("big", quality="A"))
    bus.publish("mechanisms", make_mechanism("big", revision=1, quality="A"))  # no second
    w.run(drain=True, timeout_s=20)
    sender.stop(timeout_s=5.0)
    rx.close()
    got = sorted((b["kind"], b["event"]["event_id"]) for b in rx.bodies)
    assert got == [("magnitude", "big"), ("mechanism", "big")]
    mech_alert = next(b for b in rx.bodies if b["kind"] == "mechanism")
    assert CatalogEvent.from_dict(mech_alert["event"]).mechanism.quality == "A"
    assert redis_client.hget("fm:event:big", "alerts") == b"magnitude,mechanism"
    assert sender.sent == 2 and sender.failed == 0


def test_slow_or_dead_webhook_never_blocks_the_worker(bus):
    slow = Receiver(delay_s=5.0)
    sender = AlertSender([slow.url], timeout_s=0.3, max_queue=1).start()
    rules = CatalogRules(alerts_enabled=True, alert_min_magnitude=1.0)
    w = worker_for(bus, rules=rules, alerts=sender)
    for i in range(5):
        bus.publish("origins", make_origin(f"e{i}", magnitude=4.0))
    t = time.monotonic()
    assert w.run(drain=True, timeout_s=20) == 5
    assert time.monotonic() - t < 3.0  # bounded queue: the worker never waits on a 5 s hook
    sender.stop(timeout_s=3.0)
    slow.close()
    assert sender.dropped >= 3
    assert sender.failed >= 1  # timed out
    assert sender.sent + sender.failed + sender.dropped == 5


# --------------------------------------------------------------------------- command, metrics


def test_command_drains_and_counts(bus, redis_client, redis_url):
    from firstmotion.cli import main

    def value(name, **labels):
        return registry().get_sample_value(name, labels) or 0.0

    before = value("firstmotion_catalog_changes_total", kind="origin")
    before_in = value("firstmotion_stage_items_in_total", stage="catalog")
    bus.publish("origins", make_origin("cli1"))
    bus.publish("origins", make_origin("cli2", t=T0 + 1))
    rc = main(["worker", "catalog", "--redis", redis_url, "--drain", "--no-web"])
    assert rc == 0
    assert redis_client.zcard("fm:catalog") == 2
    assert value("firstmotion_catalog_changes_total", kind="origin") == before + 2
    assert value("firstmotion_stage_items_in_total", stage="catalog") == before_in + 2
    assert value("firstmotion_catalog_events") == 2


def _mechanism_with_reversed_station(event_id, quality, reversed_station="XX.S03..HHZ"):
    """A mechanism whose polarities are those its planes radiate, but at one station read
    upside down; 16 stations spread over the focal sphere."""
    import numpy as np

    from firstmotion.messages import MechanismPick
    from firstmotion.radiation import p_polarity

    sdr = (40.0, 70.0, -30.0)
    i = np.arange(16) + 0.5
    az = np.mod(i * 137.50776405, 360.0)
    to = np.degrees(np.arccos(-i / 16))
    pol = p_polarity(*sdr, az, to)
    picks = tuple(
        MechanismPick(
            station_id=f"XX.S{k:02d}..HHZ",
            pick_id=make_pick_id(f"XX.S{k:02d}..HHZ", T0 + 3.0 + k),
            azimuth_deg=float(az[k]),
            takeoff_deg=float(to[k]),
            polarity=int(pol[k]) * (-1 if f"XX.S{k:02d}..HHZ" == reversed_station else 1),
        )
        for k in range(16)
        if pol[k] != 0
    )
    base = make_mechanism(event_id, quality=quality)
    return dataclasses.replace(base, strike=sdr[0], dip=sdr[1], rake=sdr[2], picks=picks,
                               n_polarities=len(picks), n_stations=len(picks))  # fmt: skip


def test_final_events_count_each_stations_polarities_against_their_mechanism(bus, redis_client):
    """When an event becomes final its mechanism's reliable predictions are counted per
    station (``firstmotion_catalog_station_polarities_total``): a station read upside down
    gathers disagreements, the others agreements; an event counts once (a revision of a final
    event, or an event final again after a new origin, does not count again), and a quality
    D mechanism counts nothing."""
    from firstmotion.stationcheck import mechanism_agreement

    def value(station, agreement):
        name = "firstmotion_catalog_station_polarities_total"
        labels = {"station": station, "agreement": agreement}
        return registry().get_sample_value(name, labels) or 0.0

    clock = Clock()
    rules = CatalogRules(final_after_s=600.0, final_max_quality="B")
    mech = _mechanism_with_reversed_station("evS1", "B")
    reliable = dict(mechanism_agreement(mech))
    assert reliable["XX.S03..HHZ"] is False and sum(reliable.values()) == len(reliable) - 1
    before = {(s, a): value(s, a) for s in reliable for a in ("agree", "disagree")}
    for eid, quality in (("evS1", "B"), ("evS2", "C"), ("evS3", "D")):
        bus.publish("origins", make_origin(eid, t=T0 + len(eid)))
        bus.publish("mechanisms", _mechanism_with_reversed_station(eid, quality))
    w = worker_for(bus, rules=rules, clock=clock)
    w.run(drain=True, timeout_s=20)  # evS1 final (B); evS2, evS3 preliminary
    gained = lambda s, a: value(s, a) - before[(s, a)]  # noqa: E731
    assert gained("XX.S03..HHZ", "disagree") == 1 and gained("XX.S03..HHZ", "agree") == 0
    assert all(gained(s, "agree") == 1 for s in reliable if s != "XX.S03..HHZ")
    bus.publish("mechanisms", dataclasses.replace(mech, revision=1))  # final already
    w.run(drain=True, timeout_s=20)
    clock.t += 601.0
    assert w.stage.finalize_quiet() == 2  # evS2 (C) counts; evS3 (D) is final, counts nothing
    assert gained("XX.S03..HHZ", "disagree") == 2
    assert all(gained(s, "agree") == 2 and gained(s, "disagree") == 0
               for s in reliable if s != "XX.S03..HHZ")  # fmt: skip
    # a new origin makes evS2 preliminary; final again (quiet) it is not counted twice
    bus.publish("origins", make_origin("evS2", revision=1, t=T0 + 4))
    w.run(drain=True, timeout_s=20)
    clock.t += 601.0
    assert w.stage.finalize_quiet() == 1
    assert gained("XX.S03..HHZ", "disagree") == 2
    # the same counts stored with the events (the page's /api/stations reads them)
    stored = redis_client.hgetall("fm:catalog:station_polarities")
    assert stored[b"XX.S03..HHZ|disagree"] == b"2" and b"XX.S03..HHZ|agree" not in stored
    assert all(stored[f"{s}|agree".encode()] == b"2" for s in reliable if s != "XX.S03..HHZ")
    from workers.catalog import CatalogReader
    from workers.web import start_web_server

    with start_web_server(CatalogReader(redis_client), "127.0.0.1", 0) as web:
        with urllib.request.urlopen(web.url + "/api/stations", timeout=10) as resp:
            stations = {s["station"]: s for s in json.loads(resp.read())}
    assert stations["XX.S03"]["polarities"] == {"agree": 0, "disagree": 2}


def test_retention_removes_old_events_whole_and_keeps_the_rest(bus, redis_client):
    """A worker with ``retention_days`` removes, in its loop, the events whose origin time is
    older than that (a retracted one too): hash, history, index entries; the newer events and
    the station polarity counts stay. Without it every event stays."""
    day = 86400.0
    clock = Clock(T0 + 10 * day)
    o_old = make_origin("evOld", t=T0)
    bus.publish("origins", o_old)
    bus.publish("mechanisms", make_mechanism("evOld", origin=o_old))
    bus.publish("origins", make_origin("evGone", revision=1, t=T0 + day))
    bus.publish("origins", make_origin("evNew", t=T0 + 8 * day))
    keep = worker_for(bus, clock=clock)  # retention_days 0: every event stays
    keep.run(drain=True, timeout_s=20)
    retract_origin(bus, make_origin("evGone", revision=1, t=T0 + day))
    keep.run(drain=True, timeout_s=20)
    assert redis_client.zscore("fm:catalog:deleted", "evGone") == T0 + day
    redis_client.hset("fm:catalog:station_polarities", "XX.S01..HHZ|agree", 3)
    assert redis_client.exists("fm:event:evOld", "fm:history:evOld", "fm:event:evGone") == 3

    before = registry().get_sample_value("firstmotion_catalog_pruned_total") or 0.0
    bus.publish("origins", make_origin("evNew", revision=1, t=T0 + 8 * day))
    worker_for(bus, clock=clock, retention_days=5.0).run(drain=True, timeout_s=20)
    assert redis_client.zrange("fm:catalog", 0, -1) == [b"evNew"]
    for key in ("fm:event:evOld", "fm:history:evOld", "fm:event:evGone", "fm:history:evGone"):
        assert not redis_client.exists(key), key
    assert redis_client.zcard("fm:catalog:deleted") == 0
    assert redis_client.zscore("fm:catalog:preliminary", "evOld") is None
    assert redis_client.exists("fm:event:evNew", "fm:history:evNew") == 2
    assert redis_client.hget("fm:catalog:station_polarities", "XX.S01..HHZ|agree") == b"3"
    assert registry().get_sample_value("firstmotion_catalog_pruned_total") == before + 2
    for bad in (-1.0, 0.5):  # an event a few hours old may still be revised
        with pytest.raises(ValueError, match="retention_days"):
            worker_for(bus, retention_days=bad)


def test_prune_judges_a_relocated_event_by_its_new_origin_time(bus, redis_client):
    """An event found in the index as old but relocated (its hash newer) meanwhile stays; a
    dry run removes nothing and names what it would."""
    from workers.catalog import CatalogStage

    bus.publish("origins", make_origin("evA", t=T0))
    bus.publish("origins", make_origin("evB", t=T0 + 50))
    worker_for(bus).run(drain=True, timeout_s=20)
    stage = CatalogStage(bus)
    assert stage.prune_before(T0 + 100, dry_run=True) == ["evA", "evB"]
    assert redis_client.zcard("fm:catalog") == 2
    newer = make_origin("evB", revision=1, t=T0 + 500)  # the hash moves, the index not yet
    redis_client.hset("fm:event:evB", "origin", newer.to_json())
    assert stage.prune_before(T0 + 100) == ["evA"]
    assert redis_client.exists("fm:event:evB") and not redis_client.exists("fm:event:evA")
    assert stage.prune_before(T0 + 100, limit=0) == []


def test_prune_command(bus, redis_client, redis_url, capsys):
    from firstmotion.cli import main

    bus.publish("origins", make_origin("evP", t=T0))
    bus.publish("origins", make_origin("evQ", t=time.time() - 3600))
    worker_for(bus).run(drain=True, timeout_s=20)
    assert main(["catalog", "prune", "--redis", redis_url, "--older-than-days", "30",
                 "--dry-run"]) == 0  # fmt: skip
    assert "would remove 1 events" in capsys.readouterr().out
    assert redis_client.zcard("fm:catalog") == 2
    assert main(["catalog", "prune", "--redis", redis_url, "--before", "2024-01-01"]) == 0
    assert "removed 1 events" in capsys.readouterr().out
    assert redis_client.zrange("fm:catalog", 0, -1) == [b"evQ"]
    assert main(["catalog", "prune", "--redis", redis_url, "--before", "yesterday-ish"]) == 2
    assert "--before" in capsys.readouterr().err
