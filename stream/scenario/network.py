"""Station layout and StationXML (obspy Inventory) of a synthetic network."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firstmotion.geodesy import offset_latlon
from stream.scenario.config import ScenarioConfig
from stream.scenario.sensors import response as sensor_response

ORIENTATIONS = ((0.0, -90.0), (0.0, 0.0), (90.0, 0.0))  # (azimuth, dip) of Z, N, E


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


def make_stations(
    config: ScenarioConfig, rng: np.random.Generator, top_km: float = 0.0
) -> list[Station]:
    """Stations on the velocity model's top (``top_km`` below sea level: sea level, or the
    top of a model that starts above it), where the scenario's rays start."""
    north, east = spread_points_km(config.n_stations, config.region_km, rng)
    lat, lon = offset_latlon(config.centre_lat_deg, config.centre_lon_deg, north, east)
    lo, hi = config.noise_level_range_m_s
    level = np.exp(rng.uniform(np.log(lo), np.log(hi), config.n_stations))
    elevation = np.full(config.n_stations, -1000.0 * top_km)  # on the model's top (exact truth)
    flipped = np.zeros(config.n_stations, dtype=bool)
    if config.reversed_stations:
        flipped[rng.choice(config.n_stations, config.reversed_stations, replace=False)] = True
    return [
        Station(config.network, f"S{k + 1:03d}", round(float(lat[k]), 6), round(float(lon[k]), 6),
                round(float(elevation[k]), 1), float(north[k]), float(east[k]), float(level[k]),
                bool(flipped[k]))
        for k in range(config.n_stations)
    ]  # fmt: skip


def make_inventory(stations: list[Station], config: ScenarioConfig):
    """obspy Inventory: ?HZ (dip -90: SEED's up-pointing vertical), ?HN (az 0), ?HE (az 90),
    codes and response from the config's sensor (:mod:`stream.scenario.sensors`)."""
    from obspy import UTCDateTime
    from obspy.core.inventory import Channel, Inventory, Network
    from obspy.core.inventory import Station as XStation

    start = UTCDateTime(config.start_time) - 86400
    sensor = config.sensor_spec()
    response = sensor_response(sensor, config.sampling_rate_hz)
    xstations = []
    for st in stations:
        chans = [
            Channel(code, "", st.latitude_deg, st.longitude_deg, st.elevation_m, 0.0,
                    azimuth=az, dip=dip, sample_rate=config.sampling_rate_hz,
                    start_date=start, response=response, types=["CONTINUOUS", "GEOPHYSICAL"])
            for code, (az, dip) in zip(sensor.channels, ORIENTATIONS, strict=True)
        ]  # fmt: skip
        xstations.append(
            XStation(st.code, st.latitude_deg, st.longitude_deg, st.elevation_m,
                     channels=chans, start_date=start, site=None)
        )  # fmt: skip
    net = Network(config.network, stations=xstations, start_date=start,
                  description="firstmotion synthetic scenario")  # fmt: skip
    return Inventory(networks=[net], source="firstmotion scenario")
