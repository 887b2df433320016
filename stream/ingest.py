"""``firstmotion stream``: SeedLink in, P picks with their waveform windows out to ``fm:picks``.

Threads and flow (STYLE 8-9): :class:`SeedLinkReader` runs obspy's blocking
``SeedLinkConnection`` in its own thread and puts :class:`~stream.stage.Packet` objects on a
bounded queue (a full queue blocks the reader, which back-pressures the TCP connection; the
blocked time is counted). The main thread takes packets off the queue, runs them through
:class:`~stream.stage.StreamStage` (buffers, detector, pick windows) and publishes the picks
with :meth:`firstmotion.bus.Bus.publish_many`.

Connection handling, as DESIGN.md's operating facts ask:

* obspy 1.5.1 crashes on connect with its default ``timeout=None``: the connection gets
  ``timeout_s`` for connecting only (:class:`_Connection`); ``netto`` (~10 s: no data ->
  reconnect) and ``netdly`` (~2 s between attempts) are set from the config instead of obspy's
  120 s / 30 s.
* Resume by sequence number: every reconnect (obspy's own after ``netto``, or ours with
  exponential backoff after an error) sends ``DATA <seq+1> <time>`` per station, so the server
  continues after the last packet received or, when that sequence aged out of its ring, at the
  packet time (the TIME fallback). Sequence numbers of wildcard stream entries (``*_*``) are
  tracked here, since obspy only tracks exact NET_STA entries.
* Overlapping packets (resumes, TIME requests) are trimmed by the channel buffers; a packet
  held already counts as ``duplicate``.
* The statefile (JSON, written atomically every few seconds and at exit) holds, per stream
  entry, a *checkpoint* sequence lagging ``warmup_s`` of data time behind the newest
  processed packet, and the time of the last pick published per channel. A restarted process
  resumes at the checkpoint, so its detectors warm up on data already seen and picks near the
  restart are not lost; picks no later than the last published one (plus the dead time) are
  suppressed, so none is published twice.
* Watchdog: the age of the newest packet (wall clock) is a gauge and the ``/healthz`` check;
  past ``watchdog_s`` the reader is told to reconnect.

SIGTERM/SIGINT stop reading, process what is queued, save the statefile and exit 0.
``--exit-when-idle-s N`` exits the same way once no packet arrived for N s (a replay or a
backfill that ran out; tests, demo), and first publishes the picks that waited for samples
that will not come (the learned picker's ``PhaseStage.flush``: a horizontal's missing end read
as zeros, a pick's window as long as the vertical holds), as one pass over the records gives.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import logging
import math
import os
import queue
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream.stage import Packet, StageParams, make_stage

log = logging.getLogger(__name__)

# packets an operator should hear of (stream.buffer's outcomes), at most once per channel and
# outcome in this many seconds
UNUSUAL_PACKETS = {
    "rewind": "the clock went back (records with earlier times and other samples): a new "
    "segment starts there",
    "late": "a record came after the one following it and is not used (out of order)",
}
UNUSUAL_WARN_S = 600.0
# a channel that sent data is silent when its newest packet is this old while others arrive
RECENT_PICKS = 5000  # picks read back from Redis at a restart (the seconds a statefile lags)
SILENT_CHANNEL_S = 120.0
SILENT_MIN_RATE_HZ = 20.0  # of channels this fast (a slower one's 512-byte record spans minutes)

STATEFILE_VERSION = 1
STATE_SAVE_INTERVAL_S = 2.0
QUEUE_PACKETS = 10_000
BATCH_PACKETS = 512  # packets handled together (one forward pass for their windows)
MAX_BACKOFF_S = 30.0
READ_POLL_S = 0.25


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class IngestParams:
    """SeedLink connection settings (seconds)."""

    server: str
    streams: tuple[str, ...] = ()  # NET_STA[:SELECTORS]; empty: uni-station mode
    selectors: str = "??Z"  # default selectors for entries without their own
    statefile: str = ""
    netto_s: float = 10.0
    netdly_s: float = 2.0
    timeout_s: float = 30.0
    watchdog_s: float = 60.0
    queue_packets: int = QUEUE_PACKETS

    def __post_init__(self) -> None:
        host, sep, port = self.server.rpartition(":")
        if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"seedlink.server: expected host:port, got {self.server!r}")
        for name in ("netto_s", "netdly_s", "timeout_s", "watchdog_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"seedlink.{name}: expected > 0, got {getattr(self, name)!r}")
        if self.queue_packets < 1:
            raise ValueError(f"queue_packets: expected >= 1, got {self.queue_packets}")


def parse_streams(text: str) -> tuple[str, ...]:
    """``"NET_STA:SEL,NET_STA2"`` -> ``("NET_STA:SEL", "NET_STA2")`` (whitespace trimmed)."""
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    for item in items:
        net_sta = item.split(":", 1)[0]
        if net_sta.count("_") != 1 or not all(net_sta.split("_")):
            raise ValueError(f"--streams: expected NET_STA[:SELECTORS], got {item!r}")
    return items


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class IngestMetrics:
    """``firstmotion_stream_*`` series (labels from fixed sets only) plus the stage's own."""

    stage: Any
    packets: Any  # by outcome
    gap_samples: Any
    reconnects: Any
    queue_depth: Any
    queue_blocked: Any
    latency: Any
    newest_age: Any
    newest_data: Any
    picks_dropped: Any
    last_processed: Any
    nan_samples: Any = None
    glitches_repaired: Any = None
    silent_channels: Any = None
    picks: Any = None  # published, by phase and kind (pick, candidate)

    @classmethod
    def create(cls) -> IngestMetrics:
        from firstmotion import metrics as m

        return cls(
            stage=m.stage_metrics("stream"),
            packets=m.counter(
                "firstmotion_stream_packets_total",
                "Data packets received, by what the channel buffer did with them",
                ("outcome",),
            ),
            gap_samples=m.counter(
                "firstmotion_stream_gap_filled_samples_total",
                "Samples interpolated over short gaps between packets (longer gaps: "
                'packets_total{outcome="reset"})',
            ),
            reconnects=m.counter(
                "firstmotion_stream_reconnects_total", "SeedLink reconnects after an error"
            ),
            queue_depth=m.gauge(
                "firstmotion_stream_queue_packets", "Packets waiting between reader and detector"
            ),
            queue_blocked=m.counter(
                "firstmotion_stream_queue_blocked_seconds_total",
                "Time the SeedLink reader waited on a full queue (back-pressure)",
            ),
            latency=m.histogram(
                "firstmotion_stream_pick_latency_seconds",
                "Wall time of publishing a pick minus the pick's data time",
                buckets=(0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120),
            ),
            newest_age=m.gauge(
                "firstmotion_stream_newest_packet_age_seconds",
                "Seconds since the newest data packet arrived",
            ),
            newest_data=m.gauge(
                "firstmotion_stream_newest_packet_data_timestamp_seconds",
                "Data end time of the newest packet received",
            ),
            last_processed=m.gauge(
                "firstmotion_stream_last_processed_timestamp_seconds",
                "Unix time the stream stage last processed a data packet",
            ),
            picks_dropped=m.counter(
                "firstmotion_stream_picks_dropped_total",
                "Detections not published: repeats of a published pick, one-sample glitches",
                ("reason",),
            ),
            silent_channels=m.gauge(
                "firstmotion_stream_silent_channels",
                "Channels that sent data but none for 120 s while others still arrive (a "
                "station or its telemetry down; named in the log)",
            ),
            glitches_repaired=m.counter(
                "firstmotion_stream_glitches_repaired_total",
                "One-sample glitches (telemetry bit errors) repaired before the STA/LTA "
                "detector (the learned picker repairs them in each window it reads, uncounted)",
            ),
            nan_samples=m.counter(
                "firstmotion_stream_nan_samples_total",
                "NaN or infinite samples received (the learned picker reads them as the "
                "channel's mean within a window)",
            ),
            picks=m.counter(
                "firstmotion_stream_picks_total",
                "Picks published, by phase (P, S) and kind (pick; candidate: a P onset the "
                "associator takes only at a located event's predicted P)",
                ("phase", "kind"),
            ),
        )


# --------------------------------------------------------------------------- SeedLink reader


def _connection_class():
    from obspy.clients.seedlink.client.seedlinkconnection import SeedLinkConnection

    class _Connection(SeedLinkConnection):
        """obspy's connection with three fixes for 1.5.1.

        * A timeout for connecting only: ``None`` (the default) crashes ``connect``, and a
          non-None ``timeout`` would also end every ``collect()`` after that long.
        * Reads poll every ``READ_POLL_S`` (obspy blocks each read for ``netto``, so its
          keepalives are never sent and an idle but healthy link is dropped every ``netto``),
          and a connection closed by the server is noticed at once rather than after netto.
        * ``DATA <seq>`` resumes carry the last packet's time (``DATA <seq> <time>``), so a
          server whose ring no longer holds the sequence resumes at that time: obspy's own
          ``lastpkttime`` option fails in 1.5.1 (it concatenates str to bytes).
        """

        connect_timeout_s = 30.0
        _station: tuple[str, str] | None = None

        def connect(self):
            saved, self.timeout = self.timeout, self.connect_timeout_s
            try:
                out = super().connect()
            finally:
                self.timeout = saved
            if self.socket is not None:  # obspy blocks reads for netto: keepalives never go
                self.socket.settimeout(READ_POLL_S)
            return out

        def receive_data(self, maxbytes, code):
            try:
                data = self.socket.recv(maxbytes)
            except TimeoutError:
                return b""  # nothing yet: obspy's loop runs its netto/keepalive timers
            if not data and self.terminate_flag:  # our own shutdown(): let collect() end
                return b""
            if not data:  # the server closed the connection: reconnect now, not after netto
                raise ConnectionResetError(f"[{code}] connection closed by the server")
            return data

        def send_data(self, sendbytes, code, resplen):
            words = sendbytes.split()
            if words[:1] == [b"STATION"] and len(words) == 3:
                self._station = (words[2].decode(), words[1].decode())  # net, sta
            elif words[:1] in ([b"DATA"], [b"FETCH"]) and len(words) == 2:
                entry = self._entry()
                if entry is not None and entry.btime is not None:
                    stamp = entry.btime.format_seedlink().encode("ascii")
                    sendbytes = b" ".join(words) + b" " + stamp + b"\r"
            return super().send_data(sendbytes, code, resplen)

        def _entry(self):
            if not self.multistation:
                return self.streams[0] if self.streams else None
            for entry in self.streams:
                if self._station == (entry.net, entry.station):
                    return entry
            return None

    return _Connection


def _key(entry) -> str:
    """``NET_STA`` of an obspy stream entry (uni-station mode's placeholders are ``str()`` of
    bytes in obspy 1.5.1: ``"b'UNINETWORK'"``)."""

    def text(v) -> str:
        v = v.decode() if isinstance(v, bytes) else str(v)
        return v[2:-1] if v.startswith("b'") and v.endswith("'") else v

    return f"{text(entry.net)}_{text(entry.station)}"


class SeedLinkReader:
    """obspy ``SeedLinkConnection`` in a daemon thread feeding ``out`` (a bounded queue)."""

    def __init__(
        self,
        params: IngestParams,
        out: queue.Queue,
        *,
        resume: dict[str, tuple[int, str]] | None = None,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self.params = params
        self.out = out
        self.metrics = metrics
        self.newest_wall_s: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.conn = self._make_connection(resume or {})

    def _make_connection(self, resume: dict[str, tuple[int, str]]):
        from obspy import UTCDateTime

        p = self.params
        conn = _connection_class()(timeout=None)
        conn.connect_timeout_s = p.timeout_s
        conn.set_sl_address(p.server)
        conn.netto = p.netto_s
        conn.netdly = p.netdly_s
        conn.keepalive = p.netto_s / 3  # answered keepalives: no netto churn when idle
        conn.lastpkttime = False  # broken in obspy 1.5.1; _Connection adds the time itself
        if p.streams:
            conn.parse_stream_list(",".join(p.streams), p.selectors)
        else:
            conn.set_uni_params(p.selectors, -1, None)
        for entry in conn.streams:
            key = _key(entry)
            if key in resume:
                seq, when = resume[key]
                entry.seqnum, entry.btime = int(seq), UTCDateTime(when)
                log.info("resuming %s after sequence %d (%s)", key, seq, when)
        return conn

    def entry_key(self, net: str, sta: str) -> str | None:
        """The stream entry (``NET_STA`` pattern) that a packet of ``net``/``sta`` matches."""
        for entry in self.conn.streams:
            if not self.conn.multistation:
                return _key(entry)
            if fnmatch.fnmatchcase(net, entry.net) and fnmatch.fnmatchcase(sta, entry.station):
                return _key(entry)
        return None

    def positions(self) -> dict[str, tuple[int, str]]:
        """``{NET_STA: (sequence, time)}`` of the last packet received per stream entry."""
        with self._lock:
            return {
                _key(e): (int(e.seqnum), str(e.btime))
                for e in self.conn.streams
                if e.seqnum != -1 and e.btime is not None
            }

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="seedlink-reader", daemon=True)
        self._thread.start()

    def reconnect(self) -> None:
        """Drop the connection; the reader reconnects and resumes (watchdog)."""
        sock = self.conn.socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading (the socket is shut down so a blocked read returns) and join."""
        self._stop.set()
        self.conn.terminate()
        self.reconnect()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        from obspy.clients.seedlink.client.seedlinkconnection import SeedLinkException
        from obspy.clients.seedlink.slpacket import SLPacket

        failures = 0
        while not self._stop.is_set():
            try:
                packet = self.conn.collect()
            except (SeedLinkException, OSError, ValueError) as exc:
                failures += 1
                delay = min(MAX_BACKOFF_S, self.params.netdly_s * 2 ** min(failures - 1, 5))
                log.warning("SeedLink %s: %s; reconnecting in %.1f s", self.params.server, exc,
                            delay)  # fmt: skip
                if self.metrics is not None:
                    self.metrics.reconnects.inc()
                with contextlib.suppress(Exception):
                    self.conn.disconnect()
                self._stop.wait(delay)
                continue
            if packet is None or packet in (SLPacket.SLTERMINATE, SLPacket.SLERROR):
                if self._stop.is_set():
                    break
                log.info("SeedLink %s: connection ended; reconnecting", self.params.server)
                if self.metrics is not None:
                    self.metrics.reconnects.inc()
                self._stop.wait(self.params.netdly_s)
                continue
            if not isinstance(packet, SLPacket) or packet.get_type() in (
                SLPacket.TYPE_SLINF,
                SLPacket.TYPE_SLINFT,
            ):
                continue
            failures = 0
            self._put(packet)

    def _put(self, packet) -> None:
        try:
            trace = packet.get_trace()
        except Exception as exc:  # a corrupt record: skip it, keep the connection
            log.warning("undecodable SeedLink packet: %s", exc)
            return
        seq = packet.get_sequence_number()
        now = time.time()
        self.newest_wall_s = now
        key = self.entry_key(trace.stats.network, trace.stats.station)
        if key is not None and self.conn.multistation:
            with self._lock:  # obspy tracks exact NET_STA entries only; do wildcards too
                for entry in self.conn.streams:
                    if _key(entry) == key:
                        entry.seqnum, entry.btime = seq, trace.stats.starttime
        item = (key, Packet.from_trace(trace, seq, now))
        try:
            self.out.put_nowait(item)
        except queue.Full:
            t0 = time.monotonic()
            while not self._stop.is_set():
                try:
                    self.out.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if self.metrics is not None:
                self.metrics.queue_blocked.inc(time.monotonic() - t0)


# --------------------------------------------------------------------------- statefile


class Checkpoints:
    """Per stream entry, the packets processed over the last ``warmup_s`` of data time, each
    with its channel's :meth:`~stream.stage.StreamStage.snapshot`; the checkpoint is the newest
    packet ending at least ``warmup_s`` before the newest processed, and the channel snapshots
    are those right after each channel's last packet up to it."""

    def __init__(self, warmup_s: float) -> None:
        self.warmup_ns = int(warmup_s * 1e9)
        self._recent: dict[str, deque] = {}
        self._newest_end_ns: dict[str, int] = {}
        self._checkpoint: dict[str, tuple[int, str]] = {}
        self._channels: dict[str, dict] = {}

    def processed(self, key: str, packet: Packet, snapshot: dict | None) -> None:
        if packet.sequence < 0:
            return
        recent = self._recent.setdefault(key, deque())
        recent.append((packet.sequence, packet.start_ns, packet.end_ns, packet.seed_id, snapshot))
        newest = max(self._newest_end_ns.get(key, packet.end_ns), packet.end_ns)
        self._newest_end_ns[key] = newest
        while recent and recent[0][2] <= newest - self.warmup_ns:
            seq, start_ns, _, seed_id, snap = recent.popleft()
            self._checkpoint[key] = (seq, _iso(start_ns))
            if snap is not None:
                self._channels[seed_id] = snap

    def state(
        self, streams: dict[str, tuple[int, str]], channels: dict[str, dict]
    ) -> tuple[dict[str, tuple[int, str]], dict[str, dict]]:
        """What to save: the last statefile's ``streams``/``channels`` updated by this run."""
        return {**streams, **self._checkpoint}, {**channels, **self._channels}


def _iso(ns: int) -> str:
    from obspy import UTCDateTime

    return str(UTCDateTime(ns=int(ns)))


def load_statefile(
    path: str,
) -> tuple[dict[str, tuple[int, str]], dict[str, float], dict[str, dict]]:
    """``(resume positions, last pick time per channel, channel snapshots)`` from a statefile
    (all empty if there is none)."""
    if not path or not Path(path).exists():
        return {}, {}, {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("version") != STATEFILE_VERSION:
            raise ValueError(f"version {data.get('version')!r}")
        resume = {k: (int(v["sequence"]), str(v["time"])) for k, v in data["streams"].items()}
        last = {k: float(v) for k, v in data["last_pick_epoch_s"].items()}
        channels = dict(data.get("channels", {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        msg = f"statefile {path}: unreadable ({exc}); move it away to start fresh"
        raise ValueError(msg) from None
    return resume, last, channels


def load_pick_memory(path: str) -> dict[str, dict]:
    """The learned picker's memory of recent picks per vertical channel in a statefile (what
    the second look and the refined-onset separation compare with, and the last window whose
    second look ran; :class:`stream.phase_stage.PhaseStage`); empty if none. Statefiles
    written before the key was named ``pick_memory`` kept it as ``second_looks``."""
    if not path or not Path(path).exists():
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"statefile {path}: unreadable ({exc}); move it away") from None
    memory = data.get("pick_memory", data.get("second_looks", {}))
    return dict(memory) if isinstance(memory, dict) else {}


def save_statefile(
    path: str,
    resume: dict[str, tuple[int, str]],
    last_pick_epoch_s: dict[str, float],
    channels: dict[str, dict] | None = None,
    pick_memory: dict[str, dict] | None = None,
) -> None:
    """Write the statefile atomically (temporary file + rename)."""
    data = {
        "version": STATEFILE_VERSION,
        "streams": {k: {"sequence": s, "time": t} for k, (s, t) in sorted(resume.items())},
        "last_pick_epoch_s": dict(sorted(last_pick_epoch_s.items())),
        "channels": dict(sorted((channels or {}).items())),
        "saved_epoch_s": time.time(),
    }
    if pick_memory:
        data["pick_memory"] = dict(sorted(pick_memory.items()))
    tmp = f"{path}.tmp"
    Path(tmp).write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the process


class StreamProcess:
    """Reader thread + stage + publisher; :meth:`run` until stopped or idle."""

    def __init__(
        self,
        ingest: IngestParams,
        stage_params: StageParams,
        bus: Any,
        *,
        coordinates: dict | None = None,
        exit_when_idle_s: float | None = None,
    ) -> None:
        self.ingest = ingest
        self.bus = bus
        self.exit_when_idle_s = exit_when_idle_s
        self.metrics = IngestMetrics.create()
        resume, last, channels = load_statefile(ingest.statefile)
        self._initial = (resume, channels)
        self.stage = make_stage(
            stage_params, coordinates=coordinates, last_pick_epoch_s=last, resume_channels=channels,
            pick_memory_state=load_pick_memory(ingest.statefile),
        )  # fmt: skip
        if last or channels:  # a restart: picks published after the statefile was saved
            self._note_published_picks(set(channels) | {k.split("|")[0] for k in last})
        d = stage_params.detect
        warmup_s = 3 * d.lta_s + stage_params.window_before_s + d.lookahead_s()
        if hasattr(self.stage, "warmup_s"):  # the learned picker re-reads a window and more
            warmup_s = max(warmup_s, self.stage.warmup_s())
        self.checkpoints = Checkpoints(warmup_s)
        self.queue: queue.Queue = queue.Queue(maxsize=ingest.queue_packets)
        self.reader = SeedLinkReader(ingest, self.queue, resume=resume, metrics=self.metrics)
        self.stop_event = threading.Event()
        self.started_wall_s = time.time()
        self.n_picks = 0
        self.n_packets = 0
        self._warned: dict[tuple[str, str], float] = {}  # (channel, outcome) -> wall time
        self._channel_seen: dict[str, float] = {}  # channel -> wall time of its newest packet
        self._silent: set[str] = set()  # channels said to be silent
        self.newest_data_end_ns = 0
        self._publish_failed = False
        self._carry: tuple[str | None, Packet] | None = None  # the next batch's first packet
        self._last_save = 0.0
        self.metrics.newest_age.set_function(self._newest_age_s)
        if self.metrics.silent_channels is not None:
            self.metrics.silent_channels.set_function(lambda: len(self._silent))

    def _note_published_picks(self, channels: set[str]) -> None:
        """After a restart, the newest :data:`RECENT_PICKS` picks in Redis of this process's
        channels count as published: a process killed without saving its statefile (which is
        saved every few seconds) would otherwise publish the picks of those seconds again."""
        import redis

        from firstmotion.messages import Pick

        try:
            recent = self.bus.latest("picks", RECENT_PICKS)
        except redis.RedisError as exc:
            log.warning("stream: could not read back the picks already published (%s); picks "
                        "of the last seconds before the restart may come again", exc)  # fmt: skip
            return
        mine = [p for p in recent if isinstance(p, Pick) and p.station_id in channels]
        for pick in mine:
            self.stage.note_published(pick)
        if mine:
            log.info("stream: %d picks already published read back from Redis", len(mine))

    def _newest_age_s(self) -> float:
        newest = self.reader.newest_wall_s or self.started_wall_s
        return max(0.0, time.time() - newest)

    def request_stop(self, *_: Any) -> None:
        self.stop_event.set()

    def save_state(self) -> None:
        if self.ingest.statefile:
            resume, channels = self.checkpoints.state(*self._initial)
            save_statefile(self.ingest.statefile, resume, self.stage.last_pick_epoch_s, channels,
                           getattr(self.stage, "pick_memory", None))  # fmt: skip
        self._last_save = time.monotonic()

    def handle(self, key: str | None, packet: Packet) -> int:
        """Process one packet and publish its picks; returns how many."""
        return self.handle_many([(key, packet)])

    def _warn_unusual(self, packet: Packet, outcome: str) -> None:
        """One warning per channel and outcome each :data:`UNUSUAL_WARN_S` (the counter
        ``firstmotion_stream_packets_total`` counts them all)."""
        key = (packet.seed_id, outcome)
        now = time.monotonic()
        if now - self._warned.get(key, -math.inf) < UNUSUAL_WARN_S:
            return
        self._warned[key] = now
        log.warning("%s: %s (record at %s)", packet.seed_id, UNUSUAL_PACKETS[outcome],
                    _iso(packet.start_ns))  # fmt: skip

    def handle_many(self, items: list[tuple[str | None, Packet]]) -> int:
        """Process packets of distinct channels together (the learned picker runs every window
        they complete in one forward pass: :meth:`stream.phase_stage.PhaseStage.process_many`)
        and publish their picks before recording any checkpoint; returns how many picks."""
        m = self.metrics
        m.stage.items_in.inc(len(items))
        self.n_packets += len(items)
        now = time.time()
        for _, packet in items:
            self.newest_data_end_ns = max(self.newest_data_end_ns, packet.end_ns)
            if packet.sampling_rate_hz >= SILENT_MIN_RATE_HZ:  # slow channels' records: minutes
                self._channel_seen[packet.seed_id] = now
        m.newest_data.set(self.newest_data_end_ns / 1e9)
        repeats, glitches = self.stage.suppressed, self.stage.glitches
        nans = getattr(self.stage, "nan_samples", 0)
        repaired = getattr(self.stage, "glitches_repaired", 0)
        packets = [p for _, p in items]
        if len(packets) > 1 and hasattr(self.stage, "process_many"):
            results, picks = self.stage.process_many(packets)
        else:
            results, picks = [], []
            for packet in packets:
                result, got = self.stage.process(packet)
                results.append(result)
                picks += got
        if m.nan_samples is not None and getattr(self.stage, "nan_samples", 0) > nans:
            m.nan_samples.inc(self.stage.nan_samples - nans)
        now_repaired = getattr(self.stage, "glitches_repaired", 0)
        if m.glitches_repaired is not None and now_repaired > repaired:
            m.glitches_repaired.inc(now_repaired - repaired)
        for packet, result in zip(packets, results, strict=True):
            if result is None:
                continue
            m.packets.labels(outcome=result.outcome).inc()
            if result.outcome in UNUSUAL_PACKETS:
                self._warn_unusual(packet, result.outcome)
            if result.n_filled:
                m.gap_samples.inc(result.n_filled)
        if self.stage.suppressed > repeats:
            m.picks_dropped.labels(reason="repeat").inc(self.stage.suppressed - repeats)
        if self.stage.glitches > glitches:
            m.picks_dropped.labels(reason="glitch").inc(self.stage.glitches - glitches)
        self._emit(picks)
        m.stage.last_processed.set(time.time())
        m.last_processed.set(time.time())
        for (key, packet), result in zip(items, results, strict=True):
            if key is not None:
                snapshot = self.stage.snapshot(packet.seed_id) if result is not None else None
                self.checkpoints.processed(key, packet, snapshot)
        return len(picks)

    def _emit(self, picks: list) -> None:
        """Publish ``picks`` and count them."""
        if not picks:
            return
        m = self.metrics
        self._publish(picks)
        now = time.time()
        for pick in picks:
            m.latency.observe(max(0.0, now - pick.time_epoch_s))
            if m.picks is not None:
                kind = "candidate" if getattr(pick, "candidate", False) else "pick"
                m.picks.labels(phase=pick.phase, kind=kind).inc()
        m.stage.items_out.inc(len(picks))
        self.n_picks += len(picks)

    def _take_batch(self, first: tuple[str | None, Packet]) -> list[tuple[str | None, Packet]]:
        """``first`` and the packets already queued after it, up to ``BATCH_PACKETS`` and
        one per channel (a channel's second packet waits for the next batch, so that each
        checkpoint's snapshot is its channel's state right after its packet)."""
        batch, seen = [first], {first[1].seed_id}
        while len(batch) < BATCH_PACKETS:
            item = self._next_queued()
            if item is None:
                break
            if item[1].seed_id in seen:
                self._carry = item
                break
            batch.append(item)
            seen.add(item[1].seed_id)
        return batch

    def _publish(self, picks: list) -> None:
        """Publish, retrying with backoff while Redis is unreachable: meanwhile the queue fills
        and the reader blocks (back-pressure onto the SeedLink connection). Stopping while
        Redis is down raises, and the statefile is then not advanced past unpublished picks."""
        import redis

        delay_s = 0.5
        while True:
            try:
                self.bus.publish_many("picks", picks)
                return
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.metrics.stage.errors.inc(len(picks))
                if self.stop_event.is_set():
                    self._publish_failed = True
                    raise
                log.warning("stream: publishing %d picks failed (%s); retrying in %.1f s",
                            len(picks), exc, delay_s)  # fmt: skip
                self.stop_event.wait(delay_s)
                delay_s = min(2 * delay_s, 10.0)

    def run(self) -> int:
        self.reader.start()
        what = ",".join(self.ingest.streams) or f"uni-station {self.ingest.selectors}"
        log.info("stream: reading %s (%s)", self.ingest.server, what)
        watchdog_fired = False
        ran_out = False  # the data ended (--exit-when-idle-s): flush what waits for more
        try:
            while not self.stop_event.is_set():
                try:
                    if self._carry is not None:
                        item, self._carry = self._carry, None
                    else:
                        item = self.queue.get(timeout=0.2)
                except queue.Empty:
                    age = self._newest_age_s()
                    if self.exit_when_idle_s is not None and age >= self.exit_when_idle_s:
                        log.info("stream: no data for %.1f s; exiting", age)
                        ran_out = True
                        break
                    if age > self.ingest.watchdog_s and not watchdog_fired:
                        log.warning("stream: newest packet is %.0f s old; reconnecting", age)
                        self.reader.reconnect()
                        watchdog_fired = True
                    self._maybe_save()
                    continue
                watchdog_fired = False
                self.metrics.queue_depth.set(self.queue.qsize())
                self.handle_many(self._take_batch(item))
                self._maybe_save()
        finally:
            self.reader.stop()
            try:
                self._drain()
                if ran_out and hasattr(self.stage, "flush"):
                    flushed = self.stage.flush()
                    if flushed:
                        log.info(
                            "stream: the data ended; %d picks that waited for more "
                            "samples published with what there is",
                            len(flushed),
                        )
                    self._emit(flushed)
            finally:
                if not self._publish_failed:
                    self.save_state()
                log.info("stream: %d packets in, %d picks out", self.n_packets, self.n_picks)
        return 0

    def _maybe_save(self) -> None:
        if time.monotonic() - self._last_save >= STATE_SAVE_INTERVAL_S:
            self.save_state()
            self.check_silent_channels()

    def check_silent_channels(self, now_s: float | None = None) -> set[str]:
        """Channels that sent data but none for :data:`SILENT_CHANNEL_S` while others still
        arrive (their newest packet that much older than the newest of all): each said once
        when it falls silent and once when it is back; the set is the
        ``firstmotion_stream_silent_channels`` gauge. (All silent at once is the SeedLink
        connection's watchdog, not this.)"""
        if not self._channel_seen:
            return self._silent
        newest = max(self._channel_seen.values())
        now = time.time() if now_s is None else now_s
        if now - newest > SILENT_CHANNEL_S:  # nothing arrives at all: not one channel's fault
            return self._silent
        silent = {c for c, t in self._channel_seen.items() if newest - t > SILENT_CHANNEL_S}
        for c in sorted(silent - self._silent):
            log.warning("%s: no data for %.0f s while other channels arrive", c,
                        newest - self._channel_seen[c])  # fmt: skip
        for c in sorted(self._silent - silent):
            log.info("%s: data again", c)
        self._silent = silent
        return silent

    def _drain(self, grace_s: float = 10.0) -> None:
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            item = self._next_queued()
            if item is None:
                return
            self.handle_many(self._take_batch(item))

    def _next_queued(self) -> tuple[str | None, Packet] | None:
        """The packet a batch left over, else the next queued one; ``None`` when none waits."""
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        try:
            return self.queue.get_nowait()
        except queue.Empty:
            return None


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``firstmotion stream``."""
    parser.add_argument("--config", help="TOML config file ([seedlink], [detect], [redis])")
    parser.add_argument("--seedlink", help="SeedLink server host:port (default: config)")
    parser.add_argument(
        "--streams",
        help="NET_STA[:SELECTORS],... e.g. 'PR_PR15:EHZ,PR_PR34' or '*_*:??Z' (default: "
        "config; none: uni-station mode with --selectors)",
    )
    parser.add_argument(
        "--picker",
        choices=("phasenet", "stalta"),
        help="phasenet (learned P/S, three components) or stalta (default: config detect.picker)",
    )
    parser.add_argument(
        "--selectors",
        help="default selectors (default: every component the picker needs: ??? for the "
        "learned picker, ??Z for STA/LTA)",
    )
    parser.add_argument(
        "--inventory",
        help="StationXML with station coordinates for the picks (default: inventory.stationxml)",
    )
    parser.add_argument("--redis", help="Redis URL (default: config redis.url)")
    parser.add_argument("--statefile", help="resume state file (default: config)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics and /healthz on this port (default: config metrics.port, as the "
        "deploy manifests' probes expect; 0 picks a free port)",
    )
    parser.add_argument("--no-metrics", action="store_true", help="serve no /metrics")
    parser.add_argument(
        "--window-before-s", type=float, help="pick window before the pick (default: config)"
    )
    parser.add_argument(
        "--window-after-s", type=float, help="pick window after the pick (default: config)"
    )
    parser.add_argument(
        "--exit-when-idle-s",
        type=float,
        help="exit once no data arrived for this long (the data ended: the picks waiting for "
        "more samples are published with what there is)",
    )


def default_selectors(picker: str) -> str:
    """SeedLink selectors for stream entries without their own: every component the picker
    needs (the learned picker reads three components, STA/LTA the vertical)."""
    return "???" if picker == "phasenet" else "??Z"


def picker_params(detect, window_after_s: float | None = None):
    """The learned picker's :class:`~stream.picker.PickerParams` from the ``[detect]``
    settings (``window_after_s``: the command line's pick window, if given)."""
    from stream.picker import PickerParams

    return PickerParams(
        model=detect.phasenet_model, p_threshold=detect.p_threshold,
        s_threshold=detect.s_threshold, stride_s=detect.phasenet_stride_s,
        tail_s=detect.phasenet_tail_s, highpass_hz=detect.phasenet_highpass_hz,
        second_look_s=detect.phasenet_second_look_tail_s,
        device=detect.phasenet_device, p_min_snr=detect.phasenet_min_snr,
        s_min_snr=detect.phasenet_s_min_snr,
        hot_stride_s=detect.phasenet_hot_stride_s, hot_pick_p=detect.phasenet_hot_pick_p,
        candidate_p=detect.phasenet_candidate_p, candidate_stalta=detect.phasenet_candidate_stalta,
        candidate_min_snr=detect.phasenet_candidate_min_snr,
        p_max_hv=detect.phasenet_p_max_hv,
        window_after_s=(window_after_s if window_after_s is not None
                        else detect.phasenet_window_after_s),
    )  # fmt: skip


def _settings(args: argparse.Namespace):
    from firstmotion.config import load_settings

    return load_settings(args.config)


def run(args: argparse.Namespace) -> int:
    """``firstmotion stream``: run until SIGTERM/SIGINT (or idle, with --exit-when-idle-s)."""
    import sys

    from firstmotion.bus import Bus, redis_check
    from firstmotion.metrics import Health, age_check, start_http_server
    from stream.detect import DetectParams

    settings = _settings(args)
    sl = settings.seedlink
    server = args.seedlink or sl.server
    if not server:
        print("firstmotion stream: no SeedLink server (--seedlink or seedlink.server)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        streams = parse_streams(args.streams) if args.streams else tuple(sl.streams)
        picker = args.picker or settings.detect.picker
        selectors = args.selectors or default_selectors(picker)
        ingest = IngestParams(
            server=server, streams=streams, selectors=selectors,
            statefile=args.statefile if args.statefile is not None else sl.statefile,
            netto_s=sl.netto_s, netdly_s=sl.netdly_s, timeout_s=sl.timeout_s,
        )  # fmt: skip
        if ingest.statefile:  # said now, not after the first packets when it is first saved
            folder = os.path.dirname(os.path.abspath(ingest.statefile))
            if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
                print(f"firstmotion stream: statefile {ingest.statefile}: its folder {folder} "
                      "does not exist or is not writable", file=sys.stderr)  # fmt: skip
                return 2
        stage_params = StageParams(
            detect=DetectParams.from_settings(settings.detect),
            window_before_s=(
                args.window_before_s
                if args.window_before_s is not None
                else settings.detect.window_before_s
            ),
            window_after_s=(
                args.window_after_s
                if args.window_after_s is not None
                else settings.detect.window_after_s
            ),
            picker=picker,
            picker_params=picker_params(settings.detect, args.window_after_s),
        )
        redis_url = args.redis or settings.redis.url
        bus = Bus.from_url(redis_url, settings.redis.prefix, maxlen=settings.redis.stream_maxlen)
        coordinates = None
        inventory = args.inventory or settings.inventory.stationxml
        if inventory:
            from stream.stage import coordinates_from_inventory

            coordinates = coordinates_from_inventory(inventory)
        proc = StreamProcess(
            ingest, stage_params, bus, coordinates=coordinates,
            exit_when_idle_s=args.exit_when_idle_s,
        )  # fmt: skip
    except ValueError as exc:
        print(f"firstmotion stream: {exc}", file=sys.stderr)
        return 2
    server_http = None
    port = args.metrics_port if args.metrics_port is not None else settings.metrics.port
    if not args.no_metrics:
        health = Health()
        health.register("redis", redis_check(bus))
        health.register(
            "newest_packet",
            age_check(lambda: proc.reader.newest_wall_s, ingest.watchdog_s),
        )
        try:
            server_http = start_http_server(settings.metrics.host, port, health=health)
        except OSError as exc:
            print(f"firstmotion stream: cannot serve metrics on {settings.metrics.host}:{port} "
                  f"({exc}); set --metrics-port or metrics.port, or --no-metrics",
                  file=sys.stderr)  # fmt: skip
            return 2
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, proc.request_stop)
    try:
        return proc.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server_http is not None:
            server_http.stop()


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - convenience
    parser = argparse.ArgumentParser(prog="firstmotion stream")
    add_arguments(parser)
    return run(parser.parse_args(argv))
