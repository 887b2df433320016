"""``firstmotion worker mechanism``: origins + polarities in, revised focal mechanisms out.

Consumes ``<prefix>origins`` and ``<prefix>polarities`` in consumer group ``mechanism``: one
loop reads both streams with a single blocking XREADGROUP and hands each stream's entries to its
:class:`firstmotion.bus.Consumer` (handle, then publish + ack in one MULTI/EXEC; stale entries
reclaimed), so one process never races itself. Polarities and origins arrive in any order and
are joined per event by pick id:

* a Polarity is stored under ``<prefix>mech:pol:<pick_id>``; if the pick already belongs to an
  origin (``<prefix>mech:pick:<pick_id>`` -> event id), that event is re-evaluated;
* an Origin (the newest revision wins) is stored in ``<prefix>mech:event:<event_id>`` with its
  arrivals (pick id, azimuth, takeoff, distance) mapped to the event, then re-evaluated.

Evaluation: the P arrivals (first motions are read on P only, never on S) with a known,
non-zero polarity (within ``max_distance_km``), station reversals applied
(``mechanism.reversals_file``, and the verticals the StationXML documents as reversed:
``mechanism.stationxml_reversals``), weights from the classifier's probabilities
(:func:`workers.mechanism.weight_from_probabilities`: |p_up - p_down|). With >=
``min_polarities`` of them the event is inverted (:func:`workers.mechanism.invert`, trials
drawn with a fixed seed from the picks in pick-id order, so the same inputs give the same
answer), with the misfit floor taken from the reads (``mechanism.misfit_floor = "reads"``:
:func:`workers.mechanism.misfit_floor_from_reads` of each read's chance of the wrong sign,
at least ``read_error_floor``) or fixed (``"fixed"``: ``badmin``); ``Mechanism.misfit_floor``
says which floor was used. A Mechanism is
published to ``<prefix>mechanisms`` when it is the event's first, when it moved by more than
``revise_min_change_deg`` (Kagan angle) from the last published one, when its quality letter
changed, or when it uses at least ``revise_min_new_polarities`` more polarities than the last
published one (the catalog then shows the solution of the data at hand, not of the first eight
stations); each publication gets the next revision number.

S/P amplitude ratios (``mechanism.sp_ratios``, off by default): the worker also reads
``<prefix>picks`` (same group) and keeps each pick's three-component amplitude and pre-pick
noise (``Pick.vector_amplitude``/``vector_noise``, measured by the PhaseNet stream stage) under
``<prefix>mech:amp:<pick_id>``; a pick arriving after its origin re-evaluates the event. At a
station with both a P and an S arrival, log10(S amplitude / P amplitude) joins the inversion
(:meth:`MechanismStage.sp_log_ratios`: S/N >= ``sp_ratmin`` against the noise before the P,
the S more than :data:`SP_MIN_SEPARATION_S` after the P, residuals within
``sp_max_residual_s``, plus ``sp_correction_log10``), HASH's second data type
(:mod:`workers.mechanism.amplitude`; ``mechanism.sp_free_level``: compared about the event's
best-fitting level). ``Mechanism.n_sp_ratios`` says how many were used.

At-least-once and restarts: the event state (origin, last published mechanism, revision) lives
in Redis; the "last published" fields are written in the SAME MULTI/EXEC that publishes the
Mechanism and acknowledges the input, so a crash either publishes and records a revision or
neither. Stored polarities/origins are plain idempotent writes. A restarted worker continues
from Redis. Replicas shard the events (``--shard i/N``, :mod:`firstmotion.shard`: by a hash of
the event id, each in its own consumer group); two unsharded replicas evaluating the same event
could both publish the same revision number.

Metrics (besides ``firstmotion_stage_*`` with ``stage="mechanism"``):
``firstmotion_mechanism_inversions_total``, ``firstmotion_mechanism_inversion_seconds``
(histogram), ``firstmotion_mechanism_revisions_total`` (published mechanisms) and
``firstmotion_mechanism_quality_total{quality=A|B|C|D}`` (of published mechanisms).
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
from firstmotion.config import MechanismSettings
from firstmotion.errors import InputError
from firstmotion.kagan import kagan_angle_deg
from firstmotion.messages import Mechanism, MechanismPick, Message, Origin, Pick, Polarity
from firstmotion.metrics import counter, histogram
from firstmotion.shard import Shard

log = logging.getLogger(__name__)

GROUP = "mechanism"
ORIGINS = "origins"
POLARITIES = "polarities"
OUTPUT_STREAM = "mechanisms"
PICKS = "picks"
# the P amplitude is read over 0.5 s after the pick (plus 0.05 s before it: the stream stage's
# stream.amplitude defaults); an S pick closer to the P than this falls inside that window
SP_MIN_SEPARATION_S = 0.55
STATE_TTL_S = 7 * 24 * 3600
INVERSION_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


_DEFAULTS = MechanismSettings  # one source of defaults: the [mechanism] section of the config


def one_per_site(rows: list) -> list:
    """``(arrival, polarity)`` rows with one per site (``NET.STA``): two sensors of one site
    (location codes ``''`` and ``00``, a seismometer and an accelerometer) see one ray, and
    counted twice they would weigh that ray double in the inversion. The most confident read
    stays (then the lowest station id), an arrival listed twice counts once; rows keep their
    order."""
    best: dict[str, tuple] = {}
    for a, p in rows:
        site = ".".join(a.station_id.split(".")[:2])
        key = (-float(p.confidence), a.station_id)
        if site not in best or key < best[site][0]:
            best[site] = (key, a.pick_id)
    keep = {pick_id for _, pick_id in best.values()}
    out = []
    for a, p in rows:  # an origin listing an arrival twice: once
        if a.pick_id in keep:
            keep.discard(a.pick_id)
            out.append((a, p))
    return out


@dataclass(frozen=True)
class WorkerParams:
    """The inversion and revision settings (``[mechanism]`` of the config, whose defaults
    they take)."""

    min_polarities: int = _DEFAULTS.min_polarities
    dang_deg: float = _DEFAULTS.dang_deg
    n_trials: int = _DEFAULTS.n_trials
    badfrac: float = _DEFAULTS.badfrac
    misfit_floor: str = _DEFAULTS.misfit_floor
    read_error_floor: float = _DEFAULTS.read_error_floor
    badmin: float = _DEFAULTS.badmin
    cangle_deg: float = _DEFAULTS.cangle_deg
    prob_max: float = _DEFAULTS.prob_max
    max_distance_km: float = _DEFAULTS.max_distance_km
    revise_min_change_deg: float = _DEFAULTS.revise_min_change_deg
    revise_min_new_polarities: int = _DEFAULTS.revise_min_new_polarities
    max_azimuth_gap_deg: float = _DEFAULTS.max_azimuth_gap_deg
    max_takeoff_gap_deg: float = _DEFAULTS.max_takeoff_gap_deg
    sp_ratios: bool = _DEFAULTS.sp_ratios
    sp_ratmin: float = _DEFAULTS.sp_ratmin
    sp_qbadfrac: float = _DEFAULTS.sp_qbadfrac
    sp_qbadmin: float = _DEFAULTS.sp_qbadmin
    sp_correction_log10: float = _DEFAULTS.sp_correction_log10
    sp_max_residual_s: float = _DEFAULTS.sp_max_residual_s
    sp_free_level: bool = _DEFAULTS.sp_free_level

    @classmethod
    def from_settings(cls, s: Any) -> WorkerParams:
        return cls(**{k: getattr(s, k) for k in cls.__dataclass_fields__})


class MechanismStage:
    """The join/evaluate logic, shared by the two consumers (one thread drives both).

    ``handle_origins`` / ``handle_polarities`` are the consumers' handlers. State writes that
    must be atomic with publication are staged and flushed by :class:`StateCommitConsumer`.
    """

    def __init__(
        self, bus: Bus, params: WorkerParams, reversals=None, shard: Shard | None = None
    ) -> None:
        self.bus = bus
        self.shard = shard or Shard()
        self.client = bus.client
        self.params = params
        self.reversals = reversals
        self.staged: list[tuple[str, dict[str, str]]] = []
        self.inversions = counter(
            "firstmotion_mechanism_inversions_total", "focal-mechanism inversions run"
        )
        self.inversion_s = histogram(
            "firstmotion_mechanism_inversion_seconds",
            "wall time of one inversion",
            buckets=INVERSION_BUCKETS,
        )
        self.revisions = counter(
            "firstmotion_mechanism_revisions_total", "mechanism revisions published"
        )
        self.quality = counter(
            "firstmotion_mechanism_quality_total",
            "published mechanisms by quality letter",
            ("quality",),
        )

    # -- keys
    def _k(self, *parts: str) -> str:
        return self.bus.key("mech:" + ":".join(parts))

    # -- handlers
    def handle_polarities(self, batch: list[Delivery]) -> list[tuple[str, Message]]:
        self.staged = []
        pipe = self.client.pipeline(transaction=False)
        pols = [d.message for d in batch if isinstance(d.message, Polarity)]
        for p in pols:
            pipe.set(self._k("pol", p.pick_id), p.to_json(), ex=STATE_TTL_S)
        for p in pols:
            pipe.get(self._k("pick", p.pick_id))
        res = pipe.execute()[len(pols) :]
        events = sorted({r.decode() for r in res if r})
        return self._evaluate_all([e for e in events if self.shard.owns_event(e)])

    def handle_origins(self, batch: list[Delivery]) -> list[tuple[str, Message]]:
        self.staged = []
        events = []
        for d in batch:
            o = d.message
            if not isinstance(o, Origin) or not self.shard.owns_event(o.event_id):
                continue
            key = self._k("event", o.event_id)
            old = self.client.hget(key, "origin_revision")
            if old is not None and int(old) > o.revision:
                continue  # an older revision delivered late: keep the newer origin
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, mapping={"origin": o.to_json(), "origin_revision": str(o.revision)})
            pipe.expire(key, STATE_TTL_S)
            for a in o.arrivals:
                pipe.set(self._k("pick", a.pick_id), o.event_id, ex=STATE_TTL_S)
            pipe.execute()
            events.append(o.event_id)
        return self._evaluate_all(sorted(set(events)))

    def handle_picks(self, batch: list[Delivery]) -> list[tuple[str, Message]]:
        """Keep the three-component amplitude of every pick that carries one (S/P ratios);
        re-evaluate the events its pick already belongs to."""
        self.staged = []
        picks = [
            d.message
            for d in batch
            if isinstance(d.message, Pick) and d.message.vector_amplitude is not None
        ]
        if not picks:
            return []
        pipe = self.client.pipeline(transaction=False)
        for p in picks:
            value = {"a": p.vector_amplitude, "n": p.vector_noise, "t": p.time_epoch_s}
            pipe.set(self._k("amp", p.pick_id), json.dumps(value), ex=STATE_TTL_S)
        for p in picks:
            pipe.get(self._k("pick", p.pick_id))
        res = pipe.execute()[len(picks) :]
        events = sorted({r.decode() for r in res if r})
        return self._evaluate_all([e for e in events if self.shard.owns_event(e)])

    def sp_log_ratios(self, origin: Origin, p_arrivals: list) -> dict[str, float]:
        """Observed log10(S/P) per station (station_id -> value) of the stations with a P
        arrival in ``p_arrivals`` and an S arrival of ``origin`` whose picks both carry
        amplitudes: both amplitudes >= ``sp_ratmin`` x the noise before the P, the S more than
        :data:`SP_MIN_SEPARATION_S` after the P, both arrivals' travel-time residuals within
        ``sp_max_residual_s`` (a mispicked S reads the wrong amplitude); plus
        ``sp_correction_log10``."""
        from workers.mechanism.amplitude import observed_log_ratio

        s_arrivals = {}
        for a in sorted(origin.arrivals, key=lambda a: a.pick_id):
            if a.phase.upper() == "S":
                s_arrivals.setdefault(a.station_id, a)
        limit = self.params.sp_max_residual_s

        def fits(a) -> bool:
            return a.residual_s is None or abs(a.residual_s) <= limit

        pairs = [
            (a, s_arrivals[a.station_id])
            for a in p_arrivals
            if a.station_id in s_arrivals and fits(a) and fits(s_arrivals[a.station_id])
        ]
        if not pairs:
            return {}
        keys = [self._k("amp", a.pick_id) for pair in pairs for a in pair]
        raw = self.client.mget(keys)
        out: dict[str, float] = {}
        for i, (pa, _) in enumerate(pairs):
            rp, rs = raw[2 * i], raw[2 * i + 1]
            if rp is None or rs is None or pa.station_id in out:
                continue
            ap, as_ = json.loads(rp), json.loads(rs)
            if as_["t"] - ap["t"] < SP_MIN_SEPARATION_S:
                continue
            noise = ap["n"] if ap["n"] is not None else 0.0
            value = float(
                observed_log_ratio(ap["a"], as_["a"], noise, noise, ratmin=self.params.sp_ratmin)
            )
            if np.isfinite(value):
                out[pa.station_id] = value + self.params.sp_correction_log10
        return out

    # -- evaluation
    def _evaluate_all(self, event_ids: list[str]) -> list[tuple[str, Message]]:
        out = []
        for eid in event_ids:
            msg = self.evaluate(eid)
            if msg is not None:
                out.append((OUTPUT_STREAM, msg))
        return out

    def evaluate(self, event_id: str) -> Mechanism | None:
        """Invert the event if it has enough polarities; the Mechanism to publish, or None."""
        from workers.mechanism import (
            invert,
            misfit_floor_from_reads,
            read_error_probability,
            weight_from_probabilities,
        )

        state = self.client.hgetall(self._k("event", event_id))
        if b"origin" not in state:
            return None
        origin = Origin.from_json(state[b"origin"])
        arrivals = sorted(
            (
                a
                for a in origin.arrivals
                if a.phase.upper() == "P" and a.distance_km <= self.params.max_distance_km
            ),  # fmt: skip
            key=lambda a: a.pick_id,
        )
        if not arrivals:
            return None
        ratios = self.sp_log_ratios(origin, arrivals) if self.params.sp_ratios else {}
        raw = self.client.mget([self._k("pol", a.pick_id) for a in arrivals])
        rows = []
        for a, r in zip(arrivals, raw, strict=True):
            if r is None:
                continue
            p = Polarity.from_json(r)
            if p.polarity == 0:
                continue
            rows.append((a, p))
        rows = one_per_site(rows)
        if len(rows) < self.params.min_polarities:
            return None
        pol = np.array([p.polarity for _, p in rows], dtype=float)
        probabilities = np.array([p.probabilities for _, p in rows])
        _, weight = weight_from_probabilities(probabilities)
        if self.reversals is not None and len(self.reversals):
            pol = self.reversals.apply([a.station_id for a, _ in rows], origin.time_epoch_s, pol)
        use = weight > 0
        if int(use.sum()) < self.params.min_polarities:
            return None
        rows = [r for r, u in zip(rows, use, strict=True) if u]
        pol, weight = pol[use], weight[use]
        if self.params.misfit_floor == "reads":
            badmin = float(
                misfit_floor_from_reads(
                    read_error_probability(probabilities[use], self.params.read_error_floor)
                )
            )
        else:
            badmin = self.params.badmin
        az = np.array([a.azimuth_deg for a, _ in rows])
        to = np.array([a.takeoff_deg for a, _ in rows])
        sp = None
        if ratios:  # a ratio rides on its station's polarity row, or on a row of its own
            with_pol = {a.station_id for a, _ in rows}
            extra = []
            for a in arrivals:
                if a.station_id in ratios and a.station_id not in with_pol:
                    extra.append(a)
                    with_pol.add(a.station_id)
            sp = np.array(
                [ratios.get(a.station_id, np.nan) for a, _ in rows]
                + [ratios[a.station_id] for a in extra]
            )
            az = np.concatenate([az, [a.azimuth_deg for a in extra]])
            to = np.concatenate([to, [a.takeoff_deg for a in extra]])
            pol_in = np.concatenate([pol, np.zeros(len(extra))])
            weight_in = np.concatenate([weight, np.zeros(len(extra))])
        else:
            pol_in, weight_in = pol, weight
        t0 = time.perf_counter()
        m = invert(
            az,
            to,
            pol_in,
            weight_in,
            sp_log_ratio=sp,
            qbadfrac=self.params.sp_qbadfrac,
            qbadmin=self.params.sp_qbadmin,
            sp_free_level=self.params.sp_free_level,
            n_trials=self.params.n_trials,
            dang_deg=self.params.dang_deg,
            badfrac=self.params.badfrac,
            badmin=badmin,
            cangle_deg=self.params.cangle_deg,
            prob_max=self.params.prob_max,
            seed=0,
            max_azimuthal_gap_deg=self.params.max_azimuth_gap_deg,
            max_takeoff_gap_deg=self.params.max_takeoff_gap_deg,
        )
        self.inversion_s.observe(time.perf_counter() - t0)
        self.inversions.inc()

        last = json.loads(state[b"published"]) if b"published" in state else None
        if last is not None:
            moved = float(
                kagan_angle_deg(m.strike, m.dip, m.rake, last["strike"], last["dip"], last["rake"])
            )
            grown = m.n_polarities - int(last.get("n_polarities", m.n_polarities))
            if (
                moved <= self.params.revise_min_change_deg
                and m.quality == last["quality"]
                and grown < self.params.revise_min_new_polarities
            ):
                return None
        revision = int(state.get(b"revision", b"0")) + 1
        versions = sorted({p.model_version for _, p in rows})
        msg = Mechanism(
            event_id=event_id,
            revision=revision,
            origin_revision=origin.revision,
            strike=min(m.strike, 360.0),
            dip=m.dip,
            rake=m.rake,
            aux_strike=m.aux_strike,
            aux_dip=m.aux_dip,
            aux_rake=m.aux_rake,
            quality=m.quality,
            fault_plane_uncertainty_deg=m.fault_plane_uncertainty_deg,
            aux_plane_uncertainty_deg=m.aux_plane_uncertainty_deg,
            misfit=m.misfit,
            probability=m.probability,
            station_distribution_ratio=min(m.station_distribution_ratio, 1.0),
            n_polarities=m.n_polarities,
            n_stations=len({a.station_id for a, _ in rows}),
            model_version=",".join(versions),
            picks=tuple(
                MechanismPick(
                    station_id=a.station_id,
                    pick_id=a.pick_id,
                    azimuth_deg=a.azimuth_deg,
                    takeoff_deg=a.takeoff_deg,
                    polarity=int(pv),
                    weight=float(w),
                )
                for (a, _), pv, w in zip(rows, pol, weight, strict=True)
            ),
            azimuthal_gap_deg=m.azimuthal_gap_deg,
            takeoff_gap_deg=m.takeoff_gap_deg,
            n_sp_ratios=m.n_sp_ratios,
            misfit_floor=badmin,
        )
        published = {"strike": m.strike, "dip": m.dip, "rake": m.rake, "quality": m.quality,
                     "n_polarities": int(m.n_polarities)}  # fmt: skip
        self.staged.append(
            (
                self._k("event", event_id),
                {
                    "published": json.dumps(published),
                    "revision": str(revision),
                    "mechanism": msg.to_json().decode(),
                },
            )
        )
        return msg

    def warm_up(self) -> None:
        """Run one tiny inversion so the compiled kernels are loaded before the first event."""
        from workers.mechanism import invert

        az = np.linspace(0.0, 330.0, 12)
        sp = np.full(12, 0.5) if self.params.sp_ratios else None
        invert(az, np.full(12, 120.0), np.where(az < 180.0, 1, -1), n_trials=2, sp_log_ratio=sp)

    def committed(self, outputs: list[tuple[str, Message]]) -> None:
        """Bookkeeping after a successful commit."""
        for _, msg in outputs:
            if isinstance(msg, Mechanism):
                self.revisions.inc()
                self.quality.labels(quality=msg.quality).inc()


class StateCommitConsumer(Consumer):
    """A :class:`Consumer` whose commit also writes the stage's staged event state, in the
    same MULTI/EXEC as the published outputs and the XACK."""

    def __init__(self, *args, mech_stage: MechanismStage, **kwargs) -> None:
        super().__init__(*args, stage="mechanism", **kwargs)
        self.mech_stage = mech_stage

    def commit_writes(
        self, pipe: Any, batch: list[Delivery], outputs: list[tuple[str, Message]]
    ) -> None:
        for key, mapping in self.mech_stage.staged:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, STATE_TTL_S)

    def committed(self, batch: list[Delivery], outputs: list[tuple[str, Message]]) -> None:
        self.mech_stage.staged = []
        self.mech_stage.committed(outputs)


class MechanismWorker:
    """Drives the origins and polarities consumers from one loop (stoppable, drainable)."""

    def __init__(
        self,
        bus: Bus,
        params: WorkerParams | None = None,
        *,
        reversals=None,
        name: str | None = None,
        block_ms: int = 1000,
        batch_size: int = 64,
        lease_ms: int = 5_000,
        max_deliveries: int = 5,
        shard: Shard | None = None,
    ) -> None:
        self.bus = bus
        self.shard = shard or Shard()
        self.stage = MechanismStage(bus, params or WorkerParams(), reversals, self.shard)
        self.block_ms = block_ms
        self.batch_size = batch_size
        handlers = {ORIGINS: self.stage.handle_origins, POLARITIES: self.stage.handle_polarities}
        if self.stage.params.sp_ratios:  # the picks' amplitudes make the S/P ratios
            handlers[PICKS] = self.stage.handle_picks
        self.loop = MultiConsumer.of(
            bus, self.shard.group(GROUP), handlers,
            consumer_cls=StateCommitConsumer, label="mechanism worker",
            name=name, batch_size=batch_size, block_ms=block_ms, lease_ms=lease_ms,
            max_deliveries=max_deliveries, mech_stage=self.stage,
        )  # fmt: skip
        self.origins, self.polarities = self.loop.consumers[:2]

    def request_stop(self) -> None:
        self.loop.request_stop()

    def run(self, *, drain: bool = False, timeout_s: float | None = None) -> int:
        """Read both streams with ONE blocking XREADGROUP (new entries on either wake it at
        once; Redis resolves a blocked read's own timeout only to ~1/hz = 100 ms), handle
        origins before polarities, until stopped (or drained). Returns the number of input
        messages processed."""
        self.stage.warm_up()
        return self.loop.run(drain=drain, timeout_s=timeout_s)


def misfit_floor_hint(n_stations: int, params: WorkerParams) -> str | None:
    """A hint when the fixed misfit floor (``mechanism.misfit_floor = "fixed"``, ``badmin``),
    not ``badfrac``, sets the accepted set of every event of a network this small (even one
    with a polarity at every station): with ~12 stations and HASH's floor of two, every
    mechanism is quality D (docs/mechanism.md). None with the floor from the reads, when
    ``badfrac`` decides for a full-network event, or when the fixed floor is below two."""
    if params.misfit_floor != "fixed" or params.badmin < 2.0 or n_stations <= 0:
        return None
    if round(n_stations * params.badfrac * 0.5) >= params.badmin:
        return None
    return (
        f"{n_stations} stations: an event has at most {n_stations} polarities, so the misfit "
        f"floor mechanism.badmin = {params.badmin:g} (HASH's), not mechanism.badfrac "
        f"({params.badfrac:g}), sets how many planes are accepted; on about a dozen stations "
        'that leaves every mechanism quality D. mechanism.misfit_floor = "reads" (the '
        "default) takes the floor from the reads' own probabilities (docs/mechanism.md)"
    )


def _station_count(inventory) -> int:
    """Stations of a StationXML path or obspy ``Inventory``."""
    from firstmotion.inventory import read_sites

    return len({s.station_id for s in read_sites(inventory)})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    parser.add_argument(
        "--shard", default="0/1", help="INDEX/COUNT: this replica's share of the events (by id)"
    )
    parser.add_argument(
        "--inventory", default=None,
        help="StationXML of the network (default: inventory.stationxml): its verticals "
        "documented as reversed (dip +90, negative sensitivity) join the reversal list",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from firstmotion.config import load_settings
    from workers.mechanism.reversals import read_reversals, with_documented_reversals

    settings = load_settings(args.config)
    bus = Bus.from_settings(settings.redis, url=args.redis)
    ms = settings.mechanism
    try:
        reversals = read_reversals(ms.reversals_file) if ms.reversals_file else None
    except ValueError as exc:  # one line and exit 2, as for every input of the wrong form
        raise InputError(f"mechanism.reversals_file: {exc}") from None
    params = WorkerParams.from_settings(ms)
    stationxml = args.inventory or settings.inventory.stationxml
    if stationxml:
        from firstmotion.inventory import read_stationxml

        inventory = read_stationxml(stationxml)  # once: a network's file can be large
        hint = misfit_floor_hint(_station_count(inventory), params)
        if hint:
            log.warning("%s", hint)
        if ms.stationxml_reversals:
            reversals = with_documented_reversals(reversals, inventory, name=stationxml)
    worker = MechanismWorker(
        bus,
        params,
        reversals=reversals,
        name=args.name,
        shard=Shard.parse(args.shard),
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
    log.info("mechanism worker processed %d messages", n)
    return 0
