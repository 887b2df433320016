"""Sensor kinds of a synthetic network: SEED channel codes, response, what the data measure.

=============  =====================  ===========  =============================================
kind           codes (>= 80 / < 80 Hz) measures     response (StationXML and applied to signals)
=============  =====================  ===========  =============================================
broadband      HH? / BH?              velocity     flat from 1/120 Hz (2 poles, Trillium-like)
short_period   EH? / SH?              velocity     1 Hz, 0.707-damped seismometer (L-4C-like)
geophone       EP? / SP?              velocity     4.5 Hz, 0.707-damped geophone
accelerometer  HN? / BN?              acceleration flat (FBA/MEMS), data in counts per m/s^2
=============  =====================  ===========  =============================================

Channel codes follow the SEED band/instrument convention (band by sampling rate and corner
period, instrument H seismometer, P geophone, N accelerometer); Z has dip -90 (up-pointing),
N azimuth 0, E azimuth 90. Signals pass through the sensor's causal response (a bilinear
2-pole high-pass for the short-period and geophone kinds; the broadband's 120 s corner is far
below the P band and is left out of the signal; the noise spectra already include it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIGITIZER_COUNTS_PER_V = 4.0e5


@dataclass(frozen=True)
class Sensor:
    kind: str
    band_code: str
    instrument_code: str
    output: str  # "velocity" or "acceleration": what the counts are proportional to
    gain_v_per_unit: float  # V per m/s (or per m/s^2)
    corner_hz: float | None  # natural frequency of a 2-pole velocity sensor; None: flat
    sensitivity: float  # counts per m/s (or m/s^2) in the passband

    @property
    def channels(self) -> tuple[str, str, str]:
        prefix = self.band_code + self.instrument_code
        return prefix + "Z", prefix + "N", prefix + "E"

    @property
    def units(self) -> str:
        return "M/S" if self.output == "velocity" else "M/S**2"


_KINDS = {
    # kind: (band >= 80 Hz, band < 80 Hz, instrument, output, V per unit, corner Hz)
    "broadband": ("H", "B", "H", "velocity", 1500.0, 1.0 / 120.0),
    "short_period": ("E", "S", "H", "velocity", 170.0, 1.0),
    "geophone": ("E", "S", "P", "velocity", 28.8 * 16, 4.5),  # 28.8 V/(m/s) with a x16 preamp
    "accelerometer": ("H", "B", "N", "acceleration", 1.02, None),
}


def make_sensor(kind: str, sampling_rate_hz: float, sensitivity: float | None = None) -> Sensor:
    """The sensor of ``kind`` at ``sampling_rate_hz``; ``sensitivity`` overrides the default
    (gain x 4e5 counts/V)."""
    if kind not in _KINDS:
        raise ValueError(f"sensor kind must be one of {tuple(_KINDS)}, got {kind!r}")
    hi, lo, inst, output, gain, corner = _KINDS[kind]
    sens = sensitivity if sensitivity is not None else gain * DIGITIZER_COUNTS_PER_V
    return Sensor(kind, hi if sampling_rate_hz >= 80 else lo, inst, output, gain, corner, sens)


def apply_response(x: np.ndarray, sensor: Sensor, sampling_rate_hz: float) -> np.ndarray:
    """Causal sensor response on ground motion in the sensor's units (last axis = time): a
    bilinear 2-pole 0.707-damped high-pass at the short-period / geophone corner; identity for
    the broadband (corner far below the band) and the accelerometer."""
    if sensor.corner_hz is None or sensor.kind == "broadband":
        return x
    from scipy.signal import butter, lfilter

    b, a = butter(2, sensor.corner_hz, btype="highpass", fs=sampling_rate_hz)
    return lfilter(b, a, x, axis=-1)


def response(sensor: Sensor, sampling_rate_hz: float):
    """obspy Response: a poles-and-zeros sensor stage (2 zeros at 0 and 2 poles at the corner
    for velocity sensors; a flat gain for the accelerometer) and a digitizer stage."""
    from obspy.core.inventory.response import (
        CoefficientsTypeResponseStage,
        InstrumentSensitivity,
        PolesZerosResponseStage,
        Response,
    )

    if sensor.corner_hz is not None:
        w0 = 2.0 * np.pi * sensor.corner_hz
        poles = [complex(-w0 * 0.707, w0 * 0.707), complex(-w0 * 0.707, -w0 * 0.707)]
        zeros = [0j, 0j]
    else:
        poles, zeros = [], []
    f_norm = 1.0 if sensor.corner_hz is None or sensor.corner_hz < 1.0 else 5.0 * sensor.corner_hz
    s = 2j * np.pi * f_norm
    h = np.prod([s - z for z in zeros]) / np.prod([s - p for p in poles]) if poles else 1.0
    stage1 = PolesZerosResponseStage(
        stage_sequence_number=1, stage_gain=sensor.gain_v_per_unit, stage_gain_frequency=f_norm,
        input_units=sensor.units, output_units="V",
        pz_transfer_function_type="LAPLACE (RADIANS/SECOND)", normalization_frequency=f_norm,
        zeros=zeros, poles=poles, normalization_factor=float(1.0 / abs(h)),
    )  # fmt: skip
    stage2 = CoefficientsTypeResponseStage(
        stage_sequence_number=2, stage_gain=sensor.sensitivity / sensor.gain_v_per_unit,
        stage_gain_frequency=f_norm, input_units="V", output_units="COUNTS",
        cf_transfer_function_type="DIGITAL", numerator=[1.0], denominator=[],
        decimation_input_sample_rate=sampling_rate_hz, decimation_factor=1,
        decimation_offset=0, decimation_delay=0.0, decimation_correction=0.0,
    )  # fmt: skip
    sens = InstrumentSensitivity(
        value=sensor.sensitivity, frequency=f_norm, input_units=sensor.units,
        output_units="COUNTS",
    )  # fmt: skip
    return Response(instrument_sensitivity=sens, response_stages=[stage1, stage2])
