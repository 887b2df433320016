"""Unit tests of the SeedLink wire format (stream.seedlink_protocol) and the replay schedule."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from obspy import Trace, UTCDateTime, read
from obspy.clients.seedlink.slpacket import SLPacket
from obspy.io.mseed.util import get_record_information

from stream import seedlink_protocol as slp
from stream.replay import ReplayPlan, index_of_sequence, release_offsets_s, sequence_of
from stream.replay_records import RecordTable, records_from_bytes, rerecord_512

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
T0 = UTCDateTime(2020, 1, 1, 0, 0, 0)


def _mseed(data, *, rate=100.0, start=T0, encoding="STEIM2", reclen=512, cha="HHZ") -> bytes:
    tr = Trace(
        np.asarray(data),
        dict(network="XX", station="AAA", location="00", channel=cha, sampling_rate=rate),
    )
    tr.stats.starttime = start
    buf = io.BytesIO()
    tr.write(buf, format="MSEED", reclen=reclen, encoding=encoding)
    return buf.getvalue()


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    "path",
    [
        "pr2017_noise/PR15.PR.EHZ..20170908_170000.mseed",
        "texnet2017/texnet2017cvmt.mseed",
    ],
)
def test_record_header_matches_obspy_on_real_files(path):
    file = DATA / path
    if not file.exists():
        pytest.skip(f"{file} not present (shared data missing)")
    raw = file.read_bytes()
    offsets = list(range(0, len(raw), 512))
    for offset in offsets[:: max(1, len(offsets) // 40)] + [offsets[-1]]:
        mine = slp.parse_record_header(raw[offset : offset + 512])
        ref = get_record_information(str(file), offset=offset)
        assert mine.station == ref["station"] and mine.channel == ref["channel"]
        assert mine.network == ref["network"] and mine.location == ref["location"]
        assert mine.start_ns == ref["starttime"].ns
        assert mine.n_samples == ref["npts"]
        assert mine.record_bytes == ref["record_length"] == 512
        assert mine.encoding == ref["encoding"]
        # end = time just after the last sample = obspy's last-sample time + one interval
        assert mine.end_ns == (ref["endtime"] + 1.0 / ref["samp_rate"]).ns


def test_record_header_little_endian_and_bad_input():
    raw = _mseed(np.arange(300, dtype=np.float32), encoding="FLOAT32")
    tr = read(io.BytesIO(raw))[0]
    buf = io.BytesIO()
    tr.write(buf, format="MSEED", reclen=512, byteorder="<")
    little = buf.getvalue()[:512]
    h = slp.parse_record_header(little)
    assert not h.big_endian and h.start_ns == T0.ns and h.sampling_rate_hz == 100.0
    with pytest.raises(ValueError, match="not a miniSEED"):
        slp.parse_record_header(b"x" * 512)
    with pytest.raises(ValueError, match=">= 48 bytes"):
        slp.parse_record_header(little[:20])


def test_shift_record_time_moves_only_the_start_time():
    raw = _mseed(np.arange(200, dtype=np.int32), start=T0 + 0.1234)[:512]
    shifted = slp.shift_record_time(raw, 86400 * 3 + 7)
    a, b = read(io.BytesIO(raw))[0], read(io.BytesIO(shifted))[0]
    assert b.stats.starttime - a.stats.starttime == pytest.approx(86400 * 3 + 7, abs=1e-6)
    np.testing.assert_array_equal(a.data, b.data)
    assert slp.shift_record_time(raw, 0) is raw


# --------------------------------------------------------------------------- packets


def test_data_packet_framing_and_sequence_wrap():
    rec = _mseed(np.arange(100, dtype=np.int32))[:512]
    pkt = slp.data_packet(0x1A2B, rec)
    assert pkt[:8] == b"SL001A2B" and len(pkt) == 520
    assert SLPacket(pkt, 0).get_sequence_number() == 0x1A2B
    assert slp.data_packet(0x1000000 + 5, rec)[:8] == b"SL000005"
    with pytest.raises(ValueError, match="512-byte"):
        slp.data_packet(1, rec[:500])
    assert sequence_of(0) == 1 and sequence_of(0xFFFFFE) == 0xFFFFFF and sequence_of(0xFFFFFF) == 0


def test_info_packets_round_trip_through_obspy():
    xml = slp.info_xml(
        "STREAMS",
        software="SeedLink v3.1 (test)",
        organization="t",
        started_ns=T0.ns,
        stations=tuple(
            slp.StationInfo(
                "XX", f"S{i:03d}", "d", i, i + 9, (slp.StreamInfo("00", "HHZ", T0.ns, T0.ns),)
            )
            for i in range(20)
        ),
    )
    packets = slp.info_packets(xml, T0.ns)
    assert len(packets) > 1  # long enough to need several records
    types = [SLPacket(p, 0).get_type() for p in packets]
    assert types[:-1] == [SLPacket.TYPE_SLINF] * (len(packets) - 1)
    assert types[-1] == SLPacket.TYPE_SLINFT
    payload = b"".join(SLPacket(p, 0).get_string_payload() for p in packets)
    assert payload.decode() == xml
    from lxml import etree

    root = etree.fromstring(payload)
    assert [s.attrib["name"] for s in root.findall("station")][:2] == ["S000", "S001"]
    assert root.find("station").attrib["end_seq"] == "000009"
    with pytest.raises(ValueError, match="unsupported INFO level"):
        slp.info_xml("BOGUS", software="s", organization="o", started_ns=0)


# --------------------------------------------------------------------------- selectors


@pytest.mark.parametrize(
    "selector, location, channel, expected",
    [
        ("00HHZ", "00", "HHZ", True),
        ("00HHZ", "10", "HHZ", False),
        ("??HH?", "00", "HHN", True),
        ("??HH?", "", "HHN", True),
        ("HHZ", "10", "HHZ", True),
        ("HHZ", "", "HHE", False),
        ("HH?.D", "", "HHE", True),
        ("HH?.E", "", "HHE", False),
        ("--HHZ", "", "HHZ", True),
        ("--HHZ", "00", "HHZ", False),
    ],
)
def test_selector_matching(selector, location, channel, expected):
    assert slp.parse_selector(selector).matches(location, channel) is expected


def test_selector_lists_and_errors():
    sels = (slp.parse_selector("HH?"), slp.parse_selector("!HHE"))
    assert slp.selectors_match(sels, "", "HHZ")
    assert not slp.selectors_match(sels, "", "HHE")
    assert not slp.selectors_match(sels, "", "BHZ")
    assert slp.selectors_match((), "00", "ANY")
    for bad in ("HHZZZZ", "H", "00HH", "HHZ.DD", "HH#", ""):
        with pytest.raises(ValueError, match="bad selector"):
            slp.parse_selector(bad)
    assert slp.name_matches("A?C", "abc") and slp.name_matches("*", "XYZ")
    assert not slp.name_matches("A?C", "ABCD")


# --------------------------------------------------------------------------- commands


def test_parse_command_and_arguments():
    assert slp.parse_command(b"station  AAA XX") == slp.Command("STATION", ("AAA", "XX"))
    assert slp.parse_command(b"INFO ID").args == ("ID",)
    for bad, message in [
        (b"FOO", "unknown command"),
        (b"", "empty"),
        (b"\xff\xfe", "not ASCII"),
        (b"DATA \x01", "control"),
        (b"DATA " + b"1" * 300, "longer"),
    ]:
        with pytest.raises(ValueError, match=message):
            slp.parse_command(bad)
    assert slp.parse_sequence("1A2B") == 0x1A2B
    assert slp.parse_sequence("0x1000000") == 0  # obspy's hex(0xFFFFFF + 1)
    with pytest.raises(ValueError, match="hexadecimal"):
        slp.parse_sequence("xyz")
    assert slp.parse_seedlink_time("2017,2,10,5,22,9") == UTCDateTime(2017, 2, 10, 5, 22, 9).ns
    assert (
        slp.parse_seedlink_time("2017,2,10,5,22,9.25")
        == UTCDateTime(2017, 2, 10, 5, 22, 9, 250000).ns
    )
    for bad in ("2017,2,10", "2017,13,1,0,0,0", "a,b,c,d,e,f", "2017,1,1,0,0,99"):
        with pytest.raises(ValueError, match="bad SeedLink time"):
            slp.parse_seedlink_time(bad)


# --------------------------------------------------------------------------- schedule


def test_release_offsets_skip_idle_stretches():
    s = 1_000_000_000
    day = 86400 * s
    start = np.array([0, 3 * s, day, day + 3 * s], dtype=np.int64)
    end = start + 3 * s
    got = release_offsets_s(start, end, gap_threshold_s=60.0)
    np.testing.assert_allclose(got, [3.0, 6.0, 9.0, 12.0])  # the day of silence is gone
    got = release_offsets_s(start, end, gap_threshold_s=2 * 86400.0)
    np.testing.assert_allclose(got, [3.0, 6.0, 86403.0, 86406.0])  # below threshold: kept
    # a short gap below the threshold is replayed as is
    start = np.array([0, 10 * s], dtype=np.int64)
    np.testing.assert_allclose(release_offsets_s(start, start + s, 60.0), [1.0, 11.0])
    with pytest.raises(ValueError, match="release order"):
        release_offsets_s(np.array([0, 0]), np.array([5, 1]), 60.0)


def test_rerecord_4096_to_512_keeps_samples_and_encoding():
    ints = np.cumsum(np.random.default_rng(1).integers(-1000, 1000, 5000)).astype(np.int32)
    floats = np.random.default_rng(2).normal(size=3000)
    for data, encoding, expected_code in [(ints, "STEIM2", 11), (floats, "FLOAT64", 5)]:
        raw = _mseed(data, encoding=encoding, reclen=4096)
        records = records_from_bytes(raw)
        assert all(len(r.data) == 512 for r in records)
        assert {r.header.encoding for r in records} == {expected_code}
        st = read(io.BytesIO(b"".join(r.data for r in records)))
        st.merge(-1)
        assert len(st) == 1 and st[0].stats.starttime == T0
        np.testing.assert_array_equal(st[0].data, data)
    # INT32 source (not Steim) becomes STEIM2
    recs = rerecord_512(_mseed(ints, encoding="INT32", reclen=4096))
    assert {slp.parse_record_header(r).encoding for r in recs} == {11}


def test_plan_orders_by_release_and_start_time_drops_earlier_records():
    fast = records_from_bytes(_mseed(np.arange(2000, dtype=np.int32), rate=200.0, cha="HHZ"))
    slow = records_from_bytes(_mseed(np.arange(400, dtype=np.int32), rate=40.0, cha="BHZ"))
    plan = ReplayPlan.build(fast + slow)
    assert np.all(np.diff(plan.end_ns) >= 0)
    assert np.all(np.diff(plan.release_s) >= 0)
    assert plan.pass_shift_s == 10  # 2000 samples at 200 Hz == 400 at 40 Hz == 10 s
    late = ReplayPlan.build(fast + slow, start_time_ns=(T0 + 5).ns)
    assert 0 < len(late) < len(plan) and late.end_ns.min() > (T0 + 5).ns
    assert late.clock_start_s == pytest.approx(5.0 - (late.start_ns.min() - T0.ns) / 1e9)
    with pytest.raises(ValueError, match="nothing to replay"):
        ReplayPlan.build(fast, start_time_ns=(T0 + 3600).ns)


def test_index_of_sequence_in_ring_and_across_the_wrap():
    assert index_of_sequence(1, 0, 10) == 0
    assert index_of_sequence(11, 0, 10) == 10  # the next record, not yet released
    assert index_of_sequence(12, 0, 10) is None  # from a future (or another) server
    assert index_of_sequence(3, 5, 10) is None  # aged out of the ring
    wrap = slp.SEQ_MODULUS
    # after 2**24 + 5 releases the newest records carry 0xFFFFFF, 0, 1, ..., 5
    assert sequence_of(wrap - 2) == 0xFFFFFF and sequence_of(wrap - 1) == 0
    assert index_of_sequence(0xFFFFFF, wrap - 100, wrap + 5) == wrap - 2
    assert index_of_sequence(0, wrap - 100, wrap + 5) == wrap - 1
    assert index_of_sequence(slp.parse_sequence("0x1000000"), wrap - 100, wrap + 5) == wrap - 1
    assert index_of_sequence(3, wrap - 100, wrap + 5) == wrap + 2
    for i in range(wrap - 50, wrap + 6):
        assert index_of_sequence(sequence_of(i), wrap - 100, wrap + 5) == i


def test_plan_release_clock_is_consistent_over_passes():
    a = records_from_bytes(_mseed(np.arange(3000, dtype=np.int32), rate=100.0, cha="HHZ"))
    b = records_from_bytes(_mseed(np.arange(1200, dtype=np.int32), rate=40.0, cha="BHZ"))
    plan = ReplayPlan.build(a + b)
    n = len(plan)
    assert plan.released_by(-1.0, loop=False) == 0
    assert plan.released_by(1e9, loop=False) == n
    for i in range(3 * n):
        due = plan.release_clock_s(i)
        assert plan.released_by(due, loop=True) >= i + 1
        assert plan.released_by(due - 1e-3, loop=True) <= i
    # later passes: same bytes except the start time, shifted by whole pass lengths
    rec, _, start_ns, _ = plan.record_at(2 * n + 1)
    assert start_ns == int(plan.start_ns[1]) + 2 * plan.pass_shift_s * 1_000_000_000
    assert slp.parse_record_header(rec).start_ns == start_ns
    assert rec[30:] == plan.record_at(1)[0][30:] and rec[:20] == plan.record_at(1)[0][:20]


# --------------------------------------------------------------------------- fast twin


def _assert_twins_agree(raw: bytes) -> None:
    recs = [raw[i : i + 512] for i in range(0, len(raw), 512)]
    fast = slp.parse_record_headers_512(np.frombuffer(raw, np.uint8).reshape(-1, 512))
    assert fast is not None
    slow = [slp.parse_record_header(r) for r in recs]
    for name in ("start_ns", "end_ns", "n_samples", "sampling_rate_hz", "encoding"):
        np.testing.assert_array_equal(
            getattr(fast, name), [getattr(h, name) for h in slow], err_msg=name
        )
    assert [slp.decode_id(bytes(i)) for i in fast.ids] == [
        (h.network, h.station, h.location, h.channel) for h in slow
    ]


def test_vectorized_headers_match_the_per_record_parser():
    for path in sorted(DATA.glob("*/*.mseed"))[:3]:
        _assert_twins_agree(path.read_bytes())
    # synthetic corner cases: little-endian, odd rates, time correction, blockette 1001/100
    tr = read(io.BytesIO(_mseed(np.arange(5000, dtype=np.int32), start=T0 + 0.00037)))[0]
    for rate in (100.0, 0.1, 33.333, 2000.0):
        tr.stats.sampling_rate = rate
        for order in ("<", ">"):
            buf = io.BytesIO()
            tr.write(buf, format="MSEED", reclen=512, byteorder=order, encoding="STEIM2")
            _assert_twins_agree(buf.getvalue())
    raw = bytearray(_mseed(np.arange(3000, dtype=np.int32)))
    for off in range(0, len(raw), 512):  # time correction of +0.5 s, not yet applied
        raw[off + 40 : off + 44] = (5000).to_bytes(4, "big", signed=True)
    _assert_twins_agree(bytes(raw))
    assert slp.parse_record_header(bytes(raw[:512])).start_ns == (T0 + 0.5).ns
    mixed = _mseed(np.arange(300, dtype=np.int32))[:512]
    buf = io.BytesIO()
    read(io.BytesIO(mixed))[0].write(buf, format="MSEED", reclen=512, byteorder="<")
    both = np.frombuffer(mixed + buf.getvalue()[:512], np.uint8).reshape(-1, 512)
    assert slp.parse_record_headers_512(both[:1]) is not None
    # LE and BE records together: both orders look plausible somewhere -> slow path
    assert slp.parse_record_headers_512(both[::-1]) is None
    junk = np.zeros((2, 512), np.uint8)
    assert slp.parse_record_headers_512(junk) is None


def test_record_table_fast_path_equals_slow_path():
    raw = b"".join(
        _mseed(np.arange(n, dtype=np.int32), rate=r, cha=c)
        for n, r, c in ((3000, 100.0, "HHZ"), (800, 40.0, "BHZ"), (500, 20.0, "LHZ"))
    )
    fast = RecordTable.from_bytes(raw)
    slow = RecordTable.from_records(records_from_bytes(raw))
    assert fast.streams == slow.streams and len(fast) == len(slow) > 3
    np.testing.assert_array_equal(fast.data, slow.data)
    np.testing.assert_array_equal(fast.start_ns, slow.start_ns)
    np.testing.assert_array_equal(fast.end_ns, slow.end_ns)
    np.testing.assert_array_equal(fast.stream_index, slow.stream_index)
    both = RecordTable.concat(
        [fast, RecordTable.from_bytes(_mseed(np.arange(900, dtype=np.int32), cha="AAA"))]
    )
    assert both.streams[0][3] == "AAA" and len(both) == len(fast) + 2
    assert [both.streams[i][3] for i in both.stream_index[-2:]] == ["AAA", "AAA"]
