"""The live catalog page: beachball SVG against the radiation pattern, HTTP page and JSON API."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from test_catalog import T0, make_mechanism, make_origin

from firstmotion.bus import Bus
from firstmotion.messages import CatalogEvent
from firstmotion.radiation import p_radiation
from workers.catalog import CatalogReader, CatalogWorker
from workers.web import beachball_svg, event_row_html, start_web_server

REPO = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- beachball


def _svg_rings(svg: str) -> list[np.ndarray]:
    d = re.search(r'<path class="compression"[^>]* d="([^"]*)"', svg).group(1)
    rings = []
    for part in re.findall(r"M([^MZ]*)Z", d):
        xy = np.array([float(v) for v in part.split()]).reshape(-1, 2)
        rings.append(xy)
    return rings


def _inside_evenodd(rings: list[np.ndarray], x: float, y: float) -> bool:
    """Even-odd rule over all rings (as the SVG path's fill-rule)."""
    inside = False
    for ring in rings:
        x0, y0 = ring[:, 0], ring[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= bool(np.count_nonzero(crosses & (x < xc)) % 2)
    return inside


MECHANISMS = [(0, 90, 0), (30, 60, 90), (10, 45, -90), (200, 20, 30), (123, 75, -160)]


@pytest.mark.parametrize("sdr", MECHANISMS)
def test_beachball_compressional_quadrants_follow_the_radiation_pattern(sdr):
    svg = beachball_svg(*sdr)
    rings = _svg_rings(svg)
    rng = np.random.default_rng(abs(sum(sdr)) + 7)
    azimuth = rng.uniform(0, 360, 400)
    takeoff = np.degrees(np.arccos(rng.uniform(-1, 1, 400)))  # from vertical-up, all rays
    amp = p_radiation(*sdr, azimuth, takeoff)
    clear = np.abs(amp) > 0.15  # away from the nodal planes (the contour is sampled)
    # independent projection: lower hemisphere, equal area, upgoing rays at the antipode;
    # SVG x = east, SVG y = -north
    up = takeoff < 90
    az = np.radians(np.where(up, azimuth + 180, azimuth))
    r = np.sqrt(2) * np.sin(np.radians(np.where(up, takeoff, 180 - takeoff)) / 2)
    x, y = r * np.sin(az), -r * np.cos(az)
    checked = {True: 0, False: 0}
    for xi, yi, a in zip(x[clear], y[clear], amp[clear], strict=True):
        assert _inside_evenodd(rings, xi, yi) == (a > 0), (sdr, xi, yi, a)
        checked[bool(a > 0)] += 1
    assert checked[True] > 20 and checked[False] > 20


def test_beachball_svg_is_well_formed_and_validates_input():
    import xml.etree.ElementTree as ET

    root = ET.fromstring(beachball_svg(30, 60, 90, size_px=100))
    assert root.tag.endswith("svg") and root.get("width") == "100"
    with pytest.raises(ValueError, match="dip"):
        beachball_svg(30, 95, 90)
    with pytest.raises(ValueError, match="size_px"):
        beachball_svg(30, 60, 90, size_px=0)


def test_row_html_escapes_event_ids():
    o = make_origin("a<b>&c")
    ev = CatalogEvent(event_id=o.event_id, revision=1, status="preliminary", origin=o)
    row = event_row_html(ev)
    assert "a&lt;b&gt;&amp;c" in row and "a<b>" not in row


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
def catalog(redis_client, redis_url):
    bus = Bus.from_url(redis_url)
    o1 = make_origin("evM", magnitude=2.7)
    bus.publish("origins", o1)
    bus.publish("mechanisms", make_mechanism("evM", quality="B", strike=123.0, origin=o1))
    bus.publish("origins", make_origin("evN", t=T0 + 30, magnitude=None))
    worker = CatalogWorker(bus, block_ms=50)
    worker.run(drain=True, timeout_s=20)
    yield bus, worker
    bus.close()


def _get(url: str) -> tuple[int, dict, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_page_and_api_respond_on_loopback(catalog, redis_client):
    from firstmotion.metrics import registry

    def served(endpoint, code):
        labels = {"endpoint": endpoint, "code": code}
        return registry().get_sample_value("firstmotion_catalog_web_requests_total", labels) or 0

    bus, worker = catalog
    api_before = served("api", "200")
    with start_web_server(CatalogReader(redis_client), "127.0.0.1", 0) as web:
        code, headers, page = _get(web.url + "/")
        assert code == 200 and headers["Content-Type"].startswith("text/html")
        assert re.findall(r'<tr id="ev-([^"]+)"', page) == ["evN", "evM"]  # newest first
        row = re.search(r'<tr id="ev-evM".*?</tr>', page, re.S).group(0)
        for text in ("123 / 60 / 90", ">B<", ">2.7<", ">final<", "35.0000", "<svg"):
            assert text in row, text
        assert "2023-11-14 22:13:20" in row
        assert 'class="compression"' not in re.search(r'<tr id="ev-evN".*?</tr>', page, re.S)[0]

        code, _, body = _get(web.url + "/api/events")
        events = [CatalogEvent.from_dict(d) for d in json.loads(body)]
        assert code == 200 and [e.event_id for e in events] == ["evN", "evM"]
        assert events[1].mechanism.strike == 123.0
        code, _, body = _get(web.url + "/api/events/evM")
        assert code == 200 and CatalogEvent.from_json(body).revision == 2
        assert _get(web.url + "/api/events/nope")[0] == 404
        assert _get(web.url + "/api/events/bad%20id")[0] == 400
        assert _get(web.url + "/api/events?limit=0")[0] == 400
        assert len(json.loads(_get(web.url + "/api/events?limit=1")[2])) == 1
        code, headers, svg = _get(web.url + "/beachball/evM.svg")
        assert code == 200 and headers["Content-Type"].startswith("image/svg+xml")
        assert _get(web.url + "/beachball/evN.svg")[0] == 404
        assert served("api", "200") == api_before + 3  # /api/events x2, /api/events/evM

        # live: a new event appears in the fragment the page polls
        bus.publish("origins", make_origin("evNew", t=T0 + 90))
        worker.run(drain=True, timeout_s=20)
        code, headers, frag = _get(web.url + "/fragment")
        assert code == 200 and headers["X-Event-Count"] == "3"
        assert re.findall(r'<tr id="ev-([^"]+)"', frag) == ["evNew", "evN", "evM"]


def test_event_stream_pushes_each_change(catalog, redis_client):
    import http.client

    bus, worker = catalog
    with start_web_server(CatalogReader(redis_client), "127.0.0.1", 0, keepalive_s=0.2) as web:
        conn = http.client.HTTPConnection(web.host, web.port, timeout=10)
        conn.request("GET", "/api/stream")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type").startswith("text/event-stream")
        assert resp.fp.readline() == b"retry: 3000\n"  # subscribed before this was sent
        bus.publish("origins", make_origin("evSSE", t=T0 + 120))
        worker.run(drain=True, timeout_s=20)
        lines = []
        while not lines or not lines[-1].startswith(b"data: "):
            lines.append(resp.fp.readline())
        assert lines[0] == b": connected\n"
        assert lines[-2] == b"event: change\n"
        event = CatalogEvent.from_json(lines[-1][len(b"data: ") :])
        assert (event.event_id, event.revision, event.status) == ("evSSE", 1, "preliminary")
        conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_catalog_command_serves_the_page_and_stops_on_sigterm(catalog, redis_url):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "firstmotion.cli", "worker", "catalog", "--redis", redis_url,
         "--web-port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline, page = time.monotonic() + 30, None
        while time.monotonic() < deadline and page is None:
            try:
                page = _get(f"http://127.0.0.1:{port}/")[2]
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert page is not None and "evM" in page
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    browser = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    profile = tmp_path / f"profile{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        check=True, timeout=90, capture_output=True,
    )  # fmt: skip


@pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) or shutil.which("chromium")),
    reason="no headless browser: /usr/bin/chromium not installed (optional rendering test)",
)
def test_page_renders_in_headless_chromium(catalog, redis_client, tmp_path):
    """The page as a browser runs it: the script draws the map (stations, a beachball at the
    epicentre with a mechanism, a dot at the one without), the selected event with its
    station polarities and revision history, the health panel and SHmax bars."""
    redis_client.xadd("fm:dead", {"error": "poison"})
    redis_client.hset("fm:stress:35.1_-117.45", mapping={"shmax_azimuth_deg": "30"})
    shot = tmp_path / "page.png"
    with start_web_server(CatalogReader(redis_client), "127.0.0.1", 0) as web:
        # ?live=0: no open event stream, so the browser's virtual clock can run out
        url = web.url + "/?live=0"
        _chromium(tmp_path, "--virtual-time-budget=4000", f"--screenshot={shot}",
                  "--window-size=1400,1000", url)  # fmt: skip
        dom = _chromium(tmp_path, "--virtual-time-budget=4000", "--dump-dom", url).stdout.decode()
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    red = (img[..., 0] > 0.6) & (img[..., 1] < 0.35) & (img[..., 2] < 0.35)
    assert red.sum() > 2000  # the beachballs: the table's, the map's and the selected one
    map_svg = re.search(r'<svg id="map".*?</svg>', dom, re.S).group(0)
    assert map_svg.count('class="epi"') == 2
    assert "/beachball/evM.svg" in map_svg  # the event with a mechanism: its beachball
    assert len(re.findall(r"<path d=\"M[^\"]*Z\"", map_svg)) == 6  # the six stations
    assert 'class="stress"' in map_svg
    detail = re.search(r'<div id="ev-detail">.*?</div>\s*<h3>', dom, re.S).group(0)
    assert detail.count('class="up"') == 3 and detail.count('class="down"') == 3
    assert "123 / 60 / 90" in detail
    assert re.search(r'id="ev-title">evM<', dom)  # the newest event with a mechanism
    history = re.search(r'<div id="ev-history">.*?</div>', dom, re.S).group(0)
    assert history.count("<tr>") == 3  # header + origin + mechanism
    health = re.search(r'<div id="health">.*?</section>', dom, re.S).group(0)
    assert "origins → catalog" in health and "<dd>1</dd>" in health  # one dead letter
    assert "dead letters 1" in dom  # the header badge


def test_change_fanout_says_a_lost_subscription_once_per_outage(caplog):
    """Redis down for seconds: the catalog page's change subscription is said lost once,
    and back once (it logged a warning every second of the outage)."""
    import time

    from workers.web import ChangeFanout

    class PubSub:
        def get_message(self, timeout):
            time.sleep(0.01)
            return None

        def close(self):
            pass

    down = {"until": time.monotonic() + 3.2}

    def subscribe():
        if time.monotonic() < down["until"]:
            raise ConnectionError("redis down")
        return PubSub()

    with caplog.at_level("INFO", logger="workers.web"):
        fan = ChangeFanout(subscribe, 4).start()
        deadline = time.monotonic() + 10
        while not fan.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        back = fan.connected.is_set()
        fan.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "workers.web"]
    lost = [m for m in said if "change subscription lost" in m]
    assert back and len(lost) == 1
    assert any("change subscription back" in m for m in said)
