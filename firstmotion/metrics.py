"""Prometheus metrics and health for every firstmotion process.

One project registry (:func:`registry`), so a process exposes only firstmotion's own series.
Names follow ../shared/STYLE.md: prefix ``firstmotion_``, base units as suffix (``_seconds``,
``_bytes``), counters end in ``_total``, labels only from small fixed sets (``stage``,
``phase``, ``outcome``) -- never station or event ids.

Per stage (:func:`stage_metrics`), labelled ``stage`` only:

* ``firstmotion_stage_items_in_total`` -- messages delivered to the stage's handler
* ``firstmotion_stage_items_out_total`` -- messages the stage published
* ``firstmotion_stage_errors_total`` -- failed handler attempts (per message)
* ``firstmotion_stage_dead_letters_total`` -- messages moved to the dead-letter stream
* ``firstmotion_stage_in_flight`` -- messages being handled right now
* ``firstmotion_stage_batch_size`` -- histogram of handled batch sizes (messages)
* ``firstmotion_stage_last_processed_timestamp_seconds`` -- wall time of the last commit
* ``firstmotion_stage_backlog_messages`` -- input entries not yet delivered to the group (lag)
* ``firstmotion_stage_pending_messages`` -- input entries delivered but not yet acknowledged

and ``firstmotion_build_info{version, python} 1``.

:func:`start_http_server` serves ``/metrics`` and ``/healthz`` (JSON; 200 when every
registered check passes, else 503) on 127.0.0.1 by default.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from firstmotion import __version__

log = logging.getLogger(__name__)

PREFIX = "firstmotion_"
_NAME_RE = re.compile(r"^firstmotion_[a-z][a-z0-9_]*$")
_STAGE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

_lock = threading.Lock()
_registry: CollectorRegistry | None = None
_families: dict[str, Any] = {}


def registry() -> CollectorRegistry:
    """The project registry (created on first use, with ``firstmotion_build_info``)."""
    global _registry
    with _lock:
        if _registry is None:
            disable_created_metrics()  # no *_created series: noise for alerting
            _registry = CollectorRegistry(auto_describe=True)
            info = Gauge(
                "firstmotion_build_info",
                "firstmotion build information (value is always 1)",
                ["version", "python"],
                registry=_registry,
            )
            info.labels(version=__version__, python=platform.python_version()).set(1)
            _families["firstmotion_build_info"] = info
        return _registry


def _family(kind: type, name: str, documentation: str, labelnames: tuple[str, ...], **kw: Any):
    if not _NAME_RE.match(name):
        raise ValueError(f"metric name {name!r}: expected firstmotion_<snake_case>")
    if kind is Counter and not name.endswith("_total"):
        raise ValueError(f"metric name {name!r}: counters end in _total")
    reg = registry()
    with _lock:
        existing = _families.get(name)
        if existing is not None:
            if not isinstance(existing, kind) or tuple(existing._labelnames) != labelnames:
                raise ValueError(f"metric {name!r} already registered with another type/labels")
            return existing
        # prometheus_client appends _total itself; give it the base name
        base = name[: -len("_total")] if kind is Counter else name
        family = kind(base, documentation, list(labelnames), registry=reg, **kw)
        _families[name] = family
        return family


def counter(name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> Counter:
    """Get or create a counter in the project registry (``name`` ends in ``_total``)."""
    return _family(Counter, name, documentation, tuple(labelnames))


def gauge(name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> Gauge:
    """Get or create a gauge in the project registry."""
    return _family(Gauge, name, documentation, tuple(labelnames))


def histogram(
    name: str,
    documentation: str,
    labelnames: tuple[str, ...] = (),
    buckets: tuple[float, ...] = Histogram.DEFAULT_BUCKETS,
) -> Histogram:
    """Get or create a histogram in the project registry."""
    return _family(Histogram, name, documentation, tuple(labelnames), buckets=buckets)


@dataclass(frozen=True)
class StageMetrics:
    """The per-stage series (children already labelled with the stage)."""

    stage: str
    items_in: Any
    items_out: Any
    errors: Any
    dead_letters: Any
    in_flight: Any
    batch_size: Any
    last_processed: Any
    backlog: Any
    pending: Any


def stage_metrics(stage: str) -> StageMetrics:
    """The standard series for ``stage`` (a stage name such as ``polarity``, never an id)."""
    if not isinstance(stage, str) or not _STAGE_RE.match(stage):
        raise ValueError(f"stage: expected a short lower-case stage name, got {stage!r}")
    labels = ("stage",)
    return StageMetrics(
        stage=stage,
        items_in=counter(
            "firstmotion_stage_items_in_total", "Messages delivered to the stage", labels
        ).labels(stage=stage),
        items_out=counter(
            "firstmotion_stage_items_out_total", "Messages published by the stage", labels
        ).labels(stage=stage),
        errors=counter(
            "firstmotion_stage_errors_total", "Failed handler attempts, per message", labels
        ).labels(stage=stage),
        dead_letters=counter(
            "firstmotion_stage_dead_letters_total", "Messages moved to dead letters", labels
        ).labels(stage=stage),
        in_flight=gauge("firstmotion_stage_in_flight", "Messages being handled now", labels).labels(
            stage=stage
        ),
        batch_size=histogram(
            "firstmotion_stage_batch_size",
            "Messages per handled batch",
            labels,
            buckets=BATCH_SIZE_BUCKETS,
        ).labels(stage=stage),
        last_processed=gauge(
            "firstmotion_stage_last_processed_timestamp_seconds",
            "Unix time the stage last committed a batch",
            labels,
        ).labels(stage=stage),
        backlog=gauge(
            "firstmotion_stage_backlog_messages",
            "Input stream entries not yet delivered to the stage's group",
            labels,
        ).labels(stage=stage),
        pending=gauge(
            "firstmotion_stage_pending_messages",
            "Input stream entries delivered to the stage and not yet acknowledged",
            labels,
        ).labels(stage=stage),
    )


# --------------------------------------------------------------------------- health

CheckResult = bool | tuple[bool, Any]
HealthCheck = Callable[[], CheckResult]


class Health:
    """Named health checks; each returns ``ok`` or ``(ok, detail)``; raising means not ok."""

    def __init__(self) -> None:
        self._checks: dict[str, HealthCheck] = {}
        self._lock = threading.Lock()

    def register(self, name: str, check: HealthCheck) -> None:
        if not callable(check):
            raise ValueError(f"health check {name!r}: expected a callable")
        with self._lock:
            self._checks[name] = check

    def run(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        """Run every check: ``(all ok, {name: {"ok": bool, "detail": ...}})``."""
        with self._lock:
            checks = dict(self._checks)
        results: dict[str, dict[str, Any]] = {}
        for name, check in checks.items():
            try:
                out = check()
                ok, detail = out if isinstance(out, tuple) else (out, None)
                ok = bool(ok)
            except Exception as exc:  # a failing probe is a failed check, reported as such
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            results[name] = {"ok": ok, "detail": detail}
        return all(r["ok"] for r in results.values()), results


def redis_ping_check(client: Any) -> HealthCheck:
    """Healthy while ``client.ping()`` answers."""

    def check() -> CheckResult:
        return bool(client.ping()), "PONG"

    return check


def age_check(newest_epoch_s: Callable[[], float | None], max_age_s: float) -> HealthCheck:
    """Healthy while the newest item (packet, message) is at most ``max_age_s`` old."""

    def check() -> CheckResult:
        newest = newest_epoch_s()
        if newest is None:
            return False, "nothing received yet"
        age = time.time() - newest
        return age <= max_age_s, {"age_s": round(age, 3), "max_age_s": max_age_s}

    return check


def flag_check(is_ok: Callable[[], bool], detail: str = "") -> HealthCheck:
    """Healthy while ``is_ok()`` is true (e.g. "model loaded")."""

    def check() -> CheckResult:
        return bool(is_ok()), detail or None

    return check


# --------------------------------------------------------------------------- HTTP


class ThreadedHTTPServer:
    """An HTTP server running in a daemon thread (:meth:`start`); ``stop()`` shuts it down.

    ``stopping``, if given, is set first on ``stop()`` so that long-lived responses (event
    streams) end before the server shuts down.
    """

    def __init__(
        self,
        httpd: ThreadingHTTPServer,
        thread: threading.Thread,
        stopping: threading.Event | None = None,
    ) -> None:
        self._httpd = httpd
        self._thread = thread
        self._stopping = stopping

    @classmethod
    def start(
        cls,
        host: str,
        port: int,
        handler: type[BaseHTTPRequestHandler],
        *,
        thread_name: str,
        stopping: threading.Event | None = None,
    ) -> Self:
        """Bind ``host:port`` (``port=0``: a free one) and serve ``handler`` from a thread."""
        httpd = ThreadingHTTPServer((host, port), handler)
        httpd.daemon_threads = True
        thread = threading.Thread(target=httpd.serve_forever, name=thread_name, daemon=True)
        thread.start()
        return cls(httpd, thread, stopping)

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MetricsServer(ThreadedHTTPServer):
    """A running /metrics + /healthz server; ``stop()`` shuts it down."""


def _handler_class(reg: CollectorRegistry, health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(reg))
            elif path == "/healthz":
                ok, results = health.run()
                body = {"status": "ok" if ok else "fail", "checks": results}
                data = json.dumps(body, default=str).encode()
                self._send(200 if ok else 503, "application/json", data)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
            log.debug("metrics http: " + format, *args)

    return Handler


def start_http_server(
    host: str = "127.0.0.1",
    port: int = 9300,
    *,
    health: Health | None = None,
    collector_registry: CollectorRegistry | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` and ``/healthz`` from a daemon thread; ``port=0`` picks a free one.

    Binds loopback unless told otherwise: exposing metrics beyond the host is a deliberate
    choice (``metrics.host`` in the config).
    """
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"metrics.port: expected an integer in [0, 65535], got {port!r}")
    reg = collector_registry if collector_registry is not None else registry()
    server = MetricsServer.start(
        host, port, _handler_class(reg, health or Health()), thread_name="metrics-http"
    )
    log.info("metrics on http://%s:%d/metrics", host, server.port)
    return server
