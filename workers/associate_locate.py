"""Pure association and location: P picks + station coordinates -> located events with arrivals.

No Redis here: :func:`associate` (and the reusable :class:`Associator`) take plain picks and
station coordinates and return :class:`LocatedEvent` objects; the worker in
:mod:`workers.associate` keeps the sliding window, the event identities and the state.

Method
------
1. Stations are projected onto a local transverse-Mercator plane (pyproj, km) centred on the
   stations in use; the search volume is their extent plus ``margin_km``, depth
   0-``max_depth_km``.
2. PyOcto (Münchmeyer 2024) associates the picks (P-only allowed) with a 1-D velocity model.
   Its ``VelocityModel1D`` reads a binary travel-time table ``T(x, z)`` (header ``iid``: nx, nz,
   spacing; then P and S times as float64 (nx, nz), x horizontal distance, z source depth).
   PyOcto's own writer needs pyrocko's eikonal solver; here the table is filled with the
   exact layered-model first arrivals of :func:`firstmotion.velocity.trace_rays` (the same rays
   the scenario's truth and the takeoff angles use), so association, location and angles share
   one model. Tables are cached per (model, extent) in memory.
3. Each PyOcto event is relocated by iterative least squares (Geiger's method as
   scipy's trust-region ``least_squares`` with a soft-L1 loss) on the exact travel-time table
   (:class:`firstmotion.velocity.TravelTimeTable`), starting at PyOcto's hypocentre; picks with
   ``|residual|`` beyond :meth:`Associator.tolerance_s` (``residual_floor_s +
   residual_fraction`` x travel time, at most ``max_residual_s``) are dropped and the event
   relocated (an event left with fewer than ``min_picks`` picks is dropped).
4. Arrivals: WGS84 distance and azimuth source -> station (:mod:`firstmotion.geodesy`),
   takeoff angle from vertical-UP at the located depth (``TravelTimeTable.lookup``: 0 up,
   180 down), residual ``t_obs - t0 - T``.

Stations are treated as at the model's top for the rays (as HASH and the scenario do); a
station's height above that top adds ``height / v_top`` to the predicted time (vertical
static; negative for a station below the top of a model that starts above sea level, and a
station below sea level counts as at sea level), and so does its station delay where the
network gives one (``station_delays``, :mod:`firstmotion.station_delays`; PyOcto's coarse
association works without them). Depths in here are below the model's top;
the published :class:`Origin` is below sea level (``LocatedEvent.origin(top_km=)``, the
model's ``top_km``; the same for a model whose top is sea level).

:func:`match_events` gives a new solution the identity of an earlier one (shared picks first,
then origin-time and epicentre closeness); :func:`origin_changed` says whether a solution
differs materially from the last published origin.

.. seealso:: Münchmeyer, J. (2024), PyOcto: A high-throughput seismic phase associator,
   Seismica 3(1); Geiger, L. (1912), Probability method for the determination of earthquake
   epicenters from the arrival time only, Bull. St. Louis Univ. 8; Shearer, P. M. (2009),
   Introduction to Seismology, 2nd ed., ch. 5 (earthquake location).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import struct
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from firstmotion.config import FINAL_LOSSES, MIN_LOCATE_PICKS, AssociateSettings
from firstmotion.geodesy import epicentral_km
from firstmotion.messages import Arrival, Origin
from firstmotion.station_delays import delay_for
from firstmotion.velocity import TravelTimeTable, VelocityModel, trace_rays

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- inputs / outputs


@dataclass(frozen=True, slots=True)
class StationCoords:
    """A station's position (WGS84 degrees, metres above datum)."""

    latitude_deg: float
    longitude_deg: float
    elevation_m: float = 0.0

    def __post_init__(self) -> None:
        if not (-90.0 <= self.latitude_deg <= 90.0) or not math.isfinite(self.longitude_deg):
            raise ValueError(
                f"station coordinates: expected latitude in [-90, 90] and a finite longitude, "
                f"got ({self.latitude_deg}, {self.longitude_deg})"
            )
        if not math.isfinite(self.elevation_m):
            raise ValueError(
                f"station elevation_m: expected a finite number, got {self.elevation_m}"
            )


@dataclass(frozen=True, slots=True)
class WindowPick:
    """One pick (``phase`` P or S) in the association window."""

    pick_id: str
    station_id: str  # NET.STA.LOC.CHA
    time_epoch_s: float
    phase: str = "P"
    candidate: bool = False  # a candidate P onset: never nucleates, no P station of its own

    @property
    def station_key(self) -> str:
        return station_key(self.station_id)


def p_stations(picks: Iterable[WindowPick]) -> int:
    """Stations with a P pick that is not a candidate onset: what ``min_picks`` counts (a
    candidate adds an arrival to an event, never the picks an event needs)."""
    return len({k.station_key for k in picks if k.phase == "P" and not k.candidate})


@dataclass(frozen=True)
class LocatedEvent:
    """One associated and located event (no identity yet)."""

    time_epoch_s: float
    latitude_deg: float
    longitude_deg: float
    depth_km: float
    arrivals: tuple[Arrival, ...]
    rms_s: float

    @property
    def pick_ids(self) -> frozenset[str]:
        return frozenset(a.pick_id for a in self.arrivals)

    def origin(
        self, event_id: str, revision: int, method: str = "pyocto+lsq", top_km: float = 0.0
    ) -> Origin:
        """The wire :class:`Origin` of this solution, whose ``depth_km`` is below the model's
        top, ``top_km`` below sea level (the Origin's depth is below sea level)."""
        return Origin(
            event_id=event_id,
            revision=revision,
            time_epoch_s=self.time_epoch_s,
            latitude_deg=self.latitude_deg,
            longitude_deg=self.longitude_deg,
            depth_km=self.depth_km + top_km,
            arrivals=self.arrivals,
            rms_s=self.rms_s,
            method=method,
        )


@functools.lru_cache(maxsize=1 << 16)
def station_key(station_id: str) -> str:
    """``NET.STA.LOC`` of ``NET.STA.LOC.CHA`` (one location per station site and sensor)."""
    parts = station_id.split(".")
    if len(parts) != 4 or not parts[0] or not parts[1]:
        raise ValueError(f"station_id: expected NET.STA.LOC.CHA, got {station_id!r}")
    return ".".join(parts[:3])


_POSITIVE_PARAMS = (
    "min_picks", "window_s", "max_distance_km", "max_residual_s", "max_depth_km", "table_step_km",
    "node_size_km", "node_size_location_km", "velocity_tolerance_s", "match_time_s",
    "match_distance_km", "n_threads", "candidate_fit",
)  # fmt: skip
_NON_NEGATIVE_PARAMS = (
    "wait_s", "margin_km", "min_interevent_s", "revise_min_move_km", "revise_min_time_s",
    "close_wall_s", "min_station_ratio", "residual_floor_s", "residual_fraction",
)  # fmt: skip


@dataclass(frozen=True)
class AssociateParams:
    """Association, location and revision settings.

    The first five are ``[associate]`` of the config (:class:`firstmotion.config.AssociateSettings`,
    whose defaults they take): ``min_picks`` P picks per event; picks are kept in the worker's
    sliding window for ``max travel time + wait_s + window_s`` after the newest pick;
    ``max_distance_km`` the farthest station used for association; ``max_residual_s`` PyOcto's
    pick-match tolerance and the largest residual kept; ``wait_s`` how long (in pick time) past its
    last possible P arrival an event stays open for revisions -- and at least ``close_wall_s`` of
    wall time after its last revision, so that picks delivered out of order (reclaimed from a
    crashed consumer, a backfill) still join it.
    """

    min_picks: int = AssociateSettings.min_picks
    window_s: float = AssociateSettings.window_s
    max_distance_km: float = AssociateSettings.max_distance_km
    max_residual_s: float = AssociateSettings.max_residual_s
    wait_s: float = AssociateSettings.wait_s
    max_depth_km: float = 40.0
    margin_km: float = 50.0  # search volume beyond the stations' extent
    table_step_km: float = 0.5  # PyOcto table spacing
    node_size_km: float = 10.0  # PyOcto min_node_size (association)
    node_size_location_km: float = 1.0  # PyOcto min_node_size_location
    min_interevent_s: float = 2.0
    velocity_tolerance_s: float = 1.0  # PyOcto velocity-model tolerance
    match_time_s: float = 3.0  # identity: origin times closer than this ...
    match_distance_km: float = 20.0  # ... and epicentres closer than this
    revise_min_move_km: float = 0.3  # a new revision when the hypocentre moved this far
    revise_min_time_s: float = 0.05  # ... or the origin time this much (or the picks changed)
    close_wall_s: float = 10.0  # an event stays open at least this long after its last revision
    n_threads: int = 1
    use_s: bool = AssociateSettings.use_s  # associate and locate with S picks too (depth)
    min_station_ratio: float = AssociateSettings.min_station_ratio  # see station_support
    # the residual a located event keeps: residual_floor_s + residual_fraction x travel time,
    # at most max_residual_s (picking error plus a model error that grows along the ray)
    residual_floor_s: float = AssociateSettings.residual_floor_s
    residual_fraction: float = AssociateSettings.residual_fraction
    use_candidates: bool = AssociateSettings.use_candidates  # candidate onsets join events
    # a candidate joins within this share of the residual a located event keeps
    candidate_fit: float = AssociateSettings.candidate_fit
    # a candidate onset of at least this PhaseNet probability counts as a pick (0: never)
    candidate_pick_p: float = AssociateSettings.candidate_pick_p
    # the published hypocentre: the picks relocated under this loss ("soft_l1": as associated)
    final_loss: str = AssociateSettings.final_loss

    def __post_init__(self) -> None:
        problems = [
            f"{name}: expected > 0, got {getattr(self, name)!r}"
            for name in _POSITIVE_PARAMS
            if not getattr(self, name) > 0
        ]
        problems += [
            f"{name}: expected >= 0, got {getattr(self, name)!r}"
            for name in _NON_NEGATIVE_PARAMS
            if not getattr(self, name) >= 0
        ]
        if not 0.0 <= self.candidate_pick_p <= 1.0:
            problems.append(f"candidate_pick_p: expected 0 to 1, got {self.candidate_pick_p!r}")
        if self.final_loss not in FINAL_LOSSES:
            problems.append(f"final_loss: expected one of {FINAL_LOSSES}, got {self.final_loss!r}")
        if self.min_picks < MIN_LOCATE_PICKS:
            problems.append(
                f"min_picks: expected >= {MIN_LOCATE_PICKS} (an event is first located from its "
                f"P picks alone: four unknowns), got {self.min_picks}"
            )
        if problems:
            raise ValueError("associate parameters: " + "; ".join(problems))

    def is_candidate(self, candidate: bool, probability: float) -> bool:
        """Whether a pick flagged ``candidate`` by the picker stays a candidate onset here: one
        PhaseNet gave at least ``candidate_pick_p`` (a confident peak the onset-SNR gate
        dropped: a small earthquake's short P pulse is diluted in the gate's 1 s RMS) counts
        as a pick; whether it makes an event is the network's to say (``min_picks`` P
        stations fitting one hypocentre), as for any pick."""
        p = self.candidate_pick_p
        return bool(candidate) and not (p > 0 and probability >= p)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> AssociateParams:
        """From :class:`firstmotion.config.AssociateSettings` (plus keyword overrides)."""
        keys = ("min_picks", "window_s", "max_distance_km", "max_residual_s", "wait_s", "use_s",
                "min_station_ratio", "residual_floor_s", "residual_fraction",
                "use_candidates", "candidate_fit", "candidate_pick_p", "final_loss")  # fmt: skip
        kwargs = {k: getattr(settings, k) for k in keys}
        kwargs.update(overrides)
        return cls(**kwargs)


# --------------------------------------------------------------------------- tables


def pyocto_table_bytes(
    model: VelocityModel, max_distance_km: float, max_depth_km: float, step_km: float
) -> bytes:
    """PyOcto ``VelocityModel1D`` binary table of exact first-arrival P and S times.

    Layout (as ``pyocto.VelocityModel1D.create_model`` writes it): ``struct.pack("iid", nx, nz,
    step_km)`` then P times and S times, each float64 C-order ``(nx, nz)``; node ``(i, k)`` is
    horizontal distance ``i * step_km`` and source depth ``k * step_km``.
    """
    if min(max_distance_km, max_depth_km, step_km) <= 0:
        raise ValueError("table extents and step must be > 0")
    nx = int(max_distance_km / step_km) + 1
    nz = int(max_depth_km / step_km) + 1
    x = np.arange(nx) * step_km
    z = np.arange(nz) * step_km
    xx, zz = np.meshgrid(x, z, indexing="ij")
    out = [struct.pack("iid", nx, nz, float(step_km))]
    for phase in ("P", "S"):
        t = trace_rays(model, xx, zz, phase).time_s
        out.append(np.ascontiguousarray(t, dtype="<f8").tobytes())
    return b"".join(out)


def _model_digest(model: VelocityModel) -> str:
    return hashlib.sha256(model.to_text().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Tables:
    """Per-extent tables: the PyOcto file and the firstmotion lookup table."""

    pyocto_path: Path
    table: TravelTimeTable
    max_distance_km: float


# --------------------------------------------------------------------------- projection


class _Projection:
    """Local transverse Mercator (km) centred on (lat0, lon0); x east, y north."""

    def __init__(self, lat0_deg: float, lon0_deg: float) -> None:
        from pyproj import CRS, Transformer

        crs = CRS(f"+proj=tmerc +lat_0={lat0_deg} +lon_0={lon0_deg} +units=km +ellps=WGS84")
        self._fwd = Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True)
        self._inv = Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)

    def to_xy(self, lat_deg: np.ndarray, lon_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._fwd.transform(np.asarray(lon_deg, float), np.asarray(lat_deg, float))
        return np.asarray(x, float), np.asarray(y, float)

    def to_latlon(self, x_km: float, y_km: float) -> tuple[float, float]:
        lon, lat = self._inv.transform(float(x_km), float(y_km))
        return float(lat), float(lon)


# --------------------------------------------------------------------------- location


LOCATE_SCALE_S = 0.2  # the location loss's scale (s): residuals well beyond it weigh less
# one pick that no hypocentre of the others fits: a fit whose rms is beyond this (s; local
# pick errors are hundredths, a 1-D model's tenths) and that falls JACKKNIFE_GAIN-fold
# without one pick loses that pick (locate_picks; only for events of few picks)
JACKKNIFE_MIN_RMS_S = 0.25
JACKKNIFE_GAIN = 3.0
JACKKNIFE_MAX_PICKS = 16
JACKKNIFE_NFEV = 20  # the short fits that find the pick to test
JACKKNIFE_SCREEN = 4  # picks refitted without: those whose deletion the linearised fit favours


def depth_bound_km(max_depth_km: float, table: TravelTimeTable) -> float:
    """The deepest hypocentre a fit may take: ``max_depth_km``, within the table's depths."""
    return min(float(max_depth_km), float(table.depth_km[-1]))


def predicted_times(
    p: np.ndarray,
    sx: np.ndarray,
    sy: np.ndarray,
    static: np.ndarray,
    table: TravelTimeTable,
    is_s: np.ndarray,
    max_depth_km: float,
) -> np.ndarray:
    """Arrival times (s, :func:`locate`'s reference) at stations ``sx``, ``sy`` (km) of a
    hypocentre ``p`` = (x_km, y_km, depth_km, t0): the table's P time (S where ``is_s``), the
    depth clipped to ``[0, max_depth_km]``, the distance to the table's extent."""
    r = np.minimum(np.hypot(sx - p[0], sy - p[1]), float(table.distance_km[-1]))
    z = np.clip(p[2], 0.0, max_depth_km)
    tt = table.travel_time(r, z)
    if is_s.any():
        tt = np.where(is_s, table.travel_time(r, z, "S"), tt)
    return p[3] + tt + static


def deleted_sse(jacobian: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Each row's leave-one-out sum of squared residuals of the linearised least-squares fit
    (Cook & Weisberg 1982): ``SSE - r_i**2 / (1 - h_ii)``, ``h`` the hat matrix of
    ``jacobian`` (n, m). A row the fit bends to (high leverage ``h_ii``) scores low even when
    its residual is small. Rows the others cannot fit without (``h_ii`` ~ 1) get ``inf``."""
    r = np.asarray(residuals, float)
    q, _ = np.linalg.qr(np.asarray(jacobian, float))
    h = np.sum(q**2, axis=1)
    sse = float(np.sum(r**2))
    out = np.full(r.shape, np.inf)
    free = h < 1.0 - 1e-9
    out[free] = sse - r[free] ** 2 / (1.0 - h[free])
    return out


def locate(
    rel_time_s: np.ndarray,
    station_x_km: np.ndarray,
    station_y_km: np.ndarray,
    static_s: np.ndarray,
    start: tuple[float, float, float, float],
    table: TravelTimeTable,
    *,
    max_depth_km: float,
    f_scale_s: float = LOCATE_SCALE_S,
    is_s: np.ndarray | None = None,
    loss: str = "soft_l1",
    max_nfev: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares hypocentre ``(x_km, y_km, depth_km, t0_s)`` and residuals (s).

    Minimises the ``loss`` (scipy's robust losses at scale ``f_scale_s``: "soft_l1" grows
    linearly for residuals well beyond it, "cauchy" logarithmically, so that an outlying pick
    barely pulls the solution) of ``t_i - t0 - T(r_i, z) - static_i`` (Geiger's method with a
    robust loss; scipy ``least_squares``, trust-region reflective, depth bounded to
    ``[0, max_depth_km]``), ``r_i`` the horizontal distance to station ``i``, ``T`` the
    table's P time (its S time where ``is_s``: S picks constrain depth and origin time).
    Times are relative to any reference (keep them small for precision).
    """
    from scipy.optimize import least_squares

    t = np.asarray(rel_time_s, float)
    sx, sy = np.asarray(station_x_km, float), np.asarray(station_y_km, float)
    static = np.asarray(static_s, float)
    if (
        not (t.shape == sx.shape == sy.shape == static.shape)
        or t.ndim != 1
        or t.size < MIN_LOCATE_PICKS
    ):
        raise ValueError("locate: need >= 4 picks with matching times and station coordinates")
    z_hi = depth_bound_km(max_depth_km, table)

    s_rows = np.zeros(t.shape, bool) if is_s is None else np.asarray(is_s, bool)

    def resid(p: np.ndarray) -> np.ndarray:
        return t - predicted_times(p, sx, sy, static, table, s_rows, z_hi)

    x0 = np.array(start, float)
    x0[2] = np.clip(x0[2], 1e-3, z_hi - 1e-3)
    lo = np.array([-np.inf, -np.inf, 0.0, -np.inf])
    hi = np.array([np.inf, np.inf, z_hi, np.inf])
    sol = least_squares(
        resid, x0, bounds=(lo, hi), loss=loss, f_scale=f_scale_s, x_scale=[1, 1, 1, 0.2],
        diff_step=1e-4, max_nfev=max_nfev,
    )  # fmt: skip
    return sol.x, resid(sol.x)


# --------------------------------------------------------------------------- associator


class Associator:
    """PyOcto association + least-squares location with one 1-D model (see module doc).

    Build once (tables are computed lazily and cached per extent); :meth:`associate` is then a
    pure function of its inputs. Thread-safe.
    """

    def __init__(
        self,
        model: VelocityModel | None = None,
        params: AssociateParams | None = None,
        station_delays: Mapping[str, tuple[float, float]] | None = None,
    ):
        self.model = model or VelocityModel.default()
        self.params = params or AssociateParams()
        # station code -> (P, S) delay s (firstmotion.station_delays), added to predicted times
        self.station_delays = dict(station_delays or {})
        self._tables: dict[float, _Tables] = {}
        self._projections: dict[tuple[float, float], _Projection] = {}
        self._lock = threading.Lock()
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self.max_travel_time_s = float(
            np.max(
                trace_rays(
                    self.model,
                    np.array([self.params.max_distance_km]),
                    np.linspace(0.0, self.params.max_depth_km, 9),
                    "P",
                ).time_s
            )
        )

    def close(self) -> None:
        """Remove the temporary table files."""
        with self._lock:
            if self._tmpdir is not None:
                self._tmpdir.cleanup()
                self._tmpdir = None
            self._tables.clear()

    def tables(self, needed_distance_km: float) -> _Tables:
        """Tables covering horizontal distances up to ``needed_distance_km`` (rounded up to
        the next 100 km, so a growing network rarely triggers a rebuild)."""
        extent = float(100.0 * math.ceil(max(needed_distance_km, 1.0) / 100.0))
        with self._lock:
            got = self._tables.get(extent)
            if got is not None:
                return got
            p = self.params
            if self._tmpdir is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="firstmotion-assoc-")
            name = f"{_model_digest(self.model)}-{int(extent)}-{p.max_depth_km:g}.pyocto"
            path = Path(self._tmpdir.name) / name
            path.write_bytes(
                pyocto_table_bytes(self.model, extent, p.max_depth_km, p.table_step_km)
            )
            table = TravelTimeTable.build(
                self.model, max_distance_km=extent, max_depth_km=p.max_depth_km,
                distance_step_km=1.0, depth_step_km=0.5,
            )  # fmt: skip
            got = _Tables(path, table, extent)
            self._tables[extent] = got
            return got

    def projection(self, lat0_deg: float, lon0_deg: float) -> _Projection:
        """A local projection centred near (lat0, lon0), cached on a 0.1-degree grid (building
        one costs ~10 ms; the centre only fixes where the plane touches the ellipsoid)."""
        key = (round(lat0_deg, 1), round(lon0_deg, 1))
        with self._lock:
            proj = self._projections.get(key)
            if proj is None:
                proj = _Projection(*key)
                self._projections[key] = proj
            return proj

    def associate(
        self,
        picks: Sequence[WindowPick],
        stations: Mapping[str, StationCoords],
        proj: _Projection | None = None,
    ) -> list[LocatedEvent]:
        """Associate ``picks`` (P, and S when ``params.use_s``; candidate onsets never) into
        events and locate them; events sorted by origin time.

        ``stations`` maps ``NET.STA.LOC`` (see :func:`station_key`) to coordinates; picks at
        stations without coordinates are ignored. ``proj``: the local plane (default: one
        centred on the picks' stations). Deterministic in its inputs.
        """
        p = self.params
        phases = ("P", "S") if p.use_s else ("P",)
        usable = [
            pk
            for pk in picks
            if pk.station_key in stations and pk.phase in phases and not pk.candidate
        ]
        keys = sorted({pk.station_key for pk in usable})
        n_p = len({pk.station_key for pk in usable if pk.phase == "P"})
        if n_p < p.min_picks:
            return []
        lat = np.array([stations[k].latitude_deg for k in keys])
        lon = np.array([stations[k].longitude_deg for k in keys])
        elev_m = np.array([stations[k].elevation_m for k in keys])
        if proj is None:
            proj = self.projection(float(np.mean(lat)), float(np.mean(lon)))
        sx, sy = proj.to_xy(lat, lon)
        x_lim = (float(sx.min() - p.margin_km), float(sx.max() + p.margin_km))
        y_lim = (float(sy.min() - p.margin_km), float(sy.max() + p.margin_km))
        diagonal = math.hypot(x_lim[1] - x_lim[0], y_lim[1] - y_lim[0])
        tabs = self.tables(max(diagonal, p.max_distance_km) + p.table_step_km)

        usable = sorted(usable, key=lambda k: (k.time_epoch_s, k.pick_id))
        t_ref = math.floor(usable[0].time_epoch_s)
        index = {k: i for i, k in enumerate(keys)}
        found = self._pyocto(usable, keys, sx, sy, elev_m, t_ref, x_lim, y_lim, tabs)

        events = []
        for (ex, ey, ez, et), members in found:
            ev = self.locate_picks(
                [usable[i] for i in members], stations, (ex, ey, ez, et - t_ref), t_ref,
                proj, index=index, sx=sx, sy=sy, elev_m=elev_m, table=tabs.table,
            )  # fmt: skip
            if ev is not None:
                events.append(ev)
        events.sort(key=lambda e: e.time_epoch_s)
        return events

    # -- steps
    def _pyocto(self, usable, keys, sx, sy, elev_m, t_ref, x_lim, y_lim, tabs):
        import pandas as pd
        import pyocto

        p = self.params
        vm = pyocto.VelocityModel1D(
            str(tabs.pyocto_path), tolerance=p.velocity_tolerance_s,
            association_cutoff_distance=p.max_distance_km,
            surface_p_velocity=float(self.model.vp_km_s[0]),
            surface_s_velocity=float(self.model.vs_km_s[0]),
        )  # fmt: skip
        span_s = usable[-1].time_epoch_s - usable[0].time_epoch_s
        assoc = pyocto.OctoAssociator(
            xlim=x_lim, ylim=y_lim, zlim=(0.0, p.max_depth_km), velocity_model=vm,
            time_before=self.max_travel_time_s * (self.vp_vs if p.use_s else 1.0)
            + p.max_residual_s,
            min_node_size=p.node_size_km, min_node_size_location=p.node_size_location_km,
            pick_match_tolerance=p.max_residual_s, min_interevent_time=p.min_interevent_s,
            n_picks=p.min_picks, n_p_picks=p.min_picks, n_s_picks=0, n_p_and_s_picks=0,
            time_slicing=max(1200.0, span_s + 1.0), n_threads=p.n_threads,
        )  # fmt: skip
        station_df = pd.DataFrame(
            {"id": keys, "x": sx, "y": sy, "z": -self.model.height_above_top_km(elev_m)}
        )
        pick_df = pd.DataFrame(
            {
                "station": [k.station_key for k in usable],
                "time": [k.time_epoch_s - t_ref for k in usable],
                "phase": [k.phase for k in usable],
            }
        )
        events, assignments = assoc.associate(pick_df, station_df)
        out = []
        if len(events) == 0:
            return out
        for row in events.itertuples():
            members = sorted(
                int(i) for i in assignments.loc[assignments["event_idx"] == row.idx, "pick_idx"]
            )
            out.append(((row.x, row.y, row.z, row.time + t_ref), members))
        return out

    @property
    def vp_vs(self) -> float:
        """The largest Vp/Vs of the model (S travel times are at most this times P's)."""
        return float(np.max(self.model.vp_km_s / self.model.vs_km_s))

    def tolerance_s(self, travel_time_s: np.ndarray) -> np.ndarray:
        """The largest residual a pick with this predicted travel time keeps in a located
        event: ``residual_floor_s + residual_fraction * T``, at most ``max_residual_s``. A
        fixed 1.5 s suits a regional network; across a 20 km swarm network (P in 1-5 s) it
        lets the picks of two earthquakes seconds apart fit one false hypocentre."""
        p = self.params
        tt = np.maximum(np.asarray(travel_time_s, dtype=float), 0.0)
        return np.minimum(p.max_residual_s, p.residual_floor_s + p.residual_fraction * tt)

    def static_s(self, elevation_m: np.ndarray, is_s: np.ndarray) -> np.ndarray:
        """Vertical static (s) of a station for P (or S where ``is_s``): its height above the
        model's top (:meth:`~firstmotion.velocity.VelocityModel.height_above_top_km`; negative,
        and so the static, for a station below a top above sea level) over the top layer's
        velocity."""
        v = np.where(is_s, float(self.model.vs_km_s[0]), float(self.model.vp_km_s[0]))
        return self.model.height_above_top_km(elevation_m) / v

    def delay_s(self, station_keys: Sequence[str], is_s: np.ndarray) -> np.ndarray:
        """Each station's delay (s; P, or S where ``is_s``) from ``station_delays``, 0 for a
        station without one: what the 1-D model's time there is late by."""
        is_s = np.asarray(is_s, dtype=bool)
        if not self.station_delays:
            return np.zeros(is_s.shape)
        rows = [delay_for(self.station_delays, k) or (0.0, 0.0) for k in station_keys]
        return np.array([r[1] if s else r[0] for r, s in zip(rows, is_s, strict=True)])

    def locate_picks(
        self,
        picks: Sequence[WindowPick],
        stations: Mapping[str, StationCoords],
        start: tuple[float, float, float, float],
        t_ref: float,
        proj: _Projection,
        *,
        index: Mapping[str, int] | None = None,
        sx: np.ndarray | None = None,
        sy: np.ndarray | None = None,
        elev_m: np.ndarray | None = None,
        screen: bool = True,
        table: TravelTimeTable | None = None,
        loss: str = "soft_l1",
        scale_s: float = LOCATE_SCALE_S,
    ) -> LocatedEvent | None:
        """Locate ``picks`` from ``start`` = (x_km, y_km, depth_km, t0 - t_ref) in ``proj``'s
        plane (:func:`locate` with ``loss`` at scale ``scale_s``); with ``screen``, keep one
        pick per station and phase (the best fitting) and none beyond ``max_residual_s``
        (relocating after each cut). ``None`` when fewer than ``min_picks`` P stations or
        fewer than four picks remain."""
        p = self.params
        if index is None:
            keys = sorted({k.station_key for k in picks})
            index = {k: i for i, k in enumerate(keys)}
            lat = np.array([stations[k].latitude_deg for k in keys])
            lon = np.array([stations[k].longitude_deg for k in keys])
            elev_m = np.array([stations[k].elevation_m for k in keys])
            sx, sy = proj.to_xy(lat, lon)
        if table is None:
            table = self.tables(p.max_distance_km + p.table_step_km).table
        chosen = sorted(picks, key=lambda k: (k.time_epoch_s, k.pick_id))
        guess = start
        for _ in range(max(4, len(chosen) + 1)):  # each round cuts a pick or ends
            if p_stations(chosen) < p.min_picks or len(chosen) < MIN_LOCATE_PICKS:
                return None
            t = np.array([k.time_epoch_s - t_ref for k in chosen])
            sol, res = self._fit(chosen, index, sx, sy, elev_m, t_ref, table, guess, loss, scale_s)
            guess = tuple(sol)
            if not screen:
                break
            # a wrong onset the fit absorbed: the others fit far better without it
            drop = self._jackknife(chosen, res, guess, index, sx, sy, elev_m, t_ref, table,
                                   loss, scale_s)  # fmt: skip
            if drop is not None:
                chosen = chosen[:drop] + chosen[drop + 1 :]
                continue
            # one pick per station and phase (the best fitting), none beyond the residual limit
            # (a pick before a candidate onset)
            best: dict[tuple[str, str], int] = {}
            for i, k in enumerate(chosen):
                b = best.get((k.station_key, k.phase))
                if b is None or (k.candidate, abs(res[i])) < (chosen[b].candidate, abs(res[b])):
                    best[(k.station_key, k.phase)] = i
            tol = self.tolerance_s(t - sol[3] - res)  # observed - origin - residual = T
            keep = sorted(i for i in best.values() if abs(res[i]) <= tol[i])
            if p_stations([chosen[i] for i in keep]) < p.min_picks:
                # one wrong pick pulls the fit, and the good picks' residuals with it: cut
                # together they leave too few to locate an event they fit exactly, so only the
                # worst goes
                keep = sorted(best.values())
                beyond = [i for i in keep if abs(res[i]) > tol[i]]
                if beyond:
                    worst = max(beyond, key=lambda i: (abs(res[i]) / tol[i], chosen[i].pick_id))
                    keep.remove(worst)
            if len(keep) == len(chosen):
                break
            chosen = [chosen[i] for i in keep]
        else:
            return None
        if p_stations(chosen) < p.min_picks:
            return None
        x, y, z, t0 = (float(v) for v in sol)
        lat, lon = proj.to_latlon(x, y)
        arrivals = self.arrivals_at(chosen, res, lat, lon, z, table, stations)
        return LocatedEvent(
            time_epoch_s=t_ref + t0,
            latitude_deg=lat,
            longitude_deg=lon,
            depth_km=z,
            arrivals=arrivals,
            rms_s=float(np.sqrt(np.mean(res**2))),
        )

    def _fit(self, picks, index, sx, sy, elev_m, t_ref, table, start, loss, scale_s,
             max_nfev=200):  # fmt: skip
        """:func:`locate` of ``picks`` (stations by ``index`` into ``sx``, ``sy``, ``elev_m``;
        times from ``t_ref``) from ``start``: (solution, residuals)."""
        j, is_s, static = self._rows(picks, index, elev_m)
        t = np.array([k.time_epoch_s - t_ref for k in picks])
        return locate(
            t, sx[j], sy[j], static, start, table, max_depth_km=self.params.max_depth_km,
            is_s=is_s, loss=loss, f_scale_s=scale_s, max_nfev=max_nfev,
        )  # fmt: skip

    def _rows(self, picks, index, elev_m) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Of ``picks``: their stations' rows in ``index``, which are S, and their statics
        (height and station delay)."""
        j = np.array([index[k.station_key] for k in picks])
        is_s = np.array([k.phase == "S" for k in picks])
        delay = self.delay_s([k.station_key for k in picks], is_s)
        return j, is_s, self.static_s(elev_m[j], is_s) + delay

    def _jackknife(self, chosen, res, sol, index, sx, sy, elev_m, t_ref, table, loss, scale_s):
        """The index of the one pick of ``chosen`` whose removal lets the others fit
        ``JACKKNIFE_GAIN`` times better (rms, relocated from ``sol``), when the fit of all of
        them (residuals ``res``) has an rms beyond ``JACKKNIFE_MIN_RMS_S`` and an event keeps
        ``min_picks`` P stations without it; else ``None``. The residual rule cannot cut such
        a pick: a wrong onset among a few good ones drags the fit (seconds early, tens of km
        off, at a depth bound) until every residual is within its tolerance."""
        p = self.params
        # the picks decide (candidate onsets, arrivals measured where the picks put the event,
        # neither count nor go)
        picks = [i for i, k in enumerate(chosen) if not k.candidate]
        rms = float(np.sqrt(np.mean(res[picks] ** 2))) if picks else 0.0
        if (
            rms <= JACKKNIFE_MIN_RMS_S
            or len(chosen) > JACKKNIFE_MAX_PICKS
            or p_stations(chosen) <= p.min_picks  # (p_stations counts no candidate)
        ):
            return None

        def rms_without(i: int, max_nfev: int) -> float | None:
            rest = chosen[:i] + chosen[i + 1 :]
            if p_stations(rest) < p.min_picks or len(rest) < MIN_LOCATE_PICKS:
                return None
            _, r = self._fit(rest, index, sx, sy, elev_m, t_ref, table, tuple(sol), loss,
                             scale_s, max_nfev)  # fmt: skip
            own = np.array([not k.candidate for k in rest])
            return float(np.sqrt(np.mean(r[own] ** 2)))

        # the linearised fit ranks the picks by how much better the others fit without each
        # (a wrong onset the fit bent to has a high leverage); short fits without the first
        # few find the one to test; a full fit decides
        score = self._deleted_sse(chosen, res, sol, index, sx, sy, elev_m, table)
        screened = sorted(picks, key=lambda i: (score[i], i))[:JACKKNIFE_SCREEN]
        tried = [(r, i) for i in screened if (r := rms_without(i, JACKKNIFE_NFEV)) is not None]
        if not tried:
            return None
        i = min(tried)[1]
        full = rms_without(i, 200)
        if full is not None and full * JACKKNIFE_GAIN <= rms:
            return i
        return None

    def _deleted_sse(self, chosen, res, sol, index, sx, sy, elev_m, table) -> np.ndarray:
        """:func:`deleted_sse` of the fit of ``chosen`` at ``sol`` (residuals ``res``): the
        Jacobian of the predicted times by central differences (10 m, 1 ms); the depth is no
        parameter where the fit rests on a depth bound."""
        j, is_s, static = self._rows(chosen, index, elev_m)
        z_hi = depth_bound_km(self.params.max_depth_km, table)
        steps = np.array([0.01, 0.01, 0.01, 0.001])
        free = [0, 1, 3] if not 0.01 < sol[2] < z_hi - 0.01 else [0, 1, 2, 3]
        cols = []
        for c in free:
            d = np.zeros(4)
            d[c] = steps[c]
            hi = predicted_times(np.asarray(sol) + d, sx[j], sy[j], static, table, is_s, z_hi)
            lo = predicted_times(np.asarray(sol) - d, sx[j], sy[j], static, table, is_s, z_hi)
            cols.append((hi - lo) / (2 * steps[c]))
        return deleted_sse(np.column_stack(cols), res)

    def arrivals_at(self, chosen, res, lat, lon, depth_km, table, stations) -> tuple[Arrival, ...]:
        """Arrivals of picks ``chosen`` (signed residuals ``res``, s) at the hypocentre (lat, lon
        degrees, depth_km): azimuth, takeoff (the table's ray) and distance."""
        st_lat = np.array([stations[k.station_key].latitude_deg for k in chosen])
        st_lon = np.array([stations[k.station_key].longitude_deg for k in chosen])
        dist, az = geodesic_distance_azimuth(lat, lon, st_lat, st_lon)
        dist = np.minimum(dist, table.distance_km[-1])
        depth = np.full(dist.shape, depth_km)
        takeoff = np.zeros(dist.shape)
        for phase in ("P", "S"):
            rows = np.array([k.phase == phase for k in chosen])
            if rows.any():
                takeoff[rows] = table.lookup(dist[rows], depth[rows], phase)[1]
        return tuple(
            Arrival(
                pick_id=k.pick_id,
                station_id=k.station_id,
                phase=k.phase,
                azimuth_deg=float(a) % 360.0,
                takeoff_deg=float(np.clip(to, 0.0, 180.0)),
                distance_km=float(d),
                residual_s=float(r),
                time_epoch_s=float(k.time_epoch_s),
            )
            for k, a, to, d, r in zip(chosen, az, takeoff, dist, res, strict=True)
        )


_GEOD = None


def geodesic_distance_azimuth(
    lat_deg: float, lon_deg: float, st_lat_deg: np.ndarray, st_lon_deg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 geodesic distance (km) and azimuth (degrees from north) from one point to many,
    vectorised (pyproj's ``Geod.inv``, Karney's algorithm; the same ellipsoid and to within
    millimetres of :func:`firstmotion.geodesy.distance_azimuth`, ~100x faster for arrays)."""
    global _GEOD
    if _GEOD is None:
        from pyproj import Geod

        _GEOD = Geod(ellps="WGS84")
    st_lat = np.atleast_1d(np.asarray(st_lat_deg, float))
    st_lon = np.atleast_1d(np.asarray(st_lon_deg, float))
    if st_lat.size == 1:  # pyproj takes one-element arrays for scalars
        az, _, dist_m = _GEOD.inv(float(lon_deg), float(lat_deg), float(st_lon[0]),
                                  float(st_lat[0]))  # fmt: skip
        return np.array([dist_m / 1000.0]), np.array([az % 360.0])
    az, _, dist_m = _GEOD.inv(
        np.full(st_lat.shape, float(lon_deg)), np.full(st_lat.shape, float(lat_deg)), st_lon, st_lat
    )
    return np.asarray(dist_m, float) / 1000.0, np.asarray(az, float) % 360.0


def associate(
    picks: Sequence[WindowPick],
    stations: Mapping[str, StationCoords],
    model: VelocityModel | None = None,
    params: AssociateParams | None = None,
) -> list[LocatedEvent]:
    """One-shot :meth:`Associator.associate` (builds the tables each call: reuse an
    :class:`Associator` for repeated calls)."""
    assoc = Associator(model, params)
    try:
        return assoc.associate(picks, stations)
    finally:
        assoc.close()


# --------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class KnownEvent:
    """An event already published: its id and last origin (for :func:`match_events`)."""

    event_id: str
    origin: Origin
    pick_ids: frozenset[str] = field(default_factory=frozenset)


def match_events(
    known: Sequence[KnownEvent], found: Sequence[LocatedEvent], params: AssociateParams
) -> list[int | None]:
    """For each found event, the index of the known event it continues, or ``None`` (new).

    One-to-one, greedy by score: a pair sharing picks scores by the number shared (a shared
    pick is the strongest evidence of identity); otherwise a pair whose origin times differ by
    at most ``match_time_s`` and epicentres by at most ``match_distance_km`` scores below any
    pick-sharing pair, closer pairs higher.
    """
    pairs = []
    for i, f in enumerate(found):
        ids = f.pick_ids
        for j, k in enumerate(known):
            shared = len(ids & k.pick_ids)
            dt = abs(f.time_epoch_s - k.origin.time_epoch_s)
            dist = epicentral_km(
                f.latitude_deg, f.longitude_deg, k.origin.latitude_deg, k.origin.longitude_deg
            )
            if shared:
                score = 1.0 + shared
            elif dt <= params.match_time_s and dist <= params.match_distance_km:
                score = 1.0 - 0.5 * (dt / params.match_time_s + dist / params.match_distance_km)
            else:
                continue
            pairs.append((score, -dt, i, j))
    pairs.sort(reverse=True)
    out: list[int | None] = [None] * len(found)
    used: set[int] = set()
    for _score, _ndt, i, j in pairs:
        if out[i] is None and j not in used:
            out[i] = j
            used.add(j)
    return out


def origin_changed(
    previous: Origin | LocatedEvent, new: LocatedEvent, params: AssociateParams
) -> bool:
    """True when ``new`` differs materially from ``previous``: another set of picks, a
    hypocentre moved by >= ``revise_min_move_km`` or an origin time by >= ``revise_min_time_s``."""
    if frozenset(a.pick_id for a in previous.arrivals) != new.pick_ids:
        return True
    if abs(previous.time_epoch_s - new.time_epoch_s) >= params.revise_min_time_s:
        return True
    horiz = epicentral_km(
        previous.latitude_deg, previous.longitude_deg, new.latitude_deg, new.longitude_deg
    )
    return math.hypot(horiz, previous.depth_km - new.depth_km) >= params.revise_min_move_km
