"""Assemble a scenario in memory: stations, events, rays, waveforms, truth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firstmotion.velocity import VelocityModel
from stream.scenario.config import ScenarioConfig
from stream.scenario.events import Event, make_events
from stream.scenario.geometry import PairGeometry, pair_geometry
from stream.scenario.network import Station, make_inventory, make_stations
from stream.scenario.truth import truth_dict
from stream.scenario.waveforms import PairAmplitudes, synthesize


@dataclass(frozen=True, eq=False)
class Scenario:
    """A synthetic network recording: ``counts`` (n_stations, 3 [Z, N, E], n_samples) int32 with
    ``gaps`` (True = missing), the obspy Inventory, and the truth (:mod:`stream.scenario.truth`)."""

    config: ScenarioConfig
    model: VelocityModel
    stations: list[Station]
    events: list[Event]
    geometry: PairGeometry
    amplitudes: PairAmplitudes
    counts: np.ndarray = field(repr=False)
    gaps: np.ndarray = field(repr=False)
    truth: dict = field(repr=False)

    def inventory(self):
        return make_inventory(self.stations, self.config)

    def stream(self):
        """obspy Stream of int32 counts; a channel with gaps is split into several traces."""
        from obspy import Stream, Trace, UTCDateTime

        t0 = UTCDateTime(self.config.start_time)
        fs = self.config.sampling_rate_hz
        traces = []
        for j, st in enumerate(self.stations):
            for c, cha in enumerate(self.config.sensor_spec().channels):
                ok = ~self.gaps[j, c]
                edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
                for a, b in zip(edges[::2], edges[1::2], strict=True):
                    header = {
                        "network": st.network, "station": st.code, "location": "",
                        "channel": cha, "sampling_rate": fs, "starttime": t0 + a / fs,
                    }  # fmt: skip
                    traces.append(Trace(np.ascontiguousarray(self.counts[j, c, a:b]), header))
        return Stream(traces)


def _rngs(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators per job, so changing one job's draws leaves the others alone."""
    names = ("stations", "events", "waveforms")
    seqs = np.random.SeedSequence(seed).spawn(len(names))
    return {n: np.random.default_rng(s) for n, s in zip(names, seqs, strict=True)}


def make_scenario(config: ScenarioConfig | None = None, progress: bool = False) -> Scenario:
    """Build a scenario in memory (deterministic in ``config``, including its seed)."""
    config = config or ScenarioConfig()
    model = (
        VelocityModel.from_file(config.velocity_model)
        if config.velocity_model
        else VelocityModel.default()
    )
    rngs = _rngs(config.seed)
    stations = make_stations(config, rngs["stations"], model.top_km)
    events = make_events(config, rngs["events"])
    geometry = pair_geometry(events, stations, model)
    counts, gaps, amps = synthesize(
        config, stations, events, geometry, model, rngs["waveforms"], progress=progress
    )
    truth = truth_dict(config, stations, events, geometry, amps, top_km=model.top_km)
    return Scenario(config, model, stations, events, geometry, amps, counts, gaps, truth)


def demo_truth_windows(
    seed: int, n_events: int, duration_s: float, pick_error_s: float = 0.02
) -> list:
    """The P windows ``firstmotion demo --mode truth --seed S --n-events N --duration-s D``
    cuts (its scenario: 30 stations, 60 km, depths 6-15 km), built in memory: the vertical
    records cut at every true P time plus the demo's Laplacian pick error, with the demo's draws
    (:func:`firstmotion.demo.cut_picks`; ``StationWindow`` objects)."""
    from firstmotion.demo import cut_picks

    config = ScenarioConfig(
        seed=seed, n_stations=30, n_events=n_events, duration_s=duration_s, region_km=60.0,
        depth_range_km=(6.0, 15.0),
    )  # fmt: skip
    scenario = make_scenario(config)
    stream = scenario.stream().select(channel="??Z")
    stream.merge(method=1, fill_value=None)
    return cut_picks(stream, scenario.truth, pick_error_s, np.random.default_rng(seed))
