"""Synthetic focal mechanisms from a known stress tensor, for testing stress inversions.

Faults are drawn uniformly in orientation and kept when well oriented for slip (Coulomb
instability >= ``min_instability`` under the tensor and ``friction``, Vavrycuk 2014); each
slips along the shear traction resolved on it (Wallace-Bott), rotated within the fault plane by
Gaussian noise of ``slip_noise_deg``; the reported nodal plane is the fault or the auxiliary
plane at random. Optionally the whole mechanism is then rotated about a random axis by
``rotation_noise_deg`` (mechanism error).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firstmotion.kagan import sdr_from_vectors
from workers.stress.invert import (
    axis_vector,
    instability,
    predicted_slip,
    reduced_tensor,
    shmax_azimuth,
)

# (sigma1 az, plunge), (sigma3 az, plunge), R: one tensor per faulting regime
REGIMES: dict[str, tuple[tuple[float, float], tuple[float, float], float]] = {
    "strike-slip": ((35.0, 5.0), (125.0, 8.0), 0.5),
    "normal": ((150.0, 82.0), (60.0, 0.0), 0.6),
    "thrust": ((80.0, 6.0), (260.0, 84.0), 0.4),
}


@dataclass(frozen=True)
class TrueStress:
    """A known stress: axes (3, 3) columns sigma1..3 (N, E, D) and R."""

    axes: np.ndarray
    shape_ratio: float

    @property
    def tensor(self) -> np.ndarray:
        return reduced_tensor(self.axes, self.shape_ratio)

    @property
    def shmax_azimuth_deg(self) -> float:
        return float(shmax_azimuth(self.tensor))


def true_stress(
    sigma1: tuple[float, float], sigma3: tuple[float, float], shape_ratio: float
) -> TrueStress:
    """From sigma1 and sigma3 (azimuth, plunge); sigma3 is made exactly orthogonal."""
    v1 = axis_vector(*sigma1)
    v3 = axis_vector(*sigma3)
    v3 = v3 - (v3 @ v1) * v1
    v3 /= np.linalg.norm(v3)
    v2 = np.cross(v3, v1)
    return TrueStress(np.stack([v1, v2, v3], axis=1), float(shape_ratio))


def regime_stress(name: str) -> TrueStress:
    """The test tensor of a regime: ``strike-slip``, ``normal`` or ``thrust``."""
    s1, s3, r = REGIMES[name]
    return true_stress(s1, s3, r)


def random_stress(rng: np.random.Generator) -> TrueStress:
    """A uniformly random orientation with R uniform in 0.1-0.9."""
    q = rng.normal(size=(3, 3))
    v, _ = np.linalg.qr(q)
    if np.linalg.det(v) < 0:
        v[:, 2] = -v[:, 2]
    return TrueStress(v, float(rng.uniform(0.1, 0.9)))


def _rotate(vec: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues rotation of vectors (n, 3) about unit axes (n, 3) by angles (n,) radians."""
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return vec * c + np.cross(axis, vec) * s + axis * np.sum(axis * vec, 1)[:, None] * (1 - c)


def synthetic_mechanisms(
    truth: TrueStress,
    n: int,
    *,
    slip_noise_deg: float = 10.0,
    rotation_noise_deg: float = 0.0,
    min_instability: float = 0.8,
    friction: float = 0.6,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` mechanisms (strike, dip, rake in degrees, Aki & Richards) and a flag (n,) that is
    True where the reported plane is the auxiliary one (the fault is the other)."""
    rng = np.random.default_rng(seed)
    tensor = truth.tensor
    normals = np.zeros((0, 3))
    while len(normals) < n:
        cand = rng.normal(size=(max(4 * n, 256), 3))
        cand /= np.linalg.norm(cand, axis=1, keepdims=True)
        keep = instability(tensor, cand, friction) >= min_instability
        normals = np.concatenate([normals, cand[keep]])
    normals = normals[:n]
    slip, _ = predicted_slip(tensor, normals)
    if slip_noise_deg > 0:
        slip = _rotate(slip, normals, np.radians(rng.normal(0.0, slip_noise_deg, n)))
    if rotation_noise_deg > 0:
        ax = rng.normal(size=(n, 3))
        ax /= np.linalg.norm(ax, axis=1, keepdims=True)
        ang = np.radians(rng.normal(0.0, rotation_noise_deg, n))
        normals = _rotate(normals, ax, ang)
        slip = _rotate(slip, ax, ang)
    aux = rng.random(n) < 0.5
    rep_n = np.where(aux[:, None], slip, normals)
    rep_s = np.where(aux[:, None], normals, slip)
    strike, dip, rake = sdr_from_vectors(rep_n, rep_s)
    return strike, dip, rake, aux
