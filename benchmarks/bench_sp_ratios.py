"""Oracle: what S/P amplitude ratios can do for the swarm proxy's mechanisms.

On the swarm proxy's scenario (benchmarks/bench_swarm.py builds and caches it), every event is
inverted from its TRUE rays (azimuth, P takeoff) and TRUE polarities at all 12 stations:

* polarities only (as the mechanism stage does without ratios);
* with the true S/P ratios, log10(4.9 S/P) of the truth's radiation factors (P: |P|;
  S: sqrt(SV^2 + SH^2) on the S ray), optionally with Gaussian log10 noise (``--noise``), and
  with a bias (``--bias``: added to every ratio, as an uncorrected path/site effect would);
* with ratios MEASURED on the records (:func:`stream.amplitude.vector_amplitude` at the true P
  and S times, the stream stage's windows; HASH's S/N >= 3 against the noise before the P),
  plus each ``--correction`` (log10), and the measured ratios' bias and scatter against the
  true ones.

* the network correction estimated from the data themselves: minus the median of the
  measured ratios less those the events' polarity-only mechanisms of quality A-C (misfit
  floor 1) predict; the measured ratios inverted with it too;
* the measured ratios (and the true ones biased by -0.4 with 0.3 noise) with a free level
  (``mechanism.sp_free_level``: each event's ratios compared about their best-fitting level);
* polarities only with the misfit floor ``--badmin`` (``mechanism.badmin``: HASH's 2 leaves
  12-polarity events quality D), true and with ``--flip`` of them flipped at random.
* polarities only (misfit floor 1) from rays perturbed by ``--ray-error`` (takeoff std, degrees;
  azimuth half of it), with the trials drawn at each ``--trial-width`` (takeoff uncertainty;
  azimuth the smaller of it and 5): what the trials' width does to the quality and the accuracy.

Prints, per case, the count of mechanisms by quality, the median Kagan angle to the truth
of the A-C ones (and of all), and how many A-C ones are more than 30 degrees off. No
pipeline: this bounds what perfect picks and amplitudes give.

    FIRSTMOTION_SHARED=../shared PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_sp_ratios.py \
        [--out /tmp/bench_swarm] [--noise 0,0.15,0.3] [--bias 0,-0.3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rows(truth: dict):
    for e in truth["events"]:
        st = [s for s in e["stations"] if s.get("takeoff_deg") is not None]
        az = np.array([s["azimuth_deg"] for s in st])
        to = np.array([s["takeoff_deg"] for s in st])
        pol = np.array([1 if s["p_radiation"] >= 0 else -1 for s in st])
        p = np.abs(np.array([s["p_radiation"] for s in st]))
        s_amp = np.hypot([s["sv_radiation"] for s in st], [s["sh_radiation"] for s in st])
        with np.errstate(divide="ignore"):
            ratio = np.log10(4.9 * s_amp / p)
        yield e, az, to, pol, np.clip(ratio, np.log10(0.0005), np.log10(2000.0))


def _summary(name: str, rows: list[tuple[str, float]]) -> str:
    q = {k: sum(1 for r in rows if r[0] == k) for k in "ABCD"}
    good = [k for letter, k in rows if letter in "ABC"]
    med = f"{np.median(good):.0f}" if good else "-"
    return (
        f"{name:38s} A {q['A']:2d}  B {q['B']:2d}  C {q['C']:2d}  D {q['D']:2d}   "
        f"Kagan median A-C {med:>3s} deg, all {np.median([k for _, k in rows]):.0f} deg; "
        f"A-C > 30 deg: {sum(1 for k in good if k > 30)}"
    )


def _scored(event: dict, m) -> tuple[str, float]:
    """A mechanism's quality and its Kagan angle to the event's true one."""
    from firstmotion.kagan import kagan_angle_deg

    sdr = (event["strike"], event["dip"], event["rake"])
    return m.quality, float(kagan_angle_deg(m.strike, m.dip, m.rake, *sdr))


def main() -> None:
    from benchmarks.bench_swarm import _shared, build_scenario
    from workers.mechanism import invert
    from workers.mechanism.amplitude import predicted_log_ratio

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_swarm"))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--noise", default="0,0.15,0.3", help="log10 noise levels (comma list)")
    ap.add_argument("--bias", default="0", help="log10 biases (comma list)")
    ap.add_argument("--correction", default="0,0.4", help="log10 corrections of the measured")
    ap.add_argument("--ratmin", type=float, default=3.0, help="S/N floor of the measured")
    ap.add_argument("--badmin", default="2,1", help="misfit floors, polarities only (list)")
    ap.add_argument("--flip", default="0,0.05,0.1", help="shares of polarities flipped (list)")
    ap.add_argument("--ray-error", default="0,4,8", help="takeoff error std, deg (azimuth half)")
    ap.add_argument("--trial-width", default="10,6,3", help="trials' takeoff uncertainty, deg")
    args = ap.parse_args()
    truth = build_scenario(args.out, args.seed, _shared() / "data" / "pr2017_noise")
    events = list(_rows(truth))
    print(f"{len(events)} events, true rays and polarities")
    rng = np.random.default_rng(0)

    def run(noise: float | None, bias: float = 0.0) -> list[tuple[str, float]]:
        out = []
        for e, az, to, pol, ratio in events:
            sp = None if noise is None else ratio + bias + rng.normal(0, noise, ratio.size)
            out.append(_scored(e, invert(az, to, pol, sp_log_ratio=sp)))
        return out

    print(_summary("polarities only", run(None)))
    # the misfit floor (mechanism.badmin) with polarities only, true and partly flipped
    for flip in [float(f) for f in args.flip.split(",")]:
        for badmin in [float(b) for b in args.badmin.split(",")]:
            flips = np.random.default_rng(1)
            out = []
            for e, az, to, pol, _ in events:
                read = pol * np.where(flips.random(pol.size) < flip, -1, 1)
                out.append(_scored(e, invert(az, to, read, badmin=badmin)))
            print(_summary(f"polarities, {flip:.0%} flipped, badmin {badmin:g}", out))
    # the trials' width (the takeoff and azimuth uncertainty the 30 perturbed rays are drawn
    # from; the worker's 10 and 5 degrees) against rays as wrong as a location or a model
    # makes them: narrower trials raise the quality, not the accuracy
    for err in [float(x) for x in args.ray_error.split(",")]:
        for width in [float(w) for w in args.trial_width.split(",")]:
            wrong = np.random.default_rng(1)
            out = []
            for e, az, to, pol, _ in events:
                to_e = np.clip(to + wrong.normal(0.0, err, to.size), 0.0, 180.0)
                az_e = az + wrong.normal(0.0, err / 2, az.size)
                m = invert(az_e, to_e, pol, badmin=1.0, takeoff_unc_deg=width,
                           azimuth_unc_deg=min(5.0, width))  # fmt: skip
                out.append(_scored(e, m))
            print(_summary(f"rays off {err:g} deg, trials {width:g} deg, badmin 1", out))
    for bias in [float(b) for b in args.bias.split(",")]:
        for noise in [float(x) for x in args.noise.split(",")]:
            print(_summary(f"+ ratios, noise {noise:g}, bias {bias:+g} (log10)", run(noise, bias)))

    measured = _measured(args.out / "scenario", truth, args.ratmin)
    true_all = np.concatenate([r for *_, r in events])
    meas_all = np.concatenate(measured)
    ok = np.isfinite(meas_all)
    diff = meas_all[ok] - true_all[ok]
    print(
        f"measured on the records at the true times: {ok.sum()} of {ok.size} pass S/N >= "
        f"{args.ratmin:g}; "
        f"measured - true log10 S/P: median {np.median(diff):+.2f}, MAD "
        f"{np.median(np.abs(diff - np.median(diff))):.2f}, "
        f"correlation {np.corrcoef(meas_all[ok], true_all[ok])[0, 1]:.2f}"
    )
    # the network's correction from its own data: the measured ratios against the ones the
    # events' polarity-only mechanisms of quality A-C (misfit floor 1) predict
    residuals, n_mech = [], 0
    for (_, az, to, pol, _), sp in zip(events, measured, strict=True):
        m = invert(az, to, pol, badmin=1.0)
        ok = np.isfinite(sp)
        if m.quality in "ABC" and ok.any():
            pred = predicted_log_ratio(m.strike, m.dip, m.rake, az[ok], to[ok])
            residuals.extend(sp[ok] - pred)
            n_mech += 1
    calibrated = -float(np.median(residuals)) if residuals else 0.0
    print(f"calibrated from {n_mech} A-C polarity mechanisms (badmin 1), {len(residuals)} "
          f"ratios: correction {calibrated:+.2f}")  # fmt: skip
    corrections = [float(c) for c in args.correction.split(",")] + [round(calibrated, 2)]
    for corr in corrections:
        for badmin in [float(b) for b in args.badmin.split(",")]:
            out = []
            for (e, az, to, pol, _), sp in zip(events, measured, strict=True):
                out.append(_scored(e, invert(az, to, pol, sp_log_ratio=sp + corr, badmin=badmin)))
            print(_summary(f"+ measured ratios {corr:+g}, badmin {badmin:g}", out))
    # the free level: each event's ratios compared about their best-fitting level (no
    # correction; mechanism.sp_free_level), measured and biased true ratios
    for badmin in [float(b) for b in args.badmin.split(",")]:
        out, out_true = [], []
        noisy = np.random.default_rng(2)
        for (e, az, to, pol, ratio), sp in zip(events, measured, strict=True):
            m = invert(az, to, pol, sp_log_ratio=sp, badmin=badmin, sp_free_level=True)
            out.append(_scored(e, m))
            biased = ratio - 0.4 + noisy.normal(0.0, 0.3, ratio.size)
            m = invert(az, to, pol, sp_log_ratio=biased, badmin=badmin, sp_free_level=True)
            out_true.append(_scored(e, m))
        print(_summary(f"+ measured ratios, free level, badmin {badmin:g}", out))
        print(_summary(f"+ true -0.4 +0.3 noise, free level, badmin {badmin:g}", out_true))


def _measured(scenario: Path, truth: dict, ratmin: float) -> list[np.ndarray]:
    """Per event, log10(S/P) measured on the records at the true P and S times (NaN where
    S/N < ``ratmin`` or the windows are missing), in the order of :func:`_rows`."""
    import obspy
    from obspy import UTCDateTime

    from stream.amplitude import AmplitudeParams, span_samples, vector_amplitude
    from workers.mechanism.amplitude import observed_log_ratio

    st = obspy.read(str(scenario / "mseed" / "*.mseed"))
    params = AmplitudeParams()
    out = []
    for e in truth["events"]:
        ratios = []
        for s in e["stations"]:
            if s.get("takeoff_deg") is None:
                continue
            tr = st.select(network=s["network"], station=s["station"])
            amps = []
            for key in ("p_time", "s_time"):
                rate = tr[0].stats.sampling_rate
                before, after = span_samples(params, rate)
                i = int(round((UTCDateTime(s[key]) - tr[0].stats.starttime) * rate))
                if len(tr) < 3 or i - before < 0 or i + after > min(c.stats.npts for c in tr):
                    break
                x = np.stack([c.data[i - before : i + after].astype(float) for c in tr])
                amps.append(vector_amplitude(x, rate, before, params))
            if len(amps) < 2:
                ratios.append(np.nan)
                continue
            (ap, noise), (as_, _) = amps
            ratios.append(float(observed_log_ratio(ap, as_, noise, noise, ratmin=ratmin)))
        out.append(np.array(ratios))
    return out


if __name__ == "__main__":
    main()
