"""Scenario settings: one frozen dataclass, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from firstmotion.synth import PROFILES


@dataclass(frozen=True)
class ScenarioConfig:
    """Everything that defines a synthetic scenario; the same config and seed give the same files.

    Amplitudes are SI: ``noise_level_range_m_s`` is the range (log-uniform per station) of the
    ground-velocity noise RMS above 1 Hz (for accelerometers the recorded acceleration noise is
    that times 2 pi 5 Hz times 3: self-noise above the ground's). ``sensor`` is the kind of
    every station (:mod:`stream.scenario.sensors`: channel codes, response, velocity or
    acceleration); ``sensitivity`` overrides its counts per m/s (or m/s^2); ``noise_profile``
    overrides the noise spectrum (default: the sensor's own).
    """

    seed: int = 1
    n_stations: int = 30
    n_events: int = 5
    duration_s: float = 600.0
    region_km: float = 100.0
    sampling_rate_hz: float = 100.0
    gaps: bool = False
    spikes: bool = False
    mechanism: tuple[float, float, float] | None = None  # strike, dip, rake (deg); None: random
    centre_lat_deg: float = 34.0
    centre_lon_deg: float = -118.0
    start_time: str = "2025-01-01T00:00:00Z"
    network: str = "FM"
    magnitude_range: tuple[float, float] = (1.5, 4.0)
    depth_range_km: tuple[float, float] = (3.0, 15.0)  # below the velocity model's top
    stress_drop_mpa: float = 3.0
    q_p: float = 500.0
    q_s: float = 250.0
    noise_level_range_m_s: tuple[float, float] = (1e-8, 1e-7)
    sensor: str = "broadband"
    noise_profile: str | None = None
    sensitivity: float | None = None  # counts per m/s (m/s^2); None: the sensor's default
    velocity_model: str | None = None  # model file; None: firstmotion's built-in default
    emergent_fraction: float = 0.2
    min_first_motion_snr: float = 1.0
    coda: bool = True
    reversed_stations: int = 0  # stations whose Z is wired upside down (metadata unaware)
    # P and S velocities right at the surface (km/s), which set the angle at which rays meet
    # the free surface (sin j = p v); None: the velocity model's top layer. The default is a
    # rock site (Vs30 ~ 800 m/s), where S arrives steeply and moves mostly the horizontals.
    site_vp_km_s: float | None = 1.6
    site_vs_km_s: float | None = 0.8
    # A swarm: epicentres within this radius (km) of the centre (None: the inner 70% of the
    # network); ``burst_fraction`` of the events follow an earlier one within ``burst_gap_s``.
    swarm_radius_km: float | None = None
    burst_fraction: float = 0.0
    burst_gap_s: float = 5.0
    # Real noise: three-component miniSEED under this folder replaces the synthetic noise,
    # scaled per station to its level (:mod:`stream.scenario.real_noise`); None: synthetic.
    noise_dir: str | None = None

    def __post_init__(self) -> None:
        if self.n_stations < 1 or self.n_events < 0:
            raise ValueError(f"need n_stations >= 1, n_events >= 0; got {self.n_stations}, "
                             f"{self.n_events}")  # fmt: skip
        if self.duration_s <= 0 or self.region_km <= 0:
            raise ValueError(f"duration_s and region_km must be > 0, got {self.duration_s}, "
                             f"{self.region_km}")  # fmt: skip
        if not 10.0 <= self.sampling_rate_hz <= 1000.0:
            raise ValueError(f"sampling_rate_hz must be in [10, 1000], got {self.sampling_rate_hz}")
        if self.mechanism is not None:
            if len(self.mechanism) != 3:
                raise ValueError(f"mechanism must be (strike, dip, rake), got {self.mechanism!r}")
            if not 0.0 <= self.mechanism[1] <= 90.0:
                raise ValueError(f"dip must be in [0, 90], got {self.mechanism[1]}")
        lo, hi = self.magnitude_range
        if not lo <= hi:
            raise ValueError(f"bad magnitude_range {self.magnitude_range}")
        lo, hi = self.depth_range_km
        if not 0.0 <= lo <= hi:
            raise ValueError(f"bad depth_range_km {self.depth_range_km}")
        lo, hi = self.noise_level_range_m_s
        if not 0.0 < lo <= hi:
            raise ValueError(f"bad noise_level_range_m_s {self.noise_level_range_m_s}")
        if self.sensor not in PROFILES:
            raise ValueError(f"sensor must be one of {PROFILES}, got {self.sensor!r}")
        if self.noise_profile is not None and self.noise_profile not in PROFILES:
            raise ValueError(f"noise_profile must be one of {PROFILES}, got {self.noise_profile!r}")
        if len(self.network) not in (1, 2) or not self.network.isalnum():
            raise ValueError(f"network code must be 1-2 alphanumerics, got {self.network!r}")
        if self.n_stations > 999:
            raise ValueError("at most 999 stations (codes S001-S999)")
        if not 0 <= self.reversed_stations <= self.n_stations:
            raise ValueError(f"reversed_stations must be in [0, n_stations], got "
                             f"{self.reversed_stations}")  # fmt: skip
        if (
            self.q_p <= 0
            or self.q_s <= 0
            or (self.sensitivity is not None and self.sensitivity <= 0)
        ):
            raise ValueError("q_p, q_s and sensitivity must be > 0")
        vp, vs = self.site_vp_km_s, self.site_vs_km_s
        if (vp is None) != (vs is None) or (vp is not None and not 0 < vs < vp):
            raise ValueError(f"site velocities must both be None or 0 < vs < vp, got {vp}, {vs}")

        if self.swarm_radius_km is not None and self.swarm_radius_km <= 0:
            raise ValueError(f"swarm_radius_km must be > 0, got {self.swarm_radius_km}")
        if not 0.0 <= self.burst_fraction < 1.0 or self.burst_gap_s <= 0:
            raise ValueError(f"need 0 <= burst_fraction < 1 and burst_gap_s > 0, got "
                             f"{self.burst_fraction}, {self.burst_gap_s}")  # fmt: skip

    def sensor_spec(self):
        """The :class:`stream.scenario.sensors.Sensor` of every station."""
        from stream.scenario.sensors import make_sensor

        return make_sensor(self.sensor, self.sampling_rate_hz, self.sensitivity)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_mechanism(text: str) -> tuple[float, float, float]:
    """``"strike/dip/rake"`` in degrees -> tuple; raises ValueError on anything else."""
    parts = text.replace(",", "/").split("/")
    if len(parts) != 3:
        raise ValueError(f"mechanism must look like strike/dip/rake, got {text!r}")
    try:
        strike, dip, rake = (float(p) for p in parts)
    except ValueError as exc:
        raise ValueError(f"mechanism must be three numbers strike/dip/rake, got {text!r}") from exc
    return strike, dip, rake
