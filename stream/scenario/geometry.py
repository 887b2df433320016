"""Source-station geometry of every (event, station) pair: distance, azimuth, P and S rays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firstmotion.geodesy import distance_azimuth
from firstmotion.velocity import VelocityModel, trace_rays
from stream.scenario.events import Event
from stream.scenario.network import Station


@dataclass(frozen=True, eq=False)
class PairGeometry:
    """Arrays (n_events, n_stations). Times are travel times (s); angles in degrees, takeoff
    from vertical-UP at the source (0 up, 180 down), incidence from the vertical at the surface."""

    distance_km: np.ndarray
    azimuth_deg: np.ndarray  # source -> station, at the source
    back_azimuth_deg: np.ndarray  # station -> source, at the station
    hypocentral_distance_km: np.ndarray
    p_travel_time_s: np.ndarray
    p_takeoff_deg: np.ndarray
    p_incidence_deg: np.ndarray
    p_ray_parameter_s_km: np.ndarray
    p_head_wave: np.ndarray
    s_travel_time_s: np.ndarray
    s_takeoff_deg: np.ndarray
    s_incidence_deg: np.ndarray
    s_ray_parameter_s_km: np.ndarray


def pair_geometry(
    events: list[Event], stations: list[Station], model: VelocityModel
) -> PairGeometry:
    """WGS84 geodesics (obspy) and exact layered-model rays (:func:`trace_rays`); stations are
    treated as at depth 0 (elevations are ignored by the rays, as in HASH)."""
    ev_lat = np.array([e.latitude_deg for e in events])[:, None]
    ev_lon = np.array([e.longitude_deg for e in events])[:, None]
    depth = np.array([e.depth_km for e in events])[:, None]
    st_lat = np.array([s.latitude_deg for s in stations])[None, :]
    st_lon = np.array([s.longitude_deg for s in stations])[None, :]
    dist, az, baz = distance_azimuth(ev_lat, ev_lon, st_lat, st_lon)
    depth_b = np.broadcast_to(depth, dist.shape)
    rp = trace_rays(model, dist, depth_b, "P")
    rs = trace_rays(model, dist, depth_b, "S")
    return PairGeometry(
        dist, az, baz, np.hypot(dist, depth_b),
        rp.time_s, rp.takeoff_deg, rp.incidence_deg, rp.ray_parameter_s_km, rp.head_wave,
        rs.time_s, rs.takeoff_deg, rs.incidence_deg, rs.ray_parameter_s_km,
    )  # fmt: skip
