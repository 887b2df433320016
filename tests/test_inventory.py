"""The spine's StationXML reader and the stages' keyed views of it."""

from __future__ import annotations

import pytest
from obspy import UTCDateTime
from obspy.core.inventory import Channel, Inventory, Network, Station

from firstmotion.inventory import read_sites


@pytest.fixture()
def stationxml(tmp_path):
    """NET XX: station A with a channel at its own coordinates and one (location 10) at
    others; station B without channels."""
    t0 = UTCDateTime(2020, 1, 1)
    a = Station("A", 42.0, 13.0, 800.0, creation_date=t0)
    a.channels = [
        Channel("HHZ", "00", 42.0, 13.0, 800.0, 0.0, sample_rate=100.0),
        Channel("HHZ", "10", 42.5, 13.5, 0.0, 30.0, sample_rate=100.0),
    ]
    b = Station("B", -10.0, 20.0, 5.0, creation_date=t0)
    path = tmp_path / "stations.xml"
    Inventory([Network("XX", stations=[a, b])], source="test").write(str(path), "STATIONXML")
    return path


def test_sites_give_channel_coordinates_else_the_stations(stationxml):
    sites = read_sites(stationxml)
    assert [(s.station, s.location, s.channel) for s in sites] == [
        ("A", None, None),
        ("A", "00", "HHZ"),
        ("A", "10", "HHZ"),
        ("B", None, None),
    ]
    assert (sites[2].latitude, sites[2].longitude, sites[2].elevation_m) == (42.5, 13.5, 0.0)
    assert sites[0].station_id == "XX.A"
    # an Inventory already read gives the same rows
    from obspy import read_inventory

    assert read_sites(read_inventory(str(stationxml))) == sites


def test_stage_views_of_the_sites(stationxml):
    from stream.stage import coordinates_from_inventory
    from workers.associate import stations_from_inventory
    from workers.reprocess.pipeline import read_station_coordinates as reprocess_coordinates
    from workers.web_data import read_station_coordinates as map_coordinates

    stream = coordinates_from_inventory(str(stationxml))
    assert stream["XX.A"] == (42.0, 13.0, 800.0)
    assert stream["XX.A.10.HHZ"] == (42.5, 13.5, 0.0)
    assert stream["XX.B"] == (-10.0, 20.0, 5.0)
    assoc = stations_from_inventory(str(stationxml))
    assert set(assoc) == {"XX.A.00", "XX.A.10", "XX.B."}
    assert assoc["XX.A.10"].latitude_deg == 42.5
    assert reprocess_coordinates(stationxml) == {
        ("XX", "A"): (42.0, 13.0, 800.0),
        ("XX", "B"): (-10.0, 20.0, 5.0),
    }
    assert map_coordinates(str(stationxml)) == {"XX.A": (42.0, 13.0), "XX.B": (-10.0, 20.0)}


def _vertical(code, location, dip, *, sensitivity=None, stage_gains=(), start=None, end=None):
    from obspy.core.inventory.response import (
        InstrumentSensitivity,
        Response,
        ResponseStage,
    )

    stages = [
        ResponseStage(k + 1, gain, 1.0, "M/S", "COUNTS") for k, gain in enumerate(stage_gains)
    ]
    overall = (
        None if sensitivity is None else InstrumentSensitivity(sensitivity, 1.0, "M/S", "COUNTS")
    )
    response = Response(instrument_sensitivity=overall, response_stages=stages)
    return Channel(
        code, location, 42.0, 13.0, 800.0, 0.0, dip=dip, azimuth=0.0, sample_rate=100.0,
        start_date=start, end_date=end, response=response,
    )  # fmt: skip


def test_reversed_verticals_are_those_the_metadata_says_record_down_as_up(tmp_path):
    """SEED's dip is down from the horizontal: -90 points up, +90 down. A vertical pointing
    down, or of negative sensitivity, records the ground's up as negative counts; both
    together cancel; horizontals are never verticals; read back from a StationXML file."""
    from firstmotion.inventory import OPEN_END_S, OPEN_START_S, reversed_verticals

    t0, t1 = UTCDateTime(2020, 1, 1), UTCDateTime(2021, 6, 1)
    sta = Station("A", 42.0, 13.0, 800.0, creation_date=t0)
    sta.channels = [
        _vertical("HHZ", "00", -90.0, sensitivity=6.3e8),  # up: as recorded
        _vertical("HHZ", "01", 90.0, sensitivity=6.3e8, start=t0, end=t1),  # down
        _vertical("EHZ", "", -90.0, sensitivity=-1.2e8),  # up, negative gain
        _vertical("SHZ", "", 90.0, sensitivity=-1.2e8),  # down and negative: as recorded
        _vertical("HHN", "00", 0.0, sensitivity=-6.3e8),  # a horizontal: never
        _vertical("HH3", "02", 88.0, sensitivity=6.3e8),  # vertical by its dip, down
        _vertical("BHZ", "03", None, stage_gains=(1500.0, -4.2e5, 1.0)),  # no overall value
        _vertical("LHZ", "04", 0.0, sensitivity=-1.0),  # dip left 0 on a Z: the code decides
        _vertical("U", "05", 0.0, sensitivity=-1.0),  # Hi-net's up component, the same
        _vertical("HHU", "06", 0.0, sensitivity=-1.0),  # a triaxial's inclined U: no vertical
    ]
    path = tmp_path / "stations.xml"
    Inventory([Network("XX", stations=[sta])], source="test").write(str(path), "STATIONXML")
    got = {v.channel_id: v for v in reversed_verticals(path)}
    assert set(got) == {"XX.A.01.HHZ", "XX.A..EHZ", "XX.A.02.HH3", "XX.A.03.BHZ", "XX.A.04.LHZ",
                        "XX.A.05.U"}  # fmt: skip
    assert got["XX.A.01.HHZ"].why == "dip +90"
    assert (got["XX.A.01.HHZ"].start_s, got["XX.A.01.HHZ"].end_s) == (t0.timestamp, t1.timestamp)
    assert (got["XX.A..EHZ"].start_s, got["XX.A..EHZ"].end_s) == (OPEN_START_S, OPEN_END_S)
    assert got["XX.A..EHZ"].why == got["XX.A.03.BHZ"].why == "negative sensitivity"
    assert got["XX.A.02.HH3"].why == "dip +88"
