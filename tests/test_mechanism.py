"""Focal-mechanism inversion: grid, kernel vs dense twin, synthetic recovery, SKHASH agreement."""

import json
from pathlib import Path

import numpy as np
import pytest

from firstmotion.kagan import kagan_angle_deg
from firstmotion.radiation import p_polarity
from workers.mechanism import (
    invert,
    misfit_floor_from_reads,
    read_error_probability,
    weight_from_probabilities,
)
from workers.mechanism.grid import focal_grid
from workers.mechanism.invert import draw_trials, max_gaps_deg, quality_letter
from workers.mechanism.search import (
    accepted_mask,
    accepted_set,
    misfit_allowances,
    misfit_table,
    misfit_table_direct,
    misfit_table_numpy,
    pruned_misfit_table,
    rays_from_angles,
)

HASH1 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hash1"


def test_grid_is_skhash_grid():
    g = focal_grid(5.0)
    assert g.n_mech == 31032 and g.n_normals == 862 and g.n_slip == 36
    np.testing.assert_allclose(np.linalg.norm(g.normal, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(g.slip, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.einsum("ij,ij->i", g.normal, g.slip), 0.0, atol=1e-12)
    assert np.all(g.normal[:, 2] >= -1e-12)  # normals point down or sideways
    np.testing.assert_allclose(g.normal[0], [0, 0, 1], atol=1e-12)


def _random_case(rng, n_pol, n_trials):
    az = rng.uniform(0, 360, (n_pol, n_trials))
    to = rng.uniform(1, 179, (n_pol, n_trials))
    signed = rng.choice([-1.0, 1.0], n_pol) * rng.choice([1.0, 0.5, 0.3], n_pol)
    return rays_from_angles(az, to), signed


def test_compiled_kernel_equals_dense_twin():
    rng = np.random.default_rng(1)
    g = focal_grid(5.0)
    rays, signed = _random_case(rng, 23, 7)
    fast = misfit_table(rays, signed, g)
    slow = misfit_table_numpy(rays, signed, g)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    assert fast.min() < fast.max()  # not a degenerate all-equal table


def test_torch_backend_equals_dense_twin():
    pytest.importorskip("torch")
    from workers.mechanism.search import misfit_table_torch

    rng = np.random.default_rng(4)
    g = focal_grid(5.0)
    rays, signed = _random_case(rng, 17, 6)
    slow = misfit_table_numpy(rays, signed, g)
    np.testing.assert_allclose(misfit_table_torch(rays, signed, g, device="cpu"), slow, atol=1e-9)
    # tiny chunks exercise the chunking
    small = misfit_table_torch(rays, signed, g, device="cpu", max_elements=17 * 6 * 1000)
    np.testing.assert_allclose(small, slow, atol=1e-9)


def test_coarser_grid_kernel_equals_twin():
    rng = np.random.default_rng(2)
    g = focal_grid(10.0)
    rays, signed = _random_case(rng, 15, 4)
    np.testing.assert_allclose(misfit_table(rays, signed, g), misfit_table_numpy(rays, signed, g))


@pytest.mark.parametrize("spread_deg", [1.0, 10.0])
def test_pruned_search_is_exact(spread_deg):
    """Branch and bound gives the same accepted set and trial minima as the full table."""
    rng = np.random.default_rng(int(spread_deg))
    g = focal_grid(5.0)
    sdr = (70.0, 50.0, 30.0)
    n_pol, n_trials = 40, 12
    az0, to0 = rng.uniform(0, 360, n_pol), rng.uniform(5, 175, n_pol)
    pol = p_polarity(*sdr, az0, to0).astype(float)
    pol[:4] *= -1
    az = az0[:, None] + rng.normal(0, spread_deg, (n_pol, n_trials))
    to = np.clip(to0[:, None] + rng.normal(0, spread_deg, (n_pol, n_trials)), 0.0, 180.0)
    az[:, 0], to[:, 0] = az0, to0
    rays = rays_from_angles(az, to)
    signed = pol * rng.choice([1.0, 0.5], n_pol)
    nextra, ntotal = misfit_allowances(float(np.abs(signed).sum()), 0.1, 2.0)
    full = misfit_table(rays, signed, g)
    pruned, n_eval = pruned_misfit_table(rays, signed, g, nextra, ntotal)
    np.testing.assert_array_equal(
        accepted_mask(pruned, nextra, ntotal), accepted_mask(full, nextra, ntotal)
    )
    np.testing.assert_array_equal(pruned.min(axis=1), full.min(axis=1))
    done = np.isfinite(pruned)
    np.testing.assert_array_equal(pruned[done], full[done])
    if spread_deg < 5:
        assert n_eval < g.n_normals // 2  # tight trials: most of the grid is skipped


def test_crossing_arctan_is_far_inside_the_exactness_tolerance():
    """The crossing kernel's arctan approximation only locates the sign change; its error must
    be far below the tolerance inside which slips are evaluated exactly."""
    from workers.mechanism import search

    r = np.linspace(0.0, 1.0, 100_001)
    err = max(abs(search._atan_unit(float(x)) - np.arctan(x)) for x in r)
    assert err <= search.ATAN_MAX_ERROR_RAD
    assert search.ATAN_MAX_ERROR_RAD < search.CROSSING_TOL_RAD / 50
    u, den = search._crossing_slips(0.3, -0.4, 1.0, np.pi)  # zeta* = atan2(-0.3, -0.4) mod pi
    assert abs(u - np.mod(np.arctan2(-0.3, -0.4), np.pi)) < 1e-5 and den == 0.4
    u, _ = search._crossing_slips(-0.5, -0.2, 1.0, np.pi)
    assert abs(u - np.mod(np.arctan2(0.5, -0.2), np.pi)) < 1e-5


def _tie_case(rng, n_pol, n_trials):
    """Rays at integer degrees (some lie exactly on 5-degree grid nodal planes), straight down
    and straight up (along grid normals: p.b1 = p.b2 = 0), and random ones."""
    az = rng.integers(0, 360, (n_pol, n_trials)).astype(float)
    to = rng.integers(0, 181, (n_pol, n_trials)).astype(float)
    to[0, :], to[1, :] = 180.0, 0.0
    az[2:5] = rng.uniform(0, 360, (3, n_trials))
    signed = rng.choice([-1.0, 1.0], n_pol) * rng.choice([1.0, 0.5, 0.25], n_pol)
    return rays_from_angles(az, to), signed


@pytest.mark.parametrize("dang", [5.0, 7.0, 6.9, 10.0])
def test_crossing_kernel_equals_direct_kernel_bit_for_bit(dang):
    """misfit_table (one crossing per normal, pick and trial) gives every sign exactly as the
    direct kernel (every slip evaluated) - nodal-plane ties and rays along normals included -
    on grids whose slips do and do not divide 180 degrees, for trial counts that are and are
    not multiples of the SIMD width."""
    rng = np.random.default_rng(int(dang * 10))
    g = focal_grid(dang)
    for n_pol, n_trials in ((19, 8), (23, 11)):
        rays, signed = _tie_case(rng, n_pol, n_trials)
        direct = misfit_table_direct(rays, signed, g)
        np.testing.assert_array_equal(misfit_table(rays, signed, g), direct)
        assert direct.min() < direct.max()
        rays, signed = _random_case(rng, n_pol, n_trials)
        np.testing.assert_allclose(
            misfit_table(rays, signed, g), misfit_table_numpy(rays, signed, g), rtol=0, atol=1e-9
        )


@pytest.mark.parametrize(("capacity", "threads"), [(None, 1), (7, 1), (None, 2), (7, 3)])
def test_accepted_set_equals_full_table_acceptance(capacity, threads, monkeypatch):
    """accepted_set (no table, running thresholds, duplicate trials merged) accepts exactly
    what accepted_mask accepts on the full table, and returns each trial's minimum; also when
    the candidates overflow their first buffer, and with the normals split between threads."""
    from workers.mechanism import search

    if capacity is not None:
        monkeypatch.setattr(search, "_CANDIDATE_CAPACITY", capacity)
    rng = np.random.default_rng(31)
    g = focal_grid(5.0)
    sdr = (120.0, 40.0, -80.0)
    cases = ((25, 8.0, (1.0,)), (40, 15.0, (1.0, 0.5, 0.3)), (12, 0.0, (1.0,)))
    for n_pol, spread, weights in cases:
        az0, to0 = rng.uniform(0, 360, n_pol), rng.uniform(5, 175, n_pol)
        pol = p_polarity(*sdr, az0, to0).astype(float)
        pol[: n_pol // 8] *= -1
        az = az0[:, None] + rng.normal(0, spread, (n_pol, 9))
        to = np.clip(to0[:, None] + rng.normal(0, spread, (n_pol, 9)), 0.0, 180.0)
        az[:, 0], to[:, 0] = az0, to0
        az[:, 5], to[:, 5] = az[:, 2], to[:, 2]  # a duplicated trial
        rays = rays_from_angles(az, to)
        signed = pol * rng.choice(weights, n_pol)
        nextra, ntotal = misfit_allowances(float(np.abs(signed).sum()), 0.1, 2.0)
        full = misfit_table_numpy(rays, signed, g)
        acc, lo = accepted_set(rays, signed, g, nextra, ntotal, threads=threads)
        np.testing.assert_array_equal(acc, np.flatnonzero(accepted_mask(full, nextra, ntotal)))
        np.testing.assert_allclose(lo, full.min(axis=1), rtol=0, atol=1e-9)
        assert 0 < acc.size < g.n_mech // 4
    with pytest.raises(ValueError, match="threads"):
        accepted_set(rays, signed, g, nextra, ntotal, threads=0)


def test_compiled_best_combination_equals_numpy_twin():
    from firstmotion.kagan import kagan_angle_from_vectors
    from workers.mechanism.invert import best_combination, best_combination_numpy

    g = focal_grid(10.0)
    rng = np.random.default_rng(9)
    idx = rng.choice(g.n_mech, 300, replace=False)
    n_ref, s_ref = g.normal[7], g.slip[7]
    a1, n1, s1 = best_combination(n_ref, s_ref, g.normal[idx], g.slip[idx])
    a2, n2, s2 = best_combination_numpy(n_ref, s_ref, g.normal[idx], g.slip[idx])
    np.testing.assert_allclose(a1, a2, atol=1e-9)
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_array_equal(s1, s2)
    # the angle is the Kagan angle
    kag = kagan_angle_from_vectors(n_ref, s_ref, g.normal[idx], g.slip[idx])
    np.testing.assert_allclose(a1, kag, atol=1e-5)
    assert a1.max() > 60 and a1.min() < 30  # a real spread of angles was tested


def test_compiled_average_equals_numpy_twin():
    from workers.mechanism.invert import average_mechanism, average_mechanism_numpy

    g = focal_grid(5.0)
    rng = np.random.default_rng(12)
    for size in (1, 2, 50, 700):
        idx = np.sort(rng.choice(g.n_mech, size, replace=False))
        n1, s1 = average_mechanism(g.normal[idx], g.slip[idx])
        n2, s2 = average_mechanism_numpy(g.normal[idx], g.slip[idx])
        np.testing.assert_allclose(n1, n2, atol=1e-12)
        np.testing.assert_allclose(s1, s2, atol=1e-12)
        assert abs(float(n1 @ s1)) < 1e-3  # orthogonalised


def test_compiled_mechanism_probability_equals_python_twin():
    """The compiled preferred/multiple-solution loop gives the Python loop's solutions."""
    from workers.mechanism.invert import mechanism_probability, mechanism_probability_numpy

    g = focal_grid(5.0)
    rng = np.random.default_rng(5)
    near_a = np.flatnonzero(np.abs(g.normal @ np.array([0.0, 0.6, 0.8])) > 0.99)
    near_b = np.flatnonzero(np.abs(g.normal @ np.array([0.8, 0.0, 0.6])) > 0.99)
    split = np.union1d(near_a, near_b[: near_a.size // 2])  # two clusters: multiple solutions
    n_multiple = 0
    for idx in (np.array([3, 900]), np.sort(rng.choice(g.n_mech, 400, replace=False)), split):
        fast = mechanism_probability(g.normal[idx], g.slip[idx])
        slow = mechanism_probability_numpy(g.normal[idx], g.slip[idx])
        assert len(fast) == len(slow) >= 1
        n_multiple += len(fast) > 1
        for a, b in zip(fast, slow, strict=True):
            assert a.probability == b.probability
            np.testing.assert_allclose(a.normal, b.normal, atol=1e-12)
            np.testing.assert_allclose(a.slip, b.slip, atol=1e-12)
            assert abs(a.fault_rms_deg - b.fault_rms_deg) < 1e-9
            assert abs(a.aux_rms_deg - b.aux_rms_deg) < 1e-9
    assert n_multiple >= 1


def test_grid_search_sign_rule_matches_radiation_physics():
    """The kernel's (p.n)(p.s) sign rule predicts exactly firstmotion.radiation's polarity."""
    from firstmotion.kagan import sdr_from_vectors

    g = focal_grid(5.0)
    rng = np.random.default_rng(21)
    az, to = rng.uniform(0, 360, 60), rng.uniform(1, 179, 60)
    rays = rays_from_angles(az[:, None], to[:, None])  # one trial
    idx = rng.choice(g.n_mech, 400, replace=False)
    strike, dip, rake = sdr_from_vectors(g.normal[idx], g.slip[idx])
    for i in range(0, 60, 7):
        fit_up = misfit_table(rays[:, i : i + 1], np.array([1.0]), g)[0, idx]  # observed up
        predicted = p_polarity(strike, dip, rake, az[i], to[i])
        np.testing.assert_array_equal(fit_up == 1.0, predicted < 0)


def test_misfit_allowances_follow_skhash_rounding():
    assert misfit_allowances(60.0, 0.1, 2.0) == (3.0, 6.0)
    assert misfit_allowances(50.0, 0.1, 2.0) == (2.0, 5.0)  # round(2.5) == 2 (half to even)
    assert misfit_allowances(10.0, 0.1, 2.0) == (2.0, 2.0)  # badmin floor
    fit = np.array([[0.0, 2.0, 5.0], [4.0, 1.0, 9.0]])
    np.testing.assert_array_equal(accepted_mask(fit, 2.0, 2.0), [True, True, False])


def _stations(rng, n=30):
    return rng.uniform(0, 360, n), rng.uniform(15, 165, n)


def _spread_network(n=30):
    """n rays evenly spread over the lower focal hemisphere (Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    return np.mod(i * 137.50776405, 360.0), np.degrees(np.arccos(-i / n))


def _random_mechanisms(rng, n):
    """Uniformly random double-couple orientations (strike, dip, rake)."""
    return [
        (rng.uniform(0, 360), np.degrees(np.arccos(rng.uniform(0, 1))), rng.uniform(-180, 180))
        for _ in range(n)
    ]


def test_synthetic_recovery_clean_and_with_ten_percent_flipped():
    """30 well-spread stations, 40 random mechanisms: noise-free within 10 deg (Kagan), 10% of
    polarities flipped within 25 deg, and the quality never claims better with the flips.

    HASH's answer is the average of every mechanism within the allowed misfit (here up to 2-3
    wrong polarities), so with 30 rays some geometries land past 10 deg even without noise
    (SKHASH does the same: this code matches it). Measured on 60 random mechanisms: clean median
    ~7 deg, ~80% within 10, max ~16; flipped median ~15, ~90% within 25. The thresholds are on
    that distribution, not on hand-picked mechanisms.
    """
    rng = np.random.default_rng(42)
    az, to = _spread_network(30)
    clean_err, flip_err, flip_quality = [], [], []
    for sdr in _random_mechanisms(rng, 60):
        pol = p_polarity(*sdr, az, to).astype(float)
        clean = invert(az, to, pol)
        flipped = pol.copy()
        flipped[rng.choice(30, 3, replace=False)] *= -1
        noisy = invert(az, to, flipped)
        clean_err.append(float(kagan_angle_deg(clean.strike, clean.dip, clean.rake, *sdr)))
        flip_err.append(float(kagan_angle_deg(noisy.strike, noisy.dip, noisy.rake, *sdr)))
        assert clean.misfit < 0.05 and clean.n_polarities == 30 and clean.n_trials == 30
        assert noisy.misfit > clean.misfit  # the flips are seen ...
        assert noisy.quality >= clean.quality  # ... and never reported as better quality
        flip_quality.append(noisy.quality)
    clean_err, flip_err = np.array(clean_err), np.array(flip_err)
    print(f"clean: median {np.median(clean_err):.1f}, within 10: {np.mean(clean_err <= 10):.2f}")
    print(f"flipped: median {np.median(flip_err):.1f}, within 25: {np.mean(flip_err <= 25):.2f}")
    assert np.median(clean_err) <= 10.0 and np.mean(clean_err <= 10.0) >= 0.7
    assert np.median(flip_err) <= 25.0 and np.mean(flip_err <= 25.0) >= 0.8
    assert clean_err.max() <= 20.0
    # the rare flipped case that lands far off (> 35 deg) is not reported as A quality
    far = flip_err > 35.0
    assert all(q != "A" for q in np.array(flip_quality)[far]), (flip_err[far], flip_quality)


def test_badmin_sets_what_twelve_polarities_can_claim():
    """With 12 well-spread perfect polarities HASH's floor of two allowed misfits (badmin 2)
    accepts so many planes that every mechanism is quality D; a floor of one (a small
    network's setting) gives most of them B or C, near the truth at the median."""
    rng = np.random.default_rng(7)
    az, to = _spread_network(12)
    floor2, floor1 = [], []
    for sdr in _random_mechanisms(rng, 30):
        pol = p_polarity(*sdr, az, to).astype(float)
        for badmin, rows in ((2.0, floor2), (1.0, floor1)):
            m = invert(az, to, pol, badmin=badmin)
            rows.append((m.quality, float(kagan_angle_deg(m.strike, m.dip, m.rake, *sdr))))
    assert all(q == "D" for q, _ in floor2)
    good = np.array([k for q, k in floor1 if q in "ABC"])
    assert good.size >= 20, floor1
    assert np.median(good) <= 25.0
    # the accepted set shrinks, so the uncertainty the quality reports shrinks with it
    assert np.median([k for _, k in floor1]) <= np.median([k for _, k in floor2]) + 5.0


def test_misfit_floor_from_reads_is_the_poisson_binomial_quantile():
    """Against brute force over every combination of wrong reads: the floor k is the
    smallest with P(more than k wrong) <= 5%."""
    import itertools

    rng = np.random.default_rng(3)
    for _ in range(20):
        q = rng.uniform(0.0, 0.4, rng.integers(1, 9))
        tail = np.zeros(q.size + 2)
        for wrong in itertools.product((0, 1), repeat=q.size):
            w = np.array(wrong)
            tail[: w.sum()] += np.prod(np.where(w == 1, q, 1 - q))  # adds to P(K > k), k < sum
        expected = int(np.argmax(tail <= 0.05 + 1e-12))
        assert misfit_floor_from_reads(q) == expected, (q, tail)
    # sure reads at the 2% floor: one for 8 to 18 polarities, two from 19 (HASH's fixed 2)
    assert [misfit_floor_from_reads(np.full(n, 0.02)) for n in (8, 12, 18, 19, 30)] == [
        1, 1, 1, 2, 2]  # fmt: skip
    assert misfit_floor_from_reads(np.full(12, 0.15)) >= 3  # unsure reads: a wider set
    assert misfit_floor_from_reads([]) == 0
    with pytest.raises(ValueError):
        misfit_floor_from_reads([0.1, 1.5])


def test_read_error_probability_is_the_opposite_signs_share_with_a_floor():
    p = np.array([[0.99, 0.005, 0.005], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.0, 0.0, 1.0]])
    q = read_error_probability(p, floor=0.02)
    np.testing.assert_allclose(q, [0.02, 1 / 3, 0.5, 0.5])
    np.testing.assert_allclose(read_error_probability(p[:1], floor=0.0), [0.005 / 0.995])
    with pytest.raises(ValueError):
        read_error_probability(p[:, :2])
    with pytest.raises(ValueError):
        read_error_probability(p, floor=0.7)


def test_flipped_polarities_lower_the_quality():
    sdr = (40.0, 55.0, 80.0)
    az, to = _spread_network(30)
    pol = p_polarity(*sdr, az, to).astype(float)
    clean = invert(az, to, pol)
    flipped = pol.copy()
    flipped[[3, 11, 22]] *= -1
    noisy = invert(az, to, flipped)
    assert clean.quality == "A"
    assert noisy.quality > clean.quality
    assert noisy.probability < clean.probability
    assert noisy.fault_plane_uncertainty_deg > clean.fault_plane_uncertainty_deg


def test_weights_downweight_unreliable_picks():
    rng = np.random.default_rng(11)
    az, to = _spread_network(30)
    better, errors = 0, []
    for sdr in _random_mechanisms(rng, 10):
        pol = p_polarity(*sdr, az, to).astype(float)
        bad = rng.choice(30, 6, replace=False)  # 20% wrong ...
        pol[bad] *= -1
        w = np.ones(30)
        w[bad] = 0.1  # ... but the classifier was unsure about them
        plain = invert(az, to, pol)
        weighted = invert(az, to, pol, w)
        e_plain = kagan_angle_deg(plain.strike, plain.dip, plain.rake, *sdr)
        e_weighted = kagan_angle_deg(weighted.strike, weighted.dip, weighted.rake, *sdr)
        better += e_weighted < e_plain
        errors.append((e_plain, e_weighted))
    errors = np.array(errors)
    assert better >= 7
    assert np.median(errors[:, 1]) < np.median(errors[:, 0])


def test_backends_agree_and_trials_are_reproducible():
    sdr = (10.0, 50.0, 100.0)
    rng = np.random.default_rng(3)
    az, to = _stations(rng, 20)
    pol = p_polarity(*sdr, az, to)
    a = invert(az, to, pol, n_trials=5)
    b = invert(az, to, pol, n_trials=5, backend="numpy")
    assert (a.strike, a.dip, a.rake, a.n_accepted) == (b.strike, b.dip, b.rake, b.n_accepted)
    az_tr, to_tr = draw_trials(az, to, 5, 5.0, 10.0, seed=0)
    np.testing.assert_array_equal(az_tr[:, 0], az)
    np.testing.assert_array_equal(to_tr[:, 0], to)
    c = invert(az, to, pol, azimuth_trials=az_tr, takeoff_trials=to_tr)
    assert (c.strike, c.dip, c.rake) == (a.strike, a.dip, a.rake)


def test_to_dict_and_auxiliary_plane():
    sdr = (300.0, 40.0, 60.0)
    rng = np.random.default_rng(8)
    az, to = _stations(rng)
    m = invert(az, to, p_polarity(*sdr, az, to))
    d = m.to_dict()
    assert d["strike"] == m.strike and d["quality"] == m.quality and d["solutions"]
    assert json.loads(json.dumps(d))["n_polarities"] == 30
    assert kagan_angle_deg(m.strike, m.dip, m.rake, m.aux_strike, m.aux_dip, m.aux_rake) < 1e-3


def test_gaps_and_quality_table():
    agap, pgap = max_gaps_deg(np.array([0.0, 90.0, 180.0, 270.0]), np.array([10, 30, 60, 85]))
    assert agap == pytest.approx(90.0) and pgap == pytest.approx(30.0)
    assert quality_letter(0.9, 20, 20, 0.05, 0.6, 40, 30, 30) == "A"
    assert quality_letter(0.7, 20, 20, 0.05, 0.6, 40, 30, 30) == "B"
    assert quality_letter(0.9, 20, 20, 0.25, 0.6, 40, 30, 30) == "C"
    assert quality_letter(0.9, 20, 20, 0.05, 0.6, 120, 30, 30) == "D"  # azimuthal gap
    assert quality_letter(0.9, 20, 20, 0.05, 0.6, 40, 30, 7) == "D"  # too few polarities
    assert quality_letter(0.9, 20, 20, 0.05, 0.6, 120, 30, 30, max_azimuthal_gap_deg=150) == "A"


def test_weight_from_probabilities_mapping():
    pol, w = weight_from_probabilities([[0.99, 0.01, 0.0], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8]])
    np.testing.assert_array_equal(pol, [1, -1, 0])
    np.testing.assert_allclose(w, [0.98, 0.3, 0.0])
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        weight_from_probabilities([0.5, 0.5])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"polarity": [1, 2, -1]}, "polarity"),
        ({"weight": [1, -1, 1]}, "non-negative"),
        ({"takeoff_deg": [10, 200, 30]}, "takeoff"),
        ({"azimuth_deg": [1, 2]}, "expected 2"),
        ({"polarity": [0, 0, 0]}, "no usable"),
        ({"azimuth_trials": np.zeros((3, 4))}, "both"),
    ],
)
def test_bad_input_raises(kwargs, match):
    args = {"azimuth_deg": [10, 20, 30], "takeoff_deg": [10, 20, 30], "polarity": [1, -1, 1]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        invert(**args)


def _load_hash1():
    if not (HASH1 / "inputs_trials.jsonl").exists():
        pytest.skip(f"shared data absent: {HASH1} (see ../shared/data/README.md)")
    events = [json.loads(line) for line in (HASH1 / "inputs_trials.jsonl").open()]
    ref_path = HASH1 / "skhash_no_subsample" / "mechs.jsonl"
    ref = {d["event_id"]: d for d in map(json.loads, ref_path.open())}
    return events, ref


def test_hash1_agrees_with_skhash():
    """Against SKHASH on HASH's example set: rotation <= 10 deg for >= 22/24 events, median
    <= 5; quality equal >= 20/24."""
    events, ref = _load_hash1()
    rot, same_quality = [], 0
    for e in events:
        p = e["picks"]

        def col(key, p=p):
            return np.array([x[key] for x in p], dtype=float)

        m = invert(
            col("azimuth_deg"),
            col("takeoff_deg"),
            col("polarity"),
            col("weight"),
            azimuth_trials=col("azimuth_trials"),
            takeoff_trials=col("takeoff_trials"),
        )
        r = ref[e["event_id"]]
        rot.append(
            float(kagan_angle_deg(m.strike, m.dip, m.rake, r["strike"], r["dip"], r["rake"]))
        )
        same_quality += m.quality == r["quality"]
        assert m.n_polarities == r["n_pol"]
    rot = np.array(rot)
    assert len(rot) == 24
    # the convention was checked, not assumed: reading takeoff from vertical-DOWN instead
    # (180 - takeoff) gives answers far from SKHASH's
    wrong = []
    for e in events[:6]:
        p = e["picks"]
        m = invert(
            np.array([x["azimuth_deg"] for x in p]),
            180.0 - np.array([x["takeoff_deg"] for x in p]),
            np.array([x["polarity"] for x in p]),
            np.array([x["weight"] for x in p]),
            azimuth_trials=np.array([x["azimuth_trials"] for x in p]),
            takeoff_trials=180.0 - np.array([x["takeoff_trials"] for x in p]),
        )
        r = ref[e["event_id"]]
        wrong.append(
            float(kagan_angle_deg(m.strike, m.dip, m.rake, r["strike"], r["dip"], r["rake"]))
        )
    assert np.median(wrong) > 30.0 and np.median(wrong) > 10 * np.median(rot), wrong
    assert (rot <= 10.0).sum() >= 22
    assert np.median(rot) <= 5.0
    assert same_quality >= 20
