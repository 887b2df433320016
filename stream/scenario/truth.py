"""The scenario's answer key: per event and station, arrivals, angles, amplitudes, polarity.

Polarity label rule (the same as :func:`firstmotion.synth.labelled_p_windows`):
``+1`` (up, compression) or ``-1`` (down, dilatation) is the sign of the P radiation factor
when ``|first motion| / noise RMS >= min_first_motion_snr`` (default 1), where ``first motion``
is the signed peak of the first lobe of the noise-free P signal on the Z channel (ground
velocity) and ``noise RMS`` the RMS about the linear trend of the Z channel's ambient noise in
the 1 s before the P onset (:func:`firstmotion.synth.detrended_rms`); otherwise, and when the P
onset falls outside the data or in a gap, ``0`` (unknown). Other events' signals are not
counted as noise.
"""

from __future__ import annotations

import numpy as np

from firstmotion.geodesy import KM_PER_DEG
from stream.scenario.config import ScenarioConfig
from stream.scenario.events import Event, aux_plane
from stream.scenario.geometry import PairGeometry
from stream.scenario.network import Station
from stream.scenario.waveforms import PairAmplitudes

SCHEMA_VERSION = 1
LABEL_RULE = (
    "polarity = sign(p_radiation) if p_in_data and |first_motion_counts| / noise_rms_counts >= "
    "min_first_motion_snr else 0; first_motion_counts: signed first-lobe peak of the noise-free "
    "P on Z (as the sensor records it); noise_rms_counts: RMS about the linear trend of the Z "
    "noise in the 1 s before P"
)


def polarity_labels(amps: PairAmplitudes, min_first_motion_snr: float) -> np.ndarray:
    """int8 (n_events, n_stations) per the module's rule."""
    snr = np.abs(amps.first_motion) / np.where(amps.noise_rms > 0, amps.noise_rms, np.inf)
    ok = amps.p_in_data & np.isfinite(snr) & (snr >= min_first_motion_snr)
    return np.where(ok, np.sign(amps.p_radiation), 0).astype(np.int8)


def _iso(t) -> str:
    return str(t).replace("000Z", "Z") if str(t).endswith("000Z") else str(t)


def truth_dict(
    config: ScenarioConfig,
    stations: list[Station],
    events: list[Event],
    geometry: PairGeometry,
    amps: PairAmplitudes,
    top_km: float = 0.0,
) -> dict:
    """JSON-ready truth (see the module docstring; ``takeoff_deg`` from vertical-UP). The
    events' depths are below the velocity model's top; ``depth_km`` in the truth is below
    sea level (the model's top is ``top_km`` below it)."""
    from obspy import UTCDateTime

    t0 = UTCDateTime(config.start_time)
    labels = polarity_labels(amps, config.min_first_motion_snr)
    snr = np.abs(amps.first_motion) / np.where(amps.noise_rms > 0, amps.noise_rms, np.inf)
    sensor = config.sensor_spec()
    sens = sensor.sensitivity
    out_events = []
    for i, ev in enumerate(events):
        a_s, a_d, a_r = aux_plane(ev.strike_deg, ev.dip_deg, ev.rake_deg)
        rows = []
        for j, st in enumerate(stations):
            g = geometry
            rows.append({
                "network": st.network,
                "station": st.code,
                "station_id": f"{st.network}.{st.code}..{sensor.channels[0]}",
                "distance_km": round(float(g.distance_km[i, j]), 4),
                "azimuth_deg": round(float(g.azimuth_deg[i, j]), 4),
                "back_azimuth_deg": round(float(g.back_azimuth_deg[i, j]), 4),
                "takeoff_deg": round(float(g.p_takeoff_deg[i, j]), 4),
                "incidence_deg": round(float(g.p_incidence_deg[i, j]), 4),
                "p_head_wave": bool(g.p_head_wave[i, j]),
                "p_time": _iso(t0 + ev.origin_time_s + float(g.p_travel_time_s[i, j])),
                "p_time_s": round(ev.origin_time_s + float(g.p_travel_time_s[i, j]), 5),
                "s_time": _iso(t0 + ev.origin_time_s + float(g.s_travel_time_s[i, j])),
                "s_time_s": round(ev.origin_time_s + float(g.s_travel_time_s[i, j]), 5),
                "s_takeoff_deg": round(float(g.s_takeoff_deg[i, j]), 4),
                "p_radiation": round(float(amps.p_radiation[i, j]), 6),
                "sv_radiation": round(float(amps.sv_radiation[i, j]), 6),
                "sh_radiation": round(float(amps.sh_radiation[i, j]), 6),
                "p_tstar_s": round(float(amps.p_tstar_s[i, j]), 6),
                "p_displacement_area_m_s": float(amps.p_displacement_area_m_s[i, j]),
                "first_motion_counts": float(amps.first_motion[i, j] * sens),
                "noise_rms_counts": float(amps.noise_rms[i, j] * sens),
                "snr": round(float(snr[i, j]), 4) if np.isfinite(snr[i, j]) else None,
                "emergence_s": round(float(amps.emergence_s[i, j]), 4),
                "p_in_data": bool(amps.p_in_data[i, j]),
                "polarity": int(labels[i, j]),
                "recorded_polarity": int(labels[i, j]) * (-1 if st.reversed else 1),
            })  # fmt: skip
        out_events.append({
            "event_id": ev.event_id,
            "origin_time": _iso(t0 + ev.origin_time_s),
            "origin_time_s": ev.origin_time_s,
            "latitude": ev.latitude_deg,
            "longitude": ev.longitude_deg,
            "depth_km": ev.depth_km + top_km,
            "magnitude": ev.magnitude,
            "magnitude_type": "Mw",
            "moment_nm": ev.moment_nm,
            "p_corner_frequency_hz": round(float(amps.p_corner_frequency_hz[i, 0]), 4),
            "strike": ev.strike_deg, "dip": ev.dip_deg, "rake": ev.rake_deg,
            "aux_strike": round(a_s, 2), "aux_dip": round(a_d, 2), "aux_rake": round(a_r, 2),
            "n_polarities": int(np.sum(labels[i] != 0)),
            "stations": rows,
        })  # fmt: skip
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": "firstmotion scenario",
        "start_time": _iso(t0),
        "end_time": _iso(t0 + config.duration_s),
        "sampling_rate_hz": config.sampling_rate_hz,
        "sensor": sensor.kind,
        "channels": list(sensor.channels),
        "data_units": sensor.units,
        "sensitivity_counts_per_unit": sens,
        "conventions": {
            "takeoff_deg": "from vertical-UP at the source: 0 up, 90 horizontal, 180 down",
            "azimuth_deg": "clockwise from north, source to station (WGS84 geodesic)",
            "p_time_s": "seconds after start_time",
            "polarity": "+1 up (compression), -1 down (dilatation), 0 unknown: ground motion",
            "recorded_polarity": "polarity as recorded: flipped at reversed stations",
            "label_rule": LABEL_RULE,
            "min_first_motion_snr": config.min_first_motion_snr,
        },
        "config": config.to_dict(),
        "stations": [
            {
                "network": s.network,
                "station": s.code,
                "location": "",
                "channels": list(sensor.channels),
                "latitude": s.latitude_deg,
                "longitude": s.longitude_deg,
                "elevation_m": s.elevation_m,
                "noise_rms_m_s": s.noise_rms_m_s,
                "reversed": s.reversed,
            }
            for s in stations
        ],  # fmt: skip
        "events": out_events,
    }


def truth_catalog(truth: dict):
    """obspy Catalog: origins, Mw, focal mechanisms (both planes), P picks with polarity, S picks,
    arrivals. QuakeML's takeoffAngle is from the downward vertical: written as 180 - takeoff."""
    from obspy import UTCDateTime
    from obspy.core.event import (
        Arrival,
        Catalog,
        Comment,
        CreationInfo,
        FocalMechanism,
        Magnitude,
        NodalPlane,
        NodalPlanes,
        Origin,
        Pick,
        ResourceIdentifier,
        WaveformStreamID,
    )
    from obspy.core.event import (
        Event as QEvent,
    )

    info = CreationInfo(agency_id="FM", author="firstmotion scenario")
    cat = Catalog(resource_id=ResourceIdentifier("smi:firstmotion/scenario"), creation_info=info)
    for ev in truth["events"]:
        eid = ev["event_id"]
        origin = Origin(
            resource_id=ResourceIdentifier(f"smi:firstmotion/{eid}/origin"),
            time=UTCDateTime(ev["origin_time"]), latitude=ev["latitude"],
            longitude=ev["longitude"], depth=ev["depth_km"] * 1e3, evaluation_mode="manual",
        )  # fmt: skip
        mag = Magnitude(mag=ev["magnitude"], magnitude_type="Mw", origin_id=origin.resource_id)
        planes = NodalPlanes(
            nodal_plane_1=NodalPlane(strike=ev["strike"], dip=ev["dip"], rake=ev["rake"]),
            nodal_plane_2=NodalPlane(strike=ev["aux_strike"], dip=ev["aux_dip"],
                                     rake=ev["aux_rake"]),
            preferred_plane=1,
        )  # fmt: skip
        fm = FocalMechanism(
            resource_id=ResourceIdentifier(f"smi:firstmotion/{eid}/focal_mechanism"),
            triggering_origin_id=origin.resource_id, nodal_planes=planes,
            station_polarity_count=ev["n_polarities"],
        )  # fmt: skip
        picks = []
        for row in ev["stations"]:
            wid = WaveformStreamID(row["network"], row["station"], "", truth["channels"][0])
            pol = {1: "positive", -1: "negative", 0: "undecidable"}[row["polarity"]]
            pp = Pick(
                resource_id=ResourceIdentifier(f"smi:firstmotion/{eid}/pick/{row['station']}/P"),
                time=UTCDateTime(row["p_time"]), waveform_id=wid, phase_hint="P",
                polarity=pol, evaluation_mode="manual",
                comments=[Comment(text=f"snr={row['snr']}")],
            )  # fmt: skip
            sp = Pick(
                resource_id=ResourceIdentifier(f"smi:firstmotion/{eid}/pick/{row['station']}/S"),
                time=UTCDateTime(row["s_time"]),
                waveform_id=WaveformStreamID(
                    row["network"], row["station"], "", truth["channels"][1]
                ),
                phase_hint="S", evaluation_mode="manual",
            )  # fmt: skip
            picks += [pp, sp]
            origin.arrivals.append(
                Arrival(pick_id=pp.resource_id, phase="P", azimuth=row["azimuth_deg"],
                        distance=row["distance_km"] / KM_PER_DEG,
                        takeoff_angle=180.0 - row["takeoff_deg"])
            )  # fmt: skip
            origin.arrivals.append(
                Arrival(pick_id=sp.resource_id, phase="S", azimuth=row["azimuth_deg"],
                        distance=row["distance_km"] / KM_PER_DEG)
            )  # fmt: skip
        event = QEvent(
            resource_id=ResourceIdentifier(f"smi:firstmotion/{eid}"), origins=[origin],
            magnitudes=[mag], focal_mechanisms=[fm], picks=picks,
            preferred_origin_id=origin.resource_id, preferred_magnitude_id=mag.resource_id,
            preferred_focal_mechanism_id=fm.resource_id, event_type="earthquake",
        )  # fmt: skip
        cat.append(event)
    return cat
