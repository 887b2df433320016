"""The live catalog page: events newest first with server-drawn beachballs, and a JSON API.

Served by the catalog worker (``firstmotion worker catalog``) on ``catalog.web_host``:
``catalog.web_port`` (loopback by default) with the standard library's threading HTTP server:

* ``/`` -- one HTML page: a table of the events (origin time, location, magnitude,
  strike/dip/rake, quality, revision, status, beachball), newest first. The page polls
  ``/fragment`` every few seconds and swaps the table body in place (no script libraries).
* ``/api/events?limit=N`` -- the events as JSON (a list of CatalogEvent objects, newest first).
* ``/api/events/<event_id>`` -- one event as JSON (404 if unknown).
* ``/beachball/<event_id>.svg`` -- the event's beachball alone.
* ``/api/stream`` -- Server-Sent Events fed from the pub/sub channel ``<prefix>events``: one
  ``event: change`` with the CatalogEvent JSON as ``data`` per catalog change, a comment line
  every ``SSE_KEEPALIVE_S`` otherwise. The page listens to it and refreshes its table on each
  change (falling back to polling ``/fragment`` when the stream is unavailable).

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

import html
import json
import logging
import re
import threading
import time
from functools import lru_cache
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from firstmotion.messages import CatalogEvent
from firstmotion.metrics import ThreadedHTTPServer, counter
from firstmotion.radiation import p_radiation

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


def beachball_svg(
    strike_deg: float,
    dip_deg: float,
    rake_deg: float,
    *,
    size_px: int = 48,
    color: str = COMPRESSION_COLOR,
) -> str:
    """A standalone SVG beachball (north up, east right) of ``size_px`` pixels.

    The compressional areas are one ``<path class="compression">`` (even-odd fill) in unit
    coordinates (y flipped: SVG y = -north) inside a ``viewBox`` of the unit circle.
    """
    if size_px <= 0:
        raise ValueError(f"size_px: expected > 0, got {size_px}")
    if not re.fullmatch(r"#[0-9a-fA-F]{3,8}|[a-z]{3,20}", color):
        raise ValueError(f"color: expected #rrggbb or a colour name, got {color!r}")
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
    label = f"strike {strike_deg:.0f}, dip {dip_deg:.0f}, rake {rake_deg:.0f}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="beachball" width="{size_px}" '
        f'height="{size_px}" viewBox="-1.04 -1.04 2.08 2.08" role="img" '
        f'aria-label="{label}"><title>{label}</title>'
        '<circle cx="0" cy="0" r="1" fill="white"/>'
        f'<path class="compression" fill="{color}" stroke="{color}" stroke-width="0.01" '
        f'fill-rule="evenodd" d="{"".join(d)}"/>'
        '<circle cx="0" cy="0" r="1" fill="none" stroke="black" stroke-width="0.04"/></svg>'
    )


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


PAGE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>firstmotion live catalog</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right;
  white-space: nowrap; }}
th {{ background: #f4f4f4; }}
td:first-child, th:first-child {{ text-align: left; font-family: monospace; }}
tr.final td {{ font-weight: 600; }}
tr.deleted td {{ color: #999; text-decoration: line-through; }}
td.ball {{ padding: 2px; text-align: center; }}
#status {{ color: #777; font-size: 0.9em; }}
</style></head>
<body>
<h1>firstmotion live catalog</h1>
<p id="status">{count} events &middot; updated every {poll:.0f} s</p>
<table>
<thead><tr><th>event</th><th>origin time (UTC)</th><th>lat</th><th>lon</th><th>depth km</th>
<th>mag</th><th>mechanism</th><th>strike / dip / rake</th><th>quality</th><th>revision</th>
<th>status</th></tr></thead>
<tbody id="events">
{rows}
</tbody></table>
<script>
async function refresh() {{
  try {{
    const r = await fetch("/fragment", {{cache: "no-store"}});
    if (r.ok) {{
      document.getElementById("events").innerHTML = await r.text();
      const n = r.headers.get("X-Event-Count");
      document.getElementById("status").textContent =
        n + " events \\u00b7 last update " + new Date().toISOString().slice(11, 19) + " UTC";
    }}
  }} catch (e) {{ document.getElementById("status").textContent = "offline: " + e; }}
}}
let pending = null;
function soon() {{
  if (!pending) pending = setTimeout(() => {{ pending = null; refresh(); }}, 200);
}}
if (window.EventSource) {{
  const es = new EventSource("/api/stream");
  es.addEventListener("change", soon);
  es.onerror = () => soon();
}}
setInterval(refresh, {poll_ms});
</script>
</body></html>
"""


def page_html(events: list[CatalogEvent], *, poll_s: float = POLL_INTERVAL_S) -> str:
    """The whole page with the events table rendered server-side."""
    return PAGE_TEMPLATE.format(
        count=len(events),
        poll=poll_s,
        poll_ms=int(poll_s * 1000),
        rows=table_body_html(events),
    )


# --------------------------------------------------------------------------- HTTP shell


class WebServer(ThreadedHTTPServer):
    """A running catalog web server; ``stop()`` ends open event streams and shuts it down."""


def _handler_class(
    reader: Any, poll_s: float, stopping: threading.Event, keepalive_s: float
) -> type[BaseHTTPRequestHandler]:
    requests = counter(
        "firstmotion_catalog_web_requests_total",
        "Requests to the catalog web page and API",
        ("endpoint", "code"),
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            parts = urlsplit(self.path)
            path = parts.path
            query = parse_qs(parts.query)
            try:
                limit = int(query.get("limit", [str(DEFAULT_LIMIT)])[0])
            except ValueError:
                limit = -1
            if not 1 <= limit <= MAX_LIMIT:
                self._send(400, "text/plain", f"limit: expected 1..{MAX_LIMIT}\n", "bad")
                return
            if path in ("/", "/index.html"):
                events = reader.events(limit=limit)
                self._send(200, "text/html", page_html(events, poll_s=poll_s), "page")
            elif path == "/fragment":
                events = reader.events(limit=limit)
                body = table_body_html(events)
                self._send(200, "text/html", body, "fragment", {"X-Event-Count": len(events)})
            elif path == "/api/events":
                events = reader.events(limit=limit)
                body = json.dumps([e.to_dict() for e in events])
                self._send(200, "application/json", body, "api")
            elif path == "/api/stream":
                self._stream()
            elif path.startswith("/api/events/"):
                self._one(path[len("/api/events/") :], "api", as_svg=False)
            elif path.startswith("/beachball/") and path.endswith(".svg"):
                self._one(path[len("/beachball/") : -len(".svg")], "beachball", as_svg=True)
            else:
                self._send(404, "text/plain", "not found: try / or /api/events\n", "other")

        def _stream(self) -> None:
            """Server-Sent Events from the pub/sub channel until the client or server goes."""
            pubsub = reader.subscribe()
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
                    msg = pubsub.get_message(timeout=0.5)
                    if msg is not None and msg.get("type") == "message":
                        data = msg["data"]
                        text = data.decode() if isinstance(data, bytes) else str(data)
                        self.wfile.write(f"event: change\ndata: {text}\n\n".encode())
                        self.wfile.flush()
                        last = time.monotonic()
                    elif time.monotonic() - last >= keepalive_s:
                        self.wfile.write(b": keepalive\n\n")
                        self.wfile.flush()
                        last = time.monotonic()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away
            finally:
                pubsub.close()

        def _one(self, event_id: str, endpoint: str, *, as_svg: bool) -> None:
            if not EVENT_ID_RE.fullmatch(event_id):
                self._send(400, "text/plain", "bad event id\n", endpoint)
                return
            event = reader.event(event_id)
            if event is None:
                self._send(404, "application/json", '{"error": "no such event"}', endpoint)
            elif as_svg:
                svg = event_beachball(event, size_px=200)
                if not svg:
                    self._send(404, "text/plain", "no mechanism yet\n", endpoint)
                else:
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
) -> WebServer:
    """Serve the page and API from a daemon thread; ``port=0`` picks a free port.

    ``reader`` provides ``events(limit=N) -> list[CatalogEvent]`` (newest first) and
    ``event(event_id) -> CatalogEvent | None`` and ``subscribe() -> PubSub`` on the change
    channel (:class:`workers.catalog.CatalogReader`).
    """
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"catalog.web_port: expected an integer in [0, 65535], got {port!r}")
    stopping = threading.Event()
    handler = _handler_class(reader, poll_s, stopping, keepalive_s)
    server = WebServer.start(host, port, handler, thread_name="catalog-web", stopping=stopping)
    log.info("catalog page on http://%s:%d/", host, server.port)
    return server
