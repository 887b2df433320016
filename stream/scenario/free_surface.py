"""Ground motion at a free surface from incident P, SV and SH plane waves.

A plane wave arriving at the traction-free surface of a homogeneous half-space (P velocity
``a``, S velocity ``b``) with horizontal slowness ``p`` makes a reflected P and a reflected SV
(P-SV) or a reflected SH; the recorded motion is the sum (Aki & Richards 2002, sec. 5.2.5;
the "free-surface receiver functions"). With ``ea, eb`` the vertical slownesses
(``sqrt(a^-2 - p^2)``, ``sqrt(b^-2 - p^2)``; imaginary past the critical angle) and
``q = b^-2 - 2 p^2``, ``D = q^2 + 4 p^2 ea eb``:

* incident P (unit amplitude along the ray, + = compression): radial ``4 a p ea eb / (b^2 D)``,
  up ``2 a ea q / (b^2 D)``; ``(0, 2)`` at vertical incidence;
* incident SV (unit amplitude along the SV vector of :func:`firstmotion.radiation.ray_vectors`,
  which at a receiver with incidence ``j`` points radial ``-cos j``, up ``+sin j``): radial
  ``-2 b eb q / (b^2 D)``, up ``4 b p ea eb / (b^2 D)``; ``(-2, 0)`` at vertical incidence, so
  vertically incident S moves the ground only horizontally;
* incident SH (unit amplitude along SH): 2 on the transverse component, nothing else, at any
  incidence.

Radial points away from the source (horizontal propagation direction), transverse 90 degrees
clockwise from radial seen from above, up is up. Past the SV critical angle ``asin(b / a)``
the P-SV coefficients are complex (the reflected P is evanescent): the recorded pulse is
``Re(c) u + Im(c) H[u]`` with ``H`` the Hilbert transform (:func:`apply_coefficient`).

The angle at which a ray meets the surface is set by the velocities AT the surface: Snell's
law keeps ``p`` along the ray, so a slow near-surface layer turns rays towards the vertical
(``sin j = p v_surface``). That is why S on real records is mostly horizontal.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.signal import hilbert


def _vertical_slowness(p: np.ndarray, v: float) -> np.ndarray:
    """``sqrt(v^-2 - p^2)`` with the branch Im >= 0 (evanescent waves decay with depth)."""
    e = np.sqrt(1.0 / v**2 - p.astype(complex) ** 2)
    return np.where(e.imag < 0, -e, e)


def surface_motion(
    phase: str, ray_parameter_s_km: ArrayLike, vp_km_s: float, vs_km_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(radial, transverse, up) surface motion per unit incident ``phase`` ("P", "SV", "SH"),
    complex arrays shaped like ``ray_parameter_s_km`` (see the module docstring)."""
    p = np.asarray(ray_parameter_s_km, dtype=float)
    a, b = float(vp_km_s), float(vs_km_s)
    zero = np.zeros(p.shape, dtype=complex)
    if phase == "SH":
        return zero, zero + 2.0, zero
    ea, eb = _vertical_slowness(p, a), _vertical_slowness(p, b)
    q = 1.0 / b**2 - 2.0 * p**2
    den = b**2 * (q**2 + 4.0 * p**2 * ea * eb)
    if phase == "P":
        return 4.0 * a * p * ea * eb / den, zero, 2.0 * a * ea * q / den
    if phase == "SV":
        return -2.0 * b * eb * q / den, zero, 4.0 * b * p * ea * eb / den
    raise ValueError(f"phase must be P, SV or SH, got {phase!r}")


def to_zne(
    up: ArrayLike, radial: ArrayLike, transverse: ArrayLike, back_azimuth_deg: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Z, N, E) from (up, radial, transverse) at a station whose source lies at
    ``back_azimuth_deg`` (radial points the other way, to ``back_azimuth + 180``)."""
    az = np.radians(back_azimuth_deg + 180.0)
    r, t = np.asarray(radial), np.asarray(transverse)
    return (
        np.asarray(up),
        r * np.cos(az) - t * np.sin(az),
        r * np.sin(az) + t * np.cos(az),
    )


def apply_coefficient(u: np.ndarray, c: complex, pad: int | None = None) -> np.ndarray:
    """``u`` through a frequency-independent complex coefficient: ``Re(c) u + Im(c) H[u]``
    (a phase shift by ``arg c`` at every frequency). ``pad`` zeros are added at both ends before
    the (FFT) Hilbert transform so its tails do not wrap around; they are cut off again, so
    the result keeps ``u``'s length (the acausal part before the segment is lost)."""
    c = complex(c)
    if c.imag == 0.0:
        return c.real * u
    pad = u.size if pad is None else pad
    h = np.imag(hilbert(np.pad(u, pad)))[pad : pad + u.size]
    return c.real * u + c.imag * h
