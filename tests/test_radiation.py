"""Radiation patterns against Aki & Richards' closed-form expressions (eq. 4.89)."""

import numpy as np
import pytest

from firstmotion.radiation import moment_tensor, p_polarity, p_radiation, s_radiation


def _ar_closed_form(strike, dip, rake, az, takeoff_up):
    """Aki & Richards eq. 4.89 with i measured from vertical-down."""
    phi = np.radians(az - strike)
    d, lam = np.radians(dip), np.radians(rake)
    i = np.radians(180.0 - takeoff_up)
    fp = (
        np.cos(lam) * np.sin(d) * np.sin(i) ** 2 * np.sin(2 * phi)
        - np.cos(lam) * np.cos(d) * np.sin(2 * i) * np.cos(phi)
        + np.sin(lam) * np.sin(2 * d) * (np.cos(i) ** 2 - np.sin(i) ** 2 * np.sin(phi) ** 2)
        + np.sin(lam) * np.cos(2 * d) * np.sin(2 * i) * np.sin(phi)
    )
    fsv = (
        np.sin(lam) * np.cos(2 * d) * np.cos(2 * i) * np.sin(phi)
        - np.cos(lam) * np.cos(d) * np.cos(2 * i) * np.cos(phi)
        + 0.5 * np.cos(lam) * np.sin(d) * np.sin(2 * i) * np.sin(2 * phi)
        - 0.5 * np.sin(lam) * np.sin(2 * d) * np.sin(2 * i) * (1 + np.sin(phi) ** 2)
    )
    fsh = (
        np.cos(lam) * np.cos(d) * np.cos(i) * np.sin(phi)
        + np.cos(lam) * np.sin(d) * np.sin(i) * np.cos(2 * phi)
        + np.sin(lam) * np.cos(2 * d) * np.cos(i) * np.cos(phi)
        - 0.5 * np.sin(lam) * np.sin(2 * d) * np.sin(i) * np.sin(2 * phi)
    )
    return fp, fsv, fsh


def test_p_and_s_radiation_match_aki_richards_closed_form():
    rng = np.random.default_rng(1)
    n = 500
    strike, dip, rake = rng.uniform(0, 360, n), rng.uniform(0, 90, n), rng.uniform(-180, 180, n)
    az, takeoff = rng.uniform(0, 360, n), rng.uniform(0, 180, n)
    fp, fsv, fsh = _ar_closed_form(strike, dip, rake, az, takeoff)
    np.testing.assert_allclose(p_radiation(strike, dip, rake, az, takeoff), fp, atol=1e-12)
    sv, sh = s_radiation(strike, dip, rake, az, takeoff)
    np.testing.assert_allclose(sv, fsv, atol=1e-12)
    np.testing.assert_allclose(sh, fsh, atol=1e-12)


def test_vertical_strike_slip_gives_four_quadrants():
    # strike 0 (north), dip 90, rake 0: left-lateral on a N-S plane. Horizontal rays:
    # compression in the NE and SW quadrants, dilatation in NW and SE (A&R Fig. 4.20).
    az = np.array([45.0, 135.0, 225.0, 315.0])
    pol = p_polarity(0.0, 90.0, 0.0, az, 90.0)
    assert pol.tolist() == [1, -1, 1, -1]
    # nodal planes: no P along strike or normal to the fault
    np.testing.assert_allclose(p_radiation(0.0, 90.0, 0.0, [0.0, 90.0, 180.0], 90.0), 0, atol=1e-12)


@pytest.mark.parametrize(("rake", "vertical_polarity"), [(90.0, 1), (-90.0, -1)])
def test_45_degree_dip_slip_vertical_rays(rake, vertical_polarity):
    # A 45-degree thrust has its T axis vertical: rays straight down (takeoff 180) and straight
    # up (takeoff 0) are compressional; a 45-degree normal fault has its P axis vertical.
    assert p_polarity(30.0, 45.0, rake, 0.0, 180.0) == vertical_polarity
    assert p_polarity(30.0, 45.0, rake, 0.0, 0.0) == vertical_polarity
    # ... and the horizontal ray perpendicular to strike is the opposite (P or T axis).
    assert p_polarity(30.0, 45.0, rake, 120.0, 90.0) == -vertical_polarity
    np.testing.assert_allclose(p_radiation(30.0, 45.0, rake, 0.0, 180.0), vertical_polarity)


def test_moment_tensor_is_traceless_symmetric_unit_double_couple():
    m = moment_tensor([10, 200], [30, 80], [-60, 150])
    np.testing.assert_allclose(np.trace(m, axis1=-2, axis2=-1), 0, atol=1e-12)
    np.testing.assert_allclose(m, np.swapaxes(m, -1, -2))
    ev = np.linalg.eigvalsh(m)
    np.testing.assert_allclose(ev, [[-1, 0, 1], [-1, 0, 1]], atol=1e-12)
