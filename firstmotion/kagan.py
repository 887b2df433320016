"""Double-couple geometry: fault vectors <-> strike/dip/rake, and the Kagan rotation angle.

Conventions are those of :mod:`firstmotion.radiation` (Aki & Richards; north, east, down).

The Kagan angle is the smallest rotation that takes one double couple onto another, minimised
over the four symmetries of a double couple (identity and 180-degree turns about its T, N and P
axes); it lies in [0, 120] degrees, is symmetric, and is 0 between a plane and its auxiliary
plane. HASH/SKHASH's ``mech_rotation`` computes the same quantity from normal and slip vectors.

.. seealso:: Kagan, Y. Y. (1991), 3-D rotation of double-couple earthquake sources, Geophys. J.
   Int. 106, 709-716; Aki & Richards (2002) Box 4.4 and p. 115 (fault normal and slip vectors).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def vectors_from_sdr(
    strike_deg: ArrayLike, dip_deg: ArrayLike, rake_deg: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Fault normal and slip unit vectors (..., 3) in (N, E, D) for strike/dip/rake in degrees.

    The normal points to the footwall side's opposite (upwards for dip < 90: its down component
    is -cos(dip)), as in HASH's ``fpcoor`` and Aki & Richards p. 115.
    """
    phi, delta, lam = np.radians(
        np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (strike_deg, dip_deg, rake_deg)))
    )
    normal = np.stack(
        [-np.sin(delta) * np.sin(phi), np.sin(delta) * np.cos(phi), -np.cos(delta)], axis=-1
    )
    slip = np.stack(
        [
            np.cos(lam) * np.cos(phi) + np.cos(delta) * np.sin(lam) * np.sin(phi),
            np.cos(lam) * np.sin(phi) - np.cos(delta) * np.sin(lam) * np.cos(phi),
            -np.sin(lam) * np.sin(delta),
        ],
        axis=-1,
    )
    return normal, slip


def sdr_from_vectors(
    normal: ArrayLike, slip: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strike, dip, rake (degrees; strike in [0, 360), dip in [0, 90], rake in (-180, 180]).

    ``normal`` and ``slip`` are (..., 3) unit vectors in (N, E, D). Follows HASH's ``fpcoor``
    (and SKHASH's ``sdr_from_vector``), including its handling of horizontal faults.
    """
    n = np.asarray(normal, dtype=float)
    s = np.asarray(slip, dtype=float)
    if n.shape != s.shape or n.shape[-1:] != (3,):
        raise ValueError(f"normal and slip must both have shape (..., 3), got {n.shape}, {s.shape}")
    n1, n2, n3 = n[..., 0], n[..., 1], n[..., 2]
    s1, s2, s3 = s[..., 0], s[..., 1], s[..., 2]
    horizontal = (1.0 - np.abs(n3)) <= 1e-7
    phi = np.where(horizontal, np.arctan2(-s1, s2), np.arctan2(-n1, n2))
    delta = np.where(horizontal, 0.0, np.arctan2(np.hypot(n1, n2), -n3))
    clam = np.cos(phi) * s1 + np.sin(phi) * s2
    with np.errstate(divide="ignore", invalid="ignore"):
        slam = np.where(
            horizontal,
            np.sin(phi) * s1 - np.cos(phi) * s2,
            -s3 / np.where(horizontal, 1.0, np.sin(delta)),
        )
    lam = np.arctan2(slam, clam)
    over = (~horizontal) & (delta > 0.5 * np.pi)
    delta = np.where(over, np.pi - delta, delta)
    phi = np.where(over, phi + np.pi, phi)
    lam = np.where(over, -lam, lam)
    strike = np.mod(np.degrees(phi), 360.0)
    strike = np.where(strike >= 360.0, 0.0, strike)
    rake = np.degrees(lam)
    rake = np.where(rake <= -180.0, rake + 360.0, rake)
    rake = np.where(rake > 180.0, rake - 360.0, rake)
    return strike, np.degrees(delta), rake


def auxiliary_plane(
    strike_deg: ArrayLike, dip_deg: ArrayLike, rake_deg: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strike, dip, rake of the auxiliary plane: normal and slip vectors swapped."""
    normal, slip = vectors_from_sdr(strike_deg, dip_deg, rake_deg)
    return sdr_from_vectors(slip, normal)


def _frame(normal: np.ndarray, slip: np.ndarray) -> np.ndarray:
    """Orthonormal (..., 3, 3) frame whose rows are T, P and N (null) axes."""
    t = normal + slip
    p = normal - slip
    t = t / np.linalg.norm(t, axis=-1, keepdims=True)
    p = p / np.linalg.norm(p, axis=-1, keepdims=True)
    b = np.cross(t, p)
    return np.stack([t, p, b], axis=-2)


def kagan_angle_from_vectors(
    normal1: ArrayLike, slip1: ArrayLike, normal2: ArrayLike, slip2: ArrayLike
) -> np.ndarray:
    """Minimum rotation angle (degrees, 0-120) between double couples given as vectors (..., 3).

    Rotation R = F2^T F1 between the principal-axis frames; its angle is
    arccos((trace R - 1) / 2), minimised over the double couple's symmetry group (identity and
    180-degree rotations about each axis, i.e. sign flips of two of the three axes).
    """
    f1 = _frame(np.asarray(normal1, float), np.asarray(slip1, float))
    f2 = _frame(np.asarray(normal2, float), np.asarray(slip2, float))
    # m[..., i, j] = axis_i(1) . axis_j(2); trace of R @ S for S = diag(s) is sum_i s_i m_ii
    m = np.einsum("...ik,...jk->...ij", f1, f2)
    d = np.stack([m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], axis=-1)
    signs = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)
    traces = np.einsum("...k,sk->...s", d, signs)
    cos_angle = np.clip((traces.max(axis=-1) - 1.0) / 2.0, -1.0, 1.0)
    return np.degrees(np.arccos(cos_angle))


def kagan_angle_deg(
    strike1_deg: ArrayLike,
    dip1_deg: ArrayLike,
    rake1_deg: ArrayLike,
    strike2_deg: ArrayLike,
    dip2_deg: ArrayLike,
    rake2_deg: ArrayLike,
) -> np.ndarray:
    """Kagan angle (degrees, 0-120) between two double couples given by strike/dip/rake.

    Broadcasts over its arguments. See :func:`kagan_angle_from_vectors`.
    """
    n1, s1 = vectors_from_sdr(strike1_deg, dip1_deg, rake1_deg)
    n2, s2 = vectors_from_sdr(strike2_deg, dip2_deg, rake2_deg)
    return kagan_angle_from_vectors(n1, s1, n2, s2)
