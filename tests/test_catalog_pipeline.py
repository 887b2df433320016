"""Mechanism stage -> catalog stage through Redis only: the catalog holds what the mechanism
worker published, and its page and QuakeML show the same mechanism."""

from __future__ import annotations

import io

import numpy as np
import pytest

from firstmotion.bus import Bus
from firstmotion.kagan import kagan_angle_deg
from firstmotion.messages import Arrival, Origin, Polarity, make_pick_id
from firstmotion.radiation import p_polarity
from workers.catalog import CatalogReader, CatalogWorker
from workers.catalog_export import export
from workers.web import event_row_html

TRUTH = (120.0, 50.0, -80.0)
T0 = 1_710_000_000.0


def _event(n: int = 24) -> tuple[Origin, list[Polarity]]:
    i = np.arange(n) + 0.5
    az = np.mod(i * 137.50776405, 360.0)
    to = np.degrees(np.arccos(-i / n))  # from vertical-up, spread over the sphere
    pol = p_polarity(*TRUTH, az, to)
    arrivals, polarities = [], []
    for k in range(n):
        sid, t = f"XX.S{k:02d}..HHZ", T0 + 4 + 0.1 * k
        pid = make_pick_id(sid, t)
        arrivals.append(
            Arrival(
                pick_id=pid, station_id=sid, azimuth_deg=float(az[k]),
                takeoff_deg=float(to[k]), distance_km=30.0,
            )
        )  # fmt: skip
        probs = (0.95, 0.03, 0.02) if pol[k] > 0 else (0.03, 0.95, 0.02)
        polarities.append(
            Polarity(
                pick_id=pid, station_id=sid, time_epoch_s=t, polarity=int(pol[k]),
                probabilities=probs, confidence=0.95, model_version="test",
            )
        )  # fmt: skip
    origin = Origin(
        event_id="evP", revision=0, time_epoch_s=T0, latitude_deg=36.0, longitude_deg=-120.0,
        depth_km=9.0, magnitude=3.1, arrivals=tuple(arrivals),
    )  # fmt: skip
    return origin, polarities


def test_mechanism_worker_output_lands_in_the_catalog(redis_client, redis_url):
    from workers.mechanism.worker import MechanismWorker, WorkerParams

    bus = Bus.from_url(redis_url)
    origin, pols = _event()
    bus.publish("origins", origin)
    bus.publish_many("polarities", pols)
    MechanismWorker(bus, WorkerParams(), name="m1", block_ms=50).run(drain=True, timeout_s=120)
    published = [m for _, m in bus.messages("mechanisms")]
    assert published, "the mechanism worker published nothing"
    CatalogWorker(bus, block_ms=50).run(drain=True, timeout_s=30)

    event = CatalogReader(redis_client).event("evP")
    last = published[-1]
    assert event is not None and event.mechanism == last
    assert event.origin == origin
    assert event.revision == 1 + len(published)  # the origin, then each mechanism revision
    assert kagan_angle_deg(last.strike, last.dip, last.rake, *TRUTH) <= 25.0
    assert event.status == ("final" if last.quality in "AB" else "preliminary")
    assert f"{last.strike:.0f} / {last.dip:.0f} / {last.rake:.0f}" in event_row_html(event)

    from obspy import read_events

    cat = read_events(io.BytesIO(export([event], "quakeml")), format="QUAKEML")
    plane = cat[0].focal_mechanisms[0].nodal_planes.nodal_plane_1
    assert (plane.strike, plane.dip, plane.rake) == pytest.approx(
        (last.strike, last.dip, last.rake)
    )
    assert f"quality={last.quality}" in cat[0].focal_mechanisms[0].comments[0].text
    bus.close()
