"""``firstmotion replay``: a SeedLink v3 server that streams recorded miniSEED.

A drill, test and backfill tool: it serves files (folders, globs) over real SeedLink to any
number of clients, in real time, accelerated (``--speed 10``) or as fast as possible, looping
optionally. Operations point the stream stage at the network's own SeedLink server
(ringserver, SeisComP ``seedlink``); this server is how the rest of the system is exercised
end to end without one.

How it behaves (and why):

* **One sequence.** Every data record of every file (re-recorded into 512-byte records where
  the files use another length, see :mod:`stream.replay_records`) is merged into one
  sequence, numbered 1, 2, ... (24-bit, wrapping). The order is *release order*: record end
  time, ties by start time and ``NET.STA.LOC.CHA``. Per channel this is data-time order;
  across channels it is the order in which a digitizer would have finished the records, so
  sequence numbers only ever grow on the wire and resuming after sequence ``n`` can neither
  skip nor repeat a record.
* **Replay clock.** A record is *released* (appended to the server's ring) when the replay
  clock passes its end time, as a real digitizer sends a record when it is full. The clock runs
  ``speed`` times faster than wall time; with ``speed=None`` (``--as-fast-as-possible``) the
  whole recording is released at once. Idle stretches longer than ``gap_threshold_s`` of data
  time (files from different days) are cut out of the clock (:func:`release_offsets_s`).
* **Loop.** ``loop=True`` replays the recording again and again with sequence numbers that
  keep counting; each pass is shifted forward in data time by the recording's span (whole
  seconds, :func:`~stream.seedlink_protocol.shift_record_time`), so time never runs backwards
  for a client. With ``speed=None`` the next pass is released once every streaming client has
  caught up.
* **Ring.** The last ``ring_records`` released records (default: one pass) are kept. ``DATA``
  with a sequence number resumes right after it if it is still in the ring (else from the
  oldest record, or from the begin time when one is given); ``DATA`` without one starts at the
  oldest record of the ring: a drill tool should not lose data to connection races (ringserver
  would start with the next new packet instead). ``TIME begin [end]`` serves records that end
  after ``begin`` (and start before ``end``), then sends ``END`` once the clock has passed the
  window; ``FETCH`` serves what the ring holds, then ``END``.
* **Protocol.** HELLO, CAT, STATION (``?``/``*`` wildcards), SELECT (``[!][LL]CCC[.T]``),
  DATA/FETCH/TIME, END (multi-station: only stations activated by DATA/FETCH/TIME stream; if
  any asked FETCH the connection is dial-up and ends with ``END`` as a whole), uni-station
  mode (DATA/FETCH/TIME without STATION: every station, global selectors; the transfer starts
  0.1 s after ``OK`` so obspy reads the ``OK`` alone), BYE, INFO
  ID/CAPABILITIES/STATIONS/STREAMS/GAPS/CONNECTIONS/ALL as XML in ``SLINFO`` packets.
  Malformed commands get ``ERROR`` and the connection stays usable; once a connection
  streams, only INFO (keepalives) and BYE are acted on (an ``ERROR`` between data packets
  would break obspy's packet parser).
* **Metrics.** ``firstmotion_replay_*`` series in the project registry (records released,
  packets sent, refused commands, clients, data and wall time of the latest release);
  ``--metrics-port`` serves them.

obspy 1.5.1's SeedLink clients crash on connect when their timeout is ``None`` (their
default): give ``SLClient``/``SeedLinkConnection`` a ``timeout`` and set ``netto``/``netdly``
(see the tests for working recipes).

.. seealso:: SeedLink protocol v3 (SeisComP ``seedlink`` documentation); libslink / ringserver
   (C. Trabant, EarthScope) for the client/server behaviour mirrored here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from stream import seedlink_protocol as slp
from stream.replay_records import Record, RecordTable, load_table

log = logging.getLogger(__name__)

SOFTWARE = "SeedLink v3.1 (firstmotion replay)"
ORGANIZATION = "firstmotion"
HELLO_REPLY = (f"{SOFTWARE} :: SLPROTO:3.1 CAP NSWILDCARD\r\nfirstmotion replay server\r\n").encode(
    "ascii"
)
DEFAULT_GAP_THRESHOLD_S = 60.0
UNI_STATION_START_DELAY_S = 0.1
SEND_BATCH_PACKETS = 64
_NS = 1_000_000_000
_CLOCK_TOLERANCE_S = 1e-6


# --------------------------------------------------------------------------- schedule


def release_offsets_s(
    start_ns: np.ndarray, end_ns: np.ndarray, gap_threshold_s: float
) -> np.ndarray:
    """Replay-clock time (s) at which each record is released, idle stretches cut out.

    ``start_ns``/``end_ns`` are epoch nanoseconds of records in release order (non-decreasing
    ``end_ns``). Record ``i`` is released at its end time; whenever a record starts more than
    ``gap_threshold_s`` after every earlier record has ended, the clock jumps over the idle
    stretch. The clock starts (0 s) at the earliest start time. The result is non-decreasing.
    """
    start = np.asarray(start_ns, dtype=np.int64)
    end = np.asarray(end_ns, dtype=np.int64)
    if start.shape != end.shape or start.ndim != 1:
        raise ValueError("start_ns and end_ns must be 1-D arrays of the same length")
    if start.size == 0:
        return np.zeros(0)
    if np.any(np.diff(end) < 0):
        raise ValueError("records must be in release order (non-decreasing end_ns)")
    if gap_threshold_s < 0:
        raise ValueError(f"gap_threshold_s must be >= 0, got {gap_threshold_s}")
    threshold_ns = int(round(gap_threshold_s * _NS))
    frontier = np.maximum.accumulate(end)  # latest end among records 0..i
    previous = np.concatenate(([start.min()], frontier[:-1]))
    idle = start - previous
    idle[0] = 0
    skipped = np.cumsum(np.where(idle > threshold_ns, idle, 0))
    return (end - skipped - start.min()) / _NS


@dataclass(frozen=True, eq=False)
class ReplayPlan:
    """The records of one pass in release order with their release clock (see module doc)."""

    table: RecordTable  # in release order
    release_s: np.ndarray  # float64, replay-clock seconds of each release within a pass
    clock_start_s: float  # replay clock at start (``start_time``), seconds
    pass_clock_s: float  # replay-clock length of one pass
    pass_shift_s: int  # data-time shift between passes, whole seconds
    max_record_ns: int  # longest record duration

    @classmethod
    def build(
        cls,
        records: RecordTable | Sequence[Record],
        *,
        gap_threshold_s: float = DEFAULT_GAP_THRESHOLD_S,
        start_time_ns: int | None = None,
    ) -> ReplayPlan:
        """Order records for release (end time, then start time, then stream id); drop those
        ending at or before ``start_time_ns``."""
        table = records if isinstance(records, RecordTable) else RecordTable.from_records(records)
        if start_time_ns is not None:
            table = table.take(np.flatnonzero(table.end_ns > start_time_ns))
        if not len(table):
            raise ValueError("nothing to replay: no miniSEED data records (after --start-time)")
        # streams are sorted, so stream_index orders ties by NET, STA, LOC, CHA
        table = table.take(np.lexsort((table.stream_index, table.start_ns, table.end_ns)))
        start, end = table.start_ns, table.end_ns
        release = release_offsets_s(start, end, gap_threshold_s)
        clock_start = 0.0
        if start_time_ns is not None:
            clock_start = max(0.0, (start_time_ns - int(start.min())) / _NS)
        return cls(
            table=table,
            release_s=release,
            clock_start_s=clock_start,
            pass_clock_s=float(release[-1]),
            pass_shift_s=int(math.ceil((int(end.max()) - int(start.min())) / _NS)),
            max_record_ns=int((end - start).max()),
        )

    @property
    def start_ns(self) -> np.ndarray:
        return self.table.start_ns

    @property
    def end_ns(self) -> np.ndarray:
        return self.table.end_ns

    @property
    def stream_index(self) -> np.ndarray:
        return self.table.stream_index

    @property
    def streams(self) -> tuple[tuple[str, str, str, str], ...]:
        return self.table.streams

    def stream_ids(self) -> list[str]:
        """``NET.STA.LOC.CHA`` of each record of one pass, in release (sequence) order."""
        names = [".".join(k) for k in self.streams]
        return [names[i] for i in self.stream_index]

    def __len__(self) -> int:
        return len(self.table)

    def released_by(self, clock_s: float, loop: bool) -> int:
        """How many records (counting over passes when looping) are released at ``clock_s``."""
        n = len(self.table)
        clock_s = clock_s + _CLOCK_TOLERANCE_S  # float rounding must not hold a record back
        if not loop:
            return int(np.searchsorted(self.release_s, clock_s, side="right"))
        span = max(self.pass_clock_s, 1e-9)
        passes = int(max(clock_s, 0.0) // span)
        within = int(np.searchsorted(self.release_s, clock_s - passes * span, side="right"))
        return passes * n + within

    def release_clock_s(self, index: int) -> float:
        """Replay-clock time at which global record ``index`` (0-based, over passes) is due."""
        n = len(self.table)
        return (index // n) * self.pass_clock_s + float(self.release_s[index % n])

    def record_at(self, index: int) -> tuple[bytes, int, int, int]:
        """``(512 record bytes, stream index, start_ns, end_ns)`` of global record ``index``;
        records of later passes are shifted in time (the bytes too)."""
        n = len(self.table)
        passes, j = divmod(index, n)
        data = self.table.data[j].tobytes()
        shift_ns = passes * self.pass_shift_s * _NS
        if passes:
            data = slp.shift_record_time(data, passes * self.pass_shift_s)
        return (
            data,
            int(self.table.stream_index[j]),
            int(self.table.start_ns[j]) + shift_ns,
            int(self.table.end_ns[j]) + shift_ns,
        )


def sequence_of(index: int) -> int:
    """SeedLink sequence number of global record ``index`` (0-based): 1, 2, ... mod 2**24."""
    return (index + 1) % slp.SEQ_MODULUS


def index_of_sequence(sequence: int, oldest: int, released: int) -> int | None:
    """Global index (0-based) whose sequence number is ``sequence``, searched among the ring
    ``[oldest, released]`` (``released`` itself: the next record, not yet released); the newest
    such index when sequence numbers have wrapped, ``None`` when it is not there."""
    target = (sequence - 1) % slp.SEQ_MODULUS
    candidate = released - ((released - target) % slp.SEQ_MODULUS)
    return candidate if candidate >= oldest else None


# --------------------------------------------------------------------------- server


@dataclass(frozen=True)
class ReplayMetrics:
    """Prometheus series of the replay server (project registry, no labels)."""

    released: Any
    packets_sent: Any
    refused: Any
    clients: Any
    last_data_time: Any
    last_processed: Any

    @classmethod
    def create(cls) -> ReplayMetrics:
        from firstmotion import metrics as m

        return cls(
            released=m.counter(
                "firstmotion_replay_records_released_total", "Records released by the replay clock"
            ),
            packets_sent=m.counter(
                "firstmotion_replay_packets_sent_total", "SeedLink data packets sent to clients"
            ),
            refused=m.counter(
                "firstmotion_replay_commands_refused_total", "Commands answered with ERROR"
            ),
            clients=m.gauge("firstmotion_replay_clients", "Connected SeedLink clients"),
            last_data_time=m.gauge(
                "firstmotion_replay_last_released_data_timestamp_seconds",
                "Data time (end) of the newest released record, epoch seconds",
            ),
            last_processed=m.gauge(
                "firstmotion_replay_last_processed_timestamp_seconds",
                "Wall time of the latest release, epoch seconds",
            ),
        )


@dataclass(eq=False)
class _StationRequest:
    """What one client asked for one station pattern (or every station in uni-station mode)."""

    network: str = "*"
    station: str = "*"
    selectors: list[slp.Selector] = field(default_factory=list)
    mode: str = "DATA"  # DATA, FETCH or TIME
    sequence: int | None = None
    begin_ns: int | None = None
    end_ns: int | None = None
    start_index: int = 0
    after_ns: int | None = None  # serve only records ending after this (TIME, or DATA fallback)
    done: bool = False

    def covers(self, net: str, sta: str) -> bool:
        return slp.name_matches(self.network, net) and slp.name_matches(self.station, sta)

    def label(self) -> str:
        return f"{self.network}_{self.station}"


@dataclass(eq=False)
class _Client:
    peer: str
    port: int
    writer: asyncio.StreamWriter
    connected_ns: int
    requests: list[_StationRequest] = field(default_factory=list)
    current: _StationRequest | None = None
    multi_station: bool = False
    global_selectors: list[slp.Selector] = field(default_factory=list)
    streaming: bool = False
    sender: asyncio.Task | None = None
    cursor: int = 0
    packets_sent: int = 0
    fetch_until: int | None = None
    route: dict[int, _StationRequest | None] = field(default_factory=dict)

    def name(self) -> str:
        return f"{self.peer}:{self.port}"


class ServerAddress(NamedTuple):
    host: str
    port: int


class ReplayServer:
    """Asyncio SeedLink v3 server replaying miniSEED records (see the module docstring).

    ``records_or_paths``: a :class:`RecordTable`, :class:`Record` objects, or
    files/folders/globs for :func:`load_table`. ``speed``: replay-clock rate (1 = real time);
    ``None`` releases everything at once. ``port=0`` picks a free port (see :attr:`address`
    after :meth:`start`).
    """

    def __init__(
        self,
        records_or_paths: RecordTable | Iterable[Record] | Iterable[str | os.PathLike[str]],
        host: str = "127.0.0.1",
        port: int = 18000,
        *,
        speed: float | None = 1.0,
        loop: bool = False,
        start_time_ns: int | None = None,
        gap_threshold_s: float = DEFAULT_GAP_THRESHOLD_S,
        ring_records: int | None = None,
        uni_station_start_delay_s: float = UNI_STATION_START_DELAY_S,
    ) -> None:
        if speed is not None and not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a positive finite number or None, got {speed}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, got {port}")
        if isinstance(records_or_paths, (str, os.PathLike)):
            records_or_paths = [records_or_paths]
        self.skipped: list[tuple[Path, str]] = []  # unreadable files: (path, problem)
        if isinstance(records_or_paths, RecordTable):
            table = records_or_paths
        else:
            items = list(records_or_paths)
            if items and all(isinstance(x, Record) for x in items):
                table = RecordTable.from_records(items)  # type: ignore[arg-type]
            elif any(isinstance(x, Record) for x in items):
                raise ValueError("records_or_paths mixes Record objects and paths")
            else:
                table = load_table(items, skipped=self.skipped)  # type: ignore[arg-type]
        self.plan = ReplayPlan.build(
            table, gap_threshold_s=gap_threshold_s, start_time_ns=start_time_ns
        )
        if ring_records is not None and ring_records < 1:
            raise ValueError(f"ring_records must be >= 1, got {ring_records}")
        self.ring_records = ring_records or len(self.plan)
        self.host = host
        self.port = port
        self.speed = speed
        self.loop = loop
        self.uni_station_start_delay_s = uni_station_start_delay_s
        self.released = 0
        self.finished = False
        self.started_ns = time.time_ns()
        self.clock_origin_s: float | None = None  # event-loop (monotonic) time of clock zero
        self._server: asyncio.AbstractServer | None = None
        self._changed: asyncio.Condition | None = None
        self._clock_task: asyncio.Task | None = None
        self._clients: set[_Client] = set()
        self._handlers: set[asyncio.Task] = set()
        self._stopping = False
        self.metrics = ReplayMetrics.create()

    # ------------------------------------------------------------------ life cycle

    @property
    def listening(self) -> bool:
        """True while the server accepts connections."""
        return self._server is not None and self._server.is_serving()

    @property
    def address(self) -> ServerAddress:
        """Bound host and port (the real port when constructed with ``port=0``)."""
        return ServerAddress(self.host, self.port)

    async def start(self) -> ServerAddress:
        """Bind, start the replay clock and accept clients."""
        self._changed = asyncio.Condition()
        self.started_ns = time.time_ns()
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._clock_task = asyncio.create_task(self._run_clock(), name="replay-clock")
        self._clock_task.add_done_callback(_log_failure)
        log.info(
            "replay: serving %d records of %d streams on %s:%d (speed %s%s)",
            len(self.plan),
            len(self.plan.streams),
            self.host,
            self.port,
            "as fast as possible" if self.speed is None else f"{self.speed:g}x",
            ", looping" if self.loop else "",
        )
        return self.address

    async def stop(self, grace_s: float = 2.0) -> None:
        """Stop accepting, end every client connection, stop the clock."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        if self._clock_task is not None:
            self._clock_task.cancel()
            await asyncio.gather(self._clock_task, return_exceptions=True)
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()
        for client in list(self._clients):
            client.writer.close()  # the handler sees EOF and cleans up
        if self._handlers:
            _, late = await asyncio.wait(set(self._handlers), timeout=grace_s)
            for task in late:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
        log.info("replay: stopped after releasing %d records", self.released)

    async def wait_released(self, count: int) -> None:
        """Wait until at least ``count`` records are released (or the replay is finished)."""
        assert self._changed is not None, "start() first"
        async with self._changed:
            await self._changed.wait_for(lambda: self.released >= count or self.finished)

    async def _publish(self, released: int, finished: bool = False) -> None:
        assert self._changed is not None
        async with self._changed:
            if released > self.released:
                self.metrics.released.inc(released - self.released)
                self.metrics.last_data_time.set(self.plan.record_at(released - 1)[3] / _NS)
                self.metrics.last_processed.set(time.time())
                self.released = released
            self.finished = self.finished or finished
            self._changed.notify_all()

    async def _run_clock(self) -> None:
        n = len(self.plan)
        if self.speed is None:
            await self._run_unpaced(n)
            return
        t0 = self.clock_origin_s = asyncio.get_running_loop().time()
        while True:
            clock = self.plan.clock_start_s + (asyncio.get_running_loop().time() - t0) * self.speed
            due = self.plan.released_by(clock, self.loop)
            if not self.loop:
                due = min(due, n)
            if due > self.released:
                await self._publish(due, finished=not self.loop and due >= n)
            if self.finished:
                log.info("replay: all %d records released", n)
                return
            wait_s = (self.plan.release_clock_s(self.released) - clock) / self.speed
            await asyncio.sleep(min(max(wait_s, 0.001), 1.0))

    async def _run_unpaced(self, n: int) -> None:
        if not self.loop:
            await self._publish(n, finished=True)
            log.info("replay: all %d records released", n)
            return
        assert self._changed is not None
        passes = 1
        while True:
            await self._publish(passes * n)
            async with self._changed:
                await self._changed.wait_for(self._all_caught_up)
            passes += 1

    def _all_caught_up(self) -> bool:
        active = [c for c in self._clients if c.streaming and c.sender and not c.sender.done()]
        return bool(active) and all(c.cursor >= self.released for c in active)

    def ring_oldest(self) -> int:
        """Global index of the oldest record still in the ring."""
        return max(0, self.released - self.ring_records)

    # ------------------------------------------------------------------ connections

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        peer = writer.get_extra_info("peername") or ("?", 0)
        client = _Client(str(peer[0]), int(peer[1]), writer, time.time_ns())
        self._clients.add(client)
        self.metrics.clients.inc()
        log.info("replay: client %s connected", client.name())
        try:
            async for line in _read_lines(reader):
                if line is None:
                    if not client.streaming:
                        self.metrics.refused.inc()
                        await self._reply(client, slp.ERROR)
                    continue
                if not line.strip():
                    continue
                if not await self._dispatch(client, line):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.discard(client)
            self.metrics.clients.dec()
            if client.sender is not None:
                client.sender.cancel()
                await asyncio.gather(client.sender, return_exceptions=True)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._handlers.discard(task)
            if self._changed is not None:
                async with self._changed:
                    self._changed.notify_all()
            log.info(
                "replay: client %s disconnected after %d packets",
                client.name(),
                client.packets_sent,
            )

    async def _reply(self, client: _Client, data: bytes) -> None:
        client.writer.write(data)
        await client.writer.drain()

    async def _dispatch(self, client: _Client, line: bytes) -> bool:
        """Act on one command line; ``False`` ends the connection."""
        try:
            cmd = slp.parse_command(line)
        except ValueError as exc:
            log.info("replay: %s: %s", client.name(), exc)
            if not client.streaming:
                self.metrics.refused.inc()
                await self._reply(client, slp.ERROR)
            return True
        log.debug("replay: %s: %s %s", client.name(), cmd.verb, " ".join(cmd.args))
        if cmd.verb == "BYE":
            return False
        if cmd.verb == "INFO":
            await self._info(client, cmd.args)
            return True
        if client.streaming:
            log.info("replay: %s: %s ignored while streaming", client.name(), cmd.verb)
            return True
        try:
            reply = self._configure(client, cmd)
        except ValueError as exc:
            log.info("replay: %s: %s refused: %s", client.name(), cmd.verb, exc)
            self.metrics.refused.inc()
            reply = slp.ERROR
        if reply:
            await self._reply(client, reply)
        if cmd.verb == "END" and reply is None:
            self._start_streaming(client, delay_s=0.0)
        elif cmd.verb in ("DATA", "FETCH", "TIME") and not client.multi_station and reply == slp.OK:
            # uni-station mode: the action command itself starts the transfer
            request = _StationRequest(selectors=list(client.global_selectors))
            self._set_action(request, cmd)
            client.requests.append(request)
            self._start_streaming(client, delay_s=self.uni_station_start_delay_s)
        return True

    def _configure(self, client: _Client, cmd: slp.Command) -> bytes | None:
        """Handle a negotiation command; the reply to send (``None``: no reply)."""
        if cmd.verb == "HELLO":
            return HELLO_REPLY
        if cmd.verb == "CAT":
            stations = sorted({(net, sta) for net, sta, _, _ in self.plan.streams})
            lines = [f"{net:<2} {sta:<5} firstmotion replay\r\n" for net, sta in stations]
            return ("".join(lines) + "END").encode("ascii")
        if cmd.verb == "STATION":
            if not 1 <= len(cmd.args) <= 2:
                raise ValueError("STATION takes a station code and optionally a network code")
            sta = cmd.args[0].upper()
            net = cmd.args[1].upper() if len(cmd.args) == 2 else "*"
            request = _StationRequest(network=net, station=sta)
            if not any(request.covers(n, s) for n, s, _, _ in self.plan.streams):
                raise ValueError(f"no station {net}_{sta} in this replay")
            client.current = request  # streamed once DATA/FETCH/TIME activates it
            client.multi_station = True
            return slp.OK
        if cmd.verb == "SELECT":
            if len(cmd.args) > 1:
                raise ValueError("SELECT takes one selector")
            target = client.current.selectors if client.current else client.global_selectors
            if not cmd.args:
                target.clear()
            else:
                target.append(slp.parse_selector(cmd.args[0]))
            return slp.OK
        if cmd.verb in ("DATA", "FETCH", "TIME"):
            probe = _StationRequest()
            self._set_action(probe, cmd)  # validates the arguments
            if client.current is not None:
                self._set_action(client.current, cmd)
                client.requests.append(client.current)
                client.current = None
            elif client.multi_station:
                raise ValueError(f"{cmd.verb} without a preceding STATION in multi-station mode")
            return slp.OK
        if cmd.verb == "END":
            if not client.requests:
                raise ValueError("END without any station activated by DATA, FETCH or TIME")
            return None
        raise ValueError(f"unsupported command {cmd.verb}")

    @staticmethod
    def _set_action(request: _StationRequest, cmd: slp.Command) -> None:
        request.mode = cmd.verb
        if cmd.verb == "TIME":
            if not 1 <= len(cmd.args) <= 2:
                raise ValueError("TIME takes a begin time and optionally an end time")
            request.begin_ns = slp.parse_seedlink_time(cmd.args[0])
            if len(cmd.args) == 2:
                request.end_ns = slp.parse_seedlink_time(cmd.args[1])
                if request.end_ns <= request.begin_ns:
                    raise ValueError("TIME end is not after begin")
            return
        if len(cmd.args) > 2:
            raise ValueError(f"{cmd.verb} takes at most a sequence number and a begin time")
        if cmd.args:
            request.sequence = slp.parse_sequence(cmd.args[0])
        if len(cmd.args) == 2:
            request.begin_ns = slp.parse_seedlink_time(cmd.args[1])

    # ------------------------------------------------------------------ INFO

    async def _info(self, client: _Client, args: tuple[str, ...]) -> None:
        level = args[0].upper() if args else ""
        try:
            xml = self.info_xml(level)
        except ValueError as exc:
            log.info("replay: %s: INFO refused: %s", client.name(), exc)
            self.metrics.refused.inc()
            await self._reply(client, slp.ERROR)
            return
        await self._reply(client, b"".join(slp.info_packets(xml, time.time_ns())))

    def info_xml(self, level: str) -> str:
        """The XML answering ``INFO level`` for the current ring."""
        return slp.info_xml(
            level,
            software=SOFTWARE,
            organization=ORGANIZATION,
            started_ns=self.started_ns,
            stations=self._station_infos() if level.upper() != "ID" else (),
            connections=tuple(
                slp.ConnectionInfo(
                    c.peer,
                    c.port,
                    c.connected_ns,
                    c.packets_sent,
                    tuple(r.label() for r in c.requests),
                )
                for c in self._clients
            ),
        )

    def _station_infos(self) -> tuple[slp.StationInfo, ...]:
        n = len(self.plan)
        lo, hi = self.ring_oldest(), self.released
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        if hi > lo:
            index = np.arange(lo, hi)
            keys = self.plan.stream_index[index % n]
            uniq, first_pos = np.unique(keys, return_index=True)
            _, last_pos = np.unique(keys[::-1], return_index=True)
            for k, f, b in zip(uniq, first_pos, last_pos, strict=True):
                first[int(k)] = lo + int(f)
                last[int(k)] = hi - 1 - int(b)
        by_station: dict[tuple[str, str], list[int]] = {}
        for k, (net, sta, _, _) in enumerate(self.plan.streams):
            by_station.setdefault((net, sta), []).append(k)
        out = []
        for (net, sta), keys_ in sorted(by_station.items()):
            seen = [k for k in keys_ if k in first]
            streams = []
            for k in keys_:
                _, _, loc, cha = self.plan.streams[k]
                if k in first:
                    begin = self.plan.record_at(first[k])[2]
                    end = self.plan.record_at(last[k])[3]
                else:
                    begin = end = 0
                streams.append(slp.StreamInfo(loc, cha, begin, end))
            out.append(
                slp.StationInfo(
                    network=net,
                    station=sta,
                    description="firstmotion replay",
                    begin_seq=min(sequence_of(first[k]) for k in seen) if seen else -1,
                    end_seq=max(sequence_of(last[k]) for k in seen) if seen else -1,
                    streams=tuple(streams),
                )
            )
        return tuple(out)

    # ------------------------------------------------------------------ streaming

    def _resolve_start(self, request: _StationRequest) -> int:
        """Global index where a request starts (see the module docstring: Ring)."""
        oldest, released = self.ring_oldest(), self.released
        request.after_ns = request.begin_ns if request.mode == "TIME" else None
        if request.mode in ("DATA", "FETCH") and request.sequence is not None:
            found = index_of_sequence(request.sequence, oldest, released)
            if found is not None:
                return found
            log.info(
                "replay: sequence %06X is not in the ring, starting %s",
                request.sequence,
                "at the begin time" if request.begin_ns is not None else "with the oldest record",
            )
            request.after_ns = request.begin_ns
        return oldest

    def _start_streaming(self, client: _Client, delay_s: float) -> None:
        for request in client.requests:
            request.start_index = self._resolve_start(request)
        client.cursor = min(r.start_index for r in client.requests)
        if any(r.mode == "FETCH" for r in client.requests):
            client.fetch_until = self.released
        client.streaming = True
        client.sender = asyncio.create_task(self._send_loop(client, delay_s))
        client.sender.add_done_callback(lambda task: self._sender_done(client, task))
        log.info(
            "replay: %s streams %s from sequence %06X",
            client.name(),
            ", ".join(f"{r.label()} {r.mode}" for r in client.requests),
            sequence_of(client.cursor),
        )

    def _sender_done(self, client: _Client, task: asyncio.Task) -> None:
        """A sender that died of anything but a lost connection ends its connection loudly."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, ConnectionError):
            log.error("replay: %s: sender failed", client.name(), exc_info=exc)
            client.writer.close()

    def _route(self, client: _Client, stream: int) -> _StationRequest | None:
        if stream not in client.route:
            net, sta, loc, cha = self.plan.streams[stream]
            chosen = None
            for request in client.requests:
                selectors = tuple(request.selectors or client.global_selectors)
                if request.covers(net, sta) and slp.selectors_match(selectors, loc, cha):
                    chosen = request
                    break
            client.route[stream] = chosen
        return client.route[stream]

    def _wanted(self, request: _StationRequest, index: int, start_ns: int, end_ns: int) -> bool:
        if request.done or index < request.start_index:
            return False
        if request.after_ns is not None and end_ns <= request.after_ns:
            return False
        return request.end_ns is None or start_ns < request.end_ns

    def _update_done(self, client: _Client, frontier_ns: int | None) -> None:
        """Mark requests whose transfer is complete: all of them at the ring's end when the
        transfer began if any asked FETCH (dial-up), TIME windows once the release frontier
        is past the window."""
        exhausted = client.cursor >= self.released and self.finished
        for request in client.requests:
            if request.done:
                continue
            if client.fetch_until is not None:  # dial-up: the whole connection ends together
                request.done = client.cursor >= client.fetch_until or exhausted
            elif request.end_ns is not None:
                past = (
                    frontier_ns is not None
                    and frontier_ns >= request.end_ns + self.plan.max_record_ns
                )
                request.done = past or exhausted

    async def _send_loop(self, client: _Client, delay_s: float) -> None:
        assert self._changed is not None
        if delay_s > 0:
            await asyncio.sleep(delay_s)  # keep "OK\r\n" and the first packet apart
        writer = client.writer
        frontier_ns: int | None = None
        while True:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: client.cursor < self.released or self.finished or self._stopping
                )
            if self._stopping:
                return
            oldest = self.ring_oldest()
            if client.cursor < oldest:
                log.warning(
                    "replay: %s fell %d records behind the ring; skipping ahead",
                    client.name(),
                    oldest - client.cursor,
                )
                client.cursor = oldest
            stop = self.released
            if client.fetch_until is not None:
                stop = min(stop, max(client.fetch_until, client.cursor))
            batch: list[bytes] = []
            while client.cursor < stop and len(batch) < SEND_BATCH_PACKETS:
                index = client.cursor
                record, stream, start_ns, end_ns = self.plan.record_at(index)
                request = self._route(client, stream)
                if request is not None and self._wanted(request, index, start_ns, end_ns):
                    batch.append(slp.data_packet(sequence_of(index), record))
                client.cursor += 1
                frontier_ns = end_ns
            if batch:
                writer.write(b"".join(batch))
                client.packets_sent += len(batch)
                self.metrics.packets_sent.inc(len(batch))
                await writer.drain()
            self._update_done(client, frontier_ns)
            if all(r.done for r in client.requests):
                writer.write(slp.END)
                await writer.drain()
                log.info("replay: %s: transfer complete, sent END", client.name())
                return
            if self.loop and self.speed is None:
                async with self._changed:
                    self._changed.notify_all()  # the unpaced looping clock waits on cursors
            if client.cursor >= self.released and self.finished and not batch:
                # nothing more will come for a realtime request; idle until the client leaves
                await asyncio.Event().wait()
            await asyncio.sleep(0)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("replay: %s failed", task.get_name(), exc_info=task.exception())


async def _read_lines(reader: asyncio.StreamReader) -> AsyncIterator[bytes | None]:
    """Command lines ended by CR, LF or CR LF; ``None`` for a line longer than allowed."""
    buffer = b""
    overflow = False
    while True:
        chunk = await reader.read(4096)
        if not chunk:
            return
        buffer += chunk
        while True:
            cut = min((i for i in (buffer.find(b"\r"), buffer.find(b"\n")) if i >= 0), default=-1)
            if cut < 0:
                break
            line, buffer = buffer[:cut], buffer[cut + 1 :]
            if overflow:
                overflow = False
                yield None
            elif line:
                yield line
        if len(buffer) > slp.MAX_COMMAND_BYTES:
            buffer = b""
            overflow = True


# --------------------------------------------------------------------------- threads


class ReplayThread:
    """Run a :class:`ReplayServer` on its own event loop in a daemon thread (tests, demo)."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    def start(self, timeout_s: float = 30.0) -> ServerAddress:
        """Start the thread and return once the server listens."""
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                await self.server.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.server.stop()

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), name="replay-server", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout_s):
            raise TimeoutError(f"replay server did not start within {timeout_s} s")
        if failure:
            raise failure[0]
        return self.server.address

    def wait_released(self, count: int, timeout_s: float = 30.0) -> None:
        """Block until ``count`` records are released (or the replay finished)."""
        assert self._loop is not None, "start() first"
        future = asyncio.run_coroutine_threadsafe(self.server.wait_released(count), self._loop)
        future.result(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server and join the thread."""
        if self._loop is not None and self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)


@contextlib.contextmanager
def serve_in_thread(
    records_or_paths: RecordTable | Iterable[Record] | Iterable[str | os.PathLike[str]],
    host: str = "127.0.0.1",
    port: int = 0,
    **kwargs,
) -> Iterator[ServerAddress]:
    """``with serve_in_thread(paths, speed=None) as (host, port): ...`` — a replay server in a
    background thread for the block's duration (``port=0``: a free port)."""
    runner = ReplayThread(ReplayServer(records_or_paths, host, port, **kwargs))
    address = runner.start()
    try:
        yield address
    finally:
        runner.stop()


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``firstmotion replay``."""
    parser.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="DIR_OR_FILE_OR_GLOB",
        help="miniSEED files, folders (searched recursively) or glob patterns",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=18000, help="TCP port (default 18000)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed", type=float, default=1.0, help="replay clock rate; 1 = real time (default 1)"
    )
    pace.add_argument(
        "--as-fast-as-possible",
        action="store_true",
        help="release every record at once instead of pacing by the replay clock",
    )
    parser.add_argument("--loop", action="store_true", help="replay again and again")
    parser.add_argument(
        "--start-time",
        default=None,
        help="start the replay at this data time (ISO-8601; earlier records are dropped)",
    )
    parser.add_argument(
        "--gap-threshold",
        type=float,
        default=DEFAULT_GAP_THRESHOLD_S,
        metavar="SECONDS",
        help="idle stretches longer than this (data time) are skipped (default 60)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics and /healthz on this port (127.0.0.1; default: off)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM."""
    start_ns = None
    if args.start_time:
        from obspy import UTCDateTime

        start_ns = UTCDateTime(args.start_time).ns
    try:
        server = ReplayServer(
            args.data,
            args.host,
            args.port,
            speed=None if args.as_fast_as_possible else args.speed,
            loop=args.loop,
            start_time_ns=start_ns,
            gap_threshold_s=args.gap_threshold,
        )
    except ValueError as exc:
        log.error("replay: %s", exc)
        return 1
    metrics_server = None
    if args.metrics_port is not None:
        from firstmotion import metrics

        health = metrics.Health()
        health.register("listening", metrics.flag_check(lambda: server.listening))
        metrics_server = metrics.start_http_server(port=args.metrics_port, health=health)
    try:
        asyncio.run(_serve_until_signal(server))
    finally:
        if metrics_server is not None:
            metrics_server.stop()
    return 0


async def _serve_until_signal(server: ReplayServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        await stop.wait()
    finally:
        log.info("replay: shutting down")
        await server.stop()
