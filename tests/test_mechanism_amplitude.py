"""S/P amplitude ratios in the mechanism inversion (HASH's second data type)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firstmotion.kagan import kagan_angle_deg, sdr_from_vectors
from firstmotion.radiation import p_polarity
from workers.mechanism import invert
from workers.mechanism.amplitude import (
    amplitude_allowances,
    amplitude_misfit_table,
    amplitude_misfit_table_numpy,
    joint_accepted_mask,
    log_ratio_from_projections,
    log_ratio_skhash_table,
    observed_log_ratio,
    predicted_log_ratio,
)
from workers.mechanism.grid import focal_grid
from workers.mechanism.invert import draw_trials
from workers.mechanism.search import rays_from_angles

ROOT = Path(__file__).resolve().parents[1]
SKHASH_PY = ROOT / "benchmarks" / ".venv-skhash" / "bin" / "python"


def test_predicted_ratio_of_vertical_strike_slip_matches_hand_values():
    # strike 0, dip 90, rake 0 at azimuth 22.5 (phi' = 22.5): P = sin 2phi' sin^2 i,
    # SV = sin 2phi' sin 2i / 2, SH = cos 2phi' sin i (i from vertical-down).
    # Horizontal ray (i = 90): P = SH = 0.7071, SV = 0 -> S/P = 1.
    got = predicted_log_ratio(0.0, 90.0, 0.0, 22.5, 90.0)
    assert got == pytest.approx(np.log10(4.9), abs=1e-9)
    # i = 45 (takeoff 135 from up): P = SV = 0.35355, SH = 0.5 -> S/P = sqrt(3)
    got = predicted_log_ratio(0.0, 90.0, 0.0, 22.5, 135.0)
    assert got == pytest.approx(np.log10(4.9 * np.sqrt(3.0)), abs=1e-9)
    # along the strike the P radiation is nodal: the ratio is unbounded
    assert predicted_log_ratio(0.0, 90.0, 0.0, 0.0, 90.0) > 10


def test_grid_prediction_equals_radiation_pattern_prediction():
    rng = np.random.default_rng(0)
    grid = focal_grid(5.0)
    idx = rng.choice(grid.n_mech, 40, replace=False)
    az, to = rng.uniform(0, 360, 25), rng.uniform(0, 180, 25)
    rays = rays_from_angles(az, to).T
    for k in idx:
        n, s = grid.normal[k], grid.slip[k]
        strike, dip, rake = sdr_from_vectors(n, s)
        fast = log_ratio_from_projections(rays @ n, rays @ s, min_amp=0.0)
        slow = predicted_log_ratio(strike, dip, rake, az, to)
        np.testing.assert_allclose(fast, slow, atol=1e-6)


def test_skhash_table_is_close_to_exact_away_from_nodes():
    rng = np.random.default_rng(1)
    grid = focal_grid(5.0)
    rays = rays_from_angles(rng.uniform(0, 360, 200), rng.uniform(0, 180, 200)).T
    k = 1234
    a, b, c = rays @ grid.normal[k], rays @ grid.slip[k], rays @ grid.null[k]
    exact = log_ratio_from_projections(a, b)
    table = log_ratio_skhash_table(a, b, c)
    far = np.abs(2 * a * b) > 0.1
    assert far.sum() > 50
    assert np.max(np.abs(exact[far] - table[far])) < 0.1
    assert np.max(np.abs(exact[far] - table[far])) > 0  # the table does quantize


def test_observed_ratio_follows_skhash_screening():
    amp_p = np.array([10.0, 10.0, 10.0, 10.0, 1e-9, 10.0])
    amp_s = np.array([50.0, 50.0, 50.0, 1e6, 50.0, 0.0])
    noise_p = np.array([1.0, 5.0, 1.0, 1.0, 1e-12, 1.0])
    noise_s = np.array([1.0, 1.0, 20.0, 1.0, 1.0, 1.0])
    got = observed_log_ratio(amp_p, amp_s, noise_p, noise_s)
    assert got[0] == pytest.approx(np.log10(5.0))
    assert np.isnan(got[1])  # P S/N 2 < ratmin 3
    assert np.isnan(got[2])  # S S/N 2.5 < 3
    assert got[3] == pytest.approx(np.log10(2000.0))  # clamped to max_sp
    assert np.isfinite(got[4])  # S/N fine, huge ratio clamped
    assert np.isnan(got[5])  # zero S amplitude


def test_amplitude_allowances_have_the_qbadmin_floor():
    assert amplitude_allowances(12) == (pytest.approx(2.0), pytest.approx(3.6))
    assert amplitude_allowances(4) == (2.0, 2.0)
    assert amplitude_allowances(20) == (pytest.approx(3.0), pytest.approx(6.0))


def test_joint_acceptance_and_its_loosening():
    fit = np.array([[0.0, 0.0, 1.0, 5.0] * 5])  # 1 trial, 20 mechanisms
    afit = np.array([[0.0, 9.0, 0.5, 0.0] * 5])
    mask, loosened = joint_accepted_mask(fit, afit, 2.0, 2.0, 2.0, 2.0, min_solutions=10)
    # polarity ok: fit <= 2 -> columns 0,1,2; amplitude ok: afit <= 2 -> 0,2,3
    assert not loosened
    assert mask.tolist() == [True, False, True, False] * 5
    # too few solutions: loosened to the least polarity-acceptable afit + nextra (floor qtotal)
    mask, loosened = joint_accepted_mask(fit, afit, 2.0, 2.0, 2.0, 2.0, min_solutions=11)
    assert loosened
    assert mask.tolist() == [True, False, True, False] * 5
    # nextra 9: every polarity misfit passes; 15 solutions < 16 -> afit threshold 0 + 9
    mask, loosened = joint_accepted_mask(fit, afit, 9.0, 2.0, 2.0, 2.0, min_solutions=16)
    assert loosened
    assert mask.tolist() == [True, True, True, True] * 5


def test_amplitude_misfit_table_is_zero_at_the_true_mechanism():
    grid = focal_grid(5.0)
    k = 20000
    strike, dip, rake = sdr_from_vectors(grid.normal[k], grid.slip[k])
    rng = np.random.default_rng(2)
    az, to = rng.uniform(0, 360, 8), rng.uniform(95, 170, 8)
    obs = predicted_log_ratio(strike, dip, rake, az, to)
    afit = amplitude_misfit_table(rays_from_angles(az, to)[:, :, None], obs, grid)
    assert afit.shape == (1, grid.n_mech)
    assert afit[0, k] < 1e-6
    assert np.sum(afit[0] < 1e-6) <= 4  # the equivalent representations only


def test_compiled_amplitude_misfit_equals_its_numpy_twin():
    rng = np.random.default_rng(5)
    grid = focal_grid(5.0)
    az, to = rng.uniform(0, 360, (9, 7)), rng.uniform(0, 180, (9, 7))
    az[0, 0], to[0, 0] = 0.0, 180.0  # straight down: nodal for many grid mechanisms
    rays = rays_from_angles(az, to)
    obs = rng.normal(0.8, 0.6, 9)
    fast = amplitude_misfit_table(rays, obs, grid)
    slow = amplitude_misfit_table_numpy(rays, obs, grid)
    assert fast.shape == slow.shape == (7, grid.n_mech)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-8)
    assert np.ptp(slow) > 1.0


@pytest.mark.parametrize("n_ratios", [1, 6, 9])
def test_free_level_misfit_compiled_equals_numpy_and_ignores_an_offset(n_ratios):
    """The free-level misfit (sum of |r - median(r)|, r = observed - predicted): the kernel
    equals its numpy twin (odd and even counts, nodal rays), a constant added to every ratio
    changes nothing, and it never exceeds the fixed-level misfit."""
    rng = np.random.default_rng(n_ratios)
    grid = focal_grid(5.0)
    az, to = rng.uniform(0, 360, (n_ratios, 5)), rng.uniform(0, 180, (n_ratios, 5))
    az[0, 0], to[0, 0] = 0.0, 180.0
    rays = rays_from_angles(az, to)
    obs = rng.normal(0.8, 0.6, n_ratios)
    fast = amplitude_misfit_table(rays, obs, grid, free_level=True)
    slow = amplitude_misfit_table_numpy(rays, obs, grid, free_level=True)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-8)
    shifted = amplitude_misfit_table(rays, obs - 0.7, grid, free_level=True)
    np.testing.assert_allclose(shifted, fast, rtol=0, atol=1e-8)
    fixed = amplitude_misfit_table(rays, obs, grid)
    assert np.all(fast <= fixed + 1e-9)
    if n_ratios == 1:
        assert np.all(fast == 0.0)  # one ratio carries no pattern
    else:
        assert np.ptp(fast) > 1.0


def test_free_level_inversion_does_not_see_an_offset_of_the_ratios():
    """Twelve stations, ratios with 0.1 log10 noise and the same ratios 0.4 low (an
    uncalibrated path or source effect): compared about zero the offset moves the solutions;
    about their own level the offset ones give exactly the solution of the others."""
    az, to = _network(3)
    moved = 0
    for sdr in MECHANISMS:
        pol = p_polarity(*sdr, az, to)
        sp = predicted_log_ratio(*sdr, az, to) + np.random.default_rng(4).normal(0, 0.1, 12)
        free = invert(az, to, pol, sp_log_ratio=sp, sp_free_level=True)
        free_low = invert(az, to, pol, sp_log_ratio=sp - 0.4, sp_free_level=True)
        a, b = free_low.to_dict(), free.to_dict()
        assert a.pop("sp_misfit_log10") == pytest.approx(b.pop("sp_misfit_log10"), abs=1e-12)
        assert a == b
        assert free.n_sp_ratios == 12 and free.sp_misfit_log10 < 0.4
        fixed = invert(az, to, pol, sp_log_ratio=sp)
        fixed_low = invert(az, to, pol, sp_log_ratio=sp - 0.4)
        moved += fixed_low.to_dict() != fixed.to_dict()
    assert moved == len(MECHANISMS)


def _network(seed=3):
    rng = np.random.default_rng(seed)
    return np.sort(rng.uniform(0, 360, 12)), rng.uniform(95, 150, 12)


MECHANISMS = [(30.0, 60.0, -80.0), (120.0, 80.0, 170.0), (200.0, 45.0, 90.0), (310.0, 70.0, 20.0)]


@pytest.mark.parametrize("seed", [3, 8])
def test_ratios_narrow_twelve_station_mechanisms(seed):
    """Synthetic 12-station events (ratios with 0.1 log10 noise): each accepted set shrinks,
    and on average the probability rises, the plane uncertainty and the error fall."""
    az, to = _network(seed)
    rows = []
    for sdr in MECHANISMS:
        pol = p_polarity(*sdr, az, to)
        sp = predicted_log_ratio(*sdr, az, to) + np.random.default_rng(4).normal(0, 0.1, 12)
        only = invert(az, to, pol)
        both = invert(az, to, pol, sp_log_ratio=sp)
        assert both.n_sp_ratios == 12 and only.n_sp_ratios == 0
        assert both.n_accepted < only.n_accepted / 2
        assert both.sp_misfit_log10 is not None and both.sp_misfit_log10 < 0.4
        rows.append(
            [
                (
                    m.probability,
                    0.5 * (m.fault_plane_uncertainty_deg + m.aux_plane_uncertainty_deg),
                    float(kagan_angle_deg(m.strike, m.dip, m.rake, *sdr)),
                )
                for m in (only, both)
            ]
        )
    r = np.array(rows)  # (mechanism, [only, both], [prob, unc, kagan])
    mean_only, mean_both = r[:, 0].mean(axis=0), r[:, 1].mean(axis=0)
    assert mean_both[0] > mean_only[0] + 0.2
    assert mean_both[1] < mean_only[1] - 5.0
    assert mean_both[2] < mean_only[2] - 10.0


def test_no_ratios_leaves_the_polarity_inversion_unchanged():
    az, to = _network(5)
    pol = p_polarity(70.0, 50.0, 40.0, az, to)
    ref = invert(az, to, pol).to_dict()
    for sp in (None, np.full(12, np.nan)):
        got = invert(az, to, pol, sp_log_ratio=sp).to_dict()
        assert got == ref
    assert ref["n_sp_ratios"] == 0 and ref["sp_misfit_log10"] is None


def test_ratio_without_polarity_counts_as_a_ratio_only():
    az, to = _network(6)
    sdr = (200.0, 45.0, 90.0)
    pol = p_polarity(*sdr, az, to).astype(float)
    sp = predicted_log_ratio(*sdr, az, to)
    pol[0] = 0
    m = invert(az, to, pol, sp_log_ratio=sp)
    assert m.n_polarities == 11 and m.n_sp_ratios == 12
    with pytest.raises(ValueError, match="infinite"):
        invert(az, to, pol, sp_log_ratio=np.where(np.arange(12) == 1, np.inf, sp))


def _skhash(ev: dict) -> dict:
    out = subprocess.run(
        [str(SKHASH_PY), str(ROOT / "benchmarks" / "skhash_sp_ratios.py")],
        input=json.dumps(ev), capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


@pytest.mark.skipif(not SKHASH_PY.exists(), reason="benchmarks/.venv-skhash absent")
def test_polarities_and_ratios_agree_with_skhash():
    az, to = _network()
    rng = np.random.default_rng(7)
    sdr = (200.0, 45.0, 90.0)
    pol = p_polarity(*sdr, az, to).astype(float)
    sp = predicted_log_ratio(*sdr, az, to) + rng.normal(0, 0.15, 12)
    sp[3] = np.nan
    azt, tot = draw_trials(az, to, 30, 5.0, 10.0, seed=1)
    ev = dict(azimuth_trials=azt.tolist(), takeoff_trials=tot.tolist(), polarity=pol.tolist(),
              sp_log_ratio=[None if np.isnan(v) else float(v) for v in sp], dang=5.0,
              badfrac=0.1, badmin=2.0, qbadfrac=0.3, qbadmin=2.0, cangle=45.0,
              prob_max=0.25)  # fmt: skip
    sk = _skhash(ev)
    kw = dict(sp_log_ratio=sp, azimuth_trials=azt, takeoff_trials=tot)
    table = invert(az, to, pol, sp_table=True, **kw)
    # SKHASH's own lookup tables: the same accepted set but for float ties
    assert abs(table.n_accepted - sk["n_accepted"]) <= max(2, sk["n_accepted"] // 200)
    assert table.probability == pytest.approx(sk["probability"], abs=0.01)
    assert table.quality == sk["quality"]
    assert table.station_distribution_ratio == pytest.approx(
        sk["station_distribution_ratio"], abs=0.01
    )
    k = kagan_angle_deg(table.strike, table.dip, table.rake, sk["strike"], sk["dip"], sk["rake"])
    assert float(k) < 1.0
    # exact radiation factors (the default): close to SKHASH's tabulated ones
    exact = invert(az, to, pol, **kw)
    k = kagan_angle_deg(exact.strike, exact.dip, exact.rake, sk["strike"], sk["dip"], sk["rake"])
    assert float(k) < 5.0
    assert exact.probability == pytest.approx(sk["probability"], abs=0.06)


def test_cli_reads_ratios_from_jsonl(tmp_path):
    from firstmotion.cli import main

    az, to = _network()
    sdr = (200.0, 45.0, 90.0)
    pol = p_polarity(*sdr, az, to)
    sp = predicted_log_ratio(*sdr, az, to)
    picks = [
        {"station": f"S{k}", "azimuth_deg": float(az[k]), "takeoff_deg": float(to[k]),
         "polarity": int(pol[k]), "sp_log_ratio": None if k == 0 else float(sp[k])}
        for k in range(12)
    ]  # fmt: skip
    inp = tmp_path / "events.jsonl"
    inp.write_text(
        json.dumps({"event_id": "with", "picks": picks})
        + "\n"
        + json.dumps(
            {
                "event_id": "without",
                "picks": [{k: v for k, v in p.items() if k != "sp_log_ratio"} for p in picks],
            }
        )  # fmt: skip
        + "\n"
    )
    out = tmp_path / "mechs.jsonl"
    assert main(["invert", "--input", str(inp), "--output", str(out), "--no-progress"]) == 0
    rows = {r["event_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["with"]["n_sp_ratios"] == 11 and rows["without"]["n_sp_ratios"] == 0
    ref = invert(az, to, pol, sp_log_ratio=np.where(np.arange(12) == 0, np.nan, sp))
    assert rows["with"]["n_accepted"] == ref.n_accepted
    assert rows["with"]["probability"] > rows["without"]["probability"]
