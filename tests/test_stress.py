"""Stress inversion: geometry against known answers, recovery of known tensors in every
faulting regime, bootstrap coverage, and the compiled kernel against its numpy twin."""

from __future__ import annotations

import numpy as np
import pytest

from firstmotion.radiation import moment_tensor
from workers.stress import invert_stress, regime, shmax_azimuth
from workers.stress.invert import (
    _axial_angle_deg,
    _azimuth_diff_deg,
    _evaluate,
    axis_azimuth_plunge,
    evaluate_numpy,
    fault_vectors,
    iterative_linear,
    misfit_angles,
    predicted_slip,
    principal,
    reduced_tensor,
)
from workers.stress.synthetic import (
    REGIMES,
    random_stress,
    regime_stress,
    synthetic_mechanisms,
    true_stress,
)


def test_slip_direction_convention_on_a_pure_thrust():
    # sigma1 north-south horizontal, sigma3 vertical: an E-W fault dipping 30 S slips as a
    # pure thrust (rake 90) and one dipping 30 N likewise; a normal rake misfits by 180
    t = true_stress((0.0, 0.0), (0.0, 90.0), 0.5).tensor
    for strike in (90.0, 270.0):
        n, s = fault_vectors([strike, strike], [30.0, 30.0], [90.0, -90.0])
        ang = misfit_angles(t, n[:, 0], s[:, 0])
        assert ang[0] < 1e-6 and abs(ang[1] - 180.0) < 1e-6


def test_axis_and_shmax_conventions():
    assert axis_azimuth_plunge([0.0, 0.0, -1.0]) == (0.0, 90.0)
    az, pl = axis_azimuth_plunge([-1.0, -1.0, 0.2])
    assert abs(az - 225.0) < 1e-9 and 0 < pl < 90
    # sigma1 vertical: SHmax is the sigma2 azimuth, not the sigma1 azimuth
    ts = true_stress((10.0, 90.0), (60.0, 0.0), 0.5)
    assert abs(_azimuth_diff_deg(shmax_azimuth(ts.tensor), 150.0)) < 1e-6
    # sigma1 N plunging 45, sigma2 E horizontal, sigma3 S plunging 45: horizontal stress is
    # 0.5 along N and 1 - R along E, so SHmax is E for R < 0.5 although sigma1 trends N
    # (Lund & Townend 2007: SHmax is not the sigma1 azimuth)
    for r, want in ((0.2, 90.0), (0.8, 0.0)):
        ts = true_stress((0.0, 45.0), (180.0, 45.0), r)
        assert abs(_azimuth_diff_deg(shmax_azimuth(ts.tensor), want)) < 1e-6


def test_regime_classes():
    assert regime(80, 5, 8) == "NF"
    assert regime(5, 80, 8) == "SS"
    assert regime(5, 8, 80) == "TF"
    assert regime(45, 40, 15) == "NS"
    assert regime(10, 40, 45) == "TS"
    assert regime(35, 35, 35) == "U"


def test_generated_mechanisms_put_sigma1_in_the_p_quadrant():
    # McKenzie (1969): slip along the resolved shear stress puts sigma1 in the dilatational
    # (P) quadrant and sigma3 in the compressional (T) quadrant of every mechanism
    t = regime_stress("thrust")
    s, d, r, _ = synthetic_mechanisms(t, 300, slip_noise_deg=0.0, min_instability=0.3, seed=3)
    m = moment_tensor(s, d, r)
    assert np.all(np.einsum("i,nij,j->n", t.axes[:, 0], m, t.axes[:, 0]) < 0)
    assert np.all(np.einsum("i,nij,j->n", t.axes[:, 2], m, t.axes[:, 2]) > 0)
    _, v = np.linalg.eigh(m)
    assert np.median(_axial_angle_deg(v[:, :, 0], t.axes[:, 0])) < 35.0  # P axes near sigma1


def test_noise_free_mechanisms_are_recovered_exactly():
    t = regime_stress("strike-slip")
    s, d, r, aux = synthetic_mechanisms(t, 60, slip_noise_deg=0.0, seed=1)
    res = invert_stress(s, d, r, n_bootstrap=0)
    assert _axial_angle_deg(res.axes.T, t.axes.T).max() < 0.5
    assert abs(res.shape_ratio - t.shape_ratio) < 0.01
    assert np.mean(res.fault_plane == aux) > 0.9
    assert np.median(res.misfit_deg) < 1.0


@pytest.mark.parametrize("name", list(REGIMES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovery_in_every_regime(name, seed):
    """100 mechanisms, 10 degree slip noise, the reported plane random: sigma1 and sigma3
    within 10 degrees, R within 0.15, SHmax within 10 degrees."""
    t = regime_stress(name)
    s, d, r, _ = synthetic_mechanisms(t, 100, slip_noise_deg=10.0, seed=100 + seed)
    res = invert_stress(s, d, r, n_bootstrap=50, seed=seed)
    assert _axial_angle_deg(res.axes[:, 0], t.axes[:, 0]) <= 10.0
    assert _axial_angle_deg(res.axes[:, 2], t.axes[:, 2]) <= 10.0
    assert abs(res.shape_ratio - t.shape_ratio) <= 0.15
    assert abs(_azimuth_diff_deg(res.shmax_azimuth_deg, t.shmax_azimuth_deg)) <= 10.0
    assert 5.0 < res.uncertainty["mean_misfit_deg"] < 20.0


@pytest.mark.parametrize("name", list(REGIMES))
def test_nonlinear_beats_linear_where_shear_stress_varies(name):
    """Michael's linear inversion (equal shear stress on every fault) is biased in R; the
    nonlinear misfit search is not (the reason the refinement exists)."""
    t = regime_stress(name)
    s, d, r, _ = synthetic_mechanisms(t, 400, slip_noise_deg=10.0, seed=7)
    lin, _ = iterative_linear(*fault_vectors(s, d, r), 0.6)
    _, r_lin = principal(lin)
    res = invert_stress(s, d, r, n_bootstrap=0)
    assert abs(res.shape_ratio - t.shape_ratio) < 0.05
    assert abs(res.shape_ratio - t.shape_ratio) < abs(r_lin - t.shape_ratio)


def test_less_well_oriented_faults_and_mechanism_errors():
    # random orientations, R 0.3-0.7 (nearer 0 or 1 two axes are barely told apart and the
    # bootstrap cone, not the estimate, carries the answer), 5 degree mechanism errors
    rng = np.random.default_rng(5)
    for k in range(4):
        t = random_stress(rng)
        t = type(t)(t.axes, 0.3 + 0.4 * rng.random())
        s, d, r, _ = synthetic_mechanisms(
            t, 150, slip_noise_deg=10.0, rotation_noise_deg=5.0, min_instability=0.5, seed=k
        )
        res = invert_stress(s, d, r, n_bootstrap=0)
        assert _axial_angle_deg(res.axes[:, 0], t.axes[:, 0]) <= 10.0
        assert _axial_angle_deg(res.axes[:, 2], t.axes[:, 2]) <= 10.0


def test_either_nodal_plane_gives_the_same_answer():
    t = regime_stress("normal")
    s, d, r, _ = synthetic_mechanisms(t, 80, seed=4)
    from firstmotion.kagan import auxiliary_plane

    s2, d2, r2 = auxiliary_plane(s, d, r)
    a = invert_stress(s, d, r, n_bootstrap=0)
    b = invert_stress(s2, d2, r2, n_bootstrap=0)
    assert _axial_angle_deg(a.axes.T, b.axes.T).max() < 0.1
    assert abs(a.shape_ratio - b.shape_ratio) < 1e-3


@pytest.mark.slow
def test_bootstrap_is_reproducible_and_covers_the_truth():
    """A small version of the coverage benchmark: over 24 draws the 95% regions of sigma1,
    sigma3, R and SHmax hold the truth in at least 19 (P(<19 | 0.95) < 1%)."""
    hits = np.zeros(4)
    n = 24
    for k in range(n):
        name = list(REGIMES)[k % 3]
        t = regime_stress(name)
        s, d, r, _ = synthetic_mechanisms(t, 100, seed=1000 + k)
        res = invert_stress(s, d, r, n_bootstrap=200, seed=k)
        u = res.uncertainty
        hits[0] += _axial_angle_deg(res.axes[:, 0], t.axes[:, 0]) <= u["sigma1_deg"]
        hits[1] += _axial_angle_deg(res.axes[:, 2], t.axes[:, 2]) <= u["sigma3_deg"]
        hits[2] += u["shape_ratio"][0] <= t.shape_ratio <= u["shape_ratio"][1]
        dev = abs(_azimuth_diff_deg(t.shmax_azimuth_deg, res.shmax_azimuth_deg))
        hits[3] += dev <= u["shmax_half_width_deg"]
    assert np.all(hits >= 19), hits
    a = invert_stress(s, d, r, n_bootstrap=100, seed=3).uncertainty
    b = invert_stress(s, d, r, n_bootstrap=100, seed=3).uncertainty
    assert a == b


def test_compiled_pass_matches_numpy_twin():
    t = regime_stress("thrust")
    s, d, r, _ = synthetic_mechanisms(t, 50, seed=2)
    n2, s2 = fault_vectors(s, d, r)
    nflat, sflat = n2.reshape(-1, 3), s2.reshape(-1, 3)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 100, 120).astype(np.int64)
    wts = rng.random(120)
    v, rr = principal(reduced_tensor(t.axes, 0.3) + 0.05 * np.diag([1, 0, -1]))
    got = _evaluate(nflat, sflat, rows, wts, v, rr)
    want = evaluate_numpy(nflat, sflat, rows, wts, v, rr)
    assert abs(got[0] - want[0]) < 1e-9
    np.testing.assert_allclose(got[1], want[1], atol=1e-9)
    np.testing.assert_allclose(got[2], want[2], atol=1e-9)
    # and the Jacobian is the derivative of the cost: a finite-difference check on R
    from workers.stress.invert import _step

    eps = 1e-6
    c_plus = evaluate_numpy(nflat, sflat, rows, wts, *_step(v, rr, np.array([0, 0, 0, eps])))[0]
    c_minus = evaluate_numpy(nflat, sflat, rows, wts, *_step(v, rr, np.array([0, 0, 0, -eps])))[0]
    assert abs((c_plus - c_minus) / (2 * eps) - want[2][3]) < 1e-4


def test_predicted_slip_is_in_the_plane():
    t = random_stress(np.random.default_rng(1)).tensor
    n = np.random.default_rng(2).normal(size=(20, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    d, mag = predicted_slip(t, n)
    assert np.all(np.abs(np.sum(d * n, axis=1)) < 1e-12) and np.all(mag > 0)


def test_contract_keys_and_bad_input():
    t = regime_stress("thrust")
    s, d, r, _ = synthetic_mechanisms(t, 30, seed=0)
    out = invert_stress(s, d, r, n_bootstrap=20).to_dict()
    assert set(out) == {"sigma1", "sigma2", "sigma3", "shape_ratio", "shmax_azimuth_deg",
                        "n_mechanisms", "uncertainty"}  # fmt: skip
    assert set(out["sigma1"]) == {"azimuth_deg", "plunge_deg"}
    assert 0 <= out["sigma1"]["plunge_deg"] <= 90 and 0 <= out["shmax_azimuth_deg"] < 180
    with pytest.raises(ValueError, match="at least 4"):
        invert_stress([1, 2], [30, 40], [10, 20])
    with pytest.raises(ValueError, match="finite"):
        invert_stress([1, 2, 3, np.nan], [30] * 4, [10] * 4)


def test_compiled_plane_posterior_matches_numpy():
    from workers.stress.invert import _posterior, plane_posterior

    t = regime_stress("normal")
    s, d, r, _ = synthetic_mechanisms(t, 40, seed=8)
    n2, s2 = fault_vectors(s, d, r)
    v, rr = principal(reduced_tensor(t.axes, 0.5))
    want, kappa = plane_posterior(reduced_tensor(v, rr), n2, s2, 0.6)
    w = np.empty(80)
    got_kappa = _posterior(n2.reshape(-1, 3), s2.reshape(-1, 3), v, rr, 0.6, w)
    assert abs(got_kappa - kappa) < 1e-9
    np.testing.assert_allclose(w.reshape(-1, 2), want, atol=1e-9)


def test_one_repeated_mechanism_is_reported_unresolved():
    # ten copies of one mechanism constrain two of the four parameters: the bootstrap varies
    # nothing, and zero uncertainty would be a lie
    res = invert_stress([30.0] * 10, [60.0] * 10, [90.0] * 10, n_bootstrap=50)
    u = res.uncertainty
    assert u["resolved"] is False and u["sigma1_deg"] == 90.0 and u["shape_ratio"] == [0.0, 1.0]
    t = regime_stress("normal")
    s, d, r, _ = synthetic_mechanisms(t, 30, seed=1)
    assert invert_stress(s, d, r, n_bootstrap=20).uncertainty["resolved"] is True
