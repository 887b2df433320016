"""Small geodesy helpers: epicentral distance/azimuth and local tangent-plane offsets (WGS84).

Distances and azimuths are geodesics on the WGS84 ellipsoid from
:func:`obspy.geodetics.gps2dist_azimuth` (Karney's algorithm when ``geographiclib`` is
installed, Vincenty's otherwise: both sub-millimetre at network scales), so every stage that
uses obspy gets the same numbers as the scenario's truth.

.. seealso:: Vincenty, T. (1975), Survey Review 23, 88-93; Karney, C. F. F. (2013), J. Geodesy
   87, 43-55.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

WGS84_A_M = 6378137.0
WGS84_F = 1.0 / 298.257223563
KM_PER_DEG = 111.19492664455873  # km per degree of arc on the 6371 km sphere (QuakeML distance)
EARTH_RADIUS_KM = 6371.0  # the mean radius of the sphere the haversine distances use


def epicentral_km(lat1_deg: float, lon1_deg: float, lat2_deg: float, lon2_deg: float) -> float:
    """Great-circle distance (km) between two points on the 6371 km sphere (haversine): enough
    to compare epicentres and station spacings (:func:`distance_azimuth` for the WGS84
    geodesic). Plain floats, for the associator's loops; :func:`pairwise_km` for arrays."""
    p1, p2 = math.radians(lat1_deg), math.radians(lat2_deg)
    dp, dl = p2 - p1, math.radians(lon2_deg - lon1_deg)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def pairwise_km(lat_deg: ArrayLike, lon_deg: ArrayLike) -> np.ndarray:
    """``(n, n)`` great-circle distances (km) between ``n`` points, as :func:`epicentral_km`."""
    lat, lon = np.radians(np.asarray(lat_deg, float)), np.radians(np.asarray(lon_deg, float))
    dp, dl = lat[:, None] - lat[None], lon[:, None] - lon[None]
    a = np.sin(dp / 2) ** 2 + np.cos(lat[:, None]) * np.cos(lat[None]) * np.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def distance_azimuth(
    lat1_deg: ArrayLike, lon1_deg: ArrayLike, lat2_deg: ArrayLike, lon2_deg: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distance_km, azimuth_deg from 1 to 2, back_azimuth_deg from 2 to 1), broadcasting."""
    from obspy.geodetics import gps2dist_azimuth

    a, b, c, d = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (lat1_deg, lon1_deg, lat2_deg, lon2_deg))
    )
    out = np.empty((3,) + a.shape)
    for idx in np.ndindex(a.shape):
        dist_m, az, baz = gps2dist_azimuth(a[idx], b[idx], c[idx], d[idx])
        out[(0,) + idx], out[(1,) + idx], out[(2,) + idx] = dist_m / 1e3, az, baz
    return out[0], out[1], out[2]


def offset_latlon(
    lat0_deg: float, lon0_deg: float, north_km: ArrayLike, east_km: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Latitude/longitude of points ``north_km``/``east_km`` from (lat0, lon0) on the local
    tangent plane, using the WGS84 meridional and prime-vertical radii of curvature at lat0
    (accurate to ~0.1% within 200 km; use :func:`distance_azimuth` for exact distances)."""
    if not -90.0 < lat0_deg < 90.0:
        raise ValueError(f"lat0_deg must be in (-90, 90), got {lat0_deg}")
    phi = np.radians(lat0_deg)
    e2 = WGS84_F * (2.0 - WGS84_F)
    w = np.sqrt(1.0 - e2 * np.sin(phi) ** 2)
    r_meridian_km = WGS84_A_M * (1.0 - e2) / w**3 / 1e3
    r_normal_km = WGS84_A_M / w / 1e3
    lat = lat0_deg + np.degrees(np.asarray(north_km, dtype=float) / r_meridian_km)
    lon = lon0_deg + np.degrees(np.asarray(east_km, dtype=float) / (r_normal_km * np.cos(phi)))
    return lat, lon
