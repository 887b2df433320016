"""``firstmotion worker associate``: P and S picks in, located events (Origins) out.

Consumes ``<prefix>picks`` in its own consumer group ``associate`` (the polarity worker reads
the same stream in group ``polarity``) and publishes :class:`firstmotion.messages.Origin`
revisions to ``<prefix>origins``, and retractions of events found false or merged into another
(:class:`firstmotion.messages.CatalogEvent` with status ``deleted``, which the catalog honours);
stages meet only through Redis. The method (incremental attach / nucleate / merge / settle,
order-free settled events) is :mod:`workers.associate_online`'s; docs/association.md.

* Each pick (P; S when ``associate.use_s``) is written to the window ``<prefix>assoc:window``
  (hash pick id -> time, station, coordinates, phase) and then acknowledged (the Consumer's
  commit), so an acknowledged pick is never lost. Station coordinates come from the pick or
  from a StationXML ``--inventory``; picks at stations with neither are counted and dropped.
* Whenever new picks arrived, debounced (at once when the stream goes idle, else at most every
  ``debounce_s`` of wall time or after ``debounce_picks`` new picks), one engine step runs and
  its origins and retractions are published. New events get ids ``ev<UTC origin time>-<seq>``
  from the shared counter ``<prefix>assoc:seq``; each publication the event's next revision.
* With ``--shard i/N`` (:mod:`firstmotion.shard`) the replica reads in group
  ``associate-<i>of<N>``, keeps stations near its longitude bands, publishes only events located
  in them, and its state keys carry ``{s<i>of<N>}``.

At-least-once and restarts: the published Origins and retractions, the event state
(``<prefix>assoc:event:<id>`` hash with the last origin and revision; ``<prefix>assoc:open``
sorted set; ``<prefix>assoc:pick:<pick_id>`` -> event id) and the window changes of one step are
written in ONE MULTI/EXEC, so a crash publishes and records a revision or neither. A restarted
worker reloads the window and the open events; a redelivered pick that is already in the window
or belongs to a closed event is ignored, and re-associating unchanged picks publishes nothing.

Metrics (besides ``firstmotion_stage_*`` with ``stage="associate"``):
``firstmotion_associate_picks_total{outcome}`` (windowed, duplicate, no_station, not_p: a phase
not associated, candidate: a candidate onset with ``associate.use_candidates`` off, future: a
pick time more than ``MAX_FUTURE_S`` ahead of the wall clock, a station with a bad clock,
other_shard), ``firstmotion_associate_events_total`` (new events),
``firstmotion_associate_origins_total`` (published revisions),
``firstmotion_associate_retracted_total``, ``firstmotion_associate_seconds`` (one step,
histogram), ``firstmotion_associate_window_picks`` and ``firstmotion_associate_open_events``.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from firstmotion.bus import Bus, Delivery, add_stage_arguments, run_loop, run_stage
from firstmotion.geodesy import pairwise_km
from firstmotion.messages import CatalogEvent, Message, Origin, Pick
from firstmotion.metrics import counter, gauge, histogram
from firstmotion.shard import Shard
from workers.associate_locate import (
    AssociateParams,
    Associator,
    LocatedEvent,
    StationCoords,
    WindowPick,
    associate,
    locate,
    station_key,
)
from workers.associate_online import OnlineAssociator, StepResult

__all__ = [
    "AssociateParams",
    "AssociateWorker",
    "Associator",
    "LocatedEvent",
    "StationCoords",
    "WindowPick",
    "associate",
    "locate",
    "stations_from_inventory",
]

log = logging.getLogger(__name__)

GROUP = "associate"
INPUT_STREAM = "picks"
OUTPUT_STREAM = "origins"
STATE_TTL_S = 7 * 24 * 3600
ASSOCIATION_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
PICK_OUTCOMES = (
    "windowed",
    "duplicate",
    "no_station",
    "not_p",
    "candidate",
    "future",
    "other_shard",
)
MAX_FUTURE_S = 60.0


def stations_from_inventory(path: str) -> dict[str, StationCoords]:
    """``NET.STA.LOC`` -> coordinates from a StationXML file (channel coordinates, else the
    station's), for picks that carry none."""
    from firstmotion.inventory import read_sites

    out: dict[str, StationCoords] = {}
    bare: dict[str, StationCoords] = {}  # stations without channels: location ""
    for s in read_sites(path):
        coords = StationCoords(s.latitude, s.longitude, s.elevation_m)
        if s.channel is None:
            bare[s.station_id] = coords
        else:  # a location's coordinates are its last channel's
            bare.pop(s.station_id, None)
            out[f"{s.station_id}.{s.location}"] = coords
    out.update({f"{sid}.": coords for sid, coords in bare.items()})
    return out


def sparse_network_warning(stations: Mapping[str, StationCoords], params) -> str | None:
    """A warning when the stations are too far apart for the association settings: the median
    distance from a station to its ``min_picks``-th nearest other station is beyond half of
    ``max_distance_km`` (an event there is picked at stations that far and farther, its picks
    spread over tens of seconds), else None. The local-network defaults then find nothing
    (docs/association.md: TexNet, 13 stations 100-334 km from its events, 0 of 2 events with
    the defaults, 2 of 2 with regional settings)."""
    coords = list(stations.values())
    k = int(params.min_picks)
    if len(coords) <= k:
        return None
    if len(coords) > 2000:  # an estimate is enough: every n-th station
        coords = coords[:: len(coords) // 2000 + 1]
    dist = np.sort(pairwise_km([c.latitude_deg for c in coords],
                               [c.longitude_deg for c in coords]), axis=1)  # fmt: skip
    spacing = float(np.median(dist[:, k]))  # column 0 is the station itself
    if spacing <= 0.5 * params.max_distance_km:
        return None
    return (
        f"{len(stations)} stations: the median distance from a station to its {k}th nearest "
        f"is {spacing:.0f} km, beyond half of associate.max_distance_km "
        f"({params.max_distance_km:g} km): events may not be associated. For a regional "
        "network raise associate.max_distance_km, associate.window_s (an event's picks "
        "arrive over tens of seconds) and, with a velocity model not made for the region, "
        "associate.max_residual_s (docs/association.md)"
    )


def new_event_id(time_epoch_s: float, seq: int) -> str:
    """``ev<YYYYmmddTHHMMSS of the first origin time, UTC>-<seq>``: unique and readable."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time_epoch_s))
    return f"ev{stamp}-{seq:05d}"


class AssociateWorker:
    """The associator stage: window, association runs, event identity and state in Redis.

    ``run(drain=True)`` returns once the picks stream has neither new nor pending entries for
    the group and a final association has run (tests, backfills).
    """

    def __init__(
        self,
        bus: Bus,
        associator: Associator | None = None,
        *,
        stations: Mapping[str, StationCoords] | None = None,
        name: str | None = None,
        batch_size: int = 256,
        block_ms: int = 1000,
        lease_ms: int = 5_000,
        max_deliveries: int = 5,
        debounce_s: float = 0.25,
        debounce_picks: int = 200,
        shard: Shard | None = None,
    ) -> None:
        if debounce_s < 0 or debounce_picks < 1:
            raise ValueError(
                f"debounce_s >= 0 and debounce_picks >= 1 expected, got {debounce_s}, "
                f"{debounce_picks}"
            )
        self.bus = bus
        self.client = bus.client
        self.associator = associator or Associator()
        self.params: AssociateParams = self.associator.params
        self.inventory = dict(stations or {})
        self.stations: dict[str, StationCoords] = dict(self.inventory)
        self.shard = shard or Shard()
        self.group = self.shard.group(GROUP)
        self.block_ms = block_ms
        self.debounce_s = debounce_s
        self.debounce_picks = debounce_picks
        self.consumer = bus.consumer(
            INPUT_STREAM, self.group, self.handle_picks, name=name, batch_size=batch_size,
            block_ms=block_ms, lease_ms=lease_ms, max_deliveries=max_deliveries,
            stage="associate",
        )  # fmt: skip
        self.reach_km = self.params.max_distance_km + self.params.margin_km
        self.engine = self._new_engine()
        self.dirty = False
        self.new_since_run = 0
        self.last_run_monotonic = 0.0
        self.runs = 0
        self._loaded = False
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._learned: dict[str, str] = {}  # stations learned from picks, not yet in Redis
        self.picks_total = counter(
            "firstmotion_associate_picks_total", "P picks taken by the associator", ("outcome",)
        )
        self.events_total = counter("firstmotion_associate_events_total", "new events created")
        self.origins_total = counter(
            "firstmotion_associate_origins_total", "origin revisions published"
        )
        self.retracted_total = counter(
            "firstmotion_associate_retracted_total",
            "events retracted (merged into another, or false): CatalogEvent status deleted",
        )
        self.seconds = histogram(
            "firstmotion_associate_seconds",
            "wall time of one association run (PyOcto + location)",
            buckets=ASSOCIATION_BUCKETS,
        )
        self.window_gauge = gauge("firstmotion_associate_window_picks", "picks in the window")
        self.open_gauge = gauge("firstmotion_associate_open_events", "events open to revision")

    # -- keys
    def _k(self, *parts: str) -> str:
        """A state key; a shard's keys carry its tag in braces (one Redis Cluster slot)."""
        tag = f"{{{self.shard.tag}}}:" if self.shard.sharded else ""
        return self.bus.key("assoc:" + tag + ":".join(parts))

    def _pick_key(self, pick_id: str) -> str:
        return self._k("pick", pick_id)

    @property
    def retain_s(self) -> float:
        """How long (pick time) an unassociated pick stays in the window after the newest."""
        return self.engine.retain_s

    @property
    def window(self) -> dict[str, WindowPick]:
        return self.engine.window

    @property
    def open(self) -> dict[str, Origin]:
        """Open (published) events: id -> last published origin."""
        return {
            e.event_id: e.published
            for e in self.engine.events.values()
            if e.event_id is not None and e.published is not None
        }

    @property
    def newest_s(self) -> float:
        return self.engine.newest_s

    def _new_engine(self) -> OnlineAssociator:
        return OnlineAssociator(self.associator, self.stations, new_id=self._new_id,
                                keep=self.shard.owns)  # fmt: skip

    def _new_id(self, time_epoch_s: float) -> str:
        seq = int(self.client.incr(self.bus.key("assoc:seq")))
        return new_event_id(time_epoch_s, seq)

    # -- state
    def load_state(self) -> None:
        """Reload the window and the open events from Redis (a restarted worker continues)."""
        client = self.client
        self.engine = self._new_engine()
        newest = client.hget(self._k("meta"), "newest_pick_s")
        for key_raw, raw in client.hgetall(self.bus.key("assoc:stations")).items():
            key = key_raw.decode() if isinstance(key_raw, bytes) else key_raw
            if key not in self.stations:
                lat, lon, elev = json.loads(raw)
                self.stations[key] = StationCoords(float(lat), float(lon), float(elev))
        picks = []
        for pick_id, raw in client.hgetall(self._k("window")).items():
            row = json.loads(raw)
            pid = pick_id.decode() if isinstance(pick_id, bytes) else pick_id
            picks.append(WindowPick(pid, row["station_id"], float(row["t"]),
                                    row.get("phase", "P"), bool(row.get("candidate"))))  # fmt: skip
            if row.get("lat") is not None:
                self._learn_station(row["station_id"], row["lat"], row["lon"], row.get("elev"))
        self.engine.add(picks)
        if newest is not None:
            self.engine.newest_s = max(self.engine.newest_s, float(newest))
        origins = []
        for eid_raw in client.zrange(self._k("open"), 0, -1):
            eid = eid_raw.decode() if isinstance(eid_raw, bytes) else eid_raw
            state = client.hgetall(self._k("event", eid))
            if b"origin" in state:
                origins.append(Origin.from_json(state[b"origin"]))
        self.engine.restore(origins)
        self.dirty = bool(self.engine.fresh)
        self._loaded = True
        self._gauges()
        log.info("associator state: %d picks in the window, %d open events",
                 len(self.window), len(origins))  # fmt: skip

    def _learn_station(self, station_id: str, lat: Any, lon: Any, elev: Any) -> bool:
        key = station_key(station_id)
        if key in self.inventory:
            return True
        if lat is None or lon is None:
            return key in self.stations
        if key not in self.stations:
            self.stations[key] = StationCoords(float(lat), float(lon), float(elev or 0.0))
            self._learned[key] = json.dumps([float(lat), float(lon), float(elev or 0.0)])
        return True

    def _gauges(self) -> None:
        self.window_gauge.set(len(self.engine.window))
        self.open_gauge.set(len(self.engine.events))

    # -- input
    def handle_picks(self, batch: list[Delivery]) -> list[tuple[str, Message]]:
        """Put new picks (P, and S when used) into the window (Redis first, then memory);
        outputs nothing (the Consumer acknowledges the batch after this returns)."""
        if not self._loaded:
            self.load_state()
        phases = self.engine.phases
        picks: list[Pick] = []
        for d in batch:
            m = d.message
            if not isinstance(m, Pick) or m.phase.upper() not in phases:
                self.picks_total.labels(outcome="not_p").inc()
                continue
            params = self.engine.params
            if not params.use_candidates and params.is_candidate(m.candidate, m.probability):
                self.picks_total.labels(outcome="candidate").inc()
                continue
            picks.append(m)
        if not picks:
            return []
        owners = self.client.mget([self._pick_key(p.pick_id) for p in picks])
        pipe = self.client.pipeline(transaction=True)
        accepted: list[Pick] = []
        newest = self.engine.newest_s
        wall_s = time.time()
        open_ids = {e.event_id for e in self.engine.events.values()}
        seen: set[str] = set()
        for p, owner in zip(picks, owners, strict=True):
            owner_id = owner.decode() if isinstance(owner, bytes) else owner
            if (
                p.pick_id in self.engine.window
                or p.pick_id in seen
                or (owner_id is not None and owner_id not in open_ids)
            ):
                self.picks_total.labels(outcome="duplicate").inc()
                continue
            if p.time_epoch_s > wall_s + MAX_FUTURE_S:
                self.picks_total.labels(outcome="future").inc()
                log.warning("pick %s is %.0f s in the future: dropped (station clock?)",
                            p.pick_id, p.time_epoch_s - wall_s)  # fmt: skip
                continue
            if not self._learn_station(p.station_id, p.latitude_deg, p.longitude_deg,
                                       p.elevation_m):  # fmt: skip
                self.picks_total.labels(outcome="no_station").inc()
                key = station_key(p.station_id)
                if key not in self._warned:
                    self._warned.add(key)
                    log.warning("no coordinates for %s (pick or --inventory): picks dropped", key)
                continue
            if self.shard.sharded:
                c = self.stations[station_key(p.station_id)]
                if not self.shard.wants_station(c.latitude_deg, c.longitude_deg, self.reach_km):
                    self.picks_total.labels(outcome="other_shard").inc()
                    continue
            seen.add(p.pick_id)
            accepted.append(p)
            newest = max(newest, p.time_epoch_s)
        if accepted:
            # a candidate onset here (a sure one counts as a pick), in the state and the window
            cand = {p.pick_id: self.engine.params.is_candidate(p.candidate, p.probability)
                    for p in accepted}  # fmt: skip
            rows = {
                p.pick_id: json.dumps({
                    "station_id": p.station_id, "t": p.time_epoch_s, "lat": p.latitude_deg,
                    "lon": p.longitude_deg, "elev": p.elevation_m, "phase": p.phase.upper(),
                    **({"candidate": True} if cand[p.pick_id] else {}),
                })
                for p in accepted
            }  # fmt: skip
            pipe.hset(self._k("window"), mapping=rows)
            if self._learned:  # remembered across restarts (the network, for support checks)
                pipe.hset(self.bus.key("assoc:stations"), mapping=self._learned)
                self._learned = {}
            pipe.hset(self._k("meta"), "newest_pick_s", repr(newest))
            pipe.execute()
            self.engine.add(
                WindowPick(
                    p.pick_id, p.station_id, p.time_epoch_s, p.phase.upper(), cand[p.pick_id]
                )
                for p in accepted
            )
            self.picks_total.labels(outcome="windowed").inc(len(accepted))
            self.dirty = True
            self.new_since_run += len(accepted)
            self._gauges()
        return []

    # -- association
    def associate_now(self, *, flush: bool = False) -> list[Origin]:
        """One step of the incremental associator; publish its origins and retractions and
        write the state (one MULTI/EXEC). Returns the published origins. ``flush``: settle
        and close every open event (the end of a drained input)."""
        if not self._loaded:
            self.load_state()
        t_start = time.perf_counter()
        before = {
            e.event_id: e.published
            for e in self.engine.events.values()
            if e.event_id is not None and e.published is not None
        }
        result: StepResult = self.engine.step(time.time(), flush=flush)
        self._write(result, before)
        published = result.origins
        new_events = sum(1 for o in published if o.revision == 0)
        self.events_total.inc(new_events)
        self.origins_total.inc(len(published))
        self.retracted_total.inc(len(result.retracted))
        self.consumer.metrics.items_out.inc(len(published) + len(result.retracted))
        self.consumer.metrics.last_processed.set(time.time())
        self.seconds.observe(time.perf_counter() - t_start)
        self.dirty = bool(self.engine.fresh)
        self.new_since_run = 0
        self.last_run_monotonic = time.monotonic()
        self.runs += 1
        self._gauges()
        if published or result.retracted:
            log.info("association: %d origins published (%d new), %d retracted, %d closed",
                     len(published), new_events, len(result.retracted),
                     len(result.closed))  # fmt: skip
        return published

    def _write(self, result: StepResult, before: dict[str, Origin]) -> None:
        pipe = self.client.pipeline(transaction=True)
        out = self.bus.key(OUTPUT_STREAM)
        previous = dict(before)
        for origin in result.retracted:
            retraction = CatalogEvent(event_id=origin.event_id, revision=origin.revision,
                                      status="deleted", origin=origin)  # fmt: skip
            pipe.xadd(out, _encode(retraction), maxlen=self.bus.maxlen, approximate=True)
            pipe.delete(self._k("event", origin.event_id))
            pipe.zrem(self._k("open"), origin.event_id)
            ids = [a.pick_id for a in origin.arrivals]
            if ids:
                pipe.delete(*[self._pick_key(i) for i in ids])
            previous.pop(origin.event_id, None)
        for origin in result.origins:
            pipe.xadd(out, _encode(origin), maxlen=self.bus.maxlen, approximate=True)
            key = self._k("event", origin.event_id)
            pipe.hset(key, mapping={"origin": origin.to_json(), "revision": origin.revision})
            pipe.expire(key, STATE_TTL_S)
            pipe.zadd(self._k("open"), {origin.event_id: origin.time_epoch_s})
            old = previous.get(origin.event_id)
            old_ids = {a.pick_id for a in old.arrivals} if old is not None else set()
            new_ids = {a.pick_id for a in origin.arrivals}
            gone = sorted(old_ids - new_ids)
            if gone:
                pipe.delete(*[self._pick_key(i) for i in gone])
            for pid in sorted(new_ids - old_ids):
                pipe.set(self._pick_key(pid), origin.event_id, ex=STATE_TTL_S)
            previous[origin.event_id] = origin
        if result.closed:
            pipe.zrem(self._k("open"), *result.closed)
        if result.left:
            pipe.hdel(self._k("window"), *sorted(set(result.left)))
        pipe.execute()

    def _associate_guarded(self, *, flush: bool = False) -> None:
        """:meth:`associate_now`, but a failing association (a bug, a degenerate window) does
        not crash-loop the worker: the picks are safe in Redis, the error is logged with its
        traceback and counted in ``firstmotion_stage_errors_total``, and the next new pick
        triggers another attempt. Redis errors propagate to the loop's retry."""
        import redis

        try:
            self.associate_now(flush=flush)
        except redis.RedisError:
            raise
        except Exception:
            self.consumer.metrics.errors.inc()
            self.dirty = False
            self.new_since_run = 0
            self.last_run_monotonic = time.monotonic()
            log.exception("association of %d windowed picks failed", len(self.engine.window))

    def _due(self, took: int) -> bool:
        if not self.dirty:
            return False
        if took == 0 or self.new_since_run >= self.debounce_picks:
            return True
        return time.monotonic() - self.last_run_monotonic >= self.debounce_s

    # -- loop
    def warm_up(self) -> None:
        """Import PyOcto and build the tables for a network of typical extent before the first
        pick, so the first association is not slowed by them."""
        import importlib

        for module in ("pandas", "pyproj", "pyocto"):
            importlib.import_module(module)
        p = self.params
        self.associator.tables(p.max_distance_km + 2.0 * p.margin_km)

    def request_stop(self) -> None:
        self._stop.set()
        self.consumer.request_stop()

    def run(self, *, drain: bool = False, timeout_s: float | None = None) -> int:
        """Read, window, associate (debounced) until stopped, or with ``drain`` until nothing
        is new or pending and the final association ran. Returns the picks processed.

        The state is loaded inside the loop, so a Redis that is down or refuses the password at
        start is waited out with backoff (and said so in one log line), never a traceback."""
        import redis

        self.warm_up()
        block_ms = 100 if drain else max(1, min(self.block_ms, int(self.debounce_s * 1000) or 1))

        def step() -> int:
            if not self._loaded:
                self.load_state()
            took = self.consumer.run_once(block_ms=block_ms)
            if self._due(took):
                self._associate_guarded()
            return took

        def done(took: int) -> bool:
            if not drain or took or self.dirty:
                return False
            return self.bus.pending_count(INPUT_STREAM, self.group) == 0

        run_loop(
            step,
            stop=self._stop,
            done=done,
            timeout_s=timeout_s,
            label="associate worker",
            on_nogroup=self.consumer.forget_group,
            what="picks stream or group",
            url=getattr(self.bus, "url", None),
        )
        if self.dirty:  # stopped with windowed picks not yet associated: do it now
            try:
                self._associate_guarded()
            except redis.RedisError as exc:  # the picks stay in the window for the next start
                log.error("final association skipped: %s", exc)
        if drain and not self._stop.is_set():  # the input ended: settle what is open
            self._associate_guarded(flush=True)
        return self.consumer.processed


def _encode(message: Message) -> dict[str, bytes]:
    from firstmotion.messages import encode

    return encode(message)


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    parser.add_argument("--inventory", default=None,
                        help="StationXML with coordinates for picks that carry none "
                             "(default: inventory.stationxml)")  # fmt: skip
    parser.add_argument("--velocity-model", default=None,
                        help="1-D model file (overrides associate.velocity_model)")  # fmt: skip
    parser.add_argument("--station-delays", default=None,
                        help="the model's station delays: CSV station,p_delay_s,s_delay_s, "
                             "SEISAN STATION0.HYP or a VELEST station file (overrides "
                             "associate.station_delays)")  # fmt: skip
    parser.add_argument("--debounce-s", type=float, default=0.25,
                        help="associate at most this often while picks keep coming")  # fmt: skip
    parser.add_argument("--shard", default="0/1",
                        help="INDEX/COUNT: this replica's share of the epicentres "
                             "(longitude bands, see firstmotion.shard)")  # fmt: skip
    parser.add_argument("--shard-band-deg", type=float, default=2.0,
                        help="width of the longitude bands dealt to the replicas")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from firstmotion.config import load_settings
    from firstmotion.station_delays import delay_for, model_file_delays, read_station_delays
    from firstmotion.velocity import VelocityModel

    settings = load_settings(args.config)
    model_file = args.velocity_model or settings.associate.velocity_model
    model = VelocityModel.from_file(model_file) if model_file else VelocityModel.default()
    bus = Bus.from_settings(settings.redis, url=args.redis)  # after the model: its error first
    inventory = args.inventory or settings.inventory.stationxml
    stations = stations_from_inventory(inventory) if inventory else {}
    params = AssociateParams.from_settings(settings.associate)
    warning = sparse_network_warning(stations, params)
    if warning:
        log.warning("%s", warning)
    delays_file = args.station_delays or settings.associate.station_delays
    delays = read_station_delays(delays_file) if delays_file else {}
    if not delays_file and model_file:  # a STATION0.HYP model brings its stations' delays
        delays = model_file_delays(model_file)
        delays_file = model_file
    if delays:
        known = sum(delay_for(delays, k) is not None for k in stations)
        log.info("station delays for %d stations from %s (%d of the inventory's %d)",
                 len(delays), delays_file, known, len(stations))  # fmt: skip
    associator = Associator(model, params, delays)
    worker = AssociateWorker(
        bus, associator, stations=stations, name=args.name, debounce_s=args.debounce_s,
        shard=Shard.parse(args.shard, args.shard_band_deg), **settings.redis.consumer_options(),
    )  # fmt: skip
    n = run_stage(
        worker,
        drain=args.drain,
        metrics_host=settings.metrics.host,
        metrics_port=args.metrics_port,
        loop_check=False,
        checks={"loop": worker.consumer.loop_alive},
        on_exit=(associator.close, bus.close),
    )
    log.info("associate worker processed %d picks", n)
    return 0
