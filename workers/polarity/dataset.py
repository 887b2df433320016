"""Training and evaluation windows for the polarity model, from the scenario physics.

Each example is a raw vertical row at a random sampling rate (40-500 Hz) holding

* a P pulse from :func:`firstmotion.synth.p_pulse` (Brune source, causal t* attenuation;
  displacement, velocity or acceleration as the instrument records it), impulsive or emergent,
  with random sign (a whole-trace polarity flip carries the flipped label), plus later arrivals
  (coda, reflections, converted phases) of random sign that may be larger than the first motion;
* noise: synthetic ambient noise of the four instrument profiles of
  :func:`firstmotion.synth.ambient_noise` (broadband rows carry microseism and drift far larger
  than the first motion) or REAL noise: the hour of PR network EHZ data in
  ``shared/data/pr2017_noise`` and the pre-P noise of the TexNet records (ending 5 s before the
  first P pick of each station, so no evaluation window's context is trained on), resampled to
  the row's rate; optionally extra drift up to 1000x the noise;
* a pick error: the window is cut at the pick, the onset lies ``err`` later, ``err`` Laplacian
  with a scale drawn log-uniformly in 1-40 ms (an analyst or AIC on an impulsive onset up to
  an STA/LTA picker on an emergent one), clipped to +-0.1 s (optionally, for
  ``detector_error_fraction`` of the signals, ``-err`` is drawn from the errors of this
  project's own picker measured on a scenario, :func:`detector_pick_errors`); and for
  ``mispick_fraction`` of the signals a pick that is not on the onset at all (0.15-0.6 s off:
  a trigger on noise before the P, or inside its coda), labelled unknown, so that the model
  reads the first motion AT the pick rather than any onset in view;
* later arrivals (reflections and conversions, site reverberation in a soft layer, a scattered
  coda building up over 0.05-1.5 s), all strictly after the onset, so that the first lobe is
  often the smallest swing of the P train, as on regional records; t* up to 0.12 s; emergent
  onsets are sources whose moment rate builds up over ``emergence_s``
  (:func:`firstmotion.synth.p_pulse`: the far-field displacement keeps one sign); for
  ``envelope_emergence_share`` of them the later arrivals build up under the same ramp
  (scattered energy growing with the onset), so a later swing of either sign can outgrow the
  first lobe: those are labelled unknown below a first-lobe SNR of
  ``envelope_unknown_below_snr`` (3). Until dataset 10 the ramp multiplied the recorded
  velocity (or acceleration) of the direct P itself, which implies a displacement that
  changes sign and made small first lobes before larger opposite swings that no rupture makes
  (docs/polarity-history.md, ``polarity_v10``);
* for ``digitizer_fraction`` of the signals, the datalogger's anti-alias FIR at the row's rate
  (Kaiser-window low-pass, corner 0.38-0.47 of the rate): mostly linear phase with its delay
  removed, as most dataloggers deliver by default, which rings *before* a sharp onset (a
  precursor of either sign, up to ~9% of the step: Scherbaum & Bouin 1997), else its minimum
  phase twin (causal). The label and the SNR come from the first lobe of the signal before
  that FIR (the ground's first motion in the model's band), never from the precursor;
* (dataset 9, off by default) for ``sharp_onset_fraction`` of the signals an impulsive source
  with its corner near the row's Nyquist and t* under a sample, so the onset carries energy up
  to the FIR corner and a linear-phase FIR rings 1-9% of the swing before it (the default
  sources ring ~0.1%: they carry little energy near the corner); for ``weak_first_fraction``
  a true weak first lobe followed 10-80 ms later by a 3-50x larger arrival of the opposite
  sign, labelled with the first lobe's sign (a physical first lobe has the source pulse's
  width; a FIR precursor oscillates at ~2-2.5 samples, grows towards the onset and starts half
  the filter's length before it); for ``wide_pick_error_fraction`` the onset lies uniformly
  within +-60 ms of the pick (real pickers: -20..+27 ms for 10-90%, tails to 50 ms), labelled.

The windows go through exactly the serving path (:func:`workers.polarity.preprocess.
linear_windows`, then :func:`~workers.polarity.preprocess.normalise_windows`). Since the
linear part is linear, signal and noise are processed separately and mixed at the target
signal-to-noise ratio, defined as the model sees it:

    snr = |first-lobe peak of the processed signal| / std(processed noise over the window)

(the first lobe of pulse + later arrivals: the first motion as a reader sees it).

The target snr is log-uniform in ``snr_range`` (0.3-100), and for ``loud_fraction`` of the
signals in ``loud_snr_range`` (100-1e5): loud stations are the best a network has, and a model
that never saw them read them with random sign.

Labels: 0 up, 1 down, 2 unknown. Unknown = noise-only windows, mispicked windows and near-nodal /
drowned first motions (``snr < unknown_below_snr``). ``snr`` is 0 for rows with no first motion
at the pick (noise-only and mispicked).

.. seealso:: Ross et al. (2018) and Uchide (2020) (flip augmentation); Hardebeck & Shearer
   (2002) (near-nodal polarities are the unreliable ones).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import signal

from firstmotion import synth
from firstmotion.event_catalogs import arrival_phase
from workers.polarity.preprocess import (
    PreprocessConfig,
    linear_windows,
    normalise_windows,
    resampling_ratio,
)

LABEL_UP, LABEL_DOWN, LABEL_UNKNOWN = 0, 1, 2
# the stream stage's measured pick errors, packaged with firstmotion (see detector_pick_errors)
_DETECTOR_ERRORS = Path(synth.__file__).resolve().parent / "data" / "detector_pick_errors.json"
# bump when the generated windows change for the same configuration (invalidates caches)
DATASET_VERSION = 11
# drawn uniformly: 100 and 200 Hz (the common rates) twice as often as the others
TRAINING_RATES_HZ = (40.0, 50.0, 80.0, 100.0, 100.0, 125.0, 200.0, 200.0, 250.0, 500.0)
PROFILE_OUTPUT = {
    "broadband": "velocity",
    "short_period": "velocity",
    "geophone": "velocity",
    "accelerometer": "acceleration",
}


def shared_data_dir() -> Path:
    """``shared/data`` beside the repository checkout, or beside one of its parent folders (a
    worktree inside a folder of worktrees); ``$FIRSTMOTION_SHARED_DATA`` wins when set. May not
    exist."""
    env = os.environ.get("FIRSTMOTION_SHARED_DATA")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2]
    for parent in checkout.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return checkout.parent / "shared" / "data"


@dataclass(frozen=True)
class SamplerConfig:
    """Distribution of the generated examples (stored in the model card)."""

    rates_hz: tuple[float, ...] = TRAINING_RATES_HZ
    row_s: float = 6.0
    pick_s: float = 4.0
    noise_only_fraction: float = 0.3
    snr_range: tuple[float, float] = (0.3, 100.0)
    # and loud stations: without them the model reversed SNR > 300 onsets (out of range)
    loud_fraction: float = 0.15
    loud_snr_range: tuple[float, float] = (100.0, 1e5)
    unknown_below_snr: float = 1.0
    pick_error_scale_s_range: tuple[float, float] = (0.001, 0.04)
    pick_error_max_s: float = 0.1
    # a share of the picks may carry the stream stage's own errors, drawn from its measured table
    # (firstmotion/data/detector_pick_errors.json: late by 8 ms median, 0.5-57 ms for 98%).
    # Off: a model trained with 0.5 read the demo's detector picks no better (README)
    detector_error_fraction: float = 0.0
    # picks that are not on the onset (a noise trigger before the P, a pick in the P coda):
    # the onset lies 0.15-0.6 s from the pick, so there is no first motion AT the pick and the
    # label is unknown; this anchors the model to the pick instead of any onset in view
    mispick_fraction: float = 0.08
    mispick_offset_s_range: tuple[float, float] = (0.15, 0.6)
    corner_hz_range: tuple[float, float] = (0.8, 50.0)
    tstar_s_range: tuple[float, float] = (0.001, 0.12)
    emergent_fraction: float = 0.3
    emergence_s_range: tuple[float, float] = (0.02, 0.4)
    # emergent onsets whose later arrivals build up under the source's ramp (the scattered
    # energy grows with it), so a later swing of either sign may outgrow the direct P's first
    # lobe; such rows are unknown below ``envelope_unknown_below_snr`` (first-lobe SNR). 0: the
    # ramp shapes the direct P's source only
    # (polarity_v3 and before: read with the wrong sign 43% of the scenario's emergent onsets
    # at first-lobe SNR < 3, README "the scenario set")
    envelope_emergence_share: float = 0.5
    envelope_unknown_below_snr: float = 3.0
    secondary_fraction: float = 0.7
    secondary_amplitude_range: tuple[float, float] = (0.2, 2.0)
    secondary_delay_s_range: tuple[float, float] = (0.05, 1.0)
    # site reverberation (a soft layer over rock): multiples every 2h/v, ratio c per bounce
    reverb_fraction: float = 0.4
    reverb_delay_s_range: tuple[float, float] = (0.015, 0.25)
    reverb_ratio_range: tuple[float, float] = (0.3, 0.85)
    # scattered P coda: many weak arrivals under an envelope that builds up then decays, its
    # peak up to 6x the first lobe (regional Pn is often the smallest swing of the P train)
    coda_fraction: float = 0.5
    coda_peak_range: tuple[float, float] = (0.3, 6.0)
    coda_rise_s_range: tuple[float, float] = (0.05, 1.5)
    # the datalogger's anti-alias FIR (corner as a fraction of the row's rate, taps at that rate)
    digitizer_fraction: float = 0.5
    digitizer_linear_phase_share: float = 0.75
    digitizer_corner_range: tuple[float, float] = (0.38, 0.47)
    digitizer_taps_range: tuple[int, int] = (31, 161)
    # sharp impulsive onsets (all off by default: the windows of dataset 8 are unchanged): a
    # share of the sources with a corner near the row's Nyquist and t* under a sample, so the
    # onset carries energy up to the FIR corner and a linear-phase FIR rings before it at a
    # realistic size (1-9% of the swing: the Gibbs precursor of the datalogger's final
    # decimation stage, Scherbaum & Bouin 1997); they pass a digitizer FIR with probability
    # ``sharp_digitizer_fraction`` (linear phase as ``digitizer_linear_phase_share``)
    sharp_onset_fraction: float = 0.0
    sharp_corner_fraction_range: tuple[float, float] = (0.1, 0.45)  # of the row's rate
    sharp_tstar_samples_range: tuple[float, float] = (0.02, 1.0)  # t* in samples of the row
    sharp_digitizer_fraction: float = 0.85
    # the Kaiser beta of those rows' FIRs (the other rows' FIRs: 4-10); a smaller beta keeps
    # more of the ideal low-pass's Gibbs ringing, as the steep equiripple final stages of real
    # dataloggers do (up to 8.95% of a step before it)
    sharp_kaiser_beta_range: tuple[float, float] = (4.0, 10.0)
    # true small first motions: a weak first lobe followed, within the pulse's own width or a
    # little later, by a larger arrival of the opposite sign; labelled with the FIRST lobe's
    # sign (the ground's first motion), so the model must tell it from a FIR precursor by shape
    weak_first_fraction: float = 0.0
    weak_first_delay_s_range: tuple[float, float] = (0.01, 0.08)
    weak_first_ratio_range: tuple[float, float] = (3.0, 50.0)  # later arrival / first lobe
    # wider pick errors: for this share the onset lies uniformly within the range from the
    # pick (real pickers: -20..+27 ms for 10-90%, tails to 50 ms) and keeps its label
    wide_pick_error_fraction: float = 0.0
    wide_pick_error_s_range: tuple[float, float] = (-0.06, 0.06)
    real_noise_fraction: float = 0.5
    drift_fraction: float = 0.3
    drift_ratio_range: tuple[float, float] = (1.0, 1000.0)

    def hard(self) -> SamplerConfig:
        """The harder evaluation mix: mostly real noise, more drift, emergence and coda."""
        return replace(
            self,
            real_noise_fraction=0.8,
            drift_fraction=0.6,
            emergent_fraction=0.5,
            secondary_fraction=0.9,
            secondary_amplitude_range=(0.3, 3.0),
            reverb_fraction=0.5,
            coda_fraction=0.7,
            mispick_fraction=0.0,  # evaluated on their own (noise-only stays pure noise)
        )


@dataclass(frozen=True)
class NoiseRecord:
    """A stretch of real noise: samples (float64) at ``sampling_rate_hz``, with its origin."""

    source: str
    sampling_rate_hz: float
    samples: np.ndarray


def load_real_noise(data_dir: Path | None = None, exclude_before_p_s: float = 5.0) -> list:
    """Real noise records: pr2017 EHZ hours and TexNet pre-P vertical noise (empty if absent).

    TexNet noise of a station ends ``exclude_before_p_s`` before its first P pick in the
    QuakeML (or 2 s after the origin time for stations without a P pick).
    """
    import obspy  # local: heavy, only when real noise is asked for

    data_dir = shared_data_dir() if data_dir is None else Path(data_dir)
    records: list[NoiseRecord] = []
    for path in sorted((data_dir / "pr2017_noise").glob("*EHZ*.mseed")):
        for tr in obspy.read(str(path)):
            records.append(
                NoiseRecord(tr.id, float(tr.stats.sampling_rate), tr.data.astype(np.float64))
            )
    for qml in sorted((data_dir / "texnet2017").glob("*.qml")):
        mseed = qml.with_suffix(".mseed")
        if not mseed.exists():
            continue
        event = obspy.read_events(str(qml))[0]
        origin_time = event.preferred_origin() or event.origins[0]
        first_p: dict[str, obspy.UTCDateTime] = {}
        for pick in event.picks:
            if arrival_phase(pick.phase_hint or "") == "P":
                sta = pick.waveform_id.station_code
                first_p[sta] = min(first_p.get(sta, pick.time), pick.time)
        for tr in obspy.read(str(mseed)).select(channel="??Z"):
            sta = tr.stats.station
            end = first_p[sta] - exclude_before_p_s if sta in first_p else origin_time.time + 2.0
            part = tr.slice(endtime=end)
            if part.stats.npts > 20 * part.stats.sampling_rate:
                records.append(
                    NoiseRecord(
                        f"{tr.id}:preP", float(tr.stats.sampling_rate), part.data.astype(float)
                    )
                )
    return records


class _Signals(NamedTuple):
    """Signal rows of one rate from :meth:`WindowSampler._signal_rows`."""

    prim: np.ndarray  # (m, n) primary pulses, first motion up (after any digitizer FIR)
    sec: np.ndarray  # (m, n) later arrivals (after the same FIR)
    mispicked: np.ndarray  # (m,) onset mispick_offset_s_range away from the pick
    envelope: np.ndarray  # (m,) emergent under an envelope over the direct P and later arrivals
    through_fir: np.ndarray  # (m,) went through a digitizer FIR
    causal_fir: np.ndarray  # (through_fir.sum(), n) those rows' prim + sec before the FIR


class WindowSampler:
    """Generates labelled model windows; deterministic for a given seed.

    ``sample(n)`` returns (windows float32 (n, W) or (n, 2, W), labels int64 (n,), snr float32 (n,),
    rate_hz float32 (n,)); snr is 0 for noise-only rows.
    """

    def __init__(
        self,
        preprocess: PreprocessConfig,
        config: SamplerConfig | None = None,
        real_noise: list | None = None,
        seed: int = 0,
        pick_error_s: float | None = None,
    ) -> None:
        self.pre = preprocess
        self.cfg = config or SamplerConfig()
        self.real_noise = list(real_noise or [])
        # evaluation only: every non-mispicked onset this far after its pick (s; < 0: the
        # pick is late), instead of the config's random pick errors
        self.pick_error_s = pick_error_s
        self.rng = np.random.default_rng(seed)
        self._synthetic: dict[tuple[str, float], np.ndarray] = {}
        # evaluation only: a list to which each sample() call appends its raw rows, one
        # (row indices, rate in Hz, rows (n, L) float64, pick sample) per rate, to run them
        # through the whole reader (classify) rather than the network alone
        self.raw_rows: list | None = None

    # ----------------------------------------------------------- noise sources
    def _synthetic_noise(self, profile: str, rate_hz: float, n: int) -> np.ndarray:
        key = (profile, rate_hz)
        if key not in self._synthetic:
            self._synthetic[key] = synth.ambient_noise(
                int(600 * rate_hz), rate_hz, self.rng, profile=profile
            )
        rec = self._synthetic[key]
        start = self.rng.integers(0, rec.size - n)
        return rec[start : start + n].copy()

    def _real_noise(self, rate_hz: float, n: int) -> np.ndarray | None:
        if not self.real_noise:
            return None
        # half from the continuous PR hour, half from the TexNet pre-P stretches (when both)
        groups = [
            [r for r in self.real_noise if not r.source.endswith(":preP")],
            [r for r in self.real_noise if r.source.endswith(":preP")],
        ]
        groups = [g for g in groups if g]
        group = groups[self.rng.integers(len(groups))]
        rec = group[self.rng.integers(len(group))]
        up, down = resampling_ratio(rec.sampling_rate_hz, rate_hz)
        n_src = int(np.ceil((n + 64) * down / up)) + 64
        if rec.samples.size <= n_src:
            return None
        start = self.rng.integers(0, rec.samples.size - n_src)
        part = rec.samples[start : start + n_src]
        part = part - part.mean()
        if (up, down) != (1, 1):
            part = signal.resample_poly(part, up, down)
        return part[32 : 32 + n]

    def _noise_row(self, rate_hz: float, n: int, real_fraction: float) -> np.ndarray:
        rng, cfg = self.rng, self.cfg
        row = None
        if rng.random() < real_fraction:
            row = self._real_noise(rate_hz, n)
        if row is None:
            profile = synth.PROFILES[rng.integers(len(synth.PROFILES))]
            row = self._synthetic_noise(profile, rate_hz, n)
        if rng.random() < 0.5:
            row = -row
        if rng.random() < cfg.drift_fraction:
            scale = np.std(row) * _log_uniform(rng, *cfg.drift_ratio_range)
            t = np.arange(n) / rate_hz
            f_slow = _log_uniform(rng, 0.02, 0.5)
            row = row + scale * (
                rng.uniform(-1, 1) * t / t[-1]
                + rng.uniform(0, 1) * np.sin(2 * np.pi * f_slow * t + rng.uniform(0, 2 * np.pi))
            )
        return row

    # ----------------------------------------------------------- signal
    def _signal_rows(self, rate_hz: float, n: int, m: int) -> _Signals:
        """``m`` signal rows of ``n`` samples at ``rate_hz`` (see :class:`_Signals`)."""
        rng, cfg = self.rng, self.cfg
        prim = np.zeros((m, n))
        sec = np.zeros((m, n))
        through_fir = np.zeros(m, dtype=bool)
        envelope = np.zeros(m, dtype=bool)
        causal = []  # prim + sec before the FIR, for the rows that pass one
        mispicked = rng.random(m) < cfg.mispick_fraction
        for i in range(m):
            if mispicked[i]:
                err = _log_uniform(rng, *cfg.mispick_offset_s_range) * rng.choice([-1.0, 1.0])
            elif self.pick_error_s is not None:
                err = float(self.pick_error_s)
            elif cfg.wide_pick_error_fraction > 0 and rng.random() < cfg.wide_pick_error_fraction:
                err = float(rng.uniform(*cfg.wide_pick_error_s_range))
            elif cfg.detector_error_fraction > 0 and rng.random() < cfg.detector_error_fraction:
                table = detector_pick_errors()
                err = -float(table[rng.integers(table.size)])  # a late pick: onset before it
            else:
                err = float(
                    np.clip(
                        rng.laplace(0.0, _log_uniform(rng, *cfg.pick_error_scale_s_range)),
                        -cfg.pick_error_max_s,
                        cfg.pick_error_max_s,
                    )
                )
            onset = cfg.pick_s + err
            sharp = cfg.sharp_onset_fraction > 0 and rng.random() < cfg.sharp_onset_fraction
            if sharp:  # broadband up to the FIR corner: impulsive, corner near Nyquist
                fc = min(_log_uniform(rng, *cfg.sharp_corner_fraction_range), 0.45) * rate_hz
                tstar = _log_uniform(rng, *cfg.sharp_tstar_samples_range) / rate_hz
                emergence = 0.0
            else:
                fc = min(_log_uniform(rng, *cfg.corner_hz_range), 0.45 * rate_hz)
                tstar = _log_uniform(rng, *cfg.tstar_s_range)
                emergence = (
                    _log_uniform(rng, *cfg.emergence_s_range)
                    if rng.random() < cfg.emergent_fraction
                    else 0.0
                )
            profile_output = list(PROFILE_OUTPUT.values())[rng.integers(len(PROFILE_OUTPUT))]
            output = profile_output if rng.random() < 0.8 else synth.OUTPUTS[rng.integers(3)]
            envelope[i] = (
                emergence > 0
                and cfg.envelope_emergence_share > 0
                and rng.random() < cfg.envelope_emergence_share
            )
            pulse = synth.p_pulse(n, rate_hz, onset, fc, tstar, output=output,
                                  emergence_s=emergence)  # fmt: skip
            prim[i] = pulse
            sec[i] = self._later_arrivals(pulse, rate_hz)
            if cfg.weak_first_fraction > 0 and rng.random() < cfg.weak_first_fraction:
                # a larger arrival of the opposite sign after a weak first lobe (at least two
                # samples later: one sample before a sharp onset is what a FIR rings)
                d = max(int(round(rng.uniform(*cfg.weak_first_delay_s_range) * rate_hz)), 2)
                ratio = _log_uniform(rng, *cfg.weak_first_ratio_range)
                if d < n:
                    sec[i][d:] -= ratio * pulse[:-d]
            if envelope[i]:  # the scattered energy builds up with the slow source
                sec[i] *= synth.emergence_ramp(n, rate_hz, onset, emergence)
            fir = (
                self._digitizer_fir(
                    rate_hz, cfg.sharp_digitizer_fraction, cfg.sharp_kaiser_beta_range
                )
                if sharp
                else self._digitizer_fir(rate_hz)
            )
            if fir is not None:
                taps, delay = fir
                causal.append(pulse + sec[i])
                prim[i] = np.convolve(pulse, taps)[delay : delay + n]
                sec[i] = np.convolve(sec[i], taps)[delay : delay + n]
                through_fir[i] = True
        return _Signals(
            prim, sec, mispicked, envelope, through_fir, np.array(causal).reshape(-1, n)
        )

    def _digitizer_fir(
        self,
        rate_hz: float,
        fraction: float | None = None,
        kaiser_beta_range: tuple[float, float] = (4.0, 10.0),
    ) -> tuple[np.ndarray, int] | None:
        """A datalogger's anti-alias FIR at ``rate_hz`` with probability ``fraction`` (default
        ``digitizer_fraction``) and the delay its timing removes, or None (no draw at all when
        the fraction is 0)."""
        rng, cfg = self.rng, self.cfg
        fraction = cfg.digitizer_fraction if fraction is None else fraction
        if fraction <= 0 or rng.random() >= fraction:
            return None
        lo, hi = cfg.digitizer_taps_range
        n_taps = 2 * int(rng.integers(lo // 2, hi // 2 + 1)) + 1
        corner = rng.uniform(*cfg.digitizer_corner_range)  # fraction of the sampling rate
        taps = signal.firwin(
            n_taps, 2.0 * corner, window=("kaiser", rng.uniform(*kaiser_beta_range))
        )
        if rng.random() < cfg.digitizer_linear_phase_share:
            return taps, (n_taps - 1) // 2  # zero phase once the delay is removed
        return signal.minimum_phase(taps, method="homomorphic"), 0

    def _later_arrivals(self, pulse: np.ndarray, rate_hz: float) -> np.ndarray:
        """The arrivals after the direct P (n,): copies of ``pulse`` at delays from its onset.

        The direct P is the unit impulse at delay 0 (left out here); later terms are discrete
        arrivals (reflections, conversions, Pg after Pn), site reverberation and scattered coda.
        Every term is strictly later than the onset, so the first motion's sign is the
        source's, but its first lobe may be the smallest swing of the record.
        """
        rng, cfg = self.rng, self.cfg
        n = pulse.size
        g = np.zeros(n)
        out = np.zeros(n)
        if rng.random() < cfg.secondary_fraction:
            for _ in range(rng.integers(1, 4)):
                delay = int(rng.uniform(*cfg.secondary_delay_s_range) * rate_hz)
                amp = _log_uniform(rng, *cfg.secondary_amplitude_range) * rng.choice([-1, 1])
                if 0 < delay < n:
                    g[delay] += amp
        if rng.random() < cfg.reverb_fraction:
            tau = _log_uniform(rng, *cfg.reverb_delay_s_range)
            ratio = rng.uniform(*cfg.reverb_ratio_range) * rng.choice([-1.0, 1.0])
            k = 1
            while abs(ratio) ** k > 0.02 and int(round(k * tau * rate_hz)) < n:
                g[max(1, int(round(k * tau * rate_hz)))] += ratio**k
                k += 1
        if rng.random() < cfg.coda_fraction:
            rise = _log_uniform(rng, *cfg.coda_rise_s_range)
            decay = rise * _log_uniform(rng, 1.0, 5.0)
            m = int(rng.integers(20, 200))
            t = rng.uniform(0.01, min(4.0, (n - 1) / rate_hz), m)
            env = np.where(t < rise, t / rise, np.exp(-(t - rise) / decay))
            idx = np.clip(np.round(t * rate_hz).astype(int), 1, n - 1)
            coda = np.zeros(n)
            np.add.at(coda, idx, rng.normal(size=m) * env)
            coda_trace = signal.fftconvolve(pulse, coda)[:n]
            peak = np.max(np.abs(coda_trace))
            if peak > 0:  # the pulse's first lobe is 1
                out += coda_trace * _log_uniform(rng, *cfg.coda_peak_range) / peak
        if g.any():
            out += signal.fftconvolve(pulse, g)[:n]
        # exactly causal: the FFT's round-off must not put anything at or before the onset
        out[: int(np.argmax(pulse != 0)) + 1] = 0.0
        return out

    # ----------------------------------------------------------- examples
    def sample(self, n_examples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rng, cfg, pre = self.rng, self.cfg, self.pre
        rates = np.asarray(cfg.rates_hz)[rng.integers(len(cfg.rates_hz), size=n_examples)]
        shape = (pre.window_samples,) if pre.n_channels == 1 else (2, pre.window_samples)
        windows = np.zeros((n_examples, *shape), dtype=np.float32)
        labels = np.full(n_examples, LABEL_UNKNOWN, dtype=np.int64)
        snr = np.zeros(n_examples, dtype=np.float32)
        for rate in np.unique(rates):
            rows = np.flatnonzero(rates == rate)
            n = int(round(cfg.row_s * rate))
            pick = np.full(rows.size, int(round(cfg.pick_s * rate)))
            noise = np.stack(
                [self._noise_row(float(rate), n, cfg.real_noise_fraction) for _ in rows]
            )
            noise_w, reasons = linear_windows(noise, rate, pick, pre)
            has_signal = rng.random(rows.size) >= cfg.noise_only_fraction
            mixed = noise_w.copy()
            if has_signal.any():
                k = np.flatnonzero(has_signal)
                sig = self._signal_rows(float(rate), n, k.size)
                prim_w, _ = linear_windows(sig.prim, rate, pick[k], pre)
                sec_w, _ = linear_windows(sig.sec, rate, pick[k], pre)
                first = visible_first_lobe(prim_w + sec_w)
                fir = sig.through_fir
                if fir.any():  # the first motion as the ground made it, not the FIR's precursor
                    causal_w, _ = linear_windows(sig.causal_fir, rate, pick[k][fir], pre)
                    first[fir] = visible_first_lobe(causal_w)
                mispicked = sig.mispicked
                noise_std = noise_w[k].std(axis=1)
                target = np.exp(rng.uniform(*np.log(cfg.snr_range), size=k.size))
                loud = rng.random(k.size) < cfg.loud_fraction
                target[loud] = np.exp(rng.uniform(*np.log(cfg.loud_snr_range), size=loud.sum()))
                visible = (first > 0) & (noise_std > 0)
                gain = np.where(visible, target * noise_std / np.where(visible, first, 1.0), 0.0)
                ok = visible & ~mispicked  # a first motion at the pick, to be read
                sign = rng.choice([-1.0, 1.0], size=k.size)
                mixed[k] += (sign * gain)[:, None] * (prim_w + sec_w)
                if self.raw_rows is not None:
                    noise[k] += (sign * gain)[:, None] * (sig.prim + sig.sec)
                row_label = np.where(sign > 0, LABEL_UP, LABEL_DOWN)
                readable = (target >= cfg.unknown_below_snr) & ~(
                    sig.envelope & (target < cfg.envelope_unknown_below_snr)
                )
                row_label = np.where(ok & readable, row_label, LABEL_UNKNOWN)
                labels[rows[k]] = row_label
                snr[rows[k]] = np.where(ok, target, 0.0)
            win, reasons = normalise_windows(mixed, reasons, pre)
            windows[rows] = win
            if self.raw_rows is not None:
                self.raw_rows.append((rows, float(rate), noise, int(pick[0])))
        return windows, labels, snr, rates.astype(np.float32)


@lru_cache(maxsize=1)
def detector_pick_errors() -> np.ndarray:
    """Signed pick errors (pick - true P, s) of the stream stage's picker on a scenario.

    From ``firstmotion/data/detector_pick_errors.json``, written by
    ``python benchmarks/bench_detect.py --stations 60 --events 20 --save-pick-errors ...``.
    """
    return np.asarray(_detector_errors_doc()["signed_errors_s"], dtype=np.float64)


def detector_pick_errors_sha256() -> str:
    """Digest of the table (part of a cached dataset's key)."""
    return hashlib.sha256(_DETECTOR_ERRORS.read_bytes()).hexdigest()


def _detector_errors_doc() -> dict:
    return json.loads(_DETECTOR_ERRORS.read_text())


def visible_first_lobe(composite: np.ndarray, rel_threshold: float = 1e-4) -> np.ndarray:
    """Peak (n,) of the first lobe of processed signal rows whose first motion is UP.

    The lobe starts at the first sample above ``rel_threshold`` x the row's max (the causal
    preprocessing leaves no precursor, so this is the onset however small the first lobe is
    next to later swings) and ends at the first sign change. Rows whose first lobe is not
    positive (a filter artefact) give 0, i.e. no readable first motion.
    """
    amax = np.max(np.abs(composite), axis=1, keepdims=True)
    live = np.abs(composite) > rel_threshold * np.where(amax > 0, amax, np.inf)
    has = live.any(axis=1)
    i0 = np.where(has, np.argmax(live, axis=1), 0)
    rows = np.arange(composite.shape[0])
    positive = composite[rows, i0] > 0
    idx = np.arange(composite.shape[1])[None, :]
    after = idx >= i0[:, None]
    broken = after & (composite <= 0)
    within = after & (np.cumsum(broken, axis=1) == 0)
    peak = np.max(np.where(within, composite, 0.0), axis=1)
    return np.where(has & positive, peak, 0.0)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def generate_dataset(
    n_examples: int,
    preprocess: PreprocessConfig,
    config: SamplerConfig | None = None,
    seed: int = 0,
    real_noise: list | None = None,
    chunk: int = 2000,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """``n_examples`` labelled windows in chunks (tqdm bar when ``progress``)."""
    sampler = WindowSampler(preprocess, config, real_noise, seed)
    parts = []
    chunks = range(0, n_examples, chunk)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="generating windows", unit="chunk")
    for start in chunks:
        parts.append(sampler.sample(min(chunk, n_examples - start)))
    w, y, s, r = (np.concatenate(p) for p in zip(*parts, strict=True))
    return {"windows": w, "labels": y, "snr": s, "rate_hz": r}
