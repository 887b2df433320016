"""The HASH/SKHASH focal-mechanism grid (Hardebeck & Shearer 2002; SKHASH ``dir_cos_setup``).

Fault normals ``b3`` point down or horizontally (down component cos(theta) >= 0 for theta in
[0, 90] degrees) in rings of constant polar angle theta = 0, dang, ..., 90
degrees, each ring holding round(360 / dang * sin(theta)) azimuths (one for theta = 0); for each
normal the slip vector ``b1`` turns about it in steps of dang over [0, 180) degrees. With
dang = 5 this gives 862 normals x 36 slips = 31,032 mechanisms, exactly SKHASH's grid and order.

Mechanisms are stored grouped by normal: index = normal_index * n_slip + slip_index, so the
P-wave sign search can share the normal's dot product across its slips.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True, eq=False)
class FocalGrid:
    """Grid of double couples: unit vectors (n_mech, 3) in (N, E, D).

    ``normal`` is the fault normal (HASH b3), ``slip`` the slip vector (b1), ``null`` the third
    axis b2 = b3 x b1 (HASH's ``-cross(b1, b3)``). ``base1``/``base2`` are (n_normals, 3): the
    slip at zeta = 0 and its companion, with slip(zeta) = cos(zeta) base1 + sin(zeta) base2.
    """

    dang_deg: float
    normal: np.ndarray
    slip: np.ndarray
    null: np.ndarray
    n_normals: int
    n_slip: int
    normal_of_normal: np.ndarray  # (n_normals, 3)
    base1: np.ndarray  # (n_normals, 3)
    base2: np.ndarray  # (n_normals, 3)
    zeta_rad: np.ndarray  # (n_slip,)

    @property
    def n_mech(self) -> int:
        return self.normal.shape[0]


def _build(dang_deg: float) -> FocalGrid:
    if not (0.0 < dang_deg <= 90.0):
        raise ValueError(f"dang_deg must be in (0, 90], got {dang_deg}")
    n_slip = int(np.floor(179.9 / dang_deg)) + 1
    the = np.arange(0.0, 90.001, dang_deg)
    rthe = np.deg2rad(the)
    costhe, sinthe = np.cos(rthe), np.sin(rthe)
    dphi = np.round(360.0 / dang_deg * sinthe)
    dphi = np.where(dphi != 0, 360.0 / np.where(dphi != 0, dphi, 1.0), 10000.0)
    n_phi = np.floor(359.9 / dphi).astype(int) + 1

    normals, bases1, bases2 = [], [], []
    for ith in range(len(the)):
        phi = np.deg2rad(np.arange(n_phi[ith]) * dphi[ith])
        cp, sp = np.cos(phi), np.sin(phi)
        bb3 = np.stack([sinthe[ith] * cp, sinthe[ith] * sp, np.full_like(cp, costhe[ith])], -1)
        bb1 = np.stack([costhe[ith] * cp, costhe[ith] * sp, np.full_like(cp, -sinthe[ith])], -1)
        bb2 = -np.cross(bb1, bb3)
        normals.append(bb3)
        bases1.append(bb1)
        bases2.append(bb2)
    nrm = np.concatenate(normals)
    b1 = np.concatenate(bases1)
    b2 = np.concatenate(bases2)
    zeta = np.deg2rad(np.arange(n_slip) * dang_deg)
    cz, sz = np.cos(zeta), np.sin(zeta)
    # same arithmetic as SKHASH: b1 = bb1 cos + bb2 sin ; b2 = bb2 cos - bb1 sin
    slip = b1[:, None, :] * cz[None, :, None] + b2[:, None, :] * sz[None, :, None]
    null = b2[:, None, :] * cz[None, :, None] - b1[:, None, :] * sz[None, :, None]
    normal = np.broadcast_to(nrm[:, None, :], slip.shape)
    arrays = [np.ascontiguousarray(a.reshape(-1, 3)) for a in (normal, slip, null)]
    for a in arrays:
        a.setflags(write=False)
    return FocalGrid(
        dang_deg=float(dang_deg),
        normal=arrays[0],
        slip=arrays[1],
        null=arrays[2],
        n_normals=nrm.shape[0],
        n_slip=n_slip,
        normal_of_normal=nrm,
        base1=b1,
        base2=b2,
        zeta_rad=zeta,
    )


@lru_cache(maxsize=4)
def focal_grid(dang_deg: float = 5.0) -> FocalGrid:
    """The (cached) HASH grid for grid spacing ``dang_deg`` (degrees); 31,032 mechanisms at 5."""
    return _build(float(dang_deg))
