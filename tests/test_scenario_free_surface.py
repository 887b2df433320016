"""Free-surface motion of incident P, SV and SH plane waves against known answers and against
the traction-free boundary conditions solved directly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import hilbert

from stream.scenario.build import make_scenario
from stream.scenario.config import ScenarioConfig
from stream.scenario.free_surface import apply_coefficient, surface_motion, to_zne
from stream.scenario.waveforms import free_surface_p

A, B = 5.5, 3.175  # km/s, a Poisson solid


def _boundary_solution(p: float, incident: str) -> tuple[complex, complex]:
    """(radial, up) at the surface: incident + reflected P + reflected SV with zero traction
    (z down, plane waves exp(i w (p x + s_z z - t)), isotropic stresses)."""
    ea = np.sqrt(complex(1 / A**2 - p**2))
    eb = np.sqrt(complex(1 / B**2 - p**2))
    ea, eb = (e if e.imag >= 0 else -e for e in (ea, eb))
    mu, lam = B**2, A**2 - 2 * B**2

    def traction(d, sz):
        return np.array(
            [mu * (sz * d[0] + p * d[1]), lam * (p * d[0] + sz * d[1]) + 2 * mu * sz * d[1]]
        )

    if incident == "P":  # along the upgoing ray: radial +sin j, down -cos j
        d_in, sz_in = A * np.array([p, -ea]), -ea
    else:  # radiation.py's SV at an upgoing ray: radial -cos j, down -sin j
        d_in, sz_in = -B * np.array([eb, p]), -eb
    d_rp, d_rs = A * np.array([p, ea]), B * np.array([eb, -p])
    m = np.stack([traction(d_rp, ea), traction(d_rs, eb)], axis=1)
    r = np.linalg.solve(m, -traction(d_in, sz_in))
    u = d_in + r[0] * d_rp + r[1] * d_rs
    return complex(u[0]), complex(-u[1])


@pytest.mark.parametrize("phase,v", [("P", A), ("SV", B)])
def test_closed_forms_satisfy_the_free_surface_conditions(phase, v):
    # pre- and post-critical (SV beyond asin(B / A) = 35.3 deg) incidence angles
    for j in (0.0, 10.0, 30.0, 34.0, 36.0, 45.0, 60.0, 85.0):
        p = np.sin(np.radians(j)) / v
        radial, transverse, up = surface_motion(phase, p, A, B)
        want_r, want_z = _boundary_solution(p, phase)
        assert complex(radial) == pytest.approx(want_r, abs=1e-9)
        assert complex(up) == pytest.approx(want_z, abs=1e-9)
        assert transverse == 0


def test_vertical_incidence_and_sh():
    r, t, z = surface_motion("P", 0.0, A, B)
    assert (r, t, z) == (0, 0, pytest.approx(2.0))  # vertical P: only Z, doubled
    r, t, z = surface_motion("SV", 0.0, A, B)
    assert (r, t, z) == (pytest.approx(-2.0), 0, pytest.approx(0.0))  # vertical S: no Z
    p = np.sin(np.radians(np.linspace(0, 89, 30))) / B
    r, t, z = surface_motion("SH", p, A, B)
    assert np.all(r == 0) and np.all(z == 0) and np.allclose(t, 2.0)  # SH: transverse only
    with pytest.raises(ValueError):
        surface_motion("S", 0.0, A, B)


def test_p_matches_the_real_coefficients_and_steep_s_is_horizontal():
    p = np.array([0.0, 0.1, 0.15])
    wx, wz = free_surface_p(p, A, B)
    r, _, z = surface_motion("P", p, A, B)
    np.testing.assert_allclose(r, wx, atol=1e-12)
    np.testing.assert_allclose(z, wz, atol=1e-12)
    # a steep S (15 deg: a slow site) moves the radial 3x more than the vertical, with the
    # vertical near the incident wave's own share 2 sin j and the opposite sign to the radial
    j = np.radians(15.0)
    r, _, z = surface_motion("SV", np.sin(j) / B, A, B)
    assert abs(r) > 3 * abs(z) and r.real < 0 < z.real and abs(z.imag) < 1e-12
    assert z.real == pytest.approx(2 * np.sin(j), rel=0.2)


def test_to_zne_rotation():
    # the source due south of the station (back azimuth 180): radial points north, transverse
    # (clockwise from radial, seen from above) east
    z, n, e = to_zne(1.0, 2.0, 3.0, 180.0)
    assert (z, n, e) == (1.0, pytest.approx(2.0), pytest.approx(3.0))
    z, n, e = to_zne(0.0, 1.0, 0.0, 270.0)  # source to the west: radial east
    assert n == pytest.approx(0.0, abs=1e-12) and e == pytest.approx(1.0)


def test_apply_coefficient_is_a_phase_shift():
    t = np.arange(4096) / 100.0
    u = np.exp(-(((t - 20.0) / 0.3) ** 2)) * np.cos(2 * np.pi * 3.0 * (t - 20.0))
    np.testing.assert_array_equal(apply_coefficient(u, 1.5), 1.5 * u)
    shifted = apply_coefficient(u, 1j)  # 90 degrees: the Hilbert transform
    np.testing.assert_allclose(shifted, np.imag(hilbert(u)), atol=1e-4)
    # energy kept for a unit-modulus coefficient
    c = np.exp(0.7j)
    assert np.sum(apply_coefficient(u, c) ** 2) == pytest.approx(np.sum(u**2), rel=1e-3)


def test_site_velocities_are_checked():
    with pytest.raises(ValueError, match="site velocities"):
        ScenarioConfig(site_vp_km_s=1.0, site_vs_km_s=2.0)
    with pytest.raises(ValueError, match="site velocities"):
        ScenarioConfig(site_vp_km_s=1.6, site_vs_km_s=None)
    ScenarioConfig(site_vp_km_s=None, site_vs_km_s=None)  # the model's top layer


def _s_peaks(sc) -> tuple[np.ndarray, np.ndarray]:
    """Peak |counts| on Z and on the larger horizontal in the 1.5 s from each true S."""
    fs = sc.config.sampling_rate_hz
    z, h = [], []
    for i, e in enumerate(sc.events):
        for j in range(len(sc.stations)):
            k = int((e.origin_time_s + sc.geometry.s_travel_time_s[i, j]) * fs)
            w = np.abs(sc.counts[j, :, k : k + int(1.5 * fs)].astype(float))
            if w.shape[1]:
                z.append(w[0].max())
                h.append(w[1:].max())
    return np.array(z), np.array(h)


def test_scenario_s_moves_mostly_the_horizontals():
    small = {"n_stations": 10, "n_events": 2, "duration_s": 120.0, "region_km": 60.0, "seed": 7}
    z, h = _s_peaks(make_scenario(ScenarioConfig(**small)))
    assert np.mean(z < h) >= 0.9 and np.median(z / h) < 0.4
    # at the model's 5.5/3.175 km/s top layer the S rays meet the surface near 60 degrees, past
    # the SV critical angle, where the free surface gives SV more vertical than radial motion
    rock = make_scenario(ScenarioConfig(**small, site_vp_km_s=None, site_vs_km_s=None))
    z_rock, h_rock = _s_peaks(rock)
    assert np.median(z_rock / h_rock) > 2 * np.median(z / h)
