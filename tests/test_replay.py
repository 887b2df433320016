"""End-to-end tests of ``firstmotion replay``: real TCP on loopback, obspy's own SeedLink
clients, real miniSEED bytes.

obspy 1.5.1's SeedLink clients crash on connect with their default timeout (``None``), so
every client here gets a timeout, a short ``netto`` and ``netdly``.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from obspy import Stream, Trace, UTCDateTime, read
from obspy.clients.seedlink.basic_client import Client
from obspy.clients.seedlink.easyseedlink import EasySeedLinkClient
from obspy.clients.seedlink.slclient import SLClient
from obspy.clients.seedlink.slpacket import SLPacket

from stream.replay import ReplayServer, ReplayThread, serve_in_thread

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
T0 = UTCDateTime(2020, 1, 1, 0, 0, 0)
pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- data


def _write(path: Path, traces: list[Trace], *, encoding: str, reclen: int = 512) -> None:
    Stream(traces).write(str(path), format="MSEED", reclen=reclen, encoding=encoding)


def _trace(sta, cha, data, rate, start=T0, loc="00"):
    stats = dict(network="XX", station=sta, location=loc, channel=cha, sampling_rate=rate)
    tr = Trace(np.asarray(data), stats)
    tr.stats.starttime = start
    return tr


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory) -> Path:
    """Three stations: Steim2 ints at 100 Hz, FLOAT32 at 40 Hz, and 4096-byte Steim2 records
    at 200 Hz (re-recorded by the server), 60 s each."""
    rng = np.random.default_rng(42)
    out = tmp_path_factory.mktemp("replay_small")

    def walk(n):
        return np.cumsum(rng.integers(-60, 60, n)).astype(np.int32)

    _write(
        out / "AAA.mseed",
        [_trace("AAA", c, walk(6000), 100.0) for c in ("HHZ", "HHN", "HHE")],
        encoding="STEIM2",
    )
    _write(
        out / "BBB.mseed",
        [_trace("BBB", c, rng.normal(size=2400).astype(np.float32), 40.0) for c in ("HHZ", "HHN")],
        encoding="FLOAT32",
    )
    _write(
        out / "CCC.mseed",
        [_trace("CCC", "HHZ", walk(12000), 200.0, loc="")],
        encoding="STEIM2",
        reclen=4096,
    )
    (out / "notes.txt").write_text("not miniSEED: the folder scan must skip this\n")
    return out


def _expected(paths) -> dict[str, Trace]:
    st = Stream()
    for p in paths:
        st += read(str(p))
    st.merge(-1)
    return {tr.id: tr for tr in st}


def _count_records(server_dir: Path) -> int:
    return len(ReplayServer([server_dir], port=0).plan)


# --------------------------------------------------------------------------- clients


def _slclient(host, port, *, timeout=2.0, **attrs) -> SLClient:
    client = SLClient(timeout=timeout)  # timeout=None crashes obspy 1.5.1 on connect
    client.slconn.set_sl_address(f"{host}:{port}")
    client.slconn.netto = timeout
    client.slconn.netdly = 1
    dialup = attrs.pop("dialup", False)
    for key, value in attrs.items():
        setattr(client, key, value)
    client.initialize()
    client.slconn.dialup = dialup
    return client


def _collect(client: SLClient, max_packets: int | None = None, arrivals=None):
    """``[(sequence, trace), ...]`` of the data packets a client receives, in order."""
    got = []

    def handler(count, packet):
        if not isinstance(packet, SLPacket):
            return False
        if packet.get_type() in (SLPacket.TYPE_SLINF, SLPacket.TYPE_SLINFT):
            return False
        got.append((packet.get_sequence_number(), packet.get_trace()))
        if arrivals is not None:
            arrivals.append(time.monotonic())
        return max_packets is not None and len(got) >= max_packets

    client.run(packet_handler=handler)
    return got


def _assert_in_order_and_complete(got, expected: dict[str, Trace], ids=None):
    """Sequences strictly increase; per channel records are contiguous, in time order, and
    their samples equal the files'."""
    seqs = [s for s, _ in got]
    assert seqs == sorted(set(seqs)), "sequence numbers repeat or go backwards"
    per_id = defaultdict(list)
    for _, tr in got:
        per_id[tr.id].append(tr)
    ids = set(expected) if ids is None else set(ids)
    assert set(per_id) == ids
    for trace_id, traces in per_id.items():
        ref = expected[trace_id]
        for a, b in zip(traces, traces[1:], strict=False):
            gap = b.stats.starttime - (a.stats.endtime + a.stats.delta)
            assert abs(gap) < 0.5 * a.stats.delta, f"{trace_id}: gap/overlap of {gap} s"
        assert traces[0].stats.starttime == ref.stats.starttime
        data = np.concatenate([t.data for t in traces])
        np.testing.assert_array_equal(data, ref.data, err_msg=trace_id)


class _Raw:
    """A bare socket speaking SeedLink by hand."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.buf = b""

    def send(self, line: bytes) -> None:
        self.sock.sendall(line + b"\r")

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf.split(b"\r\n", 1)
        return out

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf.split(marker, 1)
        return out + marker

    def ask(self, line: bytes) -> bytes:
        self.send(line)
        return self.line()

    def packets_until_end(self) -> list[bytes]:
        """Read 520-byte packets until the server's ``END``."""
        out = []
        while True:
            head = self.read(3)
            if head == b"END":
                return out
            out.append(head + self.read(517))

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------- obspy clients


def test_slclient_multistation_receives_every_record_once_in_order(small_dir):
    expected = _expected([small_dir / f for f in ("AAA.mseed", "BBB.mseed", "CCC.mseed")])
    n = _count_records(small_dir)
    with serve_in_thread([small_dir], speed=None) as (host, port):
        client = _slclient(host, port, multiselect="XX_AAA:00HH?,XX_BBB:HH?.D,XX_CCC:???")
        got = _collect(client)
    assert [s for s, _ in got] == list(range(1, n + 1))
    _assert_in_order_and_complete(got, expected)


def test_easyseedlink_client_with_wildcard_selectors(small_dir):
    expected = _expected([small_dir / "AAA.mseed", small_dir / "BBB.mseed"])
    want = {"XX.AAA.00.HHZ", "XX.BBB.00.HHZ", "XX.BBB.00.HHN"}
    n_want = sum(1 for sid in ReplayServer([small_dir], port=0).plan.stream_ids() if sid in want)

    class Enough(Exception):
        pass

    class Collector(EasySeedLinkClient):
        def __init__(self, url):
            super().__init__(url, autoconnect=False)
            self.conn.timeout = 5  # None (the default) crashes obspy 1.5.1 on connect
            self.conn.netto = 5
            self.traces = []

        def on_data(self, trace):
            self.traces.append(trace)
            if len(self.traces) >= n_want:
                raise Enough

    with serve_in_thread([small_dir], speed=None) as (host, port):
        client = Collector(f"{host}:{port}")
        client.connect()
        assert client.has_capability("multistation")
        assert client.has_info_capability("STREAMS")
        # obspy 1.5.1 _get_cat() passes str to a bytes API; send CAT the way it means to
        assert b"XX AAA" in client._send_and_recv(b"CAT", [b"END"])
        client.select_stream("XX", "AAA", "??HHZ")
        client.select_stream("XX", "B?B", "HH?")
        with pytest.raises(Enough):
            client.run()
        client.close()
    got = [(i, tr) for i, tr in enumerate(client.traces)]
    _assert_in_order_and_complete(got, expected, ids=want)


def test_basic_client_get_waveforms_and_info(small_dir):
    expected = _expected([small_dir / "AAA.mseed", small_dir / "BBB.mseed"])
    with serve_in_thread([small_dir], speed=None) as (host, port):
        client = Client(host, port, timeout=5)
        st = client.get_waveforms("XX", "AAA", "00", "HHZ", T0 + 10, T0 + 30)
        st2 = client.get_waveforms("XX", "BBB", "", "HH?", T0 + 5, T0 + 15)
        info = client.get_info(network="XX", level="channel")
    assert len(st) == 1
    ref = expected["XX.AAA.00.HHZ"].slice(T0 + 10, T0 + 30)
    assert st[0].stats.starttime == ref.stats.starttime and st[0].stats.npts == 2001
    np.testing.assert_array_equal(st[0].data, ref.data)
    assert sorted(tr.id for tr in st2) == ["XX.BBB.00.HHN", "XX.BBB.00.HHZ"]
    for tr in st2:
        np.testing.assert_array_equal(tr.data, expected[tr.id].slice(T0 + 5, T0 + 15).data)
    assert ("XX", "CCC", "", "HHZ") in info and ("XX", "AAA", "00", "HHE") in info
    assert len(info) == 6


def test_resume_by_sequence_after_disconnect_no_gap_no_duplicate(small_dir, tmp_path):
    expected = _expected([small_dir / f for f in ("AAA.mseed", "BBB.mseed", "CCC.mseed")])
    n = _count_records(small_dir)
    statefile = str(tmp_path / "seedlink.state")
    select = "XX_AAA:HH?,XX_BBB:HH?,XX_CCC:HHZ"
    with serve_in_thread([small_dir], speed=None) as (host, port):
        first = _collect(_slclient(host, port, multiselect=select, statefile=statefile), 40)
        assert Path(statefile).read_text().count("XX ") == 3
        second = _collect(_slclient(host, port, multiselect=select, statefile=statefile))
    seqs1, seqs2 = [s for s, _ in first], [s for s, _ in second]
    assert len(seqs1) == 40 and min(seqs2) > 1
    assert not set(seqs1) & set(seqs2), "records delivered twice"
    assert sorted(seqs1 + seqs2) == list(range(1, n + 1)), "records lost"
    _assert_in_order_and_complete(sorted(first + second, key=lambda x: x[0]), expected)


def test_two_clients_at_once_and_a_misbehaving_third(small_dir):
    expected = _expected([small_dir / f for f in ("AAA.mseed", "BBB.mseed", "CCC.mseed")])
    n = _count_records(small_dir)
    results: dict[int, list] = {}
    with serve_in_thread([small_dir], speed=50.0) as (host, port):
        rogue = _Raw(host, port)
        rogue.send(b"\x00\xffgarbage")
        assert rogue.line() == b"ERROR"

        def run(k):
            select = "XX_AAA:HH?,XX_BBB:HH?,XX_CCC:HHZ"
            results[k] = _collect(_slclient(host, port, multiselect=select, timeout=5), n)

        threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(50)
        assert rogue.ask(b"HELLO").startswith(b"SeedLink v3.1")
        rogue.close()
    for k in range(2):
        assert [s for s, _ in results[k]] == list(range(1, n + 1))
        _assert_in_order_and_complete(results[k], expected)


def test_uni_station_mode_with_selectors(small_dir):
    expected = _expected([small_dir / f for f in ("AAA.mseed", "BBB.mseed", "CCC.mseed")])
    want = {"XX.AAA.00.HHZ", "XX.BBB.00.HHZ", "XX.CCC..HHZ"}
    with serve_in_thread([small_dir], speed=None) as (host, port):
        got = _collect(_slclient(host, port, selectors="HHZ"))
    _assert_in_order_and_complete(got, expected, ids=want)


def test_fetch_dialup_ends_with_end(small_dir):
    n = _count_records(small_dir)
    with serve_in_thread([small_dir], speed=None) as (host, port):
        client = _slclient(
            host, port, multiselect="XX_AAA:HH?,XX_BBB:HH?,XX_CCC:HH?", dialup=True, timeout=30
        )
        t = time.monotonic()
        got = _collect(client)
        elapsed = time.monotonic() - t
    assert [s for s, _ in got] == list(range(1, n + 1))
    assert elapsed < 20, "the client waited for its timeout: the server sent no END"


# --------------------------------------------------------------------------- raw protocol


def test_bad_commands_get_error_and_the_connection_stays_usable(small_dir):
    plan_ids = ReplayServer([small_dir], port=0).plan.stream_ids()
    with serve_in_thread([small_dir], speed=None) as (host, port):
        raw = _Raw(host, port)
        hello = raw.ask(b"HELLO")
        assert hello.startswith(b"SeedLink v3.1") and b"SLPROTO:3.1" in hello
        assert raw.line() == b"firstmotion replay server"
        for bad in (
            b"NONSENSE",
            b"SELECT HHZZZZZ",
            b"STATION NOPE XX",
            b"DATA zz",
            b"TIME 2020,1,1",
            b"TIME 2020,1,1,0,0,10 2020,1,1,0,0,5",
            b"END",
            b"INFO BOGUS",
            b"x" * 1000,
        ):
            assert raw.ask(bad) == b"ERROR", bad
        raw.send(b"CAT")
        cat = raw.until(b"END").splitlines()
        assert [line.split()[:2] for line in cat[:-1]] == [
            [b"XX", s] for s in (b"AAA", b"BBB", b"CCC")
        ]
        from lxml import etree

        for level in (b"ID", b"CAPABILITIES", b"STATIONS", b"STREAMS", b"GAPS", b"CONNECTIONS"):
            raw.send(b"INFO " + level)
            packets = [raw.read(520)]
            while packets[-1][:8] == b"SLINFO *":
                packets.append(raw.read(520))
            assert packets[-1][:8] == b"SLINFO  ", level
            root = etree.fromstring(b"".join(SLPacket(p, 0).get_string_payload() for p in packets))
            assert root.tag == "seedlink" and "firstmotion" in root.attrib["software"]
            if level == b"STREAMS":
                assert len(root.findall("station/stream")) == 6
            if level == b"CONNECTIONS":
                assert root.find("station/connection").attrib["host"] == "127.0.0.1"
        assert raw.ask(b"STATION AAA XX") == b"OK"
        assert raw.ask(b"SELECT 00HHZ") == b"OK"
        assert raw.ask(b"DATA") == b"OK"
        raw.send(b"END")
        first = [i + 1 for i, sid in enumerate(plan_ids) if sid == "XX.AAA.00.HHZ"][0]
        assert raw.read(520)[:8] == b"SL%06X" % first
        raw.close()


def test_time_window_info_keepalive_and_fetch_by_hand(small_dir):
    plan = ReplayServer([small_dir], port=0).plan
    aaa_z = [i + 1 for i, sid in enumerate(plan.stream_ids()) if sid == "XX.AAA.00.HHZ"]
    with serve_in_thread([small_dir], speed=None) as (host, port):
        raw = _Raw(host, port)
        assert raw.ask(b"STATION AAA XX") == b"OK"
        assert raw.ask(b"SELECT HHZ") == b"OK"
        assert raw.ask(b"TIME 2020,1,1,0,0,20 2020,1,1,0,0,30") == b"OK"
        raw.send(b"END")
        window = [read(io.BytesIO(p[8:]))[0] for p in raw.packets_until_end()]
        assert window and {tr.id for tr in window} == {"XX.AAA.00.HHZ"}
        assert window[0].stats.starttime <= T0 + 20 <= window[0].stats.endtime + 0.01
        assert window[-1].stats.starttime < T0 + 30 <= window[-1].stats.endtime + 0.01
        raw.close()

        raw = _Raw(host, port)
        for line in (b"STATION AAA XX", b"SELECT HHZ", b"DATA"):
            assert raw.ask(line) == b"OK"
        raw.send(b"END")
        first = raw.read(520)
        assert first[:8] == b"SL%06X" % aaa_z[0]
        raw.send(b"INFO ID")  # what obspy's keepalive sends while streaming
        packets = [first]
        while not packets[-1].startswith(b"SLINFO"):
            packets.append(raw.read(520))
        assert packets[-1][:8] == b"SLINFO  "  # one terminated INFO packet
        xml = SLPacket(packets[-1], 0).get_string_payload()
        assert b"firstmotion replay" in xml
        raw.close()

        raw = _Raw(host, port)
        for line in (b"STATION AAA XX", b"SELECT HHZ", b"FETCH %X" % aaa_z[2]):
            assert raw.ask(line) == b"OK"
        raw.send(b"END")
        fetched = raw.packets_until_end()
        assert [int(p[2:8], 16) for p in fetched] == aaa_z[2:]
        raw.close()


def test_only_stations_activated_by_an_action_command_stream(small_dir):
    plan = ReplayServer([small_dir], port=0).plan
    bbb_z = [i + 1 for i, sid in enumerate(plan.stream_ids()) if sid == "XX.BBB.00.HHZ"]
    with serve_in_thread([small_dir], speed=None) as (host, port):
        raw = _Raw(host, port)
        # AAA is selected but never activated (as when obspy gives up on a station)
        for line in (b"STATION AAA XX", b"SELECT HHZ", b"STATION BBB XX", b"SELECT HHZ"):
            assert raw.ask(line) == b"OK"
        assert raw.ask(b"FETCH") == b"OK"
        assert raw.ask(b"DATA") == b"ERROR"  # no STATION before it in multi-station mode
        raw.send(b"END")
        assert [int(p[2:8], 16) for p in raw.packets_until_end()] == bbb_z
        raw.close()

        raw = _Raw(host, port)  # uni-station dial-up: selectors before FETCH, then data, END
        assert raw.ask(b"SELECT HH") == b"ERROR"
        assert raw.ask(b"SELECT --HHZ") == b"OK"
        assert raw.ask(b"FETCH") == b"OK"
        packets = raw.packets_until_end()
        ccc_z = [i + 1 for i, sid in enumerate(plan.stream_ids()) if sid == "XX.CCC..HHZ"]
        assert [int(p[2:8], 16) for p in packets] == ccc_z
        raw.close()


# --------------------------------------------------------------------------- clock


def test_idle_gap_between_files_is_skipped(tmp_path):
    rng = np.random.default_rng(7)
    refs = []
    for k, start in enumerate((T0, T0 + 86400)):
        data = np.cumsum(rng.integers(-50, 50, 1000)).astype(np.int32)
        refs.append(data)
        trace = _trace("DAY", "HHZ", data, 100.0, start)
        _write(tmp_path / f"day{k}.mseed", [trace], encoding="STEIM2")
    n = _count_records(tmp_path)
    t = time.monotonic()
    with serve_in_thread([str(tmp_path / "day*.mseed")], speed=20.0) as (host, port):
        got = _collect(_slclient(host, port, multiselect="XX_DAY:HHZ", timeout=10), n)
    # 2 x 10 s of data at 20x take ~1 s; the day between the files would take 72 minutes
    assert time.monotonic() - t < 30
    assert [s for s, _ in got] == list(range(1, n + 1))
    starts = [tr.stats.starttime for _, tr in got]
    assert starts[0] == T0 and min(s for s in starts if s > T0 + 3600) == T0 + 86400
    np.testing.assert_array_equal(np.concatenate([tr.data for _, tr in got]), np.concatenate(refs))


def test_speed_paces_the_release(small_dir):
    n = len(ReplayServer([small_dir / "AAA.mseed"], port=0).plan)
    arrivals: list[float] = []
    with serve_in_thread([small_dir / "AAA.mseed"], speed=30.0) as (host, port):
        got = _collect(_slclient(host, port, multiselect="XX_AAA:HH?", timeout=10), n, arrivals)
    assert len(got) == n
    # 60 s of data at 30x: releases spread over ~2 s (as fast as possible: one burst)
    assert arrivals[-1] - arrivals[0] > 1.0


def test_loop_continues_sequence_and_shifts_time(small_dir):
    server = ReplayServer([small_dir / "AAA.mseed"], port=0, speed=None, loop=True)
    n, shift = len(server.plan), server.plan.pass_shift_s
    runner = ReplayThread(server)
    host, port = runner.start()
    try:
        got = _collect(_slclient(host, port, multiselect="XX_AAA:HH?", timeout=5), 2 * n + 3)
    finally:
        runner.stop()
    assert [s for s, _ in got] == list(range(1, 2 * n + 4))
    assert shift >= 60
    for (_, a), (_, b) in zip(got[:n], got[n : 2 * n], strict=True):
        assert a.id == b.id
        assert b.stats.starttime - a.stats.starttime == pytest.approx(shift, abs=1e-6)
        np.testing.assert_array_equal(a.data, b.data)


def test_ring_drops_old_records_and_stale_sequence_restarts_at_oldest(small_dir):
    server = ReplayServer([small_dir], port=0, speed=None, ring_records=10)
    n = len(server.plan)
    runner = ReplayThread(server)
    host, port = runner.start()
    try:
        runner.wait_released(n)
        raw = _Raw(host, port)
        for line in (b"STATION * XX", b"DATA 2"):  # sequence 2 has left the 10-record ring
            assert raw.ask(line) == b"OK"
        raw.send(b"END")
        seqs = [int(raw.read(520)[2:8], 16) for _ in range(10)]
        raw.close()
    finally:
        runner.stop()
    assert seqs == list(range(n - 9, n + 1))


# --------------------------------------------------------------------------- real data


def test_real_texnet_two_events_days_apart():
    files = [DATA / "texnet2017" / f"texnet2017{e}.mseed" for e in ("cvmt", "dfac")]
    if not all(f.exists() for f in files):
        pytest.skip("shared/data/texnet2017 not present")
    server = ReplayServer([str(DATA / "texnet2017" / "*.mseed")], port=0, speed=400.0)
    n = len(server.plan)
    # two 2-minute recordings 5 days apart replay in about 2 x 2 minutes of clock
    assert server.plan.pass_clock_s < 400
    runner = ReplayThread(server)
    host, port = runner.start()
    try:
        got = _collect(_slclient(host, port, selectors="???", timeout=10), n)
    finally:
        runner.stop()
    assert [s for s, _ in got] == list(range(1, n + 1))
    split = UTCDateTime(2017, 2, 12)
    for file, in_file in zip(files, (lambda t: t < split, lambda t: t > split), strict=True):
        expected = _expected([file])
        mine = [(s, tr) for s, tr in got if in_file(tr.stats.starttime)]
        assert {40.0, 200.0} <= {tr.stats.sampling_rate for tr in expected.values()}
        per_id = defaultdict(list)
        for _, tr in mine:
            per_id[tr.id].append(tr)
        assert set(per_id) == set(expected)
        for trace_id, traces in per_id.items():
            st = Stream(traces).merge(-1)
            ref = expected[trace_id]
            assert len(st) == 1 and st[0].stats.starttime == ref.stats.starttime
            np.testing.assert_array_equal(np.ma.getdata(st[0].data), np.ma.getdata(ref.data))


def test_real_pr2017_float64_window():
    file = DATA / "pr2017_noise" / "PR15.PR.EHZ..20170908_170000.mseed"
    if not file.exists():
        pytest.skip("shared/data/pr2017_noise not present")
    t1 = UTCDateTime(2017, 9, 8, 17, 20)
    ref = read(str(file)).merge(-1)[0].slice(t1, t1 + 120)
    assert ref.data.dtype == np.float64
    with serve_in_thread([file], speed=None) as (host, port):
        st = Client(host, port, timeout=10).get_waveforms("PR", "PR15", "", "EHZ", t1, t1 + 120)
    assert len(st) == 1 and st[0].data.dtype == np.float64
    assert st[0].stats.starttime == ref.stats.starttime and st[0].stats.npts == 12001
    np.testing.assert_array_equal(st[0].data, ref.data)


# --------------------------------------------------------------------------- command line


def test_cli_serves_exposes_metrics_and_stops_on_sigterm(small_dir):
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "firstmotion.cli", "replay", "--data", str(small_dir)]
    cmd += ["--port", "0", "--as-fast-as-possible", "--metrics-port", "0"]
    proc = subprocess.Popen(cmd, cwd=repo, stderr=subprocess.PIPE, text=True)
    try:
        port = metrics_port = None
        while port is None or metrics_port is None:
            line = proc.stderr.readline()
            assert line, "replay exited before it was serving"
            if m := re.search(r"serving \d+ records of \d+ streams on 127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
            if m := re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line):
                metrics_port = int(m.group(1))
        st = Client("127.0.0.1", port, timeout=5).get_waveforms(
            "XX", "AAA", "00", "HHZ", T0 + 1, T0 + 2
        )
        assert len(st) == 1 and st[0].stats.npts == 101
        url = f"http://127.0.0.1:{metrics_port}"
        text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
        sent = re.search(r"^firstmotion_replay_packets_sent_total (\S+)$", text, re.M)
        assert sent and float(sent.group(1)) >= 1
        assert urllib.request.urlopen(url + "/healthz", timeout=5).status == 200
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "stopped after releasing" in rest


def test_python_api_on_the_callers_event_loop(small_dir):
    import asyncio

    async def scenario():
        server = ReplayServer([small_dir], port=0, speed=None)
        host, port = await server.start()
        assert server.listening and port > 0
        await asyncio.wait_for(server.wait_released(len(server.plan)), 10)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"HELLO\r")
        hello = await asyncio.wait_for(reader.readuntil(b"server\r\n"), 5)
        writer.write(b"SELECT HHN\rFETCH\r")  # commands may arrive in one segment
        assert await asyncio.wait_for(reader.readexactly(8), 5) == b"OK\r\nOK\r\n"
        body = await asyncio.wait_for(reader.readuntil(b"END"), 5)
        writer.close()
        await server.stop()
        assert not server.listening
        return hello, body, server.plan

    hello, body, plan = asyncio.run(scenario())
    assert hello.startswith(b"SeedLink v3.1 (firstmotion replay)")
    packets = [body[i : i + 520] for i in range(0, len(body) - 3, 520)]
    want = [i + 1 for i, sid in enumerate(plan.stream_ids()) if sid.endswith(".HHN")]
    assert [int(p[2:8], 16) for p in packets] == want


def test_create_client_with_a_default_timeout(small_dir, monkeypatch):
    """obspy's ``create_client`` builds ``SeedLinkConnection()`` with ``timeout=None``, which
    fails on connect in obspy 1.5.1 (``SeedLinkException: cannot connect ... '<' not supported
    between 'float' and 'NoneType'`` from ``is_connected_impl``); giving the class a default
    timeout (the DESIGN's workaround) makes it work against the replay server."""
    from obspy.clients.seedlink.client.seedlinkconnection import SeedLinkConnection
    from obspy.clients.seedlink.easyseedlink import create_client

    monkeypatch.setattr(SeedLinkConnection.__init__, "__defaults__", (5.0,))
    expected = _expected([small_dir / "AAA.mseed"])
    n = sum(1 for sid in ReplayServer([small_dir], port=0).plan.stream_ids() if "AAA" in sid)
    traces = []

    class Enough(Exception):
        pass

    def on_data(trace):
        traces.append(trace)
        if len(traces) >= n:
            raise Enough

    with serve_in_thread([small_dir], speed=None) as (host, port):
        client = create_client(f"{host}:{port}", on_data=on_data)
        client.conn.netto = 5
        client.select_stream("XX", "AAA", "HH?")
        with pytest.raises(Enough):
            client.run()
        client.close()
    _assert_in_order_and_complete(list(enumerate(traces)), expected)
