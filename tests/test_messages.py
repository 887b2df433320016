"""Wire messages: round-trip, strict validation naming the field, schema version."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from firstmotion.messages import (
    SCHEMA_VERSION,
    Arrival,
    CatalogEvent,
    Mechanism,
    MechanismPick,
    MessageError,
    Origin,
    Pick,
    Polarity,
    decode,
    encode,
    make_pick_id,
)

STATION = "PR.PR15..EHZ"
T0 = 1504890000.12


def make_pick(**over) -> Pick:
    kw = dict(
        pick_id=make_pick_id(STATION, T0),
        station_id=STATION,
        time_epoch_s=T0,
        sampling_rate_hz=100.0,
        start_time_epoch_s=T0 - 2.0,
        pick_index=200,
        samples=np.sin(np.linspace(0, 20, 400)) * 1e3,
        snr=12.5,
        amplitude=850.0,
        latitude_deg=18.1,
        longitude_deg=-66.9,
        elevation_m=None,
        created_epoch_s=T0 + 3.0,
    )
    kw.update(over)
    return Pick(**kw)


def make_polarity(**over) -> Polarity:
    kw = dict(
        pick_id=make_pick_id(STATION, T0),
        station_id=STATION,
        time_epoch_s=T0,
        polarity=-1,
        probabilities=(0.05, 0.9, 0.05),
        confidence=0.9,
        model_version="fmnet-1.0",
        created_epoch_s=T0 + 4,
    )
    kw.update(over)
    return Polarity(**kw)


def make_origin(**over) -> Origin:
    arrivals = tuple(
        Arrival(
            pick_id=make_pick_id(f"PR.S{i}..EHZ", T0 + i),
            station_id=f"PR.S{i}..EHZ",
            azimuth_deg=30.0 * i,
            takeoff_deg=100.0 + i,
            distance_km=5.0 + i,
            residual_s=0.01 * i if i else None,
        )
        for i in range(4)
    )
    kw = dict(
        event_id="fm2017abc",
        revision=2,
        time_epoch_s=T0 - 1.5,
        latitude_deg=18.0,
        longitude_deg=-67.0,
        depth_km=8.5,
        magnitude=2.1,
        arrivals=arrivals,
        rms_s=0.08,
        method="pyocto",
        created_epoch_s=T0 + 6,
    )
    kw.update(over)
    return Origin(**kw)


def make_mechanism(**over) -> Mechanism:
    picks = tuple(
        MechanismPick(
            station_id=f"PR.S{i}..EHZ",
            pick_id=make_pick_id(f"PR.S{i}..EHZ", T0 + i),
            azimuth_deg=30.0 * i,
            takeoff_deg=100.0 + i,
            polarity=1 if i % 2 else -1,
            weight=1.0,
        )
        for i in range(4)
    )
    kw = dict(
        event_id="fm2017abc",
        revision=1,
        origin_revision=2,
        strike=120.0,
        dip=60.0,
        rake=-90.0,
        aux_strike=300.0,
        aux_dip=30.0,
        aux_rake=-90.0,
        quality="B",
        fault_plane_uncertainty_deg=22.0,
        aux_plane_uncertainty_deg=25.0,
        misfit=0.1,
        probability=0.7,
        station_distribution_ratio=0.55,
        n_polarities=4,
        n_stations=4,
        model_version="fmnet-1.0",
        picks=picks,
        created_epoch_s=T0 + 8,
    )
    kw.update(over)
    return Mechanism(**kw)


def make_catalog_event(**over) -> CatalogEvent:
    kw = dict(
        event_id="fm2017abc",
        revision=3,
        status="preliminary",
        origin=make_origin(),
        mechanism=make_mechanism(),
        updated_epoch_s=T0 + 9,
    )
    kw.update(over)
    return CatalogEvent(**kw)


ALL = [
    make_pick,
    make_polarity,
    make_origin,
    make_mechanism,
    make_catalog_event,
    lambda: make_catalog_event(mechanism=None, status="final"),
    lambda: make_origin(arrivals=(), magnitude=None, rms_s=None),
]


@pytest.mark.parametrize("factory", ALL)
def test_round_trip_json_and_stream_entry(factory):
    msg = factory()
    data = msg.to_json()
    assert isinstance(data, bytes)
    back = type(msg).from_json(data)
    assert back == msg
    assert type(msg).from_json(data.decode()) == msg
    fields = encode(msg)
    assert fields["type"] == type(msg).__name__.encode()
    assert decode(fields) == msg
    # redis-py with decode_responses=True hands back str keys and values
    assert decode({"type": type(msg).__name__, "data": data.decode()}) == msg
    obj = json.loads(data)
    assert obj["schema_version"] == SCHEMA_VERSION and obj["type"] == type(msg).__name__


def test_pick_samples_are_base64_little_endian_float32_and_read_only():
    pick = make_pick(samples=[1.5, -2.25, 3.0], pick_index=1)
    wire = json.loads(pick.to_json())["samples"]
    raw = base64.b64decode(wire)
    np.testing.assert_array_equal(np.frombuffer(raw, "<f4"), [1.5, -2.25, 3.0])
    assert pick.samples.dtype == np.float32
    with pytest.raises(ValueError):
        pick.samples[0] = 9.0
    back = Pick.from_json(pick.to_json())
    assert back.samples.dtype == np.float32 and not back.samples.flags.writeable


def test_pick_does_not_alias_the_callers_array():
    data = np.ones(10, dtype=np.float32)
    pick = make_pick(samples=data, pick_index=3)
    data[0] = 5.0
    assert pick.samples[0] == 1.0


def test_candidate_flag_travels_and_a_pick_without_it_is_no_candidate():
    pick = make_pick(candidate=True)
    assert Pick.from_json(pick.to_json()).candidate is True
    assert decode(encode(pick)).candidate is True
    assert pick != make_pick()
    old = json.loads(make_pick().to_json())
    del old["candidate"]  # a message from a producer that predates the field
    assert Pick.from_dict(old).candidate is False
    with pytest.raises(MessageError, match="Pick.candidate"):
        Pick.from_dict({**old, "candidate": "yes"})


def test_pick_equality_sees_the_samples():
    assert make_pick() != make_pick(samples=np.zeros(400))


def test_continuous_data_is_refused():
    with pytest.raises(MessageError, match="Pick.samples: 100001 samples is more than 100000"):
        make_pick(samples=np.zeros(100_001))


def test_nan_samples_survive_the_wire():
    samples = np.zeros(50)
    samples[3] = np.nan
    pick = make_pick(samples=samples, pick_index=10)
    back = Pick.from_json(pick.to_json())
    assert np.isnan(back.samples[3]) and back == pick


def test_pick_id_is_deterministic():
    assert make_pick_id(STATION, T0) == "PR.PR15..EHZ@1504890000.120"
    assert make_pick_id(STATION, T0 + 0.0001) == make_pick_id(STATION, T0)
    with pytest.raises(MessageError, match="station_id"):
        make_pick_id("PR15", T0)


def _tamper(msg, **changes) -> bytes:
    obj = json.loads(msg.to_json())
    for key, value in changes.items():
        if value is ...:
            del obj[key]
        else:
            obj[key] = value
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"sampling_rate_hz": "abc"},
            "Pick.sampling_rate_hz: expected a positive number, got 'abc'",
        ),
        ({"sampling_rate_hz": 0}, "Pick.sampling_rate_hz: expected a positive number"),
        ({"sampling_rate_hz": True}, "Pick.sampling_rate_hz"),
        ({"snr": None}, "Pick.snr: expected"),
        ({"station_id": "PR15"}, "Pick.station_id: expected NET.STA.LOC.CHA, got 'PR15'"),
        ({"pick_index": 1.5}, "Pick.pick_index: expected an integer"),
        ({"pick_index": 400}, "Pick.pick_index: expected < len(samples) = 400"),
        ({"samples": "@@not base64@@"}, "Pick.samples: expected base64"),
        ({"samples": base64.b64encode(b"abc").decode()}, "Pick.samples: base64 payload"),
        ({"samples": ""}, "Pick.samples: expected a non-empty"),
        ({"latitude_deg": 91}, "Pick.latitude_deg: expected a number in [-90, 90]"),
        ({"time_epoch_s": ...}, "Pick.time_epoch_s: missing"),
        ({"colour": "red"}, "Pick: unknown field(s) ['colour']"),
        ({"type": "Polarity"}, "Pick.type: expected 'Pick'"),
        ({"schema_version": SCHEMA_VERSION + 1}, "Pick.schema_version: expected 1, got 2"),
        ({"schema_version": ...}, "Pick.schema_version: missing"),
        ({"schema_version": "1"}, "Pick.schema_version: expected 1, got '1'"),
    ],
)
def test_bad_pick_names_the_field(changes, expected):
    with pytest.raises(MessageError) as err:
        Pick.from_json(_tamper(make_pick(), **changes))
    assert expected in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("factory", "changes", "expected"),
    [
        (make_polarity, {"polarity": 2}, "Polarity.polarity: expected one of [-1, 0, 1]"),
        (make_polarity, {"probabilities": [0.5, 0.6, 0.1]}, "summing to 1"),
        (make_polarity, {"probabilities": [1.0, 0.0]}, "Polarity.probabilities: expected"),
        (make_polarity, {"confidence": 1.5}, "Polarity.confidence"),
        (make_polarity, {"model_version": ""}, "Polarity.model_version"),
        (make_origin, {"revision": -1}, "Origin.revision: expected an integer in [0, 1000000]"),
        (make_origin, {"depth_km": "deep"}, "Origin.depth_km"),
        (make_mechanism, {"quality": "E"}, "Mechanism.quality: expected one of"),
        (make_mechanism, {"dip": 95}, "Mechanism.dip: expected a number in [0, 90]"),
        (make_mechanism, {"picks": "none"}, "Mechanism.picks: expected a list"),
        (make_catalog_event, {"status": "maybe"}, "CatalogEvent.status"),
        (make_catalog_event, {"origin": None}, "CatalogEvent.origin: expected a Origin"),
    ],
)
def test_bad_messages_name_the_field(factory, changes, expected):
    msg = factory()
    with pytest.raises(MessageError) as err:
        type(msg).from_json(_tamper(msg, **changes))
    assert expected in str(err.value)


def test_nested_errors_carry_the_path():
    obj = json.loads(make_origin().to_json())
    obj["arrivals"][2]["takeoff_deg"] = 200
    with pytest.raises(MessageError, match=r"Origin\.arrivals\[2\]\.takeoff_deg: expected"):
        Origin.from_json(json.dumps(obj))
    obj = json.loads(make_catalog_event().to_json())
    obj["mechanism"]["picks"][1]["polarity"] = 0
    with pytest.raises(MessageError, match=r"CatalogEvent\.mechanism\.picks\[1\]\.polarity"):
        CatalogEvent.from_json(json.dumps(obj))
    obj = json.loads(make_catalog_event().to_json())
    del obj["origin"]["depth_km"]
    with pytest.raises(MessageError, match=r"CatalogEvent\.origin\.depth_km: missing"):
        CatalogEvent.from_json(json.dumps(obj))


def test_catalog_event_parts_must_belong_to_the_event():
    with pytest.raises(MessageError, match="CatalogEvent.mechanism.event_id"):
        make_catalog_event(mechanism=make_mechanism(event_id="other"))


def test_angles_a_rounding_error_outside_their_range_are_clamped():
    m = make_mechanism(strike=360.0 + 1e-9, dip=90.0 + 1e-9, rake=-180.0 - 1e-9)
    assert (m.strike, m.dip, m.rake) == (360.0, 90.0, -180.0)
    with pytest.raises(MessageError, match="Mechanism.dip"):
        make_mechanism(dip=90.001)
    m = make_mechanism(azimuthal_gap_deg=75.0, takeoff_gap_deg=40.0)
    assert Mechanism.from_json(m.to_json()).azimuthal_gap_deg == 75.0


def test_construction_validates_too():
    with pytest.raises(MessageError, match="Polarity.polarity"):
        make_polarity(polarity=5)
    with pytest.raises(MessageError, match="Pick.snr"):
        make_pick(snr=float("nan"))


def test_messages_are_frozen():
    msg = make_polarity()
    with pytest.raises(AttributeError):
        msg.polarity = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{not json", "Pick: not valid JSON"),
        (b"[1, 2]", "Pick: expected a JSON object"),
        (b"\xff\xfe", "Pick: not UTF-8"),
    ],
)
def test_garbage_bytes(data, expected):
    with pytest.raises(MessageError, match=expected):
        Pick.from_json(data)


def test_decode_rejects_bad_entries():
    with pytest.raises(MessageError, match="missing field 'type'"):
        decode({"data": b"{}"})
    with pytest.raises(MessageError, match="unknown message type 'Banana'"):
        decode({b"type": b"Banana", b"data": b"{}"})
    with pytest.raises(MessageError, match="missing field 'data'"):
        decode({b"type": b"Pick"})
    with pytest.raises(MessageError, match="expected 'Polarity'"):
        decode({b"type": b"Polarity", b"data": make_pick().to_json()})
