"""The live page under load and at its trust boundary: one Redis connection for every event
stream, a cap on streams, a token, Host header checks; and the page's data endpoints."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_catalog import T0, make_mechanism, make_origin

from firstmotion.bus import Bus
from firstmotion.messages import CatalogEvent
from firstmotion.redis_server import free_port
from workers.catalog import CatalogReader, CatalogWorker, history_entry
from workers.web import WebAccess, host_name, is_loopback, page_client, start_web_server
from workers.web_data import (
    event_latencies,
    parse_stress_cell,
    read_stress,
    stations_of_events,
)

REPO = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token-0123456789"


# --------------------------------------------------------------------------- pure access rules


def test_host_header_check_refuses_other_names():
    a = WebAccess()
    assert a.host_ok("127.0.0.1:8080", "127.0.0.1")
    assert a.host_ok("localhost:8080", "127.0.0.1")
    assert a.host_ok("[::1]:8080", "::1")
    # DNS rebinding: attacker.example resolves to 127.0.0.1 but the browser names it
    assert not a.host_ok("attacker.example:8080", "127.0.0.1")
    assert not a.host_ok("attacker.example", "0.0.0.0")
    assert not a.host_ok(None, "127.0.0.1") and not a.host_ok("", "127.0.0.1")
    # a specific bind address is its own name; configured names are allowed, case-insensitive
    assert a.host_ok("10.1.2.3:8080", "10.1.2.3")
    assert not a.host_ok("10.1.2.3:8080", "0.0.0.0")
    b = WebAccess(allowed_hosts=("quake.example.org", "10.1.2.3"))
    assert b.host_ok("Quake.Example.ORG", "0.0.0.0") and b.host_ok("10.1.2.3:80", "0.0.0.0")
    assert not b.host_ok("quake.example.org.attacker.example", "0.0.0.0")
    assert WebAccess(allowed_hosts=("*",)).host_ok("anything", "0.0.0.0")
    assert host_name("[fe80::1]:80") == "fe80::1" and host_name("a.b:81") == "a.b"
    assert is_loopback("127.0.0.5") and is_loopback("localhost") and not is_loopback("0.0.0.0")


def test_token_is_checked_in_header_query_and_cookie():
    assert WebAccess().token_ok(None, None, "")  # no token configured: open
    a = WebAccess(token=TOKEN)
    assert not a.token_ok(None, None, "")
    assert a.token_ok(f"Bearer {TOKEN}", None, "")
    assert a.token_ok(None, TOKEN, "")
    assert a.token_ok(None, None, f"other=1; fm_token={TOKEN}")
    assert not a.token_ok("Bearer wrong", "wrong", "fm_token=wrong")
    with pytest.raises(ValueError, match="web_max_clients"):
        WebAccess(max_clients=0)


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
def catalog(redis_client, redis_url):
    bus = Bus.from_url(redis_url)
    o1 = make_origin("evM", magnitude=2.7)
    bus.publish("origins", o1)
    bus.publish("mechanisms", make_mechanism("evM", quality="B", strike=123.0, origin=o1))
    bus.publish("origins", make_origin("evN", t=T0 + 30, magnitude=None, lat=35.2))
    worker = CatalogWorker(bus, block_ms=50)
    worker.run(drain=True, timeout_s=20)
    yield bus, worker
    bus.close()


def _request(host: str, port: int, path: str, headers: dict | None = None):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    return resp.status, dict(resp.getheaders()), body


def test_token_and_host_are_enforced_over_http(catalog, redis_client):
    access = WebAccess(token=TOKEN)
    with start_web_server(CatalogReader(redis_client), "127.0.0.1", 0, access=access) as web:
        assert _request(web.host, web.port, "/")[0] == 401
        assert _request(web.host, web.port, "/api/stream")[0] == 401
        code, headers, page = _request(web.host, web.port, f"/?token={TOKEN}")
        assert code == 200 and "evM" in page
        cookie = headers["Set-Cookie"]
        assert cookie.startswith(f"fm_token={TOKEN}") and "HttpOnly" in cookie
        assert (
            _request(web.host, web.port, "/api/events", {"Cookie": cookie.split(";")[0]})[0] == 200
        )
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert _request(web.host, web.port, "/api/events", auth)[0] == 200
        # a browser led here by a rebound DNS name sends its own Host: refused before anything
        evil = {**auth, "Host": f"attacker.example:{web.port}"}
        code, _, body = _request(web.host, web.port, "/api/events", evil)
        assert code == 403 and "evM" not in body


def _open_stream(host: str, port: int) -> tuple[socket.socket, bytes]:
    """A raw event-stream client: returns the socket and what it read up to ': connected'."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(f"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    got = b""
    while b": connected" not in got:
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
        if not got.startswith(b"HTTP/1.0 200") and b"\r\n\r\n" in got:
            break
    return sock, got


def test_event_streams_are_capped_and_share_one_redis_connection(catalog, redis_client, redis_url):
    bus, worker = catalog
    client = page_client(redis_url)
    before = len(redis_client.client_list())
    access = WebAccess(max_clients=12)
    socks = []
    with start_web_server(CatalogReader(client), "127.0.0.1", 0, access=access) as web:
        try:
            for _ in range(12):
                sock, head = _open_stream(web.host, web.port)
                socks.append(sock)
                assert head.startswith(b"HTTP/1.0 200") and b": connected" in head
            sock, head = _open_stream(web.host, web.port)
            sock.close()
            assert head.startswith(b"HTTP/1.0 503"), head[:200]
            # twelve listeners hold one subscription, not twelve connections
            during = redis_client.client_list()
            assert len(during) <= before + 2, [c.get("cmd") for c in during]
            assert sum(1 for c in during if c.get("cmd") in ("subscribe", "ssubscribe")) == 1
            # every listener gets the change
            bus.publish("origins", make_origin("evFan", t=T0 + 200))
            worker.run(drain=True, timeout_s=20)
            for s in socks:
                buf = b""
                while b"evFan" not in buf:
                    chunk = s.recv(65536)
                    assert chunk, "stream closed before the change arrived"
                    buf += chunk
                assert b"event: change" in buf
            socks.pop().close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the server notices the closed stream
                sock, head = _open_stream(web.host, web.port)
                if head.startswith(b"HTTP/1.0 200"):
                    socks.append(sock)
                    break
                sock.close()
                time.sleep(0.2)
            assert head.startswith(b"HTTP/1.0 200"), "a freed slot was not reused"
        finally:
            for s in socks:
                s.close()
    client.close()


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_page_data_endpoints(catalog, redis_client):
    bus, worker = catalog
    redis_client.xadd("fm:dead", {"error": "x"})
    redis_client.hset(
        "fm:stress:35.0_-117.5", mapping={"shmax_azimuth_deg": "20", "n_mechanisms": "31"}
    )
    redis_client.set(
        "fm:stress:b", json.dumps({"center": [35.2, -117.4], "shmax_azimuth_deg": 200})
    )
    redis_client.set("fm:stress:c", "not json")
    with start_web_server(CatalogReader(redis_client), "127.0.0.1", 0) as web:
        health = _get_json(web.url + "/api/health")
        assert health["dead_letters"] == 1
        groups = {(g["stream"], g["group"]): g for g in health["groups"]}
        assert groups[("origins", "catalog")]["backlog"] == 0
        assert groups[("origins", "catalog")]["pending"] == 0
        assert groups[("picks", "polarity")]["backlog"] is None  # no such stream yet
        assert health["streams"]["origins"]["length"] == 2
        assert health["latency"]["n_events"] == 2
        stations = _get_json(web.url + "/api/stations")
        assert [s["station"] for s in stations] == [f"XX.S{i:02d}" for i in range(6)]
        stress = _get_json(web.url + "/api/stress")
        assert [(c["cell"], c["shmax_azimuth_deg"]) for c in stress] == [
            ("35.0_-117.5", 20.0),
            ("b", 20.0),
        ]
        history = _get_json(web.url + "/api/events/evM/history")
        assert [(h["kind"], h["revision"]) for h in history] == [("origin", 1), ("mechanism", 2)]
        assert (
            history[1]["mechanism"]["strike"] == 123.0 and history[1]["mechanism"]["quality"] == "B"
        )
        assert _get_json(web.url + "/api/events/nope/history") == []
        with urllib.request.urlopen(web.url + "/beachball/evM.svg?size=120&picks=1") as resp:
            svg = resp.read().decode()
        assert svg.count('class="up"') == 3 and svg.count('class="down"') == 3
        assert "XX.S01..HHZ: up" in svg
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(web.url + "/beachball/evM.svg?size=5")
        assert err.value.code == 400


def test_latencies_and_stations_from_arrivals():
    o = make_origin("a", t=T0 - 30)  # created at T0 + 10: located 40 s after origin time
    m = make_mechanism("a", origin=o)
    from dataclasses import replace

    from firstmotion.messages import CatalogEvent

    m = replace(m, created_epoch_s=T0 + 25)
    ev = CatalogEvent(event_id="a", revision=2, status="final", origin=o, mechanism=m)
    lat = event_latencies([ev])
    assert lat["location_s"]["last"] == pytest.approx(40.0)
    assert lat["mechanism_s"]["median"] == pytest.approx(55.0)
    assert event_latencies([])["mechanism_s"] == {"last": None, "median": None}
    stations = stations_of_events([ev], inventory={"XX.S00": (1.0, 2.0)})
    by = {s["station"]: s for s in stations}
    assert by["XX.S00"]["source"] == "inventory" and by["XX.S00"]["latitude_deg"] == 1.0
    # S03: azimuth 180, 19 km: due south of the epicentre by 19 km
    assert by["XX.S03"]["latitude_deg"] == pytest.approx(35.0 - 19 / 110.95, abs=2e-3)
    assert by["XX.S03"]["longitude_deg"] == pytest.approx(-117.5, abs=1e-6)


def test_station_polarity_counts_sum_a_stations_channels():
    from workers.web_data import station_polarity_counts

    fields = {b"XX.S01..HHZ|agree": b"3", b"XX.S01..EHZ|agree": b"2",
              "XX.S01..HHZ|disagree": "1", b"XX.S02.00.HHZ|disagree": b"4", b"junk": b"9",
              b"XX.S03..HHZ|maybe": b"1"}  # fmt: skip
    assert station_polarity_counts(fields) == {
        "XX.S01": {"agree": 5, "disagree": 1},
        "XX.S02": {"agree": 0, "disagree": 4},
    }
    ev = CatalogEvent(event_id="a", revision=1, status="final", origin=make_origin("a"))
    by = {s["station"]: s for s in stations_of_events([ev], None, station_polarity_counts(fields))}
    assert by["XX.S01"]["polarities"] == {"agree": 5, "disagree": 1}
    assert by["XX.S01"]["mostly_disagree"] is False
    assert "polarities" not in by["XX.S04"]
    assert "mostly_disagree" not in by["XX.S04"]


def test_a_station_is_outlined_when_most_of_six_or_more_disagree():
    from workers.web_data import mostly_disagree

    assert mostly_disagree({"agree": 2, "disagree": 4})
    assert not mostly_disagree({"agree": 1, "disagree": 4})  # 5: too few to say
    assert not mostly_disagree({"agree": 3, "disagree": 3})  # half is not most
    assert not mostly_disagree({"agree": 5, "disagree": 1})
    assert mostly_disagree({"disagree": 6})


def test_stress_cells_parse_several_layouts():
    raw = {b"shmax_azimuth_deg": b"190", b"latitude_deg": b"10", b"longitude_deg": b"20"}
    assert parse_stress_cell("x", raw)["shmax_azimuth_deg"] == 10.0
    assert parse_stress_cell("12.5_-3", json.dumps({"shmax_azimuth_deg": 5}))["longitude_deg"] == -3
    assert parse_stress_cell("x", {"shmax_azimuth_deg": 5}) is None  # nowhere to draw it
    assert parse_stress_cell("1_2", {"sigma1": 5}) is None  # no SHmax
    assert parse_stress_cell("1_2", "[" * 100_000) is None  # poison stays harmless


def test_the_stress_workers_cells_are_drawn(redis_client):
    """The page reads what ``firstmotion worker stress`` writes: the cell list in
    ``fm:stress:cells`` and each cell's JSON with its centre as an object; the worker's other
    keys under ``fm:stress:`` (members, event cells, stations) are not cells."""
    from workers.stress.cells import cell_centre, cell_id

    lat, lon = cell_centre(0.5, 68, -237)
    cell = cell_id(0.5, 68, -237)
    obj = {
        "shmax_azimuth_deg": 212.0,
        "shape_ratio": 0.6,
        "n_mechanisms": 25,
        "uncertainty": {"shmax_azimuth_deg": [205.0, 219.0]},
        "cell": cell,
        "centre": {"latitude_deg": lat, "longitude_deg": lon},
        "count": 25,
    }
    redis_client.set(f"fm:stress:{cell}", json.dumps(obj))
    redis_client.zadd("fm:stress:cells", {cell: 1.0})
    redis_client.hset(f"fm:stress:members:{cell}", "ev1", json.dumps({"strike": 1}))
    redis_client.set("fm:stress:event:ev1", cell)
    cells = read_stress(redis_client, "fm:")
    assert [c["cell"] for c in cells] == [cell]
    assert cells[0]["latitude_deg"] == pytest.approx(lat)
    assert cells[0]["longitude_deg"] == pytest.approx(lon)
    assert cells[0]["shmax_azimuth_deg"] == pytest.approx(32.0)
    assert cells[0]["n_mechanisms"] == 25


def test_history_entry_summarises_the_change():
    o = make_origin("h1")
    from firstmotion.messages import CatalogEvent

    ev = CatalogEvent(event_id="h1", revision=3, status="final", origin=o,
                      mechanism=make_mechanism("h1", origin=o, quality="A"))  # fmt: skip
    h = history_entry("mechanism", ev)
    assert h["kind"] == "mechanism" and h["revision"] == 3
    assert h["origin"]["n_arrivals"] == 6 and h["mechanism"]["quality"] == "A"


# --------------------------------------------------------------------------- a flood of browsers


@pytest.mark.timeout(120)
def test_200_event_streams_do_not_stop_the_catalog_and_the_page_answers(redis_client, redis_url):
    """The catalog worker as deployed (its own process), 200 browsers listening: the catalog
    still processes new origins, the page answers, and the page's Redis connections stay
    a handful."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "firstmotion.cli", "worker", "catalog", "--redis", redis_url,
         "--web-port", str(port), "--metrics-port", str(free_port())],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    socks: list[socket.socket] = []
    bus = Bus.from_url(redis_url)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/events", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the catalog page did not come up"
                time.sleep(0.2)
        for _ in range(200):
            sock, head = _open_stream("127.0.0.1", port)
            assert head.startswith(b"HTTP/1.0 200"), head[:100]
            socks.append(sock)
        clients = redis_client.client_list()
        assert len(clients) < 20, f"{len(clients)} Redis connections with 200 streams open"
        for i in range(5):
            bus.publish("origins", make_origin(f"flood{i}", t=T0 + i))
        deadline = time.monotonic() + 30
        while redis_client.zcard("fm:catalog") < 5:
            assert time.monotonic() < deadline, "the catalog stopped processing"
            assert proc.poll() is None, "the catalog worker died"
            time.sleep(0.1)
        # the page answers within the 3 s an operator would wait, while 200 streams listen
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
            page = resp.read().decode()
        assert resp.status == 200 and "flood4" in page
        health = _get_json(f"http://127.0.0.1:{port}/api/health")
        assert health["stream_clients"] == 200
        # and every listener was told about the changes
        buf = b""
        while buf.count(b"event: change") < 5:
            chunk = socks[-1].recv(65536)
            assert chunk
            buf += chunk
    finally:
        for s in socks:
            s.close()
        bus.close()
        proc.terminate()
        proc.wait(20)


def test_page_says_unavailable_when_redis_is_down():
    client = page_client(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1.0)  # nothing there
    with start_web_server(CatalogReader(client), "127.0.0.1", 0) as web:
        for path in ("/", "/api/events", "/api/health"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(web.url + path, timeout=10)
            assert err.value.code == 503, path
            assert b"catalog store unavailable" in err.value.read()
        code, _, _ = _request(web.host, web.port, "/static/live.js")
        assert code == 200  # the page's own files need no Redis
    client.close()


class _FakePubSub:
    """A pub/sub that hands out queued messages (what redis-py's get_message returns)."""

    def __init__(self) -> None:
        import queue

        self.messages: queue.Queue = queue.Queue()
        self.closed = False

    def get_message(self, timeout: float = 0.0):
        import queue

        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.closed = True


def test_fanout_copies_each_change_to_every_client_and_drops_a_stalled_one():
    from workers.web import ChangeFanout

    ps = _FakePubSub()
    subscribed = []
    fan = ChangeFanout(lambda: subscribed.append(1) or ps, max_clients=2, queue_size=2).start()
    try:
        fast, slow = fan.join(), fan.join()
        assert fan.join() is None and fan.n_clients == 2  # the cap
        for i in range(3):
            ps.messages.put({"type": "message", "data": f"change {i}".encode()})
            assert fast.get(timeout=5) == f"change {i}".encode()  # read as they come
        # the slow client never read: the third change found its queue full and ended its
        # stream (the end marker; the browser reconnects and reloads everything)
        got = []
        while (item := slow.get(timeout=5)) is not None:
            got.append(item)
        assert len(got) < 3 and got == sorted(got)
        assert fan.n_clients == 1 and subscribed == [1]  # one subscription for all
        fan.leave(fast)
        assert fan.n_clients == 0 and fan.join() is not None
    finally:
        fan.stop()
    assert ps.closed
