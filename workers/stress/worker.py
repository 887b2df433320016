"""``firstmotion worker stress``: mechanisms in, the stress tensor of every cell kept in Redis.

Consumes ``<prefix>origins`` (for the epicentres) and ``<prefix>mechanisms`` in consumer group
``stress`` (one blocking XREADGROUP over both, origins first). Each mechanism of an allowed
quality (``stress.qualities``) belongs to the grid cell of its event's epicentre
(``stress.grid_deg``, see :mod:`workers.stress.cells`); a newer revision of a mechanism or
origin replaces the older one (and moves it between cells). Every cell that changed and holds at
least ``stress.min_mechanisms`` mechanisms is inverted again (:func:`workers.stress.
invert_stress`, ``stress.n_bootstrap`` resamples, seed 0: the same members give the same
answer).

Redis keys (prefix ``fm:``; documented in docs/stress.md):

* ``fm:stress:<cell>`` -- the cell's stress, JSON: the ``firstmotion stress`` cell object
  (sigma1..3, shape_ratio, shmax_azimuth_deg, n_mechanisms, uncertainty, cell, centre, count,
  regime) plus ``revision`` and ``updated_epoch_s``;
* ``fm:stress:cells`` -- sorted set of the cells that have a stress (score: update time);
* ``fm:stress:members:<cell>`` -- hash event id -> the mechanism used (JSON: strike, dip,
  rake, quality, latitude, longitude, depth_km, revision);
* ``fm:stress:event:<event_id>`` -- the event's cell; ``fm:stress:origin:<event_id>`` its
  newest epicentre (JSON, 30-day TTL); ``fm:stress:pending:<event_id>`` a mechanism waiting for
  its origin (7-day TTL); ``fm:stress:stations`` hash station id -> [lat, lon] (from arrivals);
* every new stress is published on the catalog channel ``fm:events`` as
  ``{"kind": "stress", "cell": ..., "stress": <the fm:stress:<cell> object>}``.

All writes of a batch, and the publications, go out in the MULTI/EXEC that acknowledges it
(:class:`StressCommitConsumer`), so a crash writes a batch completely or not at all; handling is
idempotent (a redelivered message re-applies the same member and the same inversion).

Metrics (besides ``firstmotion_stage_*`` with ``stage="stress"``):
``firstmotion_stress_inversions_total``, ``firstmotion_stress_inversion_seconds``,
``firstmotion_stress_mechanisms_total{outcome=used|filtered|parked}`` and
``firstmotion_stress_cells`` (cells with a stress).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from firstmotion.bus import Bus, Consumer, Delivery, MultiConsumer, add_stage_arguments, run_stage
from firstmotion.config import StressSettings
from firstmotion.messages import Mechanism, Message, Origin
from firstmotion.metrics import counter, gauge, histogram

log = logging.getLogger(__name__)

GROUP = "stress"
ORIGINS = "origins"
MECHANISMS = "mechanisms"
CHANNEL = "events"
ORIGIN_TTL_S = 30 * 24 * 3600
PENDING_TTL_S = 7 * 24 * 3600
INVERSION_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass(frozen=True)
class StressParams:
    """``[stress]`` of the config (whose defaults they take)."""

    grid_deg: float = StressSettings.grid_deg
    min_mechanisms: int = StressSettings.min_mechanisms
    qualities: tuple[str, ...] = StressSettings.qualities
    friction: float = StressSettings.friction
    n_bootstrap: int = StressSettings.n_bootstrap

    @classmethod
    def from_settings(cls, s: Any) -> StressParams:
        return cls(**{k: getattr(s, k) for k in cls.__dataclass_fields__})


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class StressStage:
    """Cell bookkeeping and re-inversion; writes are staged for the commit."""

    def __init__(self, bus: Bus, params: StressParams) -> None:
        self.bus = bus
        self.client = bus.client
        self.params = params
        self.staged: list[tuple[str, tuple, dict]] = []  # (method, args, kwargs) on the pipe
        self.inversions = counter("firstmotion_stress_inversions_total", "stress inversions run")
        self.inversion_s = histogram(
            "firstmotion_stress_inversion_seconds",
            "wall time of one cell's stress inversion",
            buckets=INVERSION_BUCKETS,
        )
        self.mechanisms = counter(
            "firstmotion_stress_mechanisms_total",
            "mechanisms seen by the stress stage, by outcome",
            ("outcome",),
        )
        self.cells = gauge("firstmotion_stress_cells", "cells with a stress tensor")

    def k(self, *parts: str) -> str:
        return self.bus.key("stress:" + ":".join(parts))

    def _stage(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.staged.append((method, args, kwargs))

    # -- cells
    def cell_of(self, lat: float, lon: float) -> str:
        from workers.stress.cells import cell_id, cell_index

        return cell_id(self.params.grid_deg, *cell_index(lat, lon, self.params.grid_deg))

    # -- handlers
    def handle_origins(self, batch: list[Delivery]) -> list[tuple[str, Message]]:
        self.staged = []
        changes: dict[str, dict[str, str | None]] = {}
        stations: dict[str, str] = {}
        for d in batch:
            o = d.message
            if not isinstance(o, Origin):
                continue
            key = self.k("origin", o.event_id)
            old = self.client.get(key)
            if old is not None and json.loads(old)["revision"] > o.revision:
                continue
            loc = {"latitude": o.latitude_deg, "longitude": o.longitude_deg,
                   "depth_km": o.depth_km, "revision": o.revision}  # fmt: skip
            self._stage("set", key, json.dumps(loc), ex=ORIGIN_TTL_S)
            for a in o.arrivals:
                stations[a.station_id] = json.dumps(_station_position(o, a))
            pending = self.client.get(self.k("pending", o.event_id))
            if pending is not None:
                mech = Mechanism.from_json(pending)
                self._stage("delete", self.k("pending", o.event_id))
            else:
                mech = self._current_mechanism(o.event_id)
            if mech is not None:
                changes[o.event_id] = self._member(mech, loc)
        if stations:
            self._stage("hset", self.k("stations"), mapping=stations)
        self._apply(changes)
        return []

    def handle_mechanisms(self, batch: list[Delivery]) -> list[tuple[str, Message]]:
        self.staged = []
        changes: dict[str, dict[str, str | None]] = {}
        for d in batch:
            m = d.message
            if not isinstance(m, Mechanism):
                continue
            held = self._current_mechanism(m.event_id)
            if held is not None and held.revision > m.revision:
                continue  # an older revision delivered late
            raw = self.client.get(self.k("origin", m.event_id))
            if raw is None:
                self._stage("set", self.k("pending", m.event_id), m.to_json(), ex=PENDING_TTL_S)
                self.mechanisms.labels(outcome="parked").inc()
                continue
            changes[m.event_id] = self._member(m, json.loads(raw))
        self._apply(changes)
        return []

    # -- state
    def _current_mechanism(self, event_id: str) -> Mechanism | None:
        """The mechanism this stage already holds for an event (to move it on a new origin)."""
        cell = self.client.get(self.k("event", event_id))
        if cell is None:
            return None
        raw = self.client.hget(self.k("members", _text(cell)), event_id)
        if raw is None:
            return None
        row = json.loads(raw)
        return _MemberMechanism(row)

    def _member(self, m: Any, loc: dict[str, Any]) -> dict[str, str | None]:
        """{"cell": cell or None (filtered), "row": member JSON}."""
        if m.quality not in self.params.qualities:
            self.mechanisms.labels(outcome="filtered").inc()
            return {"cell": None, "row": None}
        self.mechanisms.labels(outcome="used").inc()
        row = {"strike": m.strike, "dip": m.dip, "rake": m.rake, "quality": m.quality,
               "latitude": loc["latitude"], "longitude": loc["longitude"],
               "depth_km": loc["depth_km"], "revision": m.revision}  # fmt: skip
        return {"cell": self.cell_of(loc["latitude"], loc["longitude"]), "row": json.dumps(row)}

    def _apply(self, changes: dict[str, dict[str, str | None]]) -> None:
        """Move the changed events between cells (staged) and re-invert the touched cells."""
        if not changes:
            return
        ids = sorted(changes)
        old_cells = [None if c is None else _text(c)
                     for c in self.client.mget([self.k("event", e) for e in ids])]  # fmt: skip
        touched: dict[str, dict[str, str | None]] = {}  # cell -> {event: row or None (removed)}
        for eid, old in zip(ids, old_cells, strict=True):
            new = changes[eid]
            if old is not None and old != new["cell"]:
                touched.setdefault(old, {})[eid] = None
                self._stage("hdel", self.k("members", old), eid)
            if new["cell"] is None:
                self._stage("delete", self.k("event", eid))
                continue
            touched.setdefault(new["cell"], {})[eid] = new["row"]
            self._stage("hset", self.k("members", new["cell"]), eid, new["row"])
            self._stage("set", self.k("event", eid), new["cell"])
        for cell, delta in sorted(touched.items()):
            self._reinvert(cell, delta)

    def _reinvert(self, cell: str, delta: dict[str, str | None]) -> None:
        members = {_text(k): v for k, v in self.client.hgetall(self.k("members", cell)).items()}
        for eid, row in delta.items():
            if row is None:
                members.pop(eid, None)
            else:
                members[eid] = row
        result = self.invert_members(cell, members)
        if result is None:
            if self.client.exists(self.k(cell)):  # fell below the minimum: no stress any more
                self._stage("delete", self.k(cell))
                self._stage("zrem", self.k("cells"), cell)
            return
        old = self.client.get(self.k(cell))
        result["revision"] = (json.loads(old)["revision"] + 1) if old is not None else 1
        result["updated_epoch_s"] = round(time.time(), 3)
        text = json.dumps(result)
        self._stage("set", self.k(cell), text)
        self._stage("zadd", self.k("cells"), {cell: result["updated_epoch_s"]})
        message = json.dumps({"kind": "stress", "cell": cell, "stress": result})
        self._stage("publish", self.bus.key(CHANNEL), message)

    def invert_members(self, cell: str, members: dict[str, Any]) -> dict[str, Any] | None:
        """The cell object for these members (event id -> member JSON), or None below the
        minimum count."""
        from workers.stress.cells import cell_object, parse_cell_id
        from workers.stress.invert import invert_stress

        if len(members) < self.params.min_mechanisms:
            return None
        rows = [json.loads(members[e]) for e in sorted(members)]
        t0 = time.perf_counter()
        res = invert_stress(
            [r["strike"] for r in rows],
            [r["dip"] for r in rows],
            [r["rake"] for r in rows],
            friction=self.params.friction or None,
            n_bootstrap=self.params.n_bootstrap,
            seed=0,
        )
        self.inversion_s.observe(time.perf_counter() - t0)
        self.inversions.inc()
        g, row, col = parse_cell_id(cell)
        return cell_object(res, g, row, col)

    def warm_up(self) -> None:
        """Compile the inversion kernels before the first cell (numba caches them on disk)."""
        from workers.stress.invert import invert_stress

        rng = np.random.default_rng(0)
        invert_stress(rng.uniform(0, 360, 8), rng.uniform(20, 80, 8), rng.uniform(-180, 180, 8),
                      n_bootstrap=4)  # fmt: skip

    def committed(self) -> None:
        self.staged = []
        self.cells.set(self.client.zcard(self.k("cells")))


class _MemberMechanism:
    """A stored member seen as a mechanism (strike, dip, rake, quality, revision)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.strike, self.dip, self.rake = row["strike"], row["dip"], row["rake"]
        self.quality, self.revision = row["quality"], row["revision"]


def _station_position(o: Origin, a: Any) -> list[float]:
    from firstmotion.geodesy import offset_latlon

    az = np.radians(a.azimuth_deg)
    lat, lon = offset_latlon(o.latitude_deg, o.longitude_deg, a.distance_km * np.cos(az),
                             a.distance_km * np.sin(az))  # fmt: skip
    return [round(float(lat), 5), round(float(lon), 5)]


class StressCommitConsumer(Consumer):
    """Writes the stage's staged state and publications in the MULTI/EXEC of the XACK."""

    def __init__(self, *args: Any, stress_stage: StressStage, **kwargs: Any) -> None:
        super().__init__(*args, stage="stress", **kwargs)
        self.stress_stage = stress_stage

    def commit_writes(
        self, pipe: Any, batch: list[Delivery], outputs: list[tuple[str, Message]]
    ) -> None:
        for method, args, kwargs in self.stress_stage.staged:
            getattr(pipe, method)(*args, **kwargs)

    def committed(self, batch: list[Delivery], outputs: list[tuple[str, Message]]) -> None:
        self.stress_stage.committed()


class StressWorker:
    """Drives the origins and mechanisms consumers from one loop (stoppable, drainable)."""

    def __init__(
        self,
        bus: Bus,
        params: StressParams | None = None,
        *,
        name: str | None = None,
        block_ms: int = 1000,
        batch_size: int = 64,
        lease_ms: int = 60_000,
        max_deliveries: int = 5,
    ) -> None:
        self.bus = bus
        self.stage = StressStage(bus, params or StressParams())
        self.loop = MultiConsumer.of(
            bus, GROUP,
            {ORIGINS: self.stage.handle_origins, MECHANISMS: self.stage.handle_mechanisms},
            consumer_cls=StressCommitConsumer, label="stress worker",
            name=name, batch_size=batch_size, block_ms=block_ms, lease_ms=lease_ms,
            max_deliveries=max_deliveries, stress_stage=self.stage,
        )  # fmt: skip

    def request_stop(self) -> None:
        self.loop.request_stop()

    def loop_alive(self):
        return self.loop.loop_alive()

    def run(self, *, drain: bool = False, timeout_s: float | None = None) -> int:
        self.stage.warm_up()
        return self.loop.run(drain=drain, timeout_s=timeout_s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from firstmotion.config import load_settings

    settings = load_settings(args.config)
    bus = Bus.from_settings(settings.redis, url=args.redis)
    worker = StressWorker(
        bus,
        StressParams.from_settings(settings.stress),
        name=args.name,
        **settings.redis.consumer_options(),
    )
    n = run_stage(
        worker,
        drain=args.drain,
        metrics_host=settings.metrics.host,
        metrics_port=args.metrics_port,
        loop_check=False,
        on_exit=(bus.close,),
    )
    log.info("stress worker processed %d messages", n)
    return 0
