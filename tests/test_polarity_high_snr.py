"""Regression: the shipped polarity model read the cleanest onsets with the WRONG sign.

Found by the demo: windows of M3 events at 10-50 km (SNR 10^3-10^4, far above the training
mix's ceiling of SNR 100) came out confidently reversed, while the same windows with noise
added (SNR 30-300) were read correctly. Such stations are the best a network has; reading
them backwards wrecks the mechanism.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from obspy import UTCDateTime, read

from stream.scenario import ScenarioConfig, make_scenario, write_scenario
from workers.polarity import PolarityClassifier


@pytest.fixture(scope="module")
def loud_scenario(tmp_path_factory):
    out = tmp_path_factory.mktemp("loud")
    config = ScenarioConfig(
        seed=11, n_stations=20, n_events=3, duration_s=150.0, region_km=60.0,
        magnitude_range=(3.0, 3.6), depth_range_km=(6.0, 15.0),
    )  # fmt: skip
    write_scenario(make_scenario(config), out)
    return out


def test_high_snr_onsets_are_read_with_the_right_sign(loud_scenario):
    truth = json.loads((loud_scenario / "truth.json").read_text())
    st = read(str(loud_scenario / "mseed" / "*HZ*"))
    st.merge()
    clf = PolarityClassifier.load()
    rows, picks, labels, snrs = [], [], [], []
    for event in truth["events"]:
        for arr in event["stations"]:
            if arr["polarity"] == 0 or not arr.get("p_in_data", True):
                continue
            tr = st.select(station=arr["station_id"].split(".")[1])[0]
            t = UTCDateTime(arr["p_time"])
            seg = tr.slice(t - 10, t + 4)
            x = seg.data.astype(np.float64)[:1400]
            if x.size < 1400:
                continue
            rows.append(x)
            picks.append(int(round((t - seg.stats.starttime) * tr.stats.sampling_rate)))
            labels.append(arr["polarity"])
            snrs.append(arr["snr"])
    labels, snrs = np.array(labels), np.array(snrs)
    loud = snrs >= 300
    assert loud.sum() >= 20, "the scenario should have many loud stations"
    res = clf.classify(np.array(rows), 100.0, np.array(picks))
    wrong = (res.polarity == -labels) & loud
    right = (res.polarity == labels) & loud
    assert wrong.sum() <= 0.03 * loud.sum(), f"{wrong.sum()} of {loud.sum()} loud onsets reversed"
    assert right.sum() >= 0.9 * loud.sum(), f"only {right.sum()} of {loud.sum()} loud onsets read"
