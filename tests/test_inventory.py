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
