"""Earthquakes of a scenario: hypocentres inside the network, origin times, sizes, mechanisms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firstmotion.geodesy import offset_latlon
from firstmotion.synth import brune_corner_frequency_hz
from stream.scenario.config import ScenarioConfig


@dataclass(frozen=True)
class Event:
    event_id: str
    origin_time_s: float  # seconds after the scenario start
    latitude_deg: float
    longitude_deg: float
    depth_km: float
    north_km: float
    east_km: float
    magnitude: float  # Mw
    strike_deg: float
    dip_deg: float
    rake_deg: float

    @property
    def moment_nm(self) -> float:
        """Hanks & Kanamori (1979): log10 M0 [N m] = 1.5 Mw + 9.1."""
        return 10.0 ** (1.5 * self.magnitude + 9.1)

    def corner_frequency_hz(self, stress_drop_mpa: float, beta_km_s: float) -> float:
        return brune_corner_frequency_hz(self.magnitude, stress_drop_mpa, beta_km_s)


def aux_plane(strike_deg: float, dip_deg: float, rake_deg: float) -> tuple[float, float, float]:
    """The auxiliary nodal plane (strike, dip, rake), via obspy.imaging.beachball.aux_plane."""
    from obspy.imaging.beachball import aux_plane as _aux

    s, d, r = _aux(strike_deg, dip_deg, rake_deg)
    return float(s) % 360.0, float(d), float(r)


def origin_times_s(n: int, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` origin times spread over the window: one per equal slot, jittered inside the slot's
    middle half, leaving 5% of the window (at least 5 s) before the first; sorted."""
    lead = max(5.0, 0.05 * duration_s)
    tail = max(15.0, 0.1 * duration_s)
    usable = max(duration_s - lead - tail, 1e-3)
    slot = usable / max(n, 1)
    return np.sort(lead + slot * (np.arange(n) + rng.uniform(0.25, 0.75, n)))


def burst_times_s(
    n: int, duration_s: float, burst_fraction: float, gap_s: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` origin times where ``round(burst_fraction * n)`` events follow an earlier one by
    0.3-1 ``gap_s`` (a burst: several earthquakes seconds apart) and the rest are spread as
    :func:`origin_times_s`; a follower goes after the last event of its leader's burst. Sorted."""
    n_follow = int(round(burst_fraction * n))
    times = list(origin_times_s(n - n_follow, duration_s, rng))
    bursts = [[t] for t in times]
    for _ in range(n_follow):
        burst = bursts[int(rng.integers(0, len(bursts)))] if bursts else None
        if burst is None:
            bursts.append([float(origin_times_s(1, duration_s, rng)[0])])
            continue
        burst.append(burst[-1] + float(rng.uniform(0.3, 1.0)) * gap_s)
    return np.sort(np.array([t for b in bursts for t in b], dtype=float))


def make_events(config: ScenarioConfig, rng: np.random.Generator) -> list[Event]:
    n = config.n_events
    if config.swarm_radius_km is not None:  # uniform over a disc about the centre
        r = config.swarm_radius_km * np.sqrt(rng.uniform(0.0, 1.0, n))
        theta = rng.uniform(0.0, 2.0 * np.pi, n)
        north, east = r * np.cos(theta), r * np.sin(theta)
    else:
        half = 0.35 * config.region_km  # epicentres in the inner 70% of the network
        north, east = rng.uniform(-half, half, n), rng.uniform(-half, half, n)
    lat, lon = offset_latlon(config.centre_lat_deg, config.centre_lon_deg, north, east)
    depth = rng.uniform(*config.depth_range_km, n)
    mag = rng.uniform(*config.magnitude_range, n)
    if config.mechanism is None:
        strike = rng.uniform(0.0, 360.0, n)
        dip = np.degrees(np.arccos(rng.uniform(0.0, 1.0, n)))
        dip = np.clip(dip, 5.0, 90.0)
        rake = rng.uniform(-180.0, 180.0, n)
    else:
        strike, dip, rake = (np.full(n, v, dtype=float) for v in config.mechanism)
    if config.burst_fraction > 0:
        times = burst_times_s(n, config.duration_s, config.burst_fraction, config.burst_gap_s, rng)
    else:
        times = origin_times_s(n, config.duration_s, rng)
    return [
        Event(f"fm{config.seed:04d}e{k + 1:03d}", round(float(times[k]), 3),
              round(float(lat[k]), 6), round(float(lon[k]), 6), round(float(depth[k]), 3),
              float(north[k]), float(east[k]), round(float(mag[k]), 2),
              round(float(strike[k]) % 360.0, 2), round(float(dip[k]), 2), round(float(rake[k]), 2))
        for k in range(n)
    ]  # fmt: skip
