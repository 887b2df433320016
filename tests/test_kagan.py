"""Kagan angle and fault-vector conversions (Kagan 1991; Aki & Richards p. 115)."""

import numpy as np
import pytest

from firstmotion.kagan import (
    auxiliary_plane,
    kagan_angle_deg,
    kagan_angle_from_vectors,
    sdr_from_vectors,
    vectors_from_sdr,
)
from firstmotion.radiation import p_radiation

RNG = np.random.default_rng(7)
STRIKES = RNG.uniform(0, 360, 200)
DIPS = RNG.uniform(5, 85, 200)
RAKES = RNG.uniform(-175, 175, 200)


def test_identity_is_zero():
    assert np.all(kagan_angle_deg(STRIKES, DIPS, RAKES, STRIKES, DIPS, RAKES) < 1e-5)


def test_auxiliary_plane_is_zero_and_same_radiation():
    s2, d2, r2 = auxiliary_plane(STRIKES, DIPS, RAKES)
    assert np.all(kagan_angle_deg(STRIKES, DIPS, RAKES, s2, d2, r2) < 1e-4)
    az = RNG.uniform(0, 360, 200)
    to = RNG.uniform(0, 180, 200)
    np.testing.assert_allclose(
        p_radiation(STRIKES, DIPS, RAKES, az, to), p_radiation(s2, d2, r2, az, to), atol=1e-9
    )
    # and the auxiliary of the auxiliary is the original plane
    s3, d3, r3 = auxiliary_plane(s2, d2, r2)
    np.testing.assert_allclose(d3, DIPS, atol=1e-9)
    np.testing.assert_allclose(np.mod(s3 - STRIKES + 180, 360) - 180, 0, atol=1e-9)
    np.testing.assert_allclose(np.mod(r3 - RAKES + 180, 360) - 180, 0, atol=1e-9)


def test_sdr_round_trip():
    n, s = vectors_from_sdr(STRIKES, DIPS, RAKES)
    st, dp, rk = sdr_from_vectors(n, s)
    np.testing.assert_allclose(st, STRIKES, atol=1e-9)
    np.testing.assert_allclose(dp, DIPS, atol=1e-9)
    np.testing.assert_allclose(rk, RAKES, atol=1e-9)


def test_known_90_degree_cases():
    # left-lateral on a N-S vertical plane vs on an E-W plane: P and T swap, 90 deg about down
    assert kagan_angle_deg(0, 90, 0, 90, 90, 0) == pytest.approx(90.0, abs=1e-6)
    # reverse vs normal fault on the same plane: P and T swap about the null axis
    assert kagan_angle_deg(30, 45, 90, 30, 45, -90) == pytest.approx(90.0, abs=1e-6)
    # rotating a mechanism about the vertical by x changes it by x (small x)
    assert kagan_angle_deg(10, 60, 30, 25, 60, 30) == pytest.approx(15.0, abs=1e-6)


def test_120_degree_case_is_the_maximum():
    # a 120-degree turn about (T + P + N)/sqrt(3) cycles the axes: the largest possible angle
    n, s = vectors_from_sdr(40.0, 70.0, 20.0)
    t = (n + s) / np.sqrt(2)
    p = (n - s) / np.sqrt(2)
    b = np.cross(t, p)
    # new axes: T' = P, P' = B, B' = T  (a proper rotation since the cycle is even)
    t2, p2 = p, b
    n2, s2 = (t2 + p2) / np.sqrt(2), (t2 - p2) / np.sqrt(2)
    assert kagan_angle_from_vectors(n, s, n2, s2) == pytest.approx(120.0, abs=1e-6)
    # random pairs never exceed 120
    a = kagan_angle_deg(STRIKES, DIPS, RAKES, STRIKES[::-1], DIPS[::-1], RAKES[::-1])
    assert a.max() <= 120.0 + 1e-9 and a.min() >= 0.0


def test_symmetric():
    a = kagan_angle_deg(STRIKES, DIPS, RAKES, STRIKES[::-1], DIPS[::-1], RAKES[::-1])
    b = kagan_angle_deg(STRIKES[::-1], DIPS[::-1], RAKES[::-1], STRIKES, DIPS, RAKES)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert a.max() > 60  # random pairs do differ


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="shape"):
        sdr_from_vectors(np.zeros((4, 3)), np.zeros((4, 2)))
