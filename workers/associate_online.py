"""Incremental association: each new pick costs about the same, whatever the window holds.

No Redis here: :class:`OnlineAssociator` holds the window of picks and the open events in
memory; the worker (:mod:`workers.associate`) feeds it picks, calls :meth:`OnlineAssociator.step`
and writes what the step returns (origins to publish, events to retract, picks that left).

One step
--------
1. **Attach.** Each new pick is tested against every open event: predicted P (or S) time from
   the event's hypocentre (WGS84 geodesic distance, the 1-D table); within ``max_residual_s``
   it joins the event with the smallest residual. Touched events are relocated from their last
   hypocentre (one pick per station and phase, residual screening: picks that no longer fit go
   back to the pool).
   A step takes its new picks in slices of ``REVEAL_S`` (1 s) of pick time, in time order,
   each seeing only the picks up to its end (steps 1 and 2 per slice), as a real-time feed
   would have delivered them: a fast replay or a backlog forms the events real time forms.
2. **Nucleate.** New picks that joined no event are tested for a new event: a back-projection
   on a coarse grid (:class:`NetworkGrid`) counts, at each node, the unassociated P picks of its
   ``K`` nearest stations whose implied origin times agree; only picks that reach ``min_picks``
   somewhere go to PyOcto (:class:`~workers.associate_locate.Associator`), so PyOcto sees a few
   picks, not the window (its cost grows steeply with noise picks: ~0.7 s for 60 noise picks
   of a 300-station network). A new event must pass :func:`station_support`.
3. **Merge.** Open events closer than ``match_time_s`` and ``match_distance_km`` are one
   earthquake split in two: the one with fewer picks gives its picks to the other (relocated)
   and, if it was published, is retracted.
4. **Settle.** An event whose last possible arrival (origin + the largest S travel time, or P
   without S picks, + ``wait_s``) is older than the newest pick is settled canonically, so the
   outcome depends on the picks and not on their arrival order or batching: picks are gathered
   from the whole window by the predicted times of its hypocentre (best per station and phase
   within ``max_residual_s``), the set is located from a start that depends only on the set
   (the best grid node), gathered again, until the set stops changing. An event that then fails
   :func:`station_support` or has fewer than ``min_picks`` P stations is retracted (``deleted``),
   one whose pick set another settled event already took is merged into it. A settled event
   is closed: its picks leave the window.
   An *S ghost* (:meth:`OnlineAssociator._s_ghost`: an event that stands on another event's S
   onsets, picked again as P) is neither published while open nor kept at settlement.
5. Unassociated picks older than the window's retention leave.

Candidate onsets (``WindowPick.candidate``, ``Pick.candidate``: weak or masked P the picker
does not vouch for) take no part in 1-4: each published revision adds, at stations without a
P, the one that fits the predicted P (:meth:`OnlineAssociator._with_candidates`), so the
events and their hypocentres are the picks' (event-guided picking).

``keep(lat, lon)`` (a shard's region test, :mod:`firstmotion.shard`) decides which events
this associator publishes; others are still built (their picks stay claimed) but never
published, so an event on a shard border is made once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from firstmotion.geodesy import epicentral_km
from firstmotion.messages import Origin
from workers.associate_locate import (
    LOCATE_SCALE_S,
    Associator,
    LocatedEvent,
    StationCoords,
    WindowPick,
    geodesic_distance_azimuth,
    origin_changed,
    p_stations,
)

GRID_REBUILD_S = 30.0
NUCLEATE_MAX = 40  # PyOcto sees at most this many picks per round (its cost grows steeply)
NUCLEATE_ROUNDS = 8  # rounds of nucleate (one cluster each) -> attach the rest, per step
WIDE_GATHER = 3.0  # the first gather at settlement: this many times max_residual_s
JOINT_TIME_S = 10.0  # two solutions this close in origin time ...
JOINT_DISTANCE_KM = 80.0  # ... and epicentre are tested as one earthquake (joint location)
JOINT_KEEP = 0.8  # one earthquake when the joint location keeps this share of their stations
DISTINCT_ARRIVAL_S = 1.0  # two picks of one station and phase this far apart: two arrivals
S_TWIN_S = 0.2  # a P-labelled pick this close to an S of its station is that S picked twice
REVEAL_S = 1.0  # a step takes its new picks in slices of this much pick time (see step)
RELOCATE_GROWTH = 1.25  # within a step, an event is relocated once its picks grew this much

__all__ = ["NetworkGrid", "OnlineAssociator", "OpenEvent", "StepResult", "station_support"]


def distinct_arrivals(
    a: Mapping[tuple[str, str], float], b: Mapping[tuple[str, str], float]
) -> int:
    """How many arrivals of ``a`` ((station, phase) -> time) are not ``b``'s: at a station and
    phase ``b`` has too, more than ``DISTINCT_ARRIVAL_S`` away. Two solutions close in time and
    space are one earthquake found twice when few of their arrivals are distinct (the same
    onsets, or picks at stations only one has); a burst of earthquakes seconds apart gives
    every station two distinct arrivals."""
    return sum(1 for slot, t in a.items() if slot in b and abs(b[slot] - t) > DISTINCT_ARRIVAL_S)


def station_support(
    distance_picked_km: np.ndarray, distance_all_km: np.ndarray, min_picks: int, ratio: float
) -> bool:
    """Whether the stations that picked an event are the ones that should have.

    ``distance_picked_km``: epicentral distances of the stations with an associated P pick;
    ``distance_all_km``: of every known station. The ``min_picks``-th nearest picked station
    sets a radius; of the known stations inside it, at least ``ratio`` must have picked. A real
    event is picked first at its nearest stations; a coincidence of noise picks at scattered
    stations of a dense network is not (with 300 stations, four noise picks agree on some
    origin every few seconds).
    """
    d = np.sort(np.asarray(distance_picked_km, float))
    if d.size < min_picks:
        return False
    radius = d[min_picks - 1] + 1e-6
    inside = int(np.count_nonzero(np.asarray(distance_all_km, float) <= radius))
    return min_picks >= ratio * max(inside, min_picks)


# --------------------------------------------------------------------------- grid


class NetworkGrid:
    """Coarse nodes over the known stations (plus ``margin_km``) with P travel times to every
    station: the nucleation pre-filter and the order-free location start."""

    DEPTHS_KM = (2.0, 8.0, 16.0, 28.0)  # on the travel-time table's 0.5 km depth nodes

    def __init__(self, associator: Associator, stations: Mapping[str, StationCoords]):
        p = associator.params
        self.associator = associator
        self.keys = sorted(stations)
        self.index = {k: i for i, k in enumerate(self.keys)}
        lat = np.array([stations[k].latitude_deg for k in self.keys])
        lon = np.array([stations[k].longitude_deg for k in self.keys])
        self.st_lat, self.st_lon = lat, lon
        proj = associator.projection(float(np.mean(lat)), float(np.mean(lon)))
        sx, sy = proj.to_xy(lat, lon)
        lo_x, hi_x = sx.min() - p.margin_km, sx.max() + p.margin_km
        lo_y, hi_y = sy.min() - p.margin_km, sy.max() + p.margin_km
        self.bounds = (lo_x, hi_x, lo_y, hi_y)
        self.proj = proj
        step = max(5.0, max(hi_x - lo_x, hi_y - lo_y) / 50.0)
        self.step_km = step
        gx, gy = np.meshgrid(np.arange(lo_x, hi_x + step / 2, step),
                             np.arange(lo_y, hi_y + step / 2, step), indexing="ij")  # fmt: skip
        depths = [z for z in self.DEPTHS_KM if z <= p.max_depth_km] or [p.max_depth_km / 2]
        nx = gx.size
        self.node_x = np.tile(gx.ravel(), len(depths))
        self.node_y = np.tile(gy.ravel(), len(depths))
        self.node_z = np.repeat(np.array(depths), nx)
        table = associator.tables(p.max_distance_km + p.table_step_km).table
        d_max = float(table.distance_km[-1])
        dist = np.hypot(self.node_x[:, None] - sx[None, :], self.node_y[:, None] - sy[None, :])
        self.dist_km = dist
        # node depths lie on the table's depth nodes: 1-D interpolation in distance suffices
        self.tt_p = np.empty(dist.shape)
        for z in depths:
            rows = self.node_z == z
            j = int(np.argmin(np.abs(table.depth_km - z)))
            column = table.grids["P_time_s"][:, j]
            self.tt_p[rows] = np.interp(np.minimum(dist[rows], d_max), table.distance_km, column)
        # each node's K nearest stations: the nucleation counts only their picks
        k = min(len(self.keys), max(p.min_picks, math.ceil(p.min_picks / p.min_station_ratio)))
        near = np.argsort(dist, axis=1, kind="stable")[:, :k]
        self.near = near
        within = np.take_along_axis(dist, near, axis=1) <= p.max_distance_km
        self.station_nodes: list[np.ndarray] = [np.empty(0, np.int64)] * len(self.keys)
        rows, cols = np.nonzero(within)
        stations_of = near[rows, cols]
        order = np.argsort(stations_of, kind="stable")
        split = np.searchsorted(stations_of[order], np.arange(len(self.keys) + 1))
        for s in range(len(self.keys)):
            self.station_nodes[s] = rows[order[split[s] : split[s + 1]]]
        vp0 = float(associator.model.vp_km_s[0])
        self.tolerance_s = (0.71 * step + 0.5 * 12.0) / vp0 / 2.0 + 0.3

    def cluster(
        self, picks: list[WindowPick], min_picks: int, fresh: set[str] | frozenset[str]
    ) -> set[str]:
        """Ids of the strongest cluster that holds a ``fresh`` pick: the P picks of one node's
        nearest stations whose implied origin times agree (within :attr:`tolerance_s`), at
        least ``min_picks`` of them; empty when no node has such a cluster.

        A cluster holds one earthquake's picks (or a coincidence of noise picks), never the
        picks of an earlier event that failed to nucleate: the caller hands PyOcto one cluster
        at a time."""
        # only the nodes of a fresh pick's stations can hold such a cluster
        at_fresh = np.zeros(len(self.node_x), dtype=bool)
        for pk in picks:
            s = self.index.get(pk.station_key)
            if s is not None and pk.phase == "P" and pk.pick_id in fresh:
                at_fresh[self.station_nodes[s]] = True
        if not at_fresh.any():
            return set()
        rows_n, rows_t, rows_u = [], [], []
        for u, pk in enumerate(picks):
            s = self.index.get(pk.station_key)
            if s is None or pk.phase != "P":
                continue
            nodes = self.station_nodes[s]
            nodes = nodes[at_fresh[nodes]]
            if nodes.size == 0:
                continue
            rows_n.append(nodes)
            rows_t.append(pk.time_epoch_s - self.tt_p[nodes, s])
            rows_u.append(np.full(nodes.size, u))
        if not rows_n:
            return set()
        n = np.concatenate(rows_n)
        t0 = np.concatenate(rows_t)
        u = np.concatenate(rows_u)
        t_min = float(t0.min())
        span = float(t0.max()) - t_min + 10.0 * self.tolerance_s + 1.0
        key = n.astype(np.float64) * span + (t0 - t_min)
        order = np.argsort(key, kind="stable")
        key, u = key[order], u[order]
        lo = np.searchsorted(key, key - self.tolerance_s, side="left")
        hi = np.searchsorted(key, key + self.tolerance_s, side="right")
        is_fresh = np.array([picks[i].pick_id in fresh for i in u], dtype=np.int64)
        cum = np.concatenate([[0], np.cumsum(is_fresh)])
        n_fresh = cum[hi] - cum[lo]
        count = hi - lo
        ok = (count >= min_picks) & (n_fresh > 0)
        if not ok.any():
            return set()
        score = np.where(ok, count * 1_000_000 + n_fresh, -1)
        b = int(np.argmax(score))
        return {picks[i].pick_id for i in np.unique(u[lo[b] : hi[b]])}

    def best_start(
        self, picks: list[WindowPick], n_max: int = 40, cap_s: float = 2.0
    ) -> tuple[float, float, float, float] | None:
        """(x_km, y_km, depth_km, t0_s) in :attr:`proj`'s plane of the node that best fits
        ``picks``' P picks (up to ``n_max`` of them, evenly spaced in pick-id order; misfit
        the L1 norm about the median origin time, each term capped at ``cap_s`` so outliers
        do not steer it): a start that depends only on the pick set, not on how it was found."""
        use = sorted(
            (pk for pk in picks if pk.phase == "P" and pk.station_key in self.index),
            key=lambda k: k.pick_id,
        )
        if not use:
            return None
        if len(use) > n_max:
            use = [use[i] for i in np.linspace(0, len(use) - 1, n_max).round().astype(int)]
        c = np.array([self.index[pk.station_key] for pk in use])
        r = np.array([pk.time_epoch_s for pk in use])[None, :] - self.tt_p[:, c]
        t0 = np.median(r, axis=1)
        cost = np.minimum(np.abs(r - t0[:, None]), cap_s).sum(axis=1)
        b = int(np.argmin(cost))
        # the capped misfit's own origin time: the median of the terms within the cap
        near = np.abs(r[b] - t0[b]) < cap_s
        t_best = float(np.median(r[b][near])) if near.any() else float(t0[b])
        return float(self.node_x[b]), float(self.node_y[b]), float(self.node_z[b]), t_best


# --------------------------------------------------------------------------- engine


@dataclass
class OpenEvent:
    """An event being built: its current solution and what was last published of it."""

    event_id: str | None
    located: LocatedEvent
    published: Origin | None = None
    changed_wall_s: float = 0.0
    supported: bool = False
    revision: int = -1  # of the last publication (retracted or not)
    basis: LocatedEvent | None = None  # the solution the last publication was made from
    located_n: int = 0  # arrivals when last located (see OnlineAssociator._take)

    @property
    def pick_ids(self) -> frozenset[str]:
        return self.located.pick_ids


@dataclass
class StepResult:
    """What one step changed: origins to publish (new revisions, in order), last published
    origins of events retracted (merged into another or false), ids of events closed, and
    picks that left the window."""

    origins: list[Origin] = field(default_factory=list)
    retracted: list[Origin] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    found: int = 0


class OnlineAssociator:
    """Window + open events, updated per batch of picks (see module doc). Not thread-safe."""

    def __init__(
        self,
        associator: Associator,
        stations: Mapping[str, StationCoords],
        *,
        new_id: Callable[[float], str],
        keep: Callable[[float, float], bool] | None = None,
    ) -> None:
        self.associator = associator
        self.params = associator.params
        self.stations = stations  # shared with the worker: it learns stations from picks
        self.new_id = new_id
        self.keep = keep or (lambda _lat, _lon: True)
        self.window: dict[str, WindowPick] = {}
        self.arrived: dict[str, float] = {}  # pick id -> wall time it arrived
        self.owner: dict[str, int] = {}
        self.events: dict[int, OpenEvent] = {}
        self.fresh: set[str] = set()
        self.newest_s = 0.0
        self._next = 0
        self._grid: NetworkGrid | None = None
        self._grid_built_s = 0.0
        self._dirty: set[int] = set()
        # recently settled solutions with their arrival times (duplicates, see _twin_settled)
        self._settled: list[tuple[LocatedEvent, dict[tuple[str, str], float]]] = []
        self._st_cache: tuple[dict[str, int], np.ndarray, np.ndarray] | None = None
        self._tried: set[str] = set()
        # a step's new picks and the end of the slice being taken: those after it are not
        # revealed yet (see step)
        self._unrevealed: set[str] = set()
        self._horizon_s = math.inf
        self._deferred: set[int] = set()  # events to relocate at the step's last slice
        p = self.params
        self.max_tt_p = associator.max_travel_time_s
        self.max_tt_s = self.max_tt_p * associator.vp_vs
        self.phases = ("P", "S") if p.use_s else ("P",)
        # solutions are below the model's top, origins below sea level
        self._top_km = float(associator.model.top_km)

    # -- state
    @property
    def retain_s(self) -> float:
        p = self.params
        return self.max_tt_s + p.wait_s + p.window_s

    def grid(self) -> NetworkGrid:
        """The grid over the known stations; rebuilt when stations were learned (at once while
        it misses more than a tenth of them, else at most every ``GRID_REBUILD_S``)."""
        g = self._grid
        n = len(self.stations)
        if g is None or (
            n != len(g.keys)
            and (len(g.keys) < 0.9 * n or time.monotonic() - self._grid_built_s > GRID_REBUILD_S)
        ):
            self._grid = NetworkGrid(self.associator, self.stations)
            self._grid_built_s = time.monotonic()
        return self._grid

    def add(self, picks: Iterable[WindowPick], wall_s: float | None = None) -> int:
        """New picks into the window (``wall_s``: when they arrived, default now); returns
        how many were new."""
        stamp = time.time() if wall_s is None else float(wall_s)
        n = 0
        for pk in picks:
            if pk.pick_id in self.window or pk.phase not in self.phases:
                continue
            self.window[pk.pick_id] = pk
            self.arrived[pk.pick_id] = stamp
            self.fresh.add(pk.pick_id)
            self.newest_s = max(self.newest_s, pk.time_epoch_s)
            n += 1
        return n

    def restore(self, origins: Iterable[Origin]) -> None:
        """Open events from their last published origins (a restarted worker); their picks
        must be in the window already."""
        for o in origins:
            # the picks' arrivals (candidate onsets are added anew at each publication)
            win = self.window
            arrivals = tuple(
                a for a in o.arrivals if a.pick_id in win and not win[a.pick_id].candidate
            )
            # below the model's top, as the solutions are
            depth = float(self.associator.model.model_depth_km(o.depth_km))
            located = LocatedEvent(o.time_epoch_s, o.latitude_deg, o.longitude_deg, depth,
                                   arrivals, o.rms_s or 0.0)  # fmt: skip
            k = self._new_key()
            self.events[k] = OpenEvent(o.event_id, located, o, o.created_epoch_s, True, o.revision,
                                       basis=located)  # fmt: skip
            for a in arrivals:
                self.owner[a.pick_id] = k
        self.fresh = {pid for pid in self.window if pid not in self.owner}

    def _new_key(self) -> int:
        self._next += 1
        return self._next

    # -- helpers
    def _picks(self, ids: Iterable[str]) -> list[WindowPick]:
        return sorted((self.window[i] for i in ids if i in self.window),
                      key=lambda k: (k.time_epoch_s, k.pick_id))  # fmt: skip

    def _locate(self, picks: list[WindowPick], start: tuple[float, float, float, float] | None,
                *, from_latlon: bool = True, screen: bool = True,
                loss: str = "soft_l1", scale_s: float = LOCATE_SCALE_S,
                ) -> LocatedEvent | None:  # fmt: skip
        """Locate (with ``screen``, screening the picks; see :meth:`Associator.locate_picks
        <workers.associate_locate.Associator.locate_picks>`); ``start`` is (lat, lon, depth,
        t0) or, with ``from_latlon=False``, the grid's (x, y, depth, t0) in the grid's plane."""
        usable = [k for k in picks if k.station_key in self.stations]
        if p_stations(usable) < self.params.min_picks:
            return None
        a = self.associator
        if from_latlon:
            if start is None:
                return None
            lat0, lon0, z0, t0 = start
            proj = self.grid().proj
            x0, y0 = proj.to_xy(lat0, lon0)
            start_xy = (float(x0), float(y0), z0, t0)
        else:
            proj = self.grid().proj
            start_xy = start
        t_ref = math.floor(usable[0].time_epoch_s)
        sx0, sy0, sz0, st0 = start_xy
        return a.locate_picks(usable, self.stations, (sx0, sy0, sz0, st0 - t_ref), t_ref, proj,
                              screen=screen, loss=loss, scale_s=scale_s)  # fmt: skip

    def _final(self, loc: LocatedEvent) -> LocatedEvent:
        """The solution to publish: ``loc``'s picks (each as the phase it is an arrival of)
        relocated from ``loc`` under ``final_loss``, the candidate onsets' arrivals then taken
        at the new hypocentre (they add arrivals, not a location); ``loc`` itself with
        ``final_loss = "soft_l1"`` or where the relocation fails. The association decides which
        picks make an event with the soft-L1 solution; the published hypocentre need not follow
        a pick the residual rule still admits but that no other pick agrees with (a later
        phase taken as P at the nearest station pulls a soft-L1 depth by kilometres)."""
        if self.params.final_loss == "soft_l1":
            return loc
        picks, cands = [], []
        for a in loc.arrivals:
            k = self.window.get(a.pick_id)
            if k is not None:
                (cands if k.candidate else picks).append(replace(k, phase=a.phase))
        start = (loc.latitude_deg, loc.longitude_deg, loc.depth_km, loc.time_epoch_s)
        # the loss's scale: the picks' own residual spread (MAD), at least the association's
        # 0.2 s: a network whose model errors spread the residuals keeps them all in play
        res = np.array(
            [a.residual_s or 0.0 for a in loc.arrivals if not self._is_candidate(a.pick_id)]
        )
        scale = max(LOCATE_SCALE_S, 1.4826 * float(np.median(np.abs(res - np.median(res)))))
        new = self._locate(picks, start, screen=False, loss=self.params.final_loss, scale_s=scale)
        if new is None or len(new.arrivals) != len(picks):
            return loc
        return self._with_arrivals(new, cands) if cands else new

    def _station_arrays(self) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
        """Index and coordinates of every known station (cached until one is learned)."""
        if self._st_cache is None or len(self._st_cache[0]) != len(self.stations):
            keys = sorted(self.stations)
            lat = np.array([self.stations[k].latitude_deg for k in keys])
            lon = np.array([self.stations[k].longitude_deg for k in keys])
            self._st_cache = ({k: i for i, k in enumerate(keys)}, lat, lon)
        return self._st_cache

    def _supported(self, ev: LocatedEvent) -> bool:
        p = self.params
        index, lat, lon = self._station_arrays()
        d_all, _ = geodesic_distance_azimuth(ev.latitude_deg, ev.longitude_deg, lat, lon)
        picked = sorted({a.station_id.rsplit(".", 1)[0] for a in ev.arrivals
                         if a.phase == "P" and not self._is_candidate(a.pick_id)})  # fmt: skip
        idx = [index[k] for k in picked if k in index]
        return station_support(d_all[idx], d_all, p.min_picks, p.min_station_ratio)

    def _is_candidate(self, pick_id: str) -> bool:
        k = self.window.get(pick_id)
        return k is not None and k.candidate

    def _residuals(
        self,
        ev: LocatedEvent,
        picks: list[WindowPick],
        *,
        tolerance: bool = False,
        signed: bool = False,
    ) -> np.ndarray:
        """|observed - predicted| (s) of ``picks`` for ``ev``'s hypocentre (inf beyond
        ``max_distance_km`` or for unknown stations); with ``tolerance``, divided by each
        pick's :meth:`~workers.associate_locate.Associator.tolerance_s` (<= 1 fits)."""
        a = self.associator
        p = self.params
        out = np.full(len(picks), np.inf)
        rows = [i for i, k in enumerate(picks) if k.station_key in self.stations]
        if not rows:
            return out
        st = [self.stations[picks[i].station_key] for i in rows]
        lat = np.array([s.latitude_deg for s in st])
        lon = np.array([s.longitude_deg for s in st])
        elev = np.array([s.elevation_m for s in st])
        dist, _ = geodesic_distance_azimuth(ev.latitude_deg, ev.longitude_deg, lat, lon)
        table = a.tables(p.max_distance_km + p.table_step_km).table
        d = np.minimum(dist, table.distance_km[-1])
        z = np.full(d.shape, min(max(ev.depth_km, 0.0), float(table.depth_km[-1])))
        is_s = np.array([picks[i].phase == "S" for i in rows])
        tt = table.travel_time(d, z)
        if is_s.any():
            tt = np.where(is_s, table.travel_time(d, z, "S"), tt)
        t = np.array([picks[i].time_epoch_s for i in rows])
        r = t - ev.time_epoch_s - tt - a.static_s(elev, is_s)
        if a.station_delays:
            r = r - a.delay_s([picks[i].station_key for i in rows], is_s)
        if not signed:
            r = np.abs(r)
        if tolerance:
            r = r / a.tolerance_s(tt)
        r[dist > p.max_distance_km] = np.inf
        out[rows] = r
        return out

    def _set_event(self, key: int, located: LocatedEvent | None, wall_s: float,
                   result: StepResult) -> None:  # fmt: skip
        """Replace event ``key``'s solution (``None``: it died; retract it if published)."""
        ev = self.events[key]
        for pid in ev.pick_ids:
            if self.owner.get(pid) == key:  # back to the pool (not fresh: no re-attach loop)
                del self.owner[pid]
        if located is None:
            del self.events[key]
            if ev.published is not None:
                result.retracted.append(ev.published)
            return
        ev.located = located
        ev.located_n = len(located.arrivals)
        ev.changed_wall_s = wall_s
        for pid in located.pick_ids:
            old = self.owner.get(pid)
            if old is not None and old != key:
                self._drop_pick(old, pid)
            self.owner[pid] = key
            self.fresh.discard(pid)

    def _drop_pick(self, key: int, pid: str) -> None:
        ev = self.events.get(key)
        if ev is None:
            return
        arrivals = tuple(a for a in ev.located.arrivals if a.pick_id != pid)
        ev.located = LocatedEvent(ev.located.time_epoch_s, ev.located.latitude_deg,
                                  ev.located.longitude_deg, ev.located.depth_km, arrivals,
                                  ev.located.rms_s)  # fmt: skip
        self.owner.pop(pid, None)
        self._dirty.add(key)

    # -- the step
    def step(self, wall_s: float, *, flush: bool = False) -> StepResult:
        """Attach, nucleate, merge, settle, publish, age out (module doc); ``wall_s`` the wall
        clock (events stay open ``close_wall_s`` after their last change). ``flush``: the
        input has ended (a drained backfill): settle every open event now."""
        result = StepResult()
        self._dirty.clear()
        fresh = self._picks(pid for pid in self.fresh if pid not in self.owner)
        self.fresh.clear()
        try:
            if fresh and self.stations:
                slices = _reveal_chunks(fresh, REVEAL_S)
                self._unrevealed = {k.pick_id for k in fresh}
                for i, revealed in enumerate(slices):
                    self._horizon_s = revealed[-1].time_epoch_s
                    self._take(revealed, wall_s, result, last=i == len(slices) - 1)
        except Exception:
            # keep the picks for the next attempt (a failed step publishes nothing)
            self.fresh.update(k.pick_id for k in fresh if k.pick_id not in self.owner)
            raise
        finally:
            self._unrevealed, self._horizon_s = set(), math.inf
            self._deferred = set()
        self._merge(wall_s, result)
        self._settle(wall_s, result, flush=flush)
        self._publish(wall_s, result)
        self._age_out(wall_s, result)
        return result

    def _take(
        self, fresh: list[WindowPick], wall_s: float, result: StepResult, *, last: bool = True
    ) -> None:
        """Attach ``fresh`` (time-sorted) to the open events, then nucleate new events from
        those that joined none (``NUCLEATE_ROUNDS`` rounds, each new event taking the rest
        of the picks it explains). Before the step's ``last`` slice, an event that gained
        picks is relocated only once it holds ``RELOCATE_GROWTH`` times (and two more than)
        the arrivals of its last location, else at the last slice: a location per slice made
        a backlog 1.4x as costly to drain, none before the last made the events of a step
        holding 40 s of picks differ from real time's."""
        fresh = [k for k in fresh if k.pick_id not in self.owner]
        if fresh:
            self._attach(fresh)
        if not last:
            grown = {key for key in self._dirty if key in self.events
                     and _grown(self.events[key])}  # fmt: skip
            self._deferred = (self._deferred | self._dirty) - grown
            self._dirty = grown
        else:
            self._dirty |= self._deferred
            self._deferred = set()
        self._relocate_dirty(wall_s, result)
        if not fresh:
            return
        self._tried = set()
        for _ in range(NUCLEATE_ROUNDS):
            unowned = [k for k in fresh if k.pick_id not in self.owner]
            made = self._nucleate(unowned, wall_s, result) if unowned else -1
            self._relocate_dirty(wall_s, result)
            if made < 0:  # no cluster left to try
                break
            if not made:
                continue
            # the rest of a new event's picks join it (cheaper than PyOcto on them)
            rest = [k for k in fresh if k.pick_id not in self.owner]
            if rest:
                self._attach(rest)
                self._relocate_dirty(wall_s, result)

    def _hidden(self, k: WindowPick) -> bool:
        """A new pick of this step beyond the slice being taken (not revealed yet)."""
        return k.time_epoch_s > self._horizon_s and k.pick_id in self._unrevealed

    def _relocate_dirty(self, wall_s: float, result: StepResult) -> None:
        for key in sorted(self._dirty):
            if key in self.events:
                self._relocate(key, wall_s, result)
            self._deferred.discard(key)
        self._dirty.clear()

    def _attach(self, fresh: list[WindowPick]) -> None:
        # candidate onsets join an event only when it settles (:meth:`_gather`): the open
        # events, their merges and the nucleation of others go as without them
        fresh = [k for k in fresh if not k.candidate]
        if not self.events or not fresh:
            return
        keys = sorted(self.events)
        res = np.full((len(keys), len(fresh)), np.inf)
        t = np.array([k.time_epoch_s for k in fresh])
        for r, key in enumerate(keys):
            ev = self.events[key].located
            cols = np.nonzero((t >= ev.time_epoch_s - 1.0)
                              & (t <= ev.time_epoch_s + self.max_tt_s + 2.0))[0]  # fmt: skip
            if cols.size:
                res[r, cols] = self._residuals(ev, [fresh[c] for c in cols])
        best = np.argmin(res, axis=0)
        ok = res[best, np.arange(len(fresh))] <= self.params.max_residual_s
        for c in np.nonzero(ok)[0]:
            key = keys[int(best[c])]
            pk = fresh[c]
            ev = self.events[key]
            ev.located = LocatedEvent(
                ev.located.time_epoch_s, ev.located.latitude_deg, ev.located.longitude_deg,
                ev.located.depth_km, ev.located.arrivals + (_stub_arrival(pk),), ev.located.rms_s,
            )  # fmt: skip
            self.owner[pk.pick_id] = key
            self._dirty.add(key)

    def _relocate(self, key: int, wall_s: float, result: StepResult) -> None:
        ev = self.events[key]
        loc = ev.located
        picks = self._picks(loc.pick_ids)
        start = (loc.latitude_deg, loc.longitude_deg, loc.depth_km, loc.time_epoch_s)
        self._set_event(key, self._locate(picks, start), wall_s, result)

    def _nucleate(self, unowned_new: list[WindowPick], wall_s: float, result: StepResult) -> int:
        """New events from the unassociated picks around ``unowned_new``: PyOcto on the
        strongest grid cluster (:meth:`NetworkGrid.cluster`) holding a new pick not tried in
        this step; returns how many events were made or joined an open event, -1 when no
        cluster was left to try."""
        p = self.params
        made = 0
        lo = unowned_new[0].time_epoch_s - self.max_tt_p - p.max_residual_s
        hi = unowned_new[-1].time_epoch_s + self.max_tt_p + p.max_residual_s
        pool = [k for k in self.window.values()  # candidate onsets never nucleate
                if k.pick_id not in self.owner and not k.candidate
                and lo <= k.time_epoch_s <= hi and not self._hidden(k)]  # fmt: skip
        pool.sort(key=lambda k: (k.time_epoch_s, k.pick_id))
        fresh = {k.pick_id for k in unowned_new} - self._tried
        ids = self.grid().cluster(pool, p.min_picks, fresh)
        if not ids:
            return -1
        cands = [k for k in pool if k.pick_id in ids][:NUCLEATE_MAX]
        self._tried |= fresh & ids  # a fresh pick leads one PyOcto run per step at most
        for found in self.associator.associate(cands, self.stations, self.grid().proj):
            result.found += 1
            if not self._supported(found):
                continue
            made += 1
            twin = self._twin(found)
            key = twin if twin is not None else self._new_key()
            if twin is None:
                self.events[key] = OpenEvent(None, found, None, wall_s, True)
                self._set_event(key, found, wall_s, result)
            else:  # the same earthquake as an open event: its picks join that one
                merged = set(self.events[twin].pick_ids) | found.pick_ids
                for pid in found.pick_ids:
                    self.owner[pid] = twin
                ev = self.events[twin]
                ev.located = LocatedEvent(ev.located.time_epoch_s, ev.located.latitude_deg,
                                          ev.located.longitude_deg, ev.located.depth_km,
                                          tuple(_stub_arrival(k) for k in self._picks(merged)),
                                          ev.located.rms_s)  # fmt: skip
                self._dirty.add(twin)
        return made

    def _close(self, a: LocatedEvent, b: LocatedEvent) -> bool:
        """Close enough in time and space to be one earthquake mislocated twice."""
        if abs(a.time_epoch_s - b.time_epoch_s) > JOINT_TIME_S:
            return False
        d = epicentral_km(a.latitude_deg, a.longitude_deg, b.latitude_deg, b.longitude_deg)
        return d <= JOINT_DISTANCE_KM

    def _joint(self, big: LocatedEvent, small: LocatedEvent) -> LocatedEvent | None:
        """The two as one event, if one hypocentre explains them: the union of their picks
        located from ``big``'s hypocentre keeps at least ``JOINT_KEEP`` of the stations (two
        different earthquakes' picks cannot fit one origin)."""
        p = self.params
        if min(self._unexplained(small, big, self._times(big)),
               self._unexplained(big, small, self._times(small))) >= p.min_picks:  # fmt: skip
            return None  # two earthquakes (a burst): each has onsets the other does not explain
        ids = big.pick_ids | small.pick_ids
        picks = self._picks(ids)
        # the picks decide (a candidate onset that no longer fits says nothing)
        slots = {(k.station_key, k.phase) for k in picks if not k.candidate}
        start = (big.latitude_deg, big.longitude_deg, big.depth_km, big.time_epoch_s)
        joint = self._locate(picks, start)
        if joint is None:
            return None
        kept = sum(1 for a in joint.arrivals if not self._is_candidate(a.pick_id))
        if kept < JOINT_KEEP * len(slots):
            return None
        if len(joint.arrivals) < p.min_picks:
            return None
        return joint

    def _times(self, ev: LocatedEvent) -> dict[tuple[str, str], float]:
        """(station, phase) -> pick time of ``ev``'s arrivals still in the window."""
        out = {}
        for a in ev.arrivals:
            k = self.window.get(a.pick_id)
            if k is not None and not k.candidate:
                out[(k.station_key, a.phase)] = k.time_epoch_s
        return out

    def _twin(self, found: LocatedEvent) -> int | None:
        """The open event ``found`` is a second solution of (see :meth:`_joint`), if any."""
        best = None
        for key in sorted(self.events):
            o = self.events[key].located
            if not self._close(o, found):
                continue
            big, small = (o, found) if len(o.arrivals) >= len(found.arrivals) else (found, o)
            joint = self._joint(big, small)
            if joint is not None and (best is None or len(joint.arrivals) > best[0]):
                best = (len(joint.arrivals), key)
        return None if best is None else best[1]

    def _merge(self, wall_s: float, result: StepResult) -> None:
        """Open events that one hypocentre explains (:meth:`_joint`) become one; a published
        one that disappears is retracted."""
        tried: set[tuple] = set()
        changed = True
        while changed:
            changed = False
            keys = sorted(self.events, key=lambda k: self.events[k].located.time_epoch_s)
            for i, a in enumerate(keys):
                for b in keys[i + 1 :]:
                    ea, eb = self.events[a].located, self.events[b].located
                    if eb.time_epoch_s - ea.time_epoch_s > JOINT_TIME_S:
                        break
                    sig = (ea.pick_ids, eb.pick_ids)
                    if sig in tried or not self._close(ea, eb):
                        continue
                    tried.add(sig)
                    big, small = (a, b) if len(ea.arrivals) >= len(eb.arrivals) else (b, a)
                    joint = self._joint(self.events[big].located, self.events[small].located)
                    if joint is None:
                        continue
                    # the id that stays: the published one, the older of two (fewer changes
                    # of id for the catalog's readers)
                    pa, pb = (self.events[k].published is not None for k in (a, b))
                    stay = (min(a, b) if pa == pb else (a if pa else b)) if pa or pb else big
                    gone = b if stay == a else a
                    self._set_event(gone, None, wall_s, result)
                    self._set_event(stay, joint, wall_s, result)
                    changed = True
                    break
                if changed:
                    break

    # -- settling
    def _gather(
        self, ev: LocatedEvent, taken: set[str], tolerance_s: float | None = None
    ) -> list[WindowPick]:
        """The window's picks that fit ``ev`` best per station and phase, within
        ``tolerance_s`` (default: each pick's :meth:`Associator.tolerance_s
        <workers.associate_locate.Associator.tolerance_s>`); none of ``taken``, no candidate
        onset (:meth:`_with_candidates`).

        With S in use, a pick labelled P that is later than the P its station already gives
        the event and fits the S prediction is taken as the station's S (a picker that reads
        only P, or a learned picker that labelled an S onset P, still gives the location its
        S): each pick fills at most one slot, P first.
        """
        p = self.params
        tol = p.max_residual_s if tolerance_s is None else tolerance_s
        t0 = ev.time_epoch_s
        cands = [k for k in self.window.values()
                 if k.pick_id not in taken and not k.candidate
                 and t0 - tol <= k.time_epoch_s <= t0 + self.max_tt_s + tol]  # fmt: skip
        cands.sort(key=lambda k: k.pick_id)
        scaled = tolerance_s is None  # residuals in units of each pick's tolerance
        lim = 1.0 if scaled else tol
        res = self._residuals(ev, cands, tolerance=scaled)
        best: dict[tuple[str, str], tuple[float, str]] = {}
        for k, r in zip(cands, res, strict=True):
            if r <= lim:
                slot = (k.station_key, k.phase)
                if slot not in best or (r, k.pick_id) < best[slot]:
                    best[slot] = (r, k.pick_id)
        chosen = self._picks(pid for _, pid in best.values())
        if "S" not in self.phases:
            return chosen
        used = {pid for _, pid in best.values()}
        p_time = {k.station_key: k.time_epoch_s for k in chosen if k.phase == "P"}
        late = [replace(k, phase="S") for k in cands
                if k.phase == "P" and k.pick_id not in used
                and k.station_key in p_time
                and k.time_epoch_s > p_time[k.station_key] + DISTINCT_ARRIVAL_S]  # fmt: skip
        if not late:
            return chosen
        as_s: dict[str, tuple[float, WindowPick]] = {}
        absolute = self._residuals(ev, late)
        fit = self._residuals(ev, late, tolerance=scaled)
        for k, r, r_abs in zip(late, fit, absolute, strict=True):
            if (
                r <= lim
                and (k.station_key, "S") not in best
                and not self._other_p(k.pick_id, ev, r_abs)
            ):
                if k.station_key not in as_s or (r, k.pick_id) < (
                    as_s[k.station_key][0],
                    as_s[k.station_key][1].pick_id,
                ):
                    as_s[k.station_key] = (r, k)
        return chosen + [k for _, k in (as_s[s] for s in sorted(as_s))]

    def _other_p(self, pick_id: str, ev: LocatedEvent, s_residual_s: float) -> bool:
        """Whether ``pick_id`` is better explained as the P of another open event (a burst's
        next earthquake, whose P can fall where this one's S is due) than as this one's S
        (residual ``s_residual_s``); S onsets taken for P make poor events (large residuals)."""
        key = self.owner.get(pick_id)
        other = self.events.get(key) if key is not None else None
        if other is None or abs(other.located.time_epoch_s - ev.time_epoch_s) <= DISTINCT_ARRIVAL_S:
            return False
        res = [abs(a.residual_s or 0.0) for a in other.located.arrivals if a.pick_id == pick_id]
        return bool(res) and res[0] <= s_residual_s

    def _with_candidates(self, ev: LocatedEvent, taken: set[str]) -> LocatedEvent:
        """``ev`` (a solution of the picks, open or settled) with the candidate onsets that fit
        it: at each station without a P arrival, the candidate closest to the predicted P within
        ``candidate_fit`` of the residual rule (:meth:`~workers.associate_locate.Associator.
        tolerance_s`), none of ``taken``. They add arrivals (polarities for the mechanism),
        not a new location: the event, its hypocentre and whether it stands are the picks'
        (event-guided picking: docs/association.md)."""
        p = self.params
        have = {a.station_id.rsplit(".", 1)[0] for a in ev.arrivals if a.phase == "P"}
        t0 = ev.time_epoch_s
        cands = [k for k in self.window.values()
                 if k.candidate and k.pick_id not in taken and k.station_key not in have
                 and t0 <= k.time_epoch_s <= t0 + self.max_tt_p + p.max_residual_s]  # fmt: skip
        if not cands:
            return ev
        cands.sort(key=lambda k: k.pick_id)
        fit = self._residuals(ev, cands, tolerance=True)
        best: dict[str, tuple[float, str, int]] = {}
        for i, (k, f) in enumerate(zip(cands, fit, strict=True)):
            if f <= p.candidate_fit and (k.station_key not in best
                                         or (f, k.pick_id) < best[k.station_key][:2]):  # fmt: skip
                best[k.station_key] = (float(f), k.pick_id, i)
        if not best:
            return ev
        return self._with_arrivals(ev, [cands[best[s][2]] for s in sorted(best)])

    def _with_arrivals(self, ev: LocatedEvent, picks: list[WindowPick]) -> LocatedEvent:
        """``ev`` with ``picks`` added as arrivals measured at its hypocentre (residual,
        azimuth, takeoff, distance); the hypocentre stays."""
        p = self.params
        res = self._residuals(ev, picks, signed=True)
        table = self.associator.tables(p.max_distance_km + p.table_step_km).table
        added = self.associator.arrivals_at(picks, res, ev.latitude_deg, ev.longitude_deg,
                                            ev.depth_km, table, self.stations)  # fmt: skip
        return replace(ev, arrivals=ev.arrivals + added)

    def _canonical(self, ev: LocatedEvent, taken: set[str]) -> LocatedEvent | None:
        """The fixed point gather -> locate (from the grid's best node for the set), from a
        first gather with a wide tolerance (a preliminary location can be off by seconds)."""
        picks = self._gather(ev, taken, WIDE_GATHER * self.params.max_residual_s)
        seen: list[frozenset[str]] = []
        loc = None
        for _ in range(6):
            ids = frozenset(k.pick_id for k in picks)
            if ids in seen:
                break
            seen.append(ids)
            loc = self._locate(picks, self.grid().best_start(picks), from_latlon=False)
            if loc is None:
                return None
            picks = self._gather(loc, taken)
        if loc is not None and loc.pick_ids != frozenset(k.pick_id for k in picks):
            loc = self._locate(picks, self.grid().best_start(picks), from_latlon=False)
        return loc

    def _settle(self, wall_s: float, result: StepResult, *, flush: bool = False) -> None:
        p = self.params
        taken: set[str] = set()
        due = []
        for key, ev in self.events.items():
            has_s = any(a.phase == "S" for a in ev.located.arrivals)
            horizon = (self.max_tt_s if has_s else self.max_tt_p) + p.wait_s
            if flush or (ev.located.time_epoch_s + horizon < self.newest_s
                         and wall_s - ev.changed_wall_s >= p.close_wall_s):  # fmt: skip
                due.append(key)
        due.sort(key=lambda k: (self.events[k].located.time_epoch_s, k))
        for key in due:
            if key not in self.events:
                continue
            ev = self.events[key]
            final = self._canonical(ev.located, taken)
            if final is not None and not self._supported(final):
                final = None
            if final is not None and self._s_ghost(final, key):
                final = None
            if final is not None and self._twin_settled(final, result):
                final = None
            if final is not None:
                final = self._with_candidates(final, taken)
            times = {} if final is None else self._times(final)
            if final is None:
                self._set_event(key, None, wall_s, result)
                continue
            self._set_event(key, final, wall_s, result)
            taken |= final.pick_ids
            self._emit(key, result)
            ev = self.events.pop(key)
            for pid in final.pick_ids:
                self.owner.pop(pid, None)
                self._forget(pid)
                result.left.append(pid)
            if ev.event_id is not None:
                result.closed.append(ev.event_id)
            self._settled.append((final, times))
        for key in sorted(self._dirty):
            if key in self.events:
                self._relocate(key, wall_s, result)
        self._dirty.clear()

    def _s_ghost(self, ev: LocatedEvent, key: int) -> bool:
        """Whether ``ev`` stands on S onsets picked twice: at least half of its P stations have
        their P pick within ``S_TWIN_S`` of an S arrival of an earlier event (the picker read
        that event's S onset as S and again as P), and fewer than ``min_picks`` remain
        without them. A burst's next earthquake keeps its own: its P coincides with the first
        one's S at a few stations at most, and a small one that loses one station of four to
        such a coincidence stands."""
        own = [self.window[a.pick_id] for a in ev.arrivals
               if a.phase == "P" and a.pick_id in self.window
               and not self.window[a.pick_id].candidate]  # fmt: skip
        stations = {k.station_key for k in own}
        if len(stations) < self.params.min_picks:
            return False  # _supported decides
        t0 = ev.time_epoch_s
        s_times: dict[str, list[float]] = {}  # the earlier events' S arrivals
        for other_key, other in self.events.items():
            o = other.located
            if other_key == key or not 0.0 < t0 - o.time_epoch_s <= self.max_tt_s:
                continue
            for a in o.arrivals:
                k = self.window.get(a.pick_id)
                if a.phase == "S" and k is not None and a.pick_id not in ev.pick_ids:
                    s_times.setdefault(k.station_key, []).append(k.time_epoch_s)
        for o, times in self._settled:
            if 0.0 < t0 - o.time_epoch_s <= self.max_tt_s:
                for (station, phase), t in times.items():
                    if phase == "S":
                        s_times.setdefault(station, []).append(t)
        left = {k.station_key for k in own
                if not any(abs(k.time_epoch_s - t) <= S_TWIN_S
                           for t in s_times.get(k.station_key, ()))}  # fmt: skip
        gone = len(stations) - len(left)
        return len(left) < self.params.min_picks and 2 * gone >= len(stations)

    def _twin_settled(self, final: LocatedEvent, result: StepResult) -> bool:
        """Whether ``final`` is a recently settled event found again: within ``match_time_s``
        and ``match_distance_km`` of it, with fewer than ``min_picks`` arrivals the settled
        event does not explain (:meth:`_unexplained`)."""
        p = self.params
        horizon = self.newest_s - self.retain_s - 60.0
        self._settled[:] = [e for e in self._settled if e[0].time_epoch_s >= horizon]
        for e, e_times in self._settled:
            if self._unexplained(final, e, e_times) >= p.min_picks:
                continue  # another earthquake of a burst, not this one found twice
            if (
                abs(e.time_epoch_s - final.time_epoch_s) <= p.match_time_s
                and epicentral_km(
                    e.latitude_deg, e.longitude_deg, final.latitude_deg, final.longitude_deg
                )
                <= p.match_distance_km
            ):
                return True
        return False

    def _unexplained(
        self, ev: LocatedEvent, other: LocatedEvent, other_times: Mapping[tuple[str, str], float]
    ) -> int:
        """How many arrivals of ``ev`` the earthquake ``other`` (its arrivals ``other_times``)
        does not explain: :func:`distinct_arrivals` where both have the station and phase, and
        at the stations and phases only ``ev`` has, picks more than ``DISTINCT_ARRIVAL_S`` from
        ``other``'s predicted arrival of the same phase there. A second solution of one
        earthquake is made of its onsets (the ones it has, or its predicted ones); a burst's
        next earthquake has onsets of its own, at stations where the first was not picked too.
        A P arrival where ``other``'s S is due is the next earthquake's P, not ``other``'s S:
        the picker drops the S onsets it reads as P by their polarization (a burst follower
        with four P picks, one of them at the first earthquake's S, was merged into it)."""
        n = distinct_arrivals(self._times(ev), other_times)
        own = [replace(self.window[a.pick_id], phase=a.phase) for a in ev.arrivals
               if a.pick_id in self.window and not self.window[a.pick_id].candidate
               and (self.window[a.pick_id].station_key, a.phase) not in other_times]  # fmt: skip
        if not own:
            return n
        return n + int(np.count_nonzero(self._residuals(other, own) > DISTINCT_ARRIVAL_S))

    # -- output
    def _emit(self, key: int, result: StepResult, taken: set[str] | None = None) -> None:
        """Publish event ``key``'s solution if it changed; an open event's (``taken``: the
        candidate onsets other events published in this step) with the candidate onsets that
        fit it (:meth:`_with_candidates`; its hypocentre stays the picks')."""
        ev = self.events[key]
        loc = ev.located
        if taken is not None:
            loc = self._with_candidates(loc, taken | self.owner.keys())
            taken.update(a.pick_id for a in loc.arrivals if self._is_candidate(a.pick_id))
        if not self.keep(loc.latitude_deg, loc.longitude_deg):
            if ev.published is not None:  # moved out of this shard's region
                result.retracted.append(ev.published)
                ev.published = None
            return
        if ev.published is not None and not origin_changed(
            ev.basis if ev.basis is not None else ev.published, loc, self.params
        ):
            return
        if taken is not None and self._s_ghost(ev.located, key):  # checked when it changes
            if ev.published is not None:
                result.retracted.append(ev.published)
                ev.published = None
            return
        if ev.event_id is None:
            ev.event_id = self.new_id(loc.time_epoch_s)
        origin = self._final(loc).origin(ev.event_id, ev.revision + 1, top_km=self._top_km)
        ev.published = origin
        ev.basis = loc
        ev.revision = origin.revision
        result.origins.append(origin)

    def _publish(self, wall_s: float, result: StepResult) -> None:
        taken: set[str] = set()
        for key in sorted(self.events, key=lambda k: (self.events[k].located.time_epoch_s, k)):
            self._emit(key, result, taken)

    def _age_out(self, wall_s: float, result: StepResult) -> None:
        """Unassociated picks leave ``retain_s`` after the newest pick and ``close_wall_s``
        after they arrived (picks delivered out of order within that time are still all
        here), but never while an open event could still gather them when it settles."""
        cutoff = self.newest_s - self.retain_s
        if self.events:
            earliest = min(e.located.time_epoch_s for e in self.events.values())
            cutoff = min(cutoff, earliest - self.params.max_residual_s - 1.0)
        wall_cut = wall_s - self.params.close_wall_s
        old = [pid for pid, k in self.window.items()
               if k.time_epoch_s < cutoff and pid not in self.owner
               and pid not in self.fresh and self.arrived.get(pid, 0.0) <= wall_cut]  # fmt: skip
        for pid in old:
            self._forget(pid)
        result.left.extend(old)

    def _forget(self, pid: str) -> None:
        self.window.pop(pid, None)
        self.arrived.pop(pid, None)
        self.fresh.discard(pid)


def _stub_arrival(pk: WindowPick):
    """A placeholder arrival (pick id, station, phase) until the event is relocated."""
    from firstmotion.messages import Arrival

    return Arrival(pick_id=pk.pick_id, station_id=pk.station_id, phase=pk.phase,
                   azimuth_deg=0.0, takeoff_deg=90.0, distance_km=0.0,
                   time_epoch_s=pk.time_epoch_s)  # fmt: skip


def _grown(ev: OpenEvent) -> bool:
    """``ev`` holds enough more arrivals than at its last location to be relocated now."""
    n0 = ev.located_n
    return len(ev.located.arrivals) >= max(n0 + 2, RELOCATE_GROWTH * n0)


def _reveal_chunks(picks: list[WindowPick], span_s: float) -> list[list[WindowPick]]:
    """``picks`` (time-sorted) in consecutive slices, each ending at the last pick within
    ``span_s`` of pick time after the slice's first: the order in which a real-time feed
    would have delivered them. One slice when they span less than ``span_s``."""
    out: list[list[WindowPick]] = []
    for k in picks:
        if out and k.time_epoch_s - out[-1][0].time_epoch_s < span_s:
            out[-1].append(k)
        else:
            out.append([k])
    return out
