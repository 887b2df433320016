"""Far-field double-couple radiation patterns (Aki & Richards 2002, ch. 4).

Conventions used everywhere in firstmotion:

* strike, dip, rake in degrees per Aki & Richards: strike clockwise from north with the fault
  dipping to the right, dip 0-90, rake the slip direction of the hanging wall in the fault plane
  (0 left-lateral, 90 reverse, -90 normal, 180 right-lateral).
* azimuth in degrees clockwise from north, source to station.
* takeoff in degrees from vertical-UP at the source: 0 = straight up, 90 = horizontal,
  180 = straight down (the SKHASH convention).
* coordinates are (north, east, down), as in Aki & Richards Box 4.4.
* a positive P amplitude is compression: the first motion points away from the source along
  the ray, which moves the ground UP on a vertical sensor (polarity +1).

The returned amplitudes are the angular radiation factors only (no 1/(4 pi rho v^3 r)).

.. seealso:: Aki, K. & Richards, P. G. (2002), Quantitative Seismology, 2nd ed., eq. 4.84-4.89
   and Box 4.4.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def moment_tensor(strike_deg: ArrayLike, dip_deg: ArrayLike, rake_deg: ArrayLike) -> np.ndarray:
    """Unit double-couple moment tensor(s) in (north, east, down), shape (..., 3, 3).

    Aki & Richards Box 4.4 with M0 = 1.
    """
    phi, delta, lam = np.radians(
        np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (strike_deg, dip_deg, rake_deg)))
    )
    sd, cd, s2d, c2d = np.sin(delta), np.cos(delta), np.sin(2 * delta), np.cos(2 * delta)
    sl, cl = np.sin(lam), np.cos(lam)
    sp, cp, s2p, c2p = np.sin(phi), np.cos(phi), np.sin(2 * phi), np.cos(2 * phi)
    mxx = -(sd * cl * s2p + s2d * sl * sp**2)
    mxy = sd * cl * c2p + 0.5 * s2d * sl * s2p
    mxz = -(cd * cl * cp + c2d * sl * sp)
    myy = sd * cl * s2p - s2d * sl * cp**2
    myz = -(cd * cl * sp - c2d * sl * cp)
    mzz = s2d * sl
    m = np.stack(
        [
            np.stack([mxx, mxy, mxz], axis=-1),
            np.stack([mxy, myy, myz], axis=-1),
            np.stack([mxz, myz, mzz], axis=-1),
        ],
        axis=-2,
    )
    return m


def ray_vectors(azimuth_deg: ArrayLike, takeoff_deg: ArrayLike) -> tuple[np.ndarray, ...]:
    """Unit vectors (P, SV, SH) of rays leaving the source, each shape (..., 3), (N, E, D).

    P points along the ray; SV lies in the vertical plane of the ray, pointing towards
    increasing takeoff angle measured from vertical-DOWN (A&R's i); SH is horizontal, pointing
    to the right of the ray's azimuth (clockwise seen from above).
    """
    az, takeoff = np.broadcast_arrays(
        np.asarray(azimuth_deg, dtype=float), np.asarray(takeoff_deg, dtype=float)
    )
    az = np.radians(az)
    i = np.radians(180.0 - takeoff)  # A&R: from vertical-down
    si, ci, sa, ca = np.sin(i), np.cos(i), np.sin(az), np.cos(az)
    p = np.stack([si * ca, si * sa, ci], axis=-1)
    sv = np.stack([ci * ca, ci * sa, -si], axis=-1)
    sh = np.stack([-sa, ca, np.zeros_like(sa)], axis=-1)
    return p, sv, sh


def p_radiation(
    strike_deg: ArrayLike,
    dip_deg: ArrayLike,
    rake_deg: ArrayLike,
    azimuth_deg: ArrayLike,
    takeoff_deg: ArrayLike,
) -> np.ndarray:
    """P radiation factor gamma . M . gamma (broadcasting); > 0 is compression (up)."""
    m = moment_tensor(strike_deg, dip_deg, rake_deg)
    p, _, _ = ray_vectors(azimuth_deg, takeoff_deg)
    return np.einsum("...i,...ij,...j->...", p, m, p)


def s_radiation(
    strike_deg: ArrayLike,
    dip_deg: ArrayLike,
    rake_deg: ArrayLike,
    azimuth_deg: ArrayLike,
    takeoff_deg: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """(SV, SH) radiation factors e . M . gamma along the unit vectors of :func:`ray_vectors`."""
    m = moment_tensor(strike_deg, dip_deg, rake_deg)
    p, sv, sh = ray_vectors(azimuth_deg, takeoff_deg)
    mp = np.einsum("...ij,...j->...i", m, p)
    return np.einsum("...i,...i->...", sv, mp), np.einsum("...i,...i->...", sh, mp)


def p_polarity(
    strike_deg: ArrayLike,
    dip_deg: ArrayLike,
    rake_deg: ArrayLike,
    azimuth_deg: ArrayLike,
    takeoff_deg: ArrayLike,
) -> np.ndarray:
    """First-motion polarity on an up-pointing Z channel: +1 compression, -1 dilatation."""
    amp = p_radiation(strike_deg, dip_deg, rake_deg, azimuth_deg, takeoff_deg)
    return np.where(amp >= 0, 1, -1).astype(np.int8)
