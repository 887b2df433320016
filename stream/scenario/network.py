"""Station layout and StationXML (obspy Inventory) of a synthetic network."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firstmotion.geodesy import offset_latlon
from stream.scenario.config import ScenarioConfig

CHANNELS = (("HHZ", 0.0, -90.0), ("HHN", 0.0, 0.0), ("HHE", 90.0, 0.0))  # code, azimuth, dip
SENSOR_GAIN_V_PER_M_S = 1500.0


@dataclass(frozen=True)
class Station:
    network: str
    code: str
    latitude_deg: float
    longitude_deg: float
    elevation_m: float
    north_km: float
    east_km: float
    noise_rms_m_s: float  # ground-velocity noise RMS above 1 Hz (vertical)
    reversed: bool = False  # Z wired upside down: recorded polarity is flipped

    @property
    def nslc_prefix(self) -> str:
        return f"{self.network}.{self.code}."


def spread_points_km(n: int, size_km: float, rng: np.random.Generator, candidates: int = 24):
    """``n`` points in a ``size_km`` square centred on 0, random but not clustered: Mitchell's
    (1991) best-candidate sampling (each point is the candidate farthest from all earlier ones).
    Returns (north_km, east_km)."""
    pts = np.empty((n, 2))
    half = 0.5 * size_km
    for k in range(n):
        cand = rng.uniform(-half, half, (candidates if k else 1, 2))
        if k:
            d = np.min(np.linalg.norm(cand[:, None, :] - pts[None, :k, :], axis=2), axis=1)
            cand = cand[[int(np.argmax(d))]]
        pts[k] = cand[0]
    return pts[:, 0], pts[:, 1]


def make_stations(config: ScenarioConfig, rng: np.random.Generator) -> list[Station]:
    north, east = spread_points_km(config.n_stations, config.region_km, rng)
    lat, lon = offset_latlon(config.centre_lat_deg, config.centre_lon_deg, north, east)
    lo, hi = config.noise_level_range_m_s
    level = np.exp(rng.uniform(np.log(lo), np.log(hi), config.n_stations))
    elevation = np.zeros(config.n_stations)  # at datum: the rays start at depth 0 (exact truth)
    flipped = np.zeros(config.n_stations, dtype=bool)
    if config.reversed_stations:
        flipped[rng.choice(config.n_stations, config.reversed_stations, replace=False)] = True
    return [
        Station(config.network, f"S{k + 1:03d}", round(float(lat[k]), 6), round(float(lon[k]), 6),
                round(float(elevation[k]), 1), float(north[k]), float(east[k]), float(level[k]),
                bool(flipped[k]))
        for k in range(config.n_stations)
    ]  # fmt: skip


def _response(sampling_rate_hz: float, sensitivity_counts_per_m_s: float):
    """A 120 s broadband velocity sensor (2 poles at 0.0589 * (-1 +- 1j) rad/s, two zeros at 0)
    followed by a digitizer; overall sensitivity in counts per m/s at 1 Hz."""
    from obspy.core.inventory.response import (
        CoefficientsTypeResponseStage,
        InstrumentSensitivity,
        PolesZerosResponseStage,
        Response,
    )

    w0 = 2.0 * np.pi / 120.0
    poles = [complex(-w0 * 0.707, w0 * 0.707), complex(-w0 * 0.707, -w0 * 0.707)]
    digitizer = sensitivity_counts_per_m_s / SENSOR_GAIN_V_PER_M_S
    s = 2j * np.pi * 1.0
    norm = 1.0 / abs(s * s / ((s - poles[0]) * (s - poles[1])))
    stage1 = PolesZerosResponseStage(
        stage_sequence_number=1, stage_gain=SENSOR_GAIN_V_PER_M_S, stage_gain_frequency=1.0,
        input_units="M/S", output_units="V", pz_transfer_function_type="LAPLACE (RADIANS/SECOND)",
        normalization_frequency=1.0, zeros=[0j, 0j], poles=poles, normalization_factor=norm,
    )  # fmt: skip
    stage2 = CoefficientsTypeResponseStage(
        stage_sequence_number=2, stage_gain=digitizer, stage_gain_frequency=1.0,
        input_units="V", output_units="COUNTS", cf_transfer_function_type="DIGITAL",
        numerator=[1.0], denominator=[], decimation_input_sample_rate=sampling_rate_hz,
        decimation_factor=1, decimation_offset=0, decimation_delay=0.0, decimation_correction=0.0,
    )  # fmt: skip
    sens = InstrumentSensitivity(
        value=sensitivity_counts_per_m_s, frequency=1.0, input_units="M/S", output_units="COUNTS"
    )
    return Response(instrument_sensitivity=sens, response_stages=[stage1, stage2])


def make_inventory(stations: list[Station], config: ScenarioConfig):
    """obspy Inventory: HHZ (dip -90: SEED's up-pointing vertical), HHN (az 0), HHE (az 90)."""
    from obspy import UTCDateTime
    from obspy.core.inventory import Channel, Inventory, Network
    from obspy.core.inventory import Station as XStation

    start = UTCDateTime(config.start_time) - 86400
    response = _response(config.sampling_rate_hz, config.sensitivity_counts_per_m_s)
    xstations = []
    for st in stations:
        chans = [
            Channel(code, "", st.latitude_deg, st.longitude_deg, st.elevation_m, 0.0,
                    azimuth=az, dip=dip, sample_rate=config.sampling_rate_hz,
                    start_date=start, response=response, types=["CONTINUOUS", "GEOPHYSICAL"])
            for code, az, dip in CHANNELS
        ]  # fmt: skip
        xstations.append(
            XStation(st.code, st.latitude_deg, st.longitude_deg, st.elevation_m,
                     channels=chans, start_date=start, site=None)
        )  # fmt: skip
    net = Network(config.network, stations=xstations, start_date=start,
                  description="firstmotion synthetic scenario")  # fmt: skip
    return Inventory(networks=[net], source="firstmotion scenario")
