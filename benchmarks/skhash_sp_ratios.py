"""SKHASH 1.1.5's grid search with S/P ratios on one event given as JSON (run in its venv).

Reads a JSON object on stdin: ``azimuth_trials``, ``takeoff_trials`` ((n, n_trials) lists,
degrees, takeoff from vertical-up), ``polarity`` (n; +1/-1/0), ``sp_log_ratio`` (n; log10 S/P,
null where none) and the parameters ``dang``, ``badfrac``, ``badmin``, ``qbadfrac``,
``qbadmin``, ``cangle``, ``prob_max``; computes nextra/ntotal/qextra/qtotal as SKHASH's
``compute_mech`` does, runs its Python ``focal_gridsearch`` (maxout 10**6: the whole accepted
set), ``mech_probability``, ``mech_misfit`` and ``mech_quality``, and prints a JSON object:
``n_accepted``, ``normals``/``slips`` of the accepted set, and the preferred solution's
``strike``, ``dip``, ``rake``, ``probability``, ``fault_plane_uncertainty_deg``,
``aux_plane_uncertainty_deg``, ``misfit``, ``station_distribution_ratio``, ``quality``.

    benchmarks/.venv-skhash/bin/python benchmarks/skhash_sp_ratios.py < event.json

Used by tests/test_mechanism_amplitude.py and benchmarks/bench_mechanism_sp.py.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main() -> int:
    import SKHASH  # noqa: F401  (its __init__ puts its folder on sys.path)
    from SKHASH.functions import fun

    ev = json.load(sys.stdin)
    az = np.asarray(ev["azimuth_trials"], dtype=float)
    to = np.asarray(ev["takeoff_trials"], dtype=float)
    pol = np.asarray(ev["polarity"], dtype=float)
    sp = np.asarray([np.nan if v is None else v for v in ev["sp_log_ratio"]], dtype=float)
    p = {"dang": ev["dang"], "ampfile": "yes", "min_amp": ev.get("min_amp", 0.0005)}
    dcd = fun.dir_cos_setup(p)
    sumpolweight = np.sum(np.abs(pol))
    nextra = max([round(sumpolweight * ev["badfrac"] * 0.5), ev["badmin"]])
    ntotal = max([round(sumpolweight * ev["badfrac"]), ev["badmin"]])
    nspr = int(np.sum(np.isfinite(sp)))
    qextra = max([nspr * ev["qbadfrac"] * 0.5, ev["qbadmin"]])
    qtotal = max([nspr * ev["qbadfrac"], ev["qbadmin"]])
    norms, slips = fun.focal_gridsearch(
        az, to, pol, sp, dcd, nextra, ntotal, qextra, qtotal, 10**6, dcd["ncoor"]
    )
    mech = fun.mech_probability(norms, slips, ev["cangle"], ev["prob_max"])
    mech, _, _ = fun.mech_misfit(mech, az[:, 0], to[:, 0], pol, sp)
    agap, pgap = fun.determine_max_gap(az[:, 0], to[:, 0])
    mech["num_p_pol"] = int(np.sum(pol != 0))
    mech["azimuthal_gap"] = agap
    mech["takeoff_gap"] = pgap
    crit = {
        "qual_letter": np.asarray(["A", "B", "C", "D"]),
        "probs": np.asarray([0.8, 0.6, 0.5, 0]),
        "var_avg": np.asarray([25, 35, 45, np.inf]),
        "mfrac": np.asarray([0.15, 0.20, 0.30, np.inf]),
        "stdr": np.asarray([0.5, 0.4, 0.3, 0]),
        "azimuthal_gap": 90,
        "takeoff_gap": 60,
        "num_p_pol": 8,
    }
    mech = fun.mech_quality(mech, crit)
    best = mech.iloc[0]
    out = {
        "n_accepted": int(norms.shape[1]),
        "normals": norms.T.tolist(),
        "slips": slips.T.tolist(),
        "strike": float(best["str_avg"]),
        "dip": float(best["dip_avg"]),
        "rake": float(best["rak_avg"]),
        "probability": float(best["prob"]),
        "fault_plane_uncertainty_deg": float(best["rms_diff"]),
        "aux_plane_uncertainty_deg": float(best["rms_diff_aux"]),
        "misfit": float(best["mfrac"]),
        "station_distribution_ratio": float(best["stdr"]),
        "quality": str(best["qual"]),
    }
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
