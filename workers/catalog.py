"""``firstmotion worker catalog``: origins + mechanisms in, the live catalog in Redis out.

Consumes ``<prefix>origins`` and ``<prefix>mechanisms`` in consumer group ``catalog`` (one
blocking XREADGROUP over both streams, origins handled first) and maintains, per event:

* the hash ``<prefix>event:<event_id>`` with fields ``origin`` (Origin JSON), ``mechanism``
  (Mechanism JSON, absent until there is one), ``revision`` (the catalog revision: 1 for the
  first entry, +1 for every change), ``status`` (``preliminary``; ``final`` once a mechanism of
  quality ``catalog.final_max_quality`` or better arrived, or after ``catalog.final_after_s``
  without change; ``deleted`` once the origin was retracted) and ``updated_epoch_s`` (wall
  time of the last change); plus bookkeeping fields ``origin_revision``,
  ``mechanism_revision`` and ``alerts`` (the alert kinds already fired);
* the sorted set ``<prefix>catalog`` (member event id, score origin time in epoch seconds) of
  the events that are not deleted;
* the list ``<prefix>history:<event_id>``: one JSON line per change (:func:`history_entry`,
  the newest ``HISTORY_MAX`` kept), the revision history the live page shows;
* the sorted set ``<prefix>catalog:deleted`` (score origin time) of the retracted events;
* and publishes every change as a :class:`firstmotion.messages.CatalogEvent` JSON on the
  pub/sub channel ``<prefix>events``.

Retention (``catalog.retention_days``, 0 = keep every event, the default; and ``firstmotion
catalog prune``): :meth:`CatalogStage.prune_before` removes the events whose origin time is
older than the cut -- hash, history, parked mechanism and index entries, each event in one
MULTI/EXEC under WATCH of its hash, so an event changed meanwhile is judged again by its new
origin time. The station polarity counts keep the events' contribution (they count a
station's lifetime).

The hash, the sorted set, the publication and the XACK of the input are ONE MULTI/EXEC, under
WATCH of the touched event hashes (optimistic locking: a concurrent writer makes the commit
recompute from the new state), so a crash applies a change completely or not at all.
Idempotent: an Origin whose revision is not newer than the stored one, or a Mechanism whose
revision is not newer than the stored one, changes nothing (a redelivered or reordered older
revision never overwrites a newer one). A Mechanism that arrives before its event's Origin is
parked in ``<prefix>catalog:orphan:<event_id>`` (newest revision kept, 7-day TTL) and applied
when the Origin comes. A retraction is a ``CatalogEvent`` with status ``deleted`` on the origins
stream (:func:`retract_origin`); it applies when its origin revision is not older than the
stored one, and only a newer Origin revives the event.

Finalisation by quiet time runs in the same loop every few seconds (:meth:`CatalogStage.
finalize_quiet`): preliminary events unchanged for ``final_after_s`` become final (its own
WATCH/MULTI per event). The preliminary events are indexed in the sorted set
``<prefix>catalog:preliminary`` (score: time of the last change), kept in the same MULTI.

Alert hooks (``catalog.alert_urls``): a JSON POST ``{"kind": "magnitude"|"mechanism", "event":
<CatalogEvent>}`` when an event first reaches ``alert_min_magnitude``, and when it gets its first
mechanism of quality ``alert_max_quality`` or better; each kind at most once per event (the
``alerts`` field is written in the commit). Requests go out from one thread fed by a bounded
queue (full: the alert is dropped and counted), each with ``alert_timeout_s``.

Metrics (besides ``firstmotion_stage_*`` with ``stage="catalog"``):
``firstmotion_catalog_changes_total{kind}`` (origin, mechanism, final, deleted),
``firstmotion_catalog_ignored_total{reason}`` (stale, orphan, deleted),
``firstmotion_catalog_alerts_total{outcome}`` (sent, failed, dropped),
``firstmotion_catalog_events`` (events in the sorted set),
``firstmotion_catalog_web_requests_total{endpoint,code}`` and
``firstmotion_catalog_station_polarities_total{station,agreement}`` (agree, disagree): when an
event first becomes final (once per event), each polarity its mechanism predicts reliably
(:func:`firstmotion.stationcheck.mechanism_agreement`: quality A-C, radiation >= 0.3) is
counted for its station, so a station read upside down gathers disagreements
(``deploy/prometheus/alerts.yml``: ``FirstmotionStationPolarityReversed``); the same counts,
over the catalog's whole life, in the hash ``<prefix>catalog:station_polarities``
(``<station_id>|agree``, ``<station_id>|disagree``; written in the event's commit) that
``/api/stations`` reads.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from firstmotion.bus import Bus, Consumer, Delivery, MultiConsumer, add_stage_arguments, run_stage
from firstmotion.config import CatalogSettings
from firstmotion.messages import CatalogEvent, Mechanism, Message, MessageError, Origin
from firstmotion.metrics import counter, gauge
from firstmotion.stationcheck import mechanism_agreement

log = logging.getLogger(__name__)

GROUP = "catalog"
ORIGINS = "origins"
MECHANISMS = "mechanisms"
CHANNEL = "events"
CATALOG_KEY = "catalog"
PRELIMINARY_KEY = "catalog:preliminary"
DELETED_KEY = "catalog:deleted"  # retracted events, scored by origin time (retention)
# hash "<station_id>|agree" / "<station_id>|disagree" -> count over the final events
STATION_POLARITIES_KEY = "catalog:station_polarities"
ORPHAN_TTL_S = 7 * 24 * 3600
HISTORY_KEY = "history"
HISTORY_MAX = 50
QUALITIES = ("A", "B", "C", "D")
FINALIZE_INTERVAL_S = 5.0
PRUNE_INTERVAL_S = 600.0  # how often the worker applies catalog.retention_days
PRUNE_BATCH = 1000  # events removed per pass at most (the loop stays responsive)


# --------------------------------------------------------------------------- pure state


@dataclass(frozen=True)
class EventState:
    """One event as stored in ``<prefix>event:<id>`` (origin is never None once stored)."""

    event_id: str
    revision: int
    status: str
    origin: Origin
    mechanism: Mechanism | None = None
    updated_epoch_s: float = 0.0
    alerts: frozenset[str] = frozenset()
    # its polarities were counted per station (firstmotion_catalog_station_polarities_total)
    stations_counted: bool = False

    def to_catalog_event(self) -> CatalogEvent:
        return CatalogEvent(
            event_id=self.event_id,
            revision=self.revision,
            status=self.status,
            origin=self.origin,
            mechanism=self.mechanism,
            updated_epoch_s=self.updated_epoch_s,
        )

    def to_hash(self) -> dict[str, str]:
        """The hash fields (``mechanism`` only when there is one)."""
        out = {
            "origin": self.origin.to_json().decode(),
            "revision": str(self.revision),
            "status": self.status,
            "updated_epoch_s": f"{self.updated_epoch_s:.6f}",
            "origin_revision": str(self.origin.revision),
            "alerts": ",".join(sorted(self.alerts)),
            "stations_counted": "1" if self.stations_counted else "0",
        }
        if self.mechanism is not None:
            out["mechanism"] = self.mechanism.to_json().decode()
            out["mechanism_revision"] = str(self.mechanism.revision)
        return out

    @classmethod
    def from_hash(cls, event_id: str, fields: dict) -> EventState | None:
        """Parse a stored hash (bytes or str); ``None`` when empty."""
        f = {_s(k): _s(v) for k, v in fields.items()}
        if "origin" not in f:
            return None
        mech = f.get("mechanism")
        return cls(
            event_id=event_id,
            revision=int(f.get("revision", "0")),
            status=f.get("status", "preliminary"),
            origin=Origin.from_json(f["origin"]),
            mechanism=Mechanism.from_json(mech) if mech else None,
            updated_epoch_s=float(f.get("updated_epoch_s", "0")),
            alerts=frozenset(a for a in f.get("alerts", "").split(",") if a),
            stations_counted=f.get("stations_counted") == "1",
        )


@dataclass(frozen=True)
class CatalogRules:
    """When an event is final, and when it raises an alert (defaults: ``[catalog]``)."""

    final_after_s: float = CatalogSettings.final_after_s
    final_max_quality: str = CatalogSettings.final_max_quality
    alerts_enabled: bool = False
    alert_min_magnitude: float = CatalogSettings.alert_min_magnitude
    alert_max_quality: str = CatalogSettings.alert_max_quality

    def __post_init__(self) -> None:
        for name in ("final_max_quality", "alert_max_quality"):
            if getattr(self, name) not in QUALITIES:
                raise ValueError(
                    f"{name}: expected one of {QUALITIES}, got {getattr(self, name)!r}"
                )
        if self.final_after_s < 0:
            raise ValueError(f"final_after_s: expected >= 0, got {self.final_after_s}")

    @classmethod
    def from_settings(cls, s: Any) -> CatalogRules:
        """From ``Settings.catalog``."""
        return cls(
            final_after_s=s.final_after_s,
            final_max_quality=s.final_max_quality,
            alerts_enabled=bool(s.alert_urls),
            alert_min_magnitude=s.alert_min_magnitude,
            alert_max_quality=s.alert_max_quality,
        )


def quality_at_least(quality: str, threshold: str) -> bool:
    """``True`` when ``quality`` is ``threshold`` or better (A is best)."""
    return QUALITIES.index(quality) <= QUALITIES.index(threshold)


def status_for(mechanism: Mechanism | None, rules: CatalogRules) -> str:
    """``final`` with a mechanism of ``final_max_quality`` or better, else ``preliminary``."""
    if mechanism is not None and quality_at_least(mechanism.quality, rules.final_max_quality):
        return "final"
    return "preliminary"


def apply_origin(
    state: EventState | None, origin: Origin, now_s: float, rules: CatalogRules
) -> EventState | None:
    """The event after ``origin`` arrived, or ``None`` when it changes nothing.

    An origin not newer (by revision) than the stored one is stale: nothing changes. A newer
    origin of a deleted event revives it.
    """
    if state is None:
        return EventState(
            event_id=origin.event_id,
            revision=1,
            status=status_for(None, rules),
            origin=origin,
            updated_epoch_s=now_s,
        )
    if origin.revision <= state.origin.revision:
        return None
    return replace(
        state,
        revision=state.revision + 1,
        status=status_for(state.mechanism, rules),
        origin=origin,
        updated_epoch_s=now_s,
    )


def apply_mechanism(
    state: EventState, mechanism: Mechanism, now_s: float, rules: CatalogRules
) -> EventState | None:
    """The event after ``mechanism`` arrived, or ``None`` (stale revision, or deleted event)."""
    if state.status == "deleted":
        return None
    if state.mechanism is not None and mechanism.revision <= state.mechanism.revision:
        return None
    return replace(
        state,
        revision=state.revision + 1,
        status=status_for(mechanism, rules),
        mechanism=mechanism,
        updated_epoch_s=now_s,
    )


def apply_retraction(state: EventState | None, origin: Origin, now_s: float) -> EventState | None:
    """The event after its origin (revision ``origin.revision``) was retracted, or ``None``.

    Applies when the retracted revision is not older than the stored origin.
    """
    if state is None:
        return EventState(
            event_id=origin.event_id,
            revision=1,
            status="deleted",
            origin=origin,
            updated_epoch_s=now_s,
        )
    if state.status == "deleted" or origin.revision < state.origin.revision:
        return None
    return replace(
        state, revision=state.revision + 1, status="deleted", origin=origin, updated_epoch_s=now_s
    )


def finalize_if_quiet(state: EventState, now_s: float, rules: CatalogRules) -> EventState | None:
    """``final`` once a preliminary event went ``final_after_s`` without change, else ``None``."""
    if state.status != "preliminary" or now_s - state.updated_epoch_s < rules.final_after_s:
        return None
    return replace(state, revision=state.revision + 1, status="final", updated_epoch_s=now_s)


def alerts_due(before: EventState | None, after: EventState, rules: CatalogRules) -> list[str]:
    """Alert kinds (``magnitude``, ``mechanism``) that ``after`` fires for the first time."""
    if not rules.alerts_enabled or after.status == "deleted":
        return []
    fired = after.alerts
    out = []
    mag = after.origin.magnitude
    if "magnitude" not in fired and mag is not None and mag >= rules.alert_min_magnitude:
        out.append("magnitude")
    m = after.mechanism
    if (
        "mechanism" not in fired
        and m is not None
        and quality_at_least(m.quality, rules.alert_max_quality)
    ):
        out.append("mechanism")
    return out


def history_entry(kind: str, event: CatalogEvent) -> dict[str, Any]:
    """One line of an event's revision history (``<prefix>history:<event_id>``, a list of
    JSON objects, oldest first, the newest ``HISTORY_MAX`` kept): what changed (``kind``:
    origin, mechanism, final, deleted), the catalog revision and status, and a summary of
    the origin and mechanism after the change."""
    o, m = event.origin, event.mechanism
    out: dict[str, Any] = {
        "kind": kind,
        "revision": event.revision,
        "status": event.status,
        "updated_epoch_s": round(event.updated_epoch_s, 3),
        "origin": {
            "revision": o.revision,
            "time_epoch_s": o.time_epoch_s,
            "latitude_deg": round(o.latitude_deg, 5),
            "longitude_deg": round(o.longitude_deg, 5),
            "depth_km": round(o.depth_km, 2),
            "magnitude": o.magnitude,
            "n_arrivals": len(o.arrivals),
        },
        "mechanism": None,
    }
    if m is not None:
        out["mechanism"] = {
            "revision": m.revision,
            "strike": round(m.strike, 1),
            "dip": round(m.dip, 1),
            "rake": round(m.rake, 1),
            "quality": m.quality,
            "n_polarities": m.n_polarities,
            "misfit": round(m.misfit, 3),
            "fault_plane_uncertainty_deg": round(m.fault_plane_uncertainty_deg, 1),
        }
    return out


# --------------------------------------------------------------------------- alert hooks


@dataclass(frozen=True)
class Alert:
    kind: str
    event: CatalogEvent

    def to_json(self) -> bytes:
        return json.dumps({"kind": self.kind, "event": self.event.to_dict()}).encode()


class AlertSender:
    """POSTs alerts to webhook URLs from one daemon thread fed by a bounded queue.

    ``submit`` never blocks: when the queue is full the alert is dropped (counted, logged).
    Each POST has ``timeout_s``; failures are logged and counted, not retried.
    """

    def __init__(self, urls: Sequence[str], *, timeout_s: float = 5.0, max_queue: int = 100):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s: expected > 0, got {timeout_s}")
        self.urls = tuple(urls)
        self.timeout_s = timeout_s
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=max_queue)
        self._outcomes = counter(
            "firstmotion_catalog_alerts_total", "Alert webhook requests", ("outcome",)
        )
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def start(self) -> AlertSender:
        if self._thread is None and self.urls:
            self._thread = threading.Thread(target=self._loop, name="catalog-alerts", daemon=True)
            self._thread.start()
        return self

    def submit(self, alert: Alert) -> bool:
        """Queue ``alert`` for every URL; ``False`` when it was dropped."""
        if not self.urls:
            return False
        try:
            self._queue.put_nowait(alert)
            return True
        except queue.Full:
            self.dropped += 1
            self._outcomes.labels(outcome="dropped").inc()
            log.warning(
                "alert queue full: dropped %s alert for %s", alert.kind, alert.event.event_id
            )
            return False

    def stop(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (within ``timeout_s``), then end the thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            pass
        self._thread.join(timeout=timeout_s)
        self._thread = None

    def _loop(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            body = alert.to_json()
            for url in self.urls:
                self._post(url, body, alert)

    def _post(self, url: str, body: bytes, alert: Alert) -> None:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                resp.read()
            self.sent += 1
            self._outcomes.labels(outcome="sent").inc()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.failed += 1
            self._outcomes.labels(outcome="failed").inc()
            log.warning(
                "alert %s for %s to %s failed: %s", alert.kind, alert.event.event_id, url, exc
            )


# --------------------------------------------------------------------------- Redis shell


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class Plan:
    """What one batch changes: new event states (with the stored revision they replace),
    parked mechanisms, orphans consumed, change notices and alerts."""

    expected: dict[str, int] = field(default_factory=dict)  # event id -> stored revision (0: new)
    states: dict[str, EventState] = field(default_factory=dict)
    changes: list[tuple[str, CatalogEvent]] = field(default_factory=list)  # (kind, event)
    orphans: dict[str, Mechanism] = field(default_factory=dict)
    orphans_used: set[str] = field(default_factory=set)
    alerts: list[Alert] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    # (station, "agree" | "disagree") of the reliably predicted polarities of events made final
    station_polarities: list[tuple[str, str]] = field(default_factory=list)


class CatalogStage:
    """Key layout plus the batch logic shared by both consumers."""

    def __init__(
        self,
        bus: Bus,
        rules: CatalogRules | None = None,
        *,
        alerts: AlertSender | None = None,
        clock: Any = time.time,
    ) -> None:
        self.bus = bus
        self.client = bus.client
        self.rules = rules or CatalogRules()
        self.alerts = alerts
        self.clock = clock
        self.plan: Plan | None = None
        self.batch: list[Message] = []
        self._changes = counter(
            "firstmotion_catalog_changes_total", "Catalog changes published", ("kind",)
        )
        self._ignored = counter(
            "firstmotion_catalog_ignored_total", "Inputs that changed nothing", ("reason",)
        )
        self._size = gauge("firstmotion_catalog_events", "Events in the catalog sorted set")
        self._pruned = counter(
            "firstmotion_catalog_pruned_total",
            "Events removed from the catalog as older than catalog.retention_days",
        )
        self._station_polarities = counter(
            "firstmotion_catalog_station_polarities_total",
            "Polarities of final events' mechanisms that their mechanism predicts reliably, by "
            "station and whether they agree (a station mostly disagreeing reads upside down)",
            ("station", "agreement"),
        )

    # -- keys
    def event_key(self, event_id: str) -> str:
        return self.bus.key(f"event:{event_id}")

    def orphan_key(self, event_id: str) -> str:
        return self.bus.key(f"catalog:orphan:{event_id}")

    def history_key(self, event_id: str) -> str:
        return self.bus.key(f"{HISTORY_KEY}:{event_id}")

    @property
    def catalog_key(self) -> str:
        return self.bus.key(CATALOG_KEY)

    @property
    def preliminary_key(self) -> str:
        return self.bus.key(PRELIMINARY_KEY)

    @property
    def deleted_key(self) -> str:
        return self.bus.key(DELETED_KEY)

    @property
    def station_polarities_key(self) -> str:
        return self.bus.key(STATION_POLARITIES_KEY)

    @property
    def channel(self) -> str:
        return self.bus.key(CHANNEL)

    # -- handler (called by the consumers; the commit applies the plan)
    def handle(self, batch: list[Delivery]) -> list[tuple[str, Message]]:
        """Plan the batch against the stored state (errors isolate a poison message)."""
        self.batch = [d.message for d in batch]
        self.plan = self.compute(self.batch, self.client)
        return []

    def compute(self, messages: list[Message], reader: Any) -> Plan:
        """The plan for ``messages`` given the state stored in Redis (``reader``: a client;
        the event hashes and parked mechanisms are read in one pipelined round trip)."""
        for msg in messages:
            if not isinstance(msg, (Origin, Mechanism, CatalogEvent)):
                raise MessageError(
                    f"catalog: expected Origin, Mechanism or CatalogEvent, got {type(msg).__name__}"
                )
            if isinstance(msg, CatalogEvent) and msg.status != "deleted":
                raise MessageError(
                    "catalog: a CatalogEvent on the input is a retraction and must have status "
                    f"'deleted', got {msg.status!r}"
                )
        ids = sorted({m.event_id for m in messages})
        plan = Plan()
        pipe = reader.pipeline(transaction=False)
        for eid in ids:
            pipe.hgetall(self.event_key(eid))
            pipe.get(self.orphan_key(eid))
        res = pipe.execute() if ids else []
        stored: dict[str, EventState | None] = {}
        parked_of: dict[str, Mechanism | None] = {}
        for k, eid in enumerate(ids):
            st = EventState.from_hash(eid, res[2 * k])
            stored[eid] = st
            plan.expected[eid] = 0 if st is None else st.revision
            raw = res[2 * k + 1]
            parked_of[eid] = Mechanism.from_json(raw) if raw else None
        now = float(self.clock())
        for msg in messages:
            eid = msg.event_id
            before = stored[eid]
            if isinstance(msg, Mechanism):
                if before is None:
                    prev = plan.orphans.get(eid) or parked_of[eid]
                    if prev is None or msg.revision > prev.revision:
                        plan.orphans[eid] = msg
                    plan.ignored.append("orphan")
                    continue
                after = apply_mechanism(before, msg, now, self.rules)
                kind = "mechanism"
            elif isinstance(msg, Origin):
                after = apply_origin(before, msg, now, self.rules)
                kind = "origin"
                if after is not None and before is None:
                    parked = plan.orphans.pop(eid, None)
                    stored_orphan = parked_of[eid]
                    if stored_orphan is not None:
                        plan.orphans_used.add(eid)
                        if parked is None or stored_orphan.revision > parked.revision:
                            parked = stored_orphan
                    if parked is not None:
                        self._record(plan, before, after, kind)
                        before, kind = plan.states[eid], "mechanism"
                        after = apply_mechanism(before, parked, now, self.rules)
            else:  # a retraction
                after = apply_retraction(before, msg.origin, now)
                kind = "deleted"
            if after is None:
                plan.ignored.append("deleted" if before and before.status == "deleted" else "stale")
                continue
            self._record(plan, before, after, kind)
            stored[eid] = plan.states[eid]
        return plan

    def _record(self, plan: Plan, before: EventState | None, after: EventState, kind: str) -> None:
        due = alerts_due(before, after, self.rules)
        if due:
            after = replace(after, alerts=after.alerts | frozenset(due))
        if after.status == "final" and after.mechanism is not None and not after.stations_counted:
            after = replace(after, stations_counted=True)  # once, even if final again later
            plan.station_polarities += [
                (station, "agree" if agrees else "disagree")
                for station, agrees in mechanism_agreement(after.mechanism)
            ]
        plan.states[after.event_id] = after
        event = after.to_catalog_event()
        plan.changes.append((kind, event))
        plan.alerts.extend(Alert(k, event) for k in due)

    # -- commit
    def commit(self, ack_key: str | None, group: str | None, entry_ids: list[str]) -> Plan:
        """Apply the planned batch and XACK ``entry_ids`` in one MULTI/EXEC under WATCH of the
        touched event hashes; recomputes the plan if another writer got there first."""
        import redis

        plan = self.plan if self.plan is not None else Plan()
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    keys = [self.event_key(e) for e in plan.expected]
                    if keys:
                        pipe.watch(*keys)
                        # read after WATCH (on another connection, one round trip): any change
                        # from here on makes EXEC fail
                        read = self.client.pipeline(transaction=False)
                        for k in keys:
                            read.hget(k, "revision")
                        now_revs = [int(r) if r else 0 for r in read.execute()]
                        if now_revs != list(plan.expected.values()):
                            pipe.unwatch()
                            plan = self.compute(self.batch, self.client)
                            continue
                    pipe.multi()
                    self._write(pipe, plan)
                    if entry_ids and ack_key is not None:
                        pipe.xack(ack_key, group, *entry_ids)
                    pipe.execute()
                    break
                except redis.WatchError:
                    plan = self.compute(self.batch, self.client)
                    continue
        self.plan, self.batch = None, []
        self._after_commit(plan)
        return plan

    def _write(self, pipe: Any, plan: Plan) -> None:
        for eid, state in plan.states.items():
            key = self.event_key(eid)
            pipe.hset(key, mapping=state.to_hash())
            if state.mechanism is None:
                pipe.hdel(key, "mechanism", "mechanism_revision")
            if state.status == "deleted":
                pipe.zrem(self.catalog_key, eid)
                pipe.zadd(self.deleted_key, {eid: state.origin.time_epoch_s})
            else:
                pipe.zadd(self.catalog_key, {eid: state.origin.time_epoch_s})
                pipe.zrem(self.deleted_key, eid)
            if state.status == "preliminary":
                pipe.zadd(self.preliminary_key, {eid: state.updated_epoch_s})
            else:
                pipe.zrem(self.preliminary_key, eid)
        for eid, mech in plan.orphans.items():
            pipe.set(self.orphan_key(eid), mech.to_json(), ex=ORPHAN_TTL_S)
        for eid in plan.orphans_used:
            pipe.delete(self.orphan_key(eid))
        for station, agreement in plan.station_polarities:  # in the commit: counted once
            pipe.hincrby(self.station_polarities_key, f"{station}|{agreement}", 1)
        for kind, event in plan.changes:
            pipe.publish(self.channel, event.to_json())
            history = self.history_key(event.event_id)
            pipe.rpush(history, json.dumps(history_entry(kind, event), separators=(",", ":")))
            pipe.ltrim(history, -HISTORY_MAX, -1)

    def _after_commit(self, plan: Plan) -> None:
        for kind, _event in plan.changes:
            self._changes.labels(kind=kind).inc()
        for reason in plan.ignored:
            self._ignored.labels(reason=reason).inc()
        for station, agreement in plan.station_polarities:
            self._station_polarities.labels(station=station, agreement=agreement).inc()
        if self.alerts is not None:
            for alert in plan.alerts:
                self.alerts.submit(alert)

    # -- quiet-time finalisation
    def finalize_quiet(self, limit: int = 500) -> int:
        """Make preliminary events unchanged for ``final_after_s`` final; returns how many.

        Candidates come from ``<prefix>catalog:preliminary`` (event id scored by the time of
        its last change), at most ``limit`` per call.
        """
        import redis

        due_s = float(self.clock()) - self.rules.final_after_s
        candidates = [
            _s(e) for e in self.client.zrangebyscore(self.preliminary_key, "-inf", due_s, 0, limit)
        ]
        n = 0
        for eid in candidates:
            key = self.event_key(eid)
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    state = EventState.from_hash(eid, pipe.hgetall(key))
                    now = float(self.clock())
                    after = None if state is None else finalize_if_quiet(state, now, self.rules)
                    if state is None or after is None:
                        continue
                    plan = Plan(expected={eid: state.revision})
                    self._record(plan, state, after, "final")
                    pipe.multi()
                    self._write(pipe, plan)
                    pipe.execute()
                except redis.WatchError:
                    continue  # changed meanwhile: not quiet
            self._after_commit(plan)
            n += 1
        return n

    def prune(self, retention_days: float, limit: int = PRUNE_BATCH) -> int:
        """Remove events older than ``retention_days`` (origin time, by the stage's clock);
        returns how many (:meth:`prune_before`)."""
        before_s = float(self.clock()) - retention_days * 86400.0
        return len(self.prune_before(before_s, limit=limit))

    def prune_before(
        self, before_epoch_s: float, *, limit: int | None = None, dry_run: bool = False
    ) -> list[str]:
        """Remove the catalog's events whose origin time is before ``before_epoch_s`` (those of
        ``<prefix>catalog`` and the retracted ones of ``<prefix>catalog:deleted``), oldest
        first, at most ``limit``; returns their ids (``dry_run``: the ids only, nothing
        removed).

        Each event goes in one MULTI/EXEC under WATCH of its hash: its hash, history and parked
        mechanism, and its entries in the sorted sets. An event whose origin changed meanwhile
        is judged by its new origin time. The station polarity counts are kept."""
        import redis

        indices = (self.catalog_key, self.deleted_key)
        page = {} if limit is None else {"start": 0, "num": limit}
        found: dict[str, float] = {}
        for index in indices:
            rows = self.client.zrangebyscore(
                index, "-inf", f"({before_epoch_s}", withscores=True, **page
            )
            found.update((_s(e), float(t)) for e, t in rows)
        removed: list[str] = []
        for eid in sorted(found, key=lambda e: (found[e], e)):
            if limit is not None and len(removed) >= limit:
                break
            if dry_run:
                removed.append(eid)
                continue
            key = self.event_key(eid)
            with self.client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(key)
                        state = EventState.from_hash(eid, pipe.hgetall(key))
                        if state is not None and state.origin.time_epoch_s >= before_epoch_s:
                            pipe.unwatch()
                            break  # relocated meanwhile into the kept span
                        pipe.multi()
                        pipe.delete(key, self.history_key(eid), self.orphan_key(eid))
                        for index in (*indices, self.preliminary_key):
                            pipe.zrem(index, eid)
                        pipe.execute()
                        removed.append(eid)
                        break
                    except redis.WatchError:
                        continue
        if not dry_run:
            self._pruned.inc(len(removed))
        return removed

    def refresh_size(self) -> int:
        n = int(self.client.zcard(self.catalog_key))
        self._size.set(n)
        return n


class CatalogConsumer(Consumer):
    """A :class:`Consumer` whose commit writes the catalog (hash, sorted set, publication)
    and the XACK in one MULTI/EXEC (:meth:`CatalogStage.commit`)."""

    def __init__(self, *args: Any, catalog_stage: CatalogStage, **kwargs: Any) -> None:
        super().__init__(*args, stage="catalog", **kwargs)
        self.catalog_stage = catalog_stage

    def commit(self, batch: list[Delivery], outputs: list[tuple[str, Message]]) -> int:
        plan = self.catalog_stage.commit(self.key, self.group, [d.entry_id for d in batch])
        return len(plan.changes)


class CatalogWorker:
    """Drives the origins and mechanisms consumers from one loop (stoppable, drainable):
    a :class:`firstmotion.bus.MultiConsumer`, origins first, finalising quiet events every
    ``FINALIZE_INTERVAL_S`` and, with ``retention_days`` (> 0), removing the events older than
    that every ``PRUNE_INTERVAL_S``."""

    def __init__(
        self,
        bus: Bus,
        rules: CatalogRules | None = None,
        *,
        alerts: AlertSender | None = None,
        name: str | None = None,
        block_ms: int = 1000,
        batch_size: int = 64,
        lease_ms: int = 5_000,
        max_deliveries: int = 5,
        clock: Any = time.time,
        retention_days: float = 0.0,
    ) -> None:
        if retention_days < 0 or 0 < retention_days < 1:
            raise ValueError(
                f"retention_days: expected 0 (keep every event) or >= 1, got {retention_days}"
            )
        self.bus = bus
        self.stage = CatalogStage(bus, rules, alerts=alerts, clock=clock)
        self.retention_days = float(retention_days)
        self._prune_due = 0.0
        self.block_ms = block_ms
        self.batch_size = batch_size
        self.loop = MultiConsumer.of(
            bus, GROUP, {ORIGINS: self.stage.handle, MECHANISMS: self.stage.handle},
            consumer_cls=CatalogConsumer, on_cycle=self._periodic, label="catalog worker",
            name=name, batch_size=batch_size, block_ms=block_ms, lease_ms=lease_ms,
            max_deliveries=max_deliveries, catalog_stage=self.stage,
        )  # fmt: skip
        self.origins, self.mechanisms = self.loop.consumers
        self._finalize_due = 0.0

    def request_stop(self) -> None:
        self.loop.request_stop()

    def loop_alive(self) -> tuple[bool, dict[str, float]]:
        return self.loop.loop_alive()

    def _periodic(self) -> None:
        if time.monotonic() >= self._finalize_due:
            self._finalize_due = time.monotonic() + FINALIZE_INTERVAL_S
            self.stage.finalize_quiet()
            if self.retention_days > 0 and time.monotonic() >= self._prune_due:
                self._prune_due = time.monotonic() + PRUNE_INTERVAL_S
                self.stage.prune(self.retention_days)
            self.stage.refresh_size()

    def run(self, *, drain: bool = False, timeout_s: float | None = None) -> int:
        """Read both streams with one blocking XREADGROUP, origins first, until stopped (or,
        with ``drain``, until neither stream has new or pending entries). Returns the number of
        input messages processed."""
        return self.loop.run(drain=drain, timeout_s=timeout_s)


def retract_origin(bus: Bus, origin: Origin) -> str:
    """Publish the retraction of ``origin`` (its event becomes ``deleted``) on the origins
    stream; returns the stream entry id."""
    event = CatalogEvent(
        event_id=origin.event_id, revision=origin.revision, status="deleted", origin=origin
    )
    return bus.publish(ORIGINS, event)


# --------------------------------------------------------------------------- reading


class CatalogReader:
    """Reads the catalog keys (for the web page and the export)."""

    def __init__(self, client: Any, prefix: str = "fm:") -> None:
        self.client = client
        self.prefix = prefix

    def subscribe(self) -> Any:
        """A redis-py PubSub subscribed to the change channel ``<prefix>events`` (close it)."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(f"{self.prefix}{CHANNEL}")
        return pubsub

    def event(self, event_id: str) -> CatalogEvent | None:
        st = EventState.from_hash(event_id, self.client.hgetall(f"{self.prefix}event:{event_id}"))
        return None if st is None else st.to_catalog_event()

    def history(self, event_id: str) -> list[dict[str, Any]]:
        """The event's revision history (:func:`history_entry` objects, oldest first)."""
        rows = self.client.lrange(f"{self.prefix}{HISTORY_KEY}:{event_id}", 0, -1)
        out = []
        for raw in rows:
            try:
                out.append(json.loads(_s(raw)))
            except ValueError:
                continue
        return out

    def event_ids(self, limit: int | None = None) -> list[str]:
        """Event ids newest first (by origin time) from the sorted set."""
        end = -1 if limit is None else limit - 1
        return [_s(e) for e in self.client.zrevrange(f"{self.prefix}{CATALOG_KEY}", 0, end)]

    def events(self, limit: int | None = None) -> list[CatalogEvent]:
        """The events of the sorted set, newest first (deleted events are not in it)."""
        ids = self.event_ids(limit)
        pipe = self.client.pipeline(transaction=False)
        for eid in ids:
            pipe.hgetall(f"{self.prefix}event:{eid}")
        out = []
        for eid, fields in zip(ids, pipe.execute(), strict=True):
            st = EventState.from_hash(eid, fields)
            if st is not None:
                out.append(st.to_catalog_event())
        return out

    def all_events(self, *, include_deleted: bool = False) -> list[CatalogEvent]:
        """The catalog, newest first; with ``include_deleted`` also the retracted events."""
        events = self.events()
        if include_deleted:
            seen = {e.event_id for e in events}
            for key in self.client.scan_iter(match=f"{self.prefix}event:*", count=1000):
                eid = _s(key)[len(self.prefix) + len("event:") :]
                if eid not in seen:
                    ev = self.event(eid)
                    if ev is not None:
                        events.append(ev)
            events.sort(key=lambda e: e.origin.time_epoch_s, reverse=True)
        return events


# --------------------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    parser.add_argument(
        "--web-port", type=int, default=None, help="serve the page here (catalog.web_port)"
    )
    parser.add_argument("--no-web", action="store_true", help="do not serve the web page")
    parser.add_argument(
        "--inventory", default=None, help="StationXML for the page's map (inventory.stationxml)"
    )


def run(args: argparse.Namespace) -> int:
    from firstmotion.config import load_settings
    from workers.web import WebAccess, page_client, start_web_server
    from workers.web_data import read_station_coordinates

    settings = load_settings(args.config)
    bus = Bus.from_settings(settings.redis, url=args.redis)
    cs = settings.catalog
    alerts = AlertSender(cs.alert_urls, timeout_s=cs.alert_timeout_s).start()
    worker = CatalogWorker(
        bus,
        CatalogRules.from_settings(cs),
        alerts=alerts,
        name=args.name,
        retention_days=cs.retention_days,
        **settings.redis.consumer_options(),
    )
    servers: list[Any] = []
    closers: list[Any] = []
    if not args.no_web:
        port = cs.web_port if args.web_port is None else args.web_port
        # the page's own small pool: no number of browsers can take the consumer's connections
        client = page_client(
            args.redis or settings.redis.require_url(), max_connections=cs.web_redis_connections
        )
        closers.append(client.close)
        reader = CatalogReader(client, settings.redis.prefix)
        access = WebAccess(
            allowed_hosts=cs.web_allowed_hosts, token=cs.web_token, max_clients=cs.web_max_clients
        )
        stationxml = args.inventory or settings.inventory.stationxml
        inventory = read_station_coordinates(stationxml) if stationxml else None
        servers.append(
            start_web_server(reader, cs.web_host, port, access=access, inventory=inventory)
        )
    n = run_stage(
        worker,
        drain=args.drain,
        metrics_host=settings.metrics.host,
        metrics_port=args.metrics_port,
        servers=servers,
        on_exit=(alerts.stop, bus.close, *closers),
    )
    log.info("catalog worker processed %d messages", n)
    return 0
