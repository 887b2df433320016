"""The live catalog page an operator keeps open, and its JSON API.

Served by the catalog worker (``firstmotion worker catalog``) on ``catalog.web_host``:
``catalog.web_port`` (loopback by default) with the standard library's threading HTTP server.
Plain HTML, CSS, JavaScript and SVG from this server only (``workers/web_static/``): no
libraries, no CDN, nothing fetched from elsewhere at run time.

* ``/`` -- the page: a map of the stations and epicentres (beachballs where there is a
  mechanism, the selected event's station polarities, SHmax bars of stress cells when the
  catalog has any), the selected event (beachball with its first motions, origin, mechanism,
  quality, revision history), the pipeline health (backlog and pending per consumer group,
  dead letters, latency) and the events table (rendered server-side, newest first). The script
  refreshes on every change pushed by ``/api/stream`` and polls as a fallback; ``?live=0``
  polls only.
* ``/fragment`` -- the table body alone; ``/api/events?limit=N`` -- the events as JSON
  (CatalogEvent objects, newest first); ``/api/events/<id>`` -- one event (404 if unknown);
  ``/api/events/<id>/history`` -- its revision history (``<prefix>history:<id>``);
  ``/api/stations``, ``/api/health``, ``/api/stress`` -- see :mod:`workers.web_data`;
  ``/beachball/<id>.svg[?size=N&picks=1]`` -- the event's beachball (with its polarities).
* ``/api/stream`` -- Server-Sent Events: ``event: change`` with the CatalogEvent JSON per
  catalog change, a comment line every ``SSE_KEEPALIVE_S`` otherwise. All streams are fed by
  ONE subscription to ``<prefix>events`` (:class:`ChangeFanout`), so however many browsers
  listen, the page uses a fixed handful of Redis connections -- from its own pool
  (:func:`page_client`), never the catalog consumer's. Streams beyond
  ``catalog.web_max_clients`` get 503.
* Access (:class:`WebAccess`): the ``Host`` header must name this server (loopback names, the
  bind address or ``catalog.web_allowed_hosts``), which defeats DNS rebinding; with
  ``catalog.web_token`` set every request needs the token (bearer header, ``?token=`` once,
  then a cookie).

Beachballs are drawn server-side by :func:`beachball_svg`, a pure function of strike, dip and
rake: the lower-hemisphere equal-area projection (Schmidt net) that obspy and HASH use, with the
compressional quadrants (P radiation > 0, :func:`firstmotion.radiation.p_radiation`) filled.
The quadrants are the filled contour ``amplitude >= 0`` of the P radiation pattern sampled on a
polar grid of the projection (contourpy), so the picture agrees with the radiation pattern by
construction; tests check points of it against :mod:`firstmotion.radiation`.

.. seealso:: Aki & Richards (2002), Box 4.4 (radiation); Snyder (1987), Map Projections, p. 182
   (Lambert azimuthal equal-area: r = sqrt(2) sin(i/2)).
"""

from __future__ import annotations

import contextlib
import hmac
import html
import ipaddress
import json
import logging
import queue
import re
import select
import socket
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from firstmotion.messages import CatalogEvent
from firstmotion.metrics import ThreadedHTTPServer, counter, gauge
from firstmotion.radiation import p_radiation
from workers.web_data import (
    read_health,
    read_station_polarities,
    read_stress,
    stations_of_events,
)

log = logging.getLogger(__name__)

EVENT_ID_RE = re.compile(r"[A-Za-z0-9_.:@+-]{1,200}")
DEFAULT_LIMIT = 200
MAX_LIMIT = 5000
POLL_INTERVAL_S = 3.0
SSE_KEEPALIVE_S = 15.0
COMPRESSION_COLOR = "#c0392b"

# --------------------------------------------------------------------------- beachball (pure)


def project_ray(azimuth_deg: Any, takeoff_deg: Any) -> tuple[np.ndarray, np.ndarray]:
    """(east, north) on the unit beachball (lower hemisphere, equal area) of rays.

    ``takeoff_deg`` from vertical-UP (0 up, 180 down); an upgoing ray plots at its antipode,
    where the P radiation has the same sign. Radius ``sqrt(2) sin(i/2)``, ``i`` the angle from
    vertical-down (1 at the rim).
    """
    az = np.array(azimuth_deg, dtype=float)
    takeoff = np.asarray(takeoff_deg, dtype=float)
    up = takeoff < 90.0
    az = np.where(up, az + 180.0, az)
    i_rad = np.radians(np.where(up, takeoff, 180.0 - takeoff))
    r = np.sqrt(2.0) * np.sin(i_rad / 2.0)
    a = np.radians(az)
    return r * np.sin(a), r * np.cos(a)


def beachball_polygons(
    strike_deg: float,
    dip_deg: float,
    rake_deg: float,
    *,
    n_radius: int = 48,
    n_azimuth: int = 144,
) -> list[list[np.ndarray]]:
    """The compressional areas of a double couple on the unit beachball.

    Returns a list of polygons; each polygon is a list of rings ``(n, 2)`` of (east, north)
    points (the first ring the outline, any further rings holes). Computed as the filled
    contour ``p_radiation >= 0`` over a polar grid (``n_radius`` x ``n_azimuth``) of the
    lower-hemisphere equal-area projection.
    """
    if not (0.0 <= dip_deg <= 90.0):
        raise ValueError(f"dip_deg: expected 0..90, got {dip_deg}")
    if n_radius < 4 or n_azimuth < 16:
        raise ValueError(f"grid too coarse: n_radius={n_radius}, n_azimuth={n_azimuth}")
    from contourpy import FillType, contour_generator

    r = np.linspace(0.0, 1.0, n_radius)
    az_deg = np.linspace(0.0, 360.0, n_azimuth + 1)
    rr, aa = np.meshgrid(r, az_deg, indexing="ij")
    i_from_down_deg = np.degrees(2.0 * np.arcsin(np.clip(rr / np.sqrt(2.0), 0.0, 1.0)))
    amp = p_radiation(strike_deg, dip_deg, rake_deg, aa, 180.0 - i_from_down_deg)
    amp = amp / max(float(np.abs(amp).max()), 1e-12)
    x = rr * np.sin(np.radians(aa))
    y = rr * np.cos(np.radians(aa))
    gen = contour_generator(x, y, amp, fill_type=FillType.OuterOffset)
    points, offsets = gen.filled(0.0, np.inf)
    out = []
    for pts, offs in zip(points, offsets, strict=True):
        rings = [pts[offs[k] : offs[k + 1]] for k in range(len(offs) - 1)]
        out.append([ring for ring in rings if len(ring) >= 3])
    return [p for p in out if p]


def _compression_path(strike_deg: float, dip_deg: float, rake_deg: float) -> str:
    """The SVG path data of the compressional areas in unit coordinates (y = -north)."""
    d = []
    for polygon in beachball_polygons(strike_deg, dip_deg, rake_deg):
        for ring in polygon:
            # 0.01 of the radius is a quarter pixel at 48 px; drop repeats after rounding
            pts = np.round(np.column_stack([ring[:, 0], -ring[:, 1]]), 2) + 0.0
            keep = np.ones(len(pts), dtype=bool)
            keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
            pts = pts[keep]
            if len(pts) >= 3:
                d.append("M" + " ".join(f"{x:.2f} {y:.2f}" for x, y in pts) + "Z")
    return "".join(d)


def beachball_svg(
    strike_deg: float,
    dip_deg: float,
    rake_deg: float,
    *,
    size_px: int = 48,
    color: str = COMPRESSION_COLOR,
    picks: Any = (),
) -> str:
    """A standalone SVG beachball (north up, east right) of ``size_px`` pixels.

    The compressional areas are one ``<path class="compression">`` (even-odd fill) in unit
    coordinates (y flipped: SVG y = -north) inside a ``viewBox`` of the unit circle.
    ``picks`` (objects with ``station_id``, ``azimuth_deg``, ``takeoff_deg``, ``polarity``,
    as :class:`firstmotion.messages.MechanismPick`) are drawn at their rays (same projection):
    compression (up, +1) a filled circle, dilatation (down, -1) an open circle, each titled
    with its station.
    """
    if size_px <= 0:
        raise ValueError(f"size_px: expected > 0, got {size_px}")
    if not re.fullmatch(r"#[0-9a-fA-F]{3,8}|[a-z]{3,20}", color):
        raise ValueError(f"color: expected #rrggbb or a colour name, got {color!r}")
    d = _compression_path(strike_deg, dip_deg, rake_deg)
    label = f"strike {strike_deg:.0f}, dip {dip_deg:.0f}, rake {rake_deg:.0f}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="beachball" width="{size_px}" '
        f'height="{size_px}" viewBox="-1.04 -1.04 2.08 2.08" role="img" '
        f'aria-label="{label}"><title>{label}</title>'
        '<circle cx="0" cy="0" r="1" fill="white"/>'
        f'<path class="compression" fill="{color}" stroke="{color}" stroke-width="0.01" '
        f'fill-rule="evenodd" d="{d}"/>'
        '<circle cx="0" cy="0" r="1" fill="none" stroke="black" stroke-width="0.04"/>'
        f"{_pick_markers(picks)}</svg>"
    )


def _pick_markers(picks: Any) -> str:
    """SVG circles of first-motion polarities on the unit beachball (see beachball_svg)."""
    picks = [p for p in picks if p.polarity in (-1, 1)]
    if not picks:
        return ""
    east, north = project_ray([p.azimuth_deg for p in picks], [p.takeoff_deg for p in picks])
    out = ['<g class="polarities">']
    for p, x, y in zip(picks, east, north, strict=True):
        up = p.polarity > 0
        name = html.escape(p.station_id)
        what = "up (compression)" if up else "down (dilatation)"
        fill, stroke, cls = ("#111", "white", "up") if up else ("white", "#111", "down")
        out.append(
            f'<circle class="{cls}" cx="{x:.3f}" cy="{-y:.3f}" r="0.06" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="0.025"><title>{name}: {what}, azimuth '
            f"{p.azimuth_deg:.0f}, takeoff {p.takeoff_deg:.0f}</title></circle>"
        )
    out.append("</g>")
    return "".join(out)


@lru_cache(maxsize=4096)
def _cached_svg(strike_deg: float, dip_deg: float, rake_deg: float, size_px: int) -> str:
    return beachball_svg(strike_deg, dip_deg, rake_deg, size_px=size_px)


def event_beachball(event: CatalogEvent, size_px: int = 48) -> str:
    """The beachball of an event's mechanism (rounded to 0.1 degree), or '' without one."""
    m = event.mechanism
    if m is None:
        return ""
    return _cached_svg(round(m.strike, 1), round(m.dip, 1), round(m.rake, 1), size_px)


# --------------------------------------------------------------------------- HTML (pure)


def _utc(epoch_s: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-4]


def event_row_html(event: CatalogEvent) -> str:
    """One ``<tr>`` of the events table (every value escaped)."""
    o, m = event.origin, event.mechanism
    mag = "" if o.magnitude is None else f"{o.magnitude:.1f}"
    sdr = "" if m is None else f"{m.strike:.0f} / {m.dip:.0f} / {m.rake:.0f}"
    quality = "" if m is None else m.quality
    where = [_utc(o.time_epoch_s), f"{o.latitude_deg:.4f}", f"{o.longitude_deg:.4f}"]
    where += [f"{o.depth_km:.1f}", mag]
    what = [sdr, quality, str(event.revision), event.status]
    eid = html.escape(event.event_id)
    return (
        f'<tr id="ev-{eid}" class="{html.escape(event.status)}">'
        f'<td><a href="/api/events/{eid}">{eid}</a></td>'
        + "".join(f"<td>{html.escape(c)}</td>" for c in where)
        + f'<td class="ball">{event_beachball(event)}</td>'
        + "".join(f"<td>{html.escape(c)}</td>" for c in what)
        + "</tr>"
    )


def table_body_html(events: list[CatalogEvent]) -> str:
    """The ``<tbody>`` content: rows newest first (as given), or a 'no events' row."""
    if not events:
        return '<tr><td colspan="11" class="empty">no events yet</td></tr>'
    return "\n".join(event_row_html(e) for e in events)


STATIC_DIR = Path(__file__).resolve().parent / "web_static"
STATIC_FILES = {"live.js": "text/javascript", "live.css": "text/css"}

PAGE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>firstmotion live catalog</title>
<link rel="stylesheet" href="/static/live.css">
</head>
<body data-poll-ms="{poll_ms}">
<header><h1>firstmotion <span>live catalog</span></h1>
<p id="status">{count} events &middot; updated every {poll:.0f} s</p>
<div id="badges"></div></header>
<main>
<section id="map-panel" class="panel"><h2>stations and epicentres</h2>
<svg id="map" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 760 540" role="img"
 aria-label="map of stations and epicentres"></svg>
<p class="legend" id="map-legend"></p></section>
<section id="event-panel" class="panel"><h2>event <span id="ev-title">&ndash;</span></h2>
<div id="ev-detail"><p class="muted">select an event in the table or on the map</p></div>
<h3>revision history</h3><div id="ev-history"></div></section>
<section id="health-panel" class="panel"><h2>pipeline health</h2>
<div id="health"><p class="muted">loading&hellip;</p></div></section>
<section id="table-panel" class="panel"><h2>events (newest first)</h2>
<table id="events-table">
<thead><tr><th>event</th><th>origin time (UTC)</th><th>lat</th><th>lon</th><th>depth km</th>
<th>mag</th><th>mechanism</th><th>strike / dip / rake</th><th>quality</th><th>revision</th>
<th>status</th></tr></thead>
<tbody id="events">
{rows}
</tbody></table></section>
</main>
<script src="/static/live.js"></script>
</body></html>
"""


def page_html(events: list[CatalogEvent], *, poll_s: float = POLL_INTERVAL_S) -> str:
    """The whole page with the events table rendered server-side (the script draws the map,
    the selected event and the health panel from the JSON API)."""
    return PAGE_TEMPLATE.format(
        count=len(events),
        poll=poll_s,
        poll_ms=int(poll_s * 1000),
        rows=table_body_html(events),
    )


@lru_cache(maxsize=8)
def _static(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- access (pure)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """``True`` for a loopback bind address or name (``127.x``, ``::1``, ``localhost``)."""
    h = host.strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host name of a ``Host`` header, lower case, without port or IPv6 brackets."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h[1:]
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


@dataclass(frozen=True)
class WebAccess:
    """Who may use the page.

    * ``allowed_hosts``: the names a browser may use for this server (the ``Host`` header);
      a request naming any other host is refused (403), which defeats DNS rebinding. The
      loopback names and a specific bind address are always allowed; ``"*"`` allows any.
    * ``token``: when set, every request must carry it (``Authorization: Bearer <token>``, a
      ``token`` query parameter, or the ``fm_token`` cookie the page sets after the first
      visit with ``?token=``), else 401.
    * ``max_clients``: open event streams (``/api/stream``) beyond this are refused (503).
    """

    allowed_hosts: tuple[str, ...] = ()
    token: str = ""
    max_clients: int = 256

    def __post_init__(self) -> None:
        if self.max_clients < 1:
            raise ValueError(f"catalog.web_max_clients: expected >= 1, got {self.max_clients}")

    def host_ok(self, header: str | None, bind_host: str) -> bool:
        """``True`` when the ``Host`` header names this server (see the class doc)."""
        if "*" in self.allowed_hosts:
            return True
        if not header:
            return False
        name = host_name(header)
        allowed = {n.lower().strip("[]") for n in (*LOOPBACK_NAMES, *self.allowed_hosts)}
        bind = bind_host.strip("[]").lower()
        if bind not in ("", "0.0.0.0", "::"):
            allowed.add(bind)
        return name in allowed or is_loopback(name) and is_loopback(bind)

    def token_ok(self, authorization: str | None, query_token: str | None, cookie: str) -> bool:
        """``True`` without a token, or when one of the three places carries it."""
        if not self.token:
            return True
        given = []
        if authorization and authorization.lower().startswith("bearer "):
            given.append(authorization[7:].strip())
        if query_token:
            given.append(query_token)
        for part in (cookie or "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == "fm_token":
                given.append(v)
        want = self.token.encode()
        return any(hmac.compare_digest(g.encode(), want) for g in given)


# --------------------------------------------------------------------------- change fan-out


class ChangeFanout:
    """One pub/sub subscription to the change channel, fanned out to every event stream.

    However many browsers listen, the page holds ONE Redis connection for them (a thread
    reads the channel and copies each message to every client's bounded queue), so clients
    can never take the connections the catalog consumer needs. A client whose queue is full
    (it reads slower than changes arrive) is dropped; it reconnects on its own (``retry``).
    ``join()`` returns ``None`` once ``max_clients`` are connected.
    """

    def __init__(self, subscribe: Any, max_clients: int, *, queue_size: int = 256) -> None:
        self._subscribe = subscribe
        self.max_clients = max_clients
        self.queue_size = queue_size
        self._clients: set[queue.Queue] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pubsub: Any = None
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self._gauge = gauge(
            "firstmotion_catalog_web_stream_clients", "Open event streams of the catalog page"
        )
        self._refused = counter(
            "firstmotion_catalog_web_stream_refused_total", "Event streams refused (full)"
        )

    @property
    def n_clients(self) -> int:
        return len(self._clients)

    def start(self) -> ChangeFanout:
        """Subscribe now (so a client that joins after this misses nothing) and start the
        reading thread; a Redis that is down is retried by the thread."""
        try:
            self._pubsub = self._subscribe()
            self.connected.set()
        except Exception as exc:  # noqa: BLE001 - redis errors: the thread retries
            log.warning("catalog page: cannot subscribe to changes yet (%s)", exc)
        self._thread = threading.Thread(target=self._loop, name="catalog-web-fanout", daemon=True)
        self._thread.start()
        return self

    def join(self) -> queue.Queue | None:
        with self._lock:
            if len(self._clients) >= self.max_clients:
                self._refused.inc()
                return None
            q: queue.Queue = queue.Queue(maxsize=self.queue_size)
            self._clients.add(q)
            self._gauge.set(len(self._clients))
            return q

    def leave(self, q: queue.Queue) -> None:
        with self._lock:
            self._clients.discard(q)
            self._gauge.set(len(self._clients))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close()

    def _close(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self._pubsub = None
        self.connected.clear()

    def _broadcast(self, item: bytes | None) -> None:
        with self._lock:
            clients = list(self._clients)
        for q in clients:
            try:
                q.put_nowait(item)
            except queue.Full:  # a stalled client: end its stream
                self.leave(q)
                with contextlib.suppress(queue.Empty):
                    q.get_nowait()
                with contextlib.suppress(queue.Full):
                    q.put_nowait(None)

    def _loop(self) -> None:
        lost = False  # said once per outage, not every retry
        while not self._stop.is_set():
            try:
                if self._pubsub is None:
                    self._pubsub = self._subscribe()
                    self.connected.set()
                msg = self._pubsub.get_message(timeout=0.5)
                if lost:
                    log.info("catalog page: change subscription back")
                    lost = False
            except Exception as exc:  # noqa: BLE001 - redis down: say so, retry
                if not lost:
                    log.warning("catalog page: change subscription lost (%s); retrying", exc)
                    lost = True
                self._close()
                self._stop.wait(1.0)
                continue
            if msg is not None and msg.get("type") == "message":
                data = msg["data"]
                self._broadcast(data if isinstance(data, bytes) else str(data).encode())


# --------------------------------------------------------------------------- HTTP shell


class WebServer(ThreadedHTTPServer):
    """A running catalog web server; ``stop()`` ends open event streams and shuts it down."""

    fanout: ChangeFanout | None = None

    def stop(self) -> None:
        super().stop()
        if self.fanout is not None:
            self.fanout.stop()


class _Refused(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


def _handler_class(
    reader: Any,
    poll_s: float,
    stopping: threading.Event,
    keepalive_s: float,
    access: WebAccess,
    fanout: ChangeFanout,
    bind_host: str,
    inventory: dict[str, tuple[float, float]] | None,
) -> type[BaseHTTPRequestHandler]:
    requests = counter(
        "firstmotion_catalog_web_requests_total",
        "Requests to the catalog web page and API",
        ("endpoint", "code"),
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            import redis

            parts = urlsplit(self.path)
            path = parts.path
            query = parse_qs(parts.query)
            self._set_cookie = None
            if not access.host_ok(self.headers.get("Host"), bind_host):
                self._send(403, "text/plain", "host not allowed\n", "denied")
                return
            query_token = query.get("token", [None])[0]
            if not access.token_ok(
                self.headers.get("Authorization"), query_token, self.headers.get("Cookie", "")
            ):
                self._send(401, "text/plain", "token required\n", "denied")
                return
            if access.token and query_token:
                self._set_cookie = f"fm_token={access.token}; HttpOnly; SameSite=Strict; Path=/"
            try:
                limit = int(query.get("limit", [str(DEFAULT_LIMIT)])[0])
            except ValueError:
                limit = -1
            if not 1 <= limit <= MAX_LIMIT:
                self._send(400, "text/plain", f"limit: expected 1..{MAX_LIMIT}\n", "bad")
                return
            try:
                self._route(path, query, limit)
            except redis.RedisError as exc:
                log.warning("catalog page: Redis error on %s: %s", path, exc)
                self._send(503, "text/plain", "catalog store unavailable, retry\n", "unavailable")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _route(self, path: str, query: dict, limit: int) -> None:
            if path in ("/", "/index.html"):
                events = reader.events(limit=limit)
                self._send(200, "text/html", page_html(events, poll_s=poll_s), "page")
            elif path == "/fragment":
                events = reader.events(limit=limit)
                body = table_body_html(events)
                self._send(200, "text/html", body, "fragment", {"X-Event-Count": len(events)})
            elif path.startswith("/static/") and path[len("/static/") :] in STATIC_FILES:
                name = path[len("/static/") :]
                self._send(200, STATIC_FILES[name], _static(name), "static")
            elif path == "/api/events":
                events = reader.events(limit=limit)
                body = json.dumps([e.to_dict() for e in events])
                self._send(200, "application/json", body, "api")
            elif path == "/api/stream":
                self._stream()
            elif path == "/api/health":
                events = reader.events(limit=20)
                body = read_health(reader.client, reader.prefix, events)
                body["stream_clients"] = fanout.n_clients
                body["max_stream_clients"] = fanout.max_clients
                self._send(200, "application/json", json.dumps(body), "api")
            elif path == "/api/stations":
                events = reader.events(limit=limit)
                polarities = read_station_polarities(reader.client, reader.prefix)
                body = json.dumps(stations_of_events(events, inventory, polarities))
                self._send(200, "application/json", body, "api")
            elif path == "/api/stress":
                body = json.dumps(read_stress(reader.client, reader.prefix))
                self._send(200, "application/json", body, "api")
            elif path.startswith("/api/events/") and path.endswith("/history"):
                self._history(path[len("/api/events/") : -len("/history")])
            elif path.startswith("/api/events/"):
                self._one(path[len("/api/events/") :], "api", as_svg=False)
            elif path.startswith("/beachball/") and path.endswith(".svg"):
                self._one(
                    path[len("/beachball/") : -len(".svg")], "beachball", as_svg=True,
                    query=query,
                )  # fmt: skip
            else:
                self._send(404, "text/plain", "not found: try / or /api/events\n", "other")

        def _stream(self) -> None:
            """Server-Sent Events from the fan-out until the client or the server goes."""
            q = fanout.join()
            if q is None:
                self._send(
                    503, "text/plain", "too many open event streams; retry later\n", "stream",
                    {"Retry-After": 30},
                )  # fmt: skip
                return
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"retry: 3000\n: connected\n\n")
                self.wfile.flush()
                requests.labels(endpoint="stream", code="200").inc()
                last = time.monotonic()
                while not stopping.is_set():
                    try:
                        data = q.get(timeout=0.5)
                    except queue.Empty:
                        if self._client_gone():
                            return
                        if time.monotonic() - last >= keepalive_s:
                            self.wfile.write(b": keepalive\n\n")
                            self.wfile.flush()
                            last = time.monotonic()
                        continue
                    if data is None:  # dropped by the fan-out (too slow)
                        return
                    self.wfile.write(b"event: change\ndata: " + data + b"\n\n")
                    self.wfile.flush()
                    last = time.monotonic()
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass  # the client went away
            finally:
                fanout.leave(q)

        def _client_gone(self) -> bool:
            """``True`` once the client closed its end (frees its slot within half a second
            instead of at the next keepalive)."""
            try:
                readable, _, _ = select.select([self.connection], [], [], 0)
                return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
            except (OSError, ValueError):
                return True

        def _history(self, event_id: str) -> None:
            if not EVENT_ID_RE.fullmatch(event_id):
                self._send(400, "text/plain", "bad event id\n", "api")
                return
            body = json.dumps(reader.history(event_id))
            self._send(200, "application/json", body, "api")

        def _one(
            self, event_id: str, endpoint: str, *, as_svg: bool, query: dict | None = None
        ) -> None:
            if not EVENT_ID_RE.fullmatch(event_id):
                self._send(400, "text/plain", "bad event id\n", endpoint)
                return
            event = reader.event(event_id)
            if event is None:
                self._send(404, "application/json", '{"error": "no such event"}', endpoint)
            elif as_svg:
                query = query or {}
                try:
                    size = int(query.get("size", ["200"])[0])
                except ValueError:
                    size = -1
                if not 16 <= size <= 800:
                    self._send(400, "text/plain", "size: expected 16..800\n", endpoint)
                    return
                m = event.mechanism
                if m is None:
                    self._send(404, "text/plain", "no mechanism yet\n", endpoint)
                    return
                if query.get("picks", ["0"])[0] == "1":
                    svg = beachball_svg(m.strike, m.dip, m.rake, size_px=size, picks=m.picks)
                else:
                    svg = event_beachball(event, size_px=size)
                self._send(200, "image/svg+xml", svg, endpoint)
            else:
                self._send(200, "application/json", event.to_json().decode(), endpoint)

        def _send(
            self,
            code: int,
            content_type: str,
            body: str,
            endpoint: str,
            headers: dict[str, Any] | None = None,
        ) -> None:
            data = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")
            cookie = getattr(self, "_set_cookie", None)
            if cookie:
                self.send_header("Set-Cookie", cookie)
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.end_headers()
            self.wfile.write(data)
            requests.labels(endpoint=endpoint, code=str(code)).inc()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
            log.debug("web: " + format, *args)

    return Handler


def start_web_server(
    reader: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    poll_s: float = POLL_INTERVAL_S,
    keepalive_s: float = SSE_KEEPALIVE_S,
    access: WebAccess | None = None,
    inventory: dict[str, tuple[float, float]] | None = None,
) -> WebServer:
    """Serve the page and API from a daemon thread; ``port=0`` picks a free port.

    ``reader`` provides ``events(limit=N) -> list[CatalogEvent]`` (newest first),
    ``event(event_id) -> CatalogEvent | None``, ``history(event_id) -> list[dict]``,
    ``subscribe() -> PubSub`` on the change channel, and ``client``/``prefix`` (a
    :class:`workers.catalog.CatalogReader`). Give it a Redis client of its own
    (:func:`page_client`) so that the page can never take the catalog consumer's
    connections. ``access`` sets allowed hosts, token and the event stream cap;
    ``inventory`` maps ``NET.STA`` to (latitude, longitude) for the map.
    """
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"catalog.web_port: expected an integer in [0, 65535], got {port!r}")
    access = access or WebAccess()
    if not is_loopback(host) and not access.token:
        log.warning(
            "catalog page bound to %s without a token: anyone who reaches it can read the "
            "catalog (set catalog.web_token or FIRSTMOTION_CATALOG__WEB_TOKEN)",
            host,
        )
    stopping = threading.Event()
    fanout = ChangeFanout(reader.subscribe, access.max_clients).start()
    handler = _handler_class(reader, poll_s, stopping, keepalive_s, access, fanout, host, inventory)
    try:
        server = WebServer.start(host, port, handler, thread_name="catalog-web", stopping=stopping)
    except OSError:
        fanout.stop()
        raise
    server.fanout = fanout
    log.info("catalog page on http://%s:%d/", host, server.port)
    return server


def page_client(url: str, *, max_connections: int = 4, timeout_s: float = 5.0) -> Any:
    """A Redis client for the page alone: a blocking pool of ``max_connections`` (one of
    them held by the change fan-out), each request waiting at most ``timeout_s`` for a free
    connection (then 503) -- never a connection of the catalog consumer's pool."""
    import redis

    from firstmotion.bus import check_redis_url

    check_redis_url(url)
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s * 2,
        socket_connect_timeout=timeout_s,
        socket_keepalive=True,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)
