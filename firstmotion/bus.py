"""The message bus: Redis Streams with consumer groups, at-least-once by construction.

* :meth:`Bus.publish` appends an encoded message (:func:`firstmotion.messages.encode`) to
  ``<prefix><stream>`` with approximate MAXLEN trimming; :meth:`Bus.trim_minid` /
  :meth:`Bus.trim_older_than` trim by entry id (age).
* :class:`Consumer` reads a batch with XREADGROUP, calls ``handler(batch) -> outputs`` and then,
  in ONE MULTI/EXEC transaction, publishes the outputs and XACKs the batch. Nothing is acked
  unless the handler returned: a failing batch is retried item by item to isolate the poison
  message; a failing item stays pending. Entries idle longer than ``lease_ms`` (a crashed or
  stuck consumer, or a failed item) are reclaimed with XAUTOCLAIM (Redis >= 6.2) by any
  consumer of the group; a busy consumer's :class:`Lease` heartbeat keeps the entries in its
  hands from going idle, so the lease can be seconds however long a batch takes. An item that
  failed ``max_deliveries`` times (its handler or its commit raised anything but a transient
  Redis error), that cannot be decoded (:func:`firstmotion.messages.decode` refuses oversized,
  too deeply nested and invalid entries before or while parsing), or whose type the stream
  does not carry (:data:`firstmotion.messages.STREAM_TYPES`), is moved to the dead-letter
  stream ``<prefix>dead`` with the error text and its original fields, and acked there, in one
  transaction; the loop goes on. Redis outages (connection, timeout, authentication, LOADING,
  READONLY, OOM) are waited out with backoff, logged once per kind on one line.
* Handlers must be idempotent: after a crash between the handler and the commit, or a lease
  that expired while a slow handler was running, the same input is handled twice.
* :class:`MultiConsumer` drives several consumers of one group (one per input stream) from
  one loop with a single blocking XREADGROUP over all their streams.
* Stopping: :meth:`Consumer.request_stop` (wired to SIGTERM/SIGINT by
  :func:`install_signal_handlers`) stops reading and lets the batch in hand finish; after a
  grace period, or on a second signal, the main thread is interrupted and the unfinished batch
  stays pending for another consumer. ``run(drain=True)`` returns once the group has neither
  new nor pending entries (tests, backfills).

Modelled on arq's claim/ack/max_tries and Redis' own consumer-group guidance.
"""

from __future__ import annotations

import _thread
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from firstmotion.messages import STREAM_TYPES, Message, MessageError, decode, encode
from firstmotion.metrics import StageMetrics, stage_metrics

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "fm:"
DEAD_STREAM = "dead"
IDLE_CONSUMER_S = 3600.0  # a group's consumer with nothing pending, idle this long: gone
STREAMS = ("picks", "polarities", "origins", "mechanisms", DEAD_STREAM)
_DEAD_META = "dead:"  # prefix of the metadata fields of a dead letter


LAG_COUNT_CAP = 100_000
STALL_MS = 60_000  # a loop that has not polled Redis for this long is reported unhealthy
# entries after the group's last-delivered id; counted in Redis so no payload crosses the wire
_LAG_LUA = """
local n = 0
local cursor = '(' .. ARGV[1]
local cap = tonumber(ARGV[2])
while n < cap do
  local rows = redis.call('XRANGE', KEYS[1], cursor, '+', 'COUNT', 1000)
  if #rows == 0 then break end
  n = n + #rows
  cursor = '(' .. rows[#rows][1]
end
return n
"""


# the lease heartbeat: reset the idle time of entries still pending for this consumer (only
# those: an entry another consumer reclaimed meanwhile is not taken back); JUSTID leaves the
# delivery count alone
_REFRESH_LUA = """
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
"""

# Redis answers that mean "not now" (server loading, read-only replica, out of memory, ...):
# waited out by the loop like a lost connection, never blamed on the message in hand
_TRANSIENT_REPLIES = ("NOGROUP", "LOADING", "READONLY", "OOM", "MASTERDOWN", "TRYAGAIN", "BUSY")


class BusError(RuntimeError):
    """Misuse of the bus (bad handler output, unsupported server)."""


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception on one line (for logs and dead letters)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())[:4000]


def transient_redis_error(exc: BaseException) -> bool:
    """True for Redis failures that say nothing about the message being handled: a lost or
    refused connection, a timeout, a wrong password, or a "not now" reply (LOADING, READONLY,
    OOM, NOGROUP...)."""
    import redis

    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES)


def describe_redis_error(exc: BaseException, url: str | None = None) -> str:
    """One line an operator can act on, for a failure to reach or use Redis at ``url`` (the
    password, if any, is not shown): ``redis at HOST:PORT: authentication failed (...)``."""
    import redis

    where = "redis"
    if url:
        parts = urlsplit(url)
        where = f"redis at {parts.path}" if parts.scheme == "unix" else (
            f"redis at {parts.hostname}:{parts.port or 6379}"
        )  # fmt: skip
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, redis.AuthenticationError) or (
        isinstance(exc, redis.ResponseError)
        and str(exc).startswith(("NOAUTH", "WRONGPASS", "invalid password"))
    ):
        return f"{where}: authentication failed ({text}); check the password in redis.url"
    if isinstance(exc, redis.TimeoutError):
        return f"{where}: timed out ({text})"
    if isinstance(exc, redis.ConnectionError):
        return f"{where}: unreachable ({text})"
    return f"{where}: {type(exc).__name__}: {text}"


class Lease:
    """Keeps the entries a consumer is handling from being reclaimed by others.

    A busy consumer's entries never reach the group's idle limit (``lease_ms``): a heartbeat
    thread resets their idle time every ``lease_ms / 4`` (XCLAIM to itself with JUSTID, in one
    Lua call, only for entries still pending for this consumer; the delivery count does not
    change). A dead process stops beating, so its entries move to another consumer after
    ``lease_ms`` (plus up to ``min(lease_ms / 4, 1 s)`` until that one looks), however long a
    batch may take. Entries held longer than ``max_hold_ms`` (a handler stuck for good) are no
    longer extended and are reclaimed too. Entries that failed are released, not extended: they
    wait the lease before their next delivery.
    """

    def __init__(self, consumer: Consumer, *, max_hold_ms: int) -> None:
        self.consumer = consumer
        self.interval_s = consumer.lease_ms / 4000.0
        self.max_hold_s = max_hold_ms / 1000.0
        self._held: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0  # heartbeats that refreshed at least one entry

    def hold(self, entry_ids: Iterable[str]) -> None:
        """Start extending ``entry_ids`` (the batch now in hand)."""
        now = time.monotonic()
        with self._lock:
            for entry_id in entry_ids:
                self._held[entry_id] = now
            if self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(
                    target=self._run, name=f"lease {self.consumer.key}", daemon=True
                )
                self._thread.start()

    def release(self, entry_ids: Iterable[str]) -> None:
        """Stop extending ``entry_ids`` (committed, dead-lettered, or failed)."""
        with self._lock:
            for entry_id in entry_ids:
                self._held.pop(entry_id, None)

    @property
    def held(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.beat()

    def beat(self) -> int:
        """Extend the held entries now; returns how many were still ours."""
        now = time.monotonic()
        with self._lock:
            ids = [i for i, t0 in self._held.items() if now - t0 < self.max_hold_s]
        if not ids:
            return 0
        c = self.consumer
        try:
            n = int(c.bus.client.eval(_REFRESH_LUA, 1, c.key, c.group, c.name, *ids))
        except Exception as exc:  # Redis away: the loop will notice; entries may be reclaimed
            log.debug("lease heartbeat on %s failed: %s", c.key, _one_line(exc))
            return 0
        self.beats += 1
        return n


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stream entry handed to a handler."""

    entry_id: str
    message: Message
    delivery_count: int


Handler = Callable[[list[Delivery]], Sequence[tuple[str, Message]]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry of the dead-letter stream."""

    entry_id: str
    stream: str
    group: str
    original_entry_id: str
    consumer: str
    error: str
    delivery_count: int
    dead_epoch_s: float
    fields: dict[str, bytes] = field(default_factory=dict)

    def message(self) -> Message:
        """Decode the original message (raises :class:`MessageError` if it was undecodable)."""
        return decode(self.fields)


def as_text(value: bytes | str) -> str:
    """A Redis reply field as ``str`` (clients without ``decode_responses`` return bytes);
    bytes that are not UTF-8 come back escaped (``\\xff``), so that an entry written by
    something else (a field name of stray bytes) is dead-lettered and listed, not a crash of
    every worker that reads it."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def check_redis_url(url: Any) -> str:
    """Validate a Redis URL: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://``
    (TLS) or ``unix://``; raises ``ValueError`` with a readable message. Never defaults."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(
            f"redis.url: expected redis://[:password@]host:port/db, got {url!r} "
            "(there is no default: set it in the config or FIRSTMOTION_REDIS__URL)"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"redis.url: expected a redis://, rediss:// or unix:// URL, got {url!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"redis.url: expected a host in {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"redis.url: bad port in {url!r}") from None
    return url


class Bus:
    """Streams under one key prefix on one Redis connection pool."""

    def __init__(self, client: Any, prefix: str = DEFAULT_PREFIX, *, maxlen: int | None = None):
        if not isinstance(prefix, str):
            raise ValueError(f"redis.prefix: expected a string, got {prefix!r}")
        if maxlen is not None and (not isinstance(maxlen, int) or maxlen <= 0):
            raise ValueError(f"redis.stream_maxlen: expected a positive integer, got {maxlen!r}")
        self.client = client
        self.prefix = prefix
        self.maxlen = maxlen
        self.url: str | None = None  # set by from_url (for messages; never logged whole)

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        *,
        maxlen: int | None = None,
        socket_timeout_s: float = 30.0,
        **redis_kwargs: Any,
    ) -> Bus:
        """Connect lazily to ``url`` (password and TLS come from the URL: ``rediss://``)."""
        import redis

        check_redis_url(url)
        client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=min(socket_timeout_s, 10.0),
            socket_keepalive=True,
            health_check_interval=30,
            **redis_kwargs,
        )
        bus = cls(client, prefix, maxlen=maxlen)
        bus.url = url
        return bus

    @classmethod
    def from_settings(
        cls,
        redis_settings: Any,
        *,
        url: str | None = None,
        prefix: str | None = None,
        socket_timeout_s: float = 30.0,
    ) -> Bus:
        """From ``Settings.redis`` (url, prefix, stream_maxlen); ``url`` and ``prefix`` (a
        command's ``--redis`` and ``--prefix``) override the configured ones; the URL must be
        set one way or the other."""
        return cls.from_url(
            url or redis_settings.require_url(),
            redis_settings.prefix if prefix is None else prefix,
            maxlen=redis_settings.stream_maxlen,
            socket_timeout_s=socket_timeout_s,
        )

    def close(self) -> None:
        self.client.close()

    # -- keys and publishing
    def key(self, stream: str) -> str:
        """Full key of a stream name (``picks`` -> ``fm:picks``)."""
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"stream: expected a non-empty name, got {stream!r}")
        return self.prefix + stream

    def publish(self, stream: str, message: Message, *, maxlen: int | None = None) -> str:
        """Append ``message``; trims to about ``maxlen`` entries (default: the bus's)."""
        limit = self.maxlen if maxlen is None else maxlen
        entry_id = self.client.xadd(
            self.key(stream), encode(message), maxlen=limit, approximate=True
        )
        return as_text(entry_id)

    def publish_many(
        self, stream: str, messages: Iterable[Message], *, maxlen: int | None = None
    ) -> list[str]:
        """Append several messages in one round trip (a MULTI/EXEC: all or none)."""
        limit = self.maxlen if maxlen is None else maxlen
        pipe = self.client.pipeline(transaction=True)
        key = self.key(stream)
        for message in messages:
            pipe.xadd(key, encode(message), maxlen=limit, approximate=True)
        return [as_text(i) for i in pipe.execute()]

    def trim_minid(self, stream: str, min_id: str, *, approximate: bool = True) -> int:
        """Drop entries with ids below ``min_id`` (XTRIM MINID); returns how many went."""
        return int(self.client.xtrim(self.key(stream), minid=min_id, approximate=approximate))

    def trim_older_than(
        self, stream: str, age_s: float, *, now_s: float | None = None, approximate: bool = True
    ) -> int:
        """Drop entries older than ``age_s`` seconds (ids are ms timestamps)."""
        if age_s < 0:
            raise ValueError(f"age_s: expected >= 0, got {age_s}")
        now = time.time() if now_s is None else now_s
        return self.trim_minid(stream, f"{int((now - age_s) * 1000)}-0", approximate=approximate)

    def ensure_group(self, stream: str, group: str, *, start_id: str = "0") -> None:
        """Create consumer group ``group`` (and the stream) unless it exists."""
        import redis

        try:
            self.client.xgroup_create(self.key(stream), group, id=start_id, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def forget_idle_consumers(
        self, stream: str, group: str, idle_s: float = IDLE_CONSUMER_S
    ) -> list[str]:
        """Remove the group's consumers that hold no entry and read nothing for ``idle_s``
        (the names of stopped processes: a consumer is named host-pid, so every restart left
        one behind); a live one idle that long comes back with its next read. Returns their
        names."""
        import redis

        gone = []
        try:
            for c in self.client.xinfo_consumers(self.key(stream), group):
                name, pending, idle_ms = as_text(c["name"]), int(c["pending"]), int(c["idle"])
                if pending == 0 and idle_ms >= idle_s * 1000:
                    self.client.xgroup_delconsumer(self.key(stream), group, name)
                    gone.append(name)
        except redis.ResponseError:  # no such group (yet): nothing to forget
            return gone
        if gone:
            log.info("%s/%s: %d idle consumer(s) of stopped processes removed", self.key(stream),
                     group, len(gone))  # fmt: skip
        return gone

    # -- reading
    def messages(
        self, stream: str, *, start: str = "-", end: str = "+", count: int | None = None
    ) -> list[tuple[str, Message]]:
        """Entries of a stream as ``(entry_id, message)`` (XRANGE; raises on bad entries)."""
        rows = self.client.xrange(self.key(stream), min=start, max=end, count=count)
        return [(as_text(entry_id), decode(fields)) for entry_id, fields in rows]

    def latest(self, stream: str, count: int) -> list[Message]:
        """The newest ``count`` messages of a stream, newest first (XREVRANGE); entries that
        do not decode are skipped."""
        out = []
        for _entry_id, fields in self.client.xrevrange(self.key(stream), count=count):
            try:
                out.append(decode(fields))
            except Exception:  # noqa: BLE001 - a bad entry is the dead-letter path's business
                continue
        return out

    def length(self, stream: str) -> int:
        return int(self.client.xlen(self.key(stream)))

    def pending_count(self, stream: str, group: str) -> int:
        """Entries delivered to ``group`` and not yet acknowledged."""
        info = self.client.xpending(self.key(stream), group)
        return int(info["pending"])

    def dead_letters(self, count: int | None = None) -> list[DeadLetter]:
        """Entries of the dead-letter stream, oldest first."""
        out = []
        for entry_id, raw in self.client.xrange(self.key(DEAD_STREAM), count=count):
            fields = {as_text(k): v for k, v in raw.items()}
            meta = {
                k[len(_DEAD_META) :]: as_text(v)
                for k, v in fields.items()
                if k.startswith(_DEAD_META)
            }
            out.append(
                DeadLetter(
                    entry_id=as_text(entry_id),
                    stream=meta.get("stream", ""),
                    group=meta.get("group", ""),
                    original_entry_id=meta.get("entry_id", ""),
                    consumer=meta.get("consumer", ""),
                    error=meta.get("error", ""),
                    delivery_count=int(meta.get("delivery_count", "0")),
                    dead_epoch_s=float(meta.get("epoch_s", "0")),
                    fields={k: v for k, v in fields.items() if not k.startswith(_DEAD_META)},
                )
            )
        return out

    def requeue_dead_letters(self, entry_ids: Iterable[str] | None = None) -> int:
        """Put dead letters back on the stream they came from (all, or ``entry_ids``).

        Each goes back with its original fields as a new entry (delivery count starts again)
        and leaves the dead-letter stream, in one MULTI/EXEC per letter. Every group on that
        stream sees it again: handlers are idempotent. Returns how many were requeued.
        """
        wanted = None if entry_ids is None else set(entry_ids)
        n = 0
        for letter in self.dead_letters():
            if wanted is not None and letter.entry_id not in wanted:
                continue
            if not letter.stream or not letter.fields:
                raise BusError(f"dead letter {letter.entry_id}: no origin stream or fields")
            pipe = self.client.pipeline(transaction=True)
            pipe.xadd(letter.stream, letter.fields, maxlen=self.maxlen, approximate=True)
            pipe.xdel(self.key(DEAD_STREAM), letter.entry_id)
            pipe.execute()
            n += 1
        return n

    def consumer(
        self, stream: str, group: str, handler: Handler, *, settings: Any = None, **kwargs: Any
    ) -> Consumer:
        """A :class:`Consumer` of ``stream`` in ``group`` (see its arguments).

        ``settings`` (``Settings.redis``) supplies block_ms, lease_ms and max_deliveries
        unless given explicitly.
        """
        if settings is not None:
            for name, value in settings.consumer_options().items():
                kwargs.setdefault(name, value)
        return Consumer(self, stream, group, handler, **kwargs)


def run_loop(
    step: Callable[[], Any],
    *,
    stop: threading.Event,
    done: Callable[[Any], bool] | None = None,
    timeout_s: float | None = None,
    label: str = "consumer",
    on_nogroup: Callable[[], Any] | None = None,
    what: str = "stream or group",
    url: str | None = None,
) -> None:
    """The loop of a stage: ``step()`` until ``stop`` is set or ``done(result)`` is true.

    Redis connection errors and timeouts raised by ``step`` are waited out with backoff
    (0.1 s doubling to 5 s, cut short by ``stop``); a NOGROUP error (the stream or group was
    deleted: FLUSHALL, DEL) is logged as "<what> vanished", ``on_nogroup()`` is called (forget
    the group so the next step recreates it) and the loop goes on; other errors propagate, as
    do errors raised by ``done`` (it runs outside the retry). With ``timeout_s``, raises
    ``TimeoutError("<label> not drained after ...")`` once that much time has passed.
    """
    import redis

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    backoff_s = 0.1
    outage: str | None = None  # the current outage's one-line description
    while not stop.is_set():
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{label} not drained after {timeout_s} s")
        try:
            result = step()
            backoff_s = 0.1
            if outage is not None:
                log.warning("redis available again (after: %s)", outage)
                outage = None
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                log.warning("%s vanished; recreating", what)
                if on_nogroup is not None:
                    on_nogroup()
                continue
            if not transient_redis_error(exc):
                raise
            outage = _log_outage(exc, outage, backoff_s, url)
            stop.wait(backoff_s)
            backoff_s = min(backoff_s * 2, 5.0)
            continue
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            outage = _log_outage(exc, outage, backoff_s, url)
            stop.wait(backoff_s)
            backoff_s = min(backoff_s * 2, 5.0)
            continue
        if done is not None and done(result):
            break


def _log_outage(exc: BaseException, previous: str | None, backoff_s: float, url: str | None) -> str:
    """Log a Redis outage once per kind (one line, no traceback); repeats go to DEBUG."""
    text = describe_redis_error(exc, url)
    if text != previous:
        log.error("%s; retrying with backoff (up to 5 s)", text)
    else:
        log.debug("%s; retrying in %.1f s", text, backoff_s)
    return text


def default_consumer_name() -> str:
    """``<hostname>-<pid>``: unique per process, stable for its life."""
    import os

    return f"{socket.gethostname()}-{os.getpid()}"


class Consumer:
    """Read-handle-commit loop of one consumer in a group.

    Args:
        bus: the :class:`Bus`.
        stream: input stream name (``picks``).
        group: consumer group, usually the stage name (``polarity``).
        handler: ``handler(batch: list[Delivery]) -> [(output_stream, message), ...]``;
            must be idempotent; raising leaves the batch pending (never acked).
        name: consumer name, unique per process (default ``<host>-<pid>``).
        batch_size: most entries per read.
        block_ms: longest wait for new entries per read (also the stop latency when idle).
        lease_ms: entries pending longer than this are reclaimed (XAUTOCLAIM); must exceed the
            longest a batch can take.
        max_deliveries: a message that failed this many deliveries goes to dead letters.
        stage: metrics label (default: ``group``).
        lag_interval_s: how often to refresh the backlog/pending gauges.
        max_wait_ms: dynamic batching: after a read returns fewer than ``batch_size``
            entries, keep reading for up to this long to fill the batch (0: off).

    Subclasses extend the commit through its public hooks: :meth:`commit_writes` (more writes
    in the same MULTI/EXEC), :meth:`commit` (a different transaction, e.g. WATCH/retry) and
    :meth:`committed` (bookkeeping after success). Several consumers of one group are driven
    together by :class:`MultiConsumer`.
    """

    def __init__(
        self,
        bus: Bus,
        stream: str,
        group: str,
        handler: Handler,
        *,
        name: str | None = None,
        batch_size: int = 64,
        block_ms: int = 1000,
        lease_ms: int = 5_000,
        max_deliveries: int = 5,
        stage: str | None = None,
        metrics: StageMetrics | None = None,
        lag_interval_s: float = 5.0,
        max_wait_ms: int = 0,
        accepts: Sequence[str] | None = None,
        max_hold_ms: int = 600_000,
    ) -> None:
        for label, value, lo in (
            ("batch_size", batch_size, 1),
            ("block_ms", block_ms, 1),
            ("lease_ms", lease_ms, 1),
            ("max_deliveries", max_deliveries, 1),
            ("max_wait_ms", max_wait_ms, 0),
            ("max_hold_ms", max_hold_ms, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise ValueError(f"{label}: expected an integer >= {lo}, got {value!r}")
        if not callable(handler):
            raise ValueError("handler: expected a callable(batch) -> outputs")
        self.bus = bus
        self.stream = stream
        self.key = bus.key(stream)
        self.group = group
        self.handler = handler
        self.name = name or default_consumer_name()
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.lease_ms = lease_ms
        self.max_deliveries = max_deliveries
        self.metrics = metrics or stage_metrics(stage or group)
        self._stop = threading.Event()
        self._group_ready = False
        self.lag_interval_s = lag_interval_s
        self.fill_wait_ms = max_wait_ms
        self._lag_due = 0.0
        self._claim_cursor = "0-0"
        self._claim_due = 0.0
        self._last_errors: dict[str, str] = {}
        self.last_poll_monotonic = time.monotonic()
        self.processed = 0  # entries acked after a successful handler call
        self.dead_lettered = 0
        # the message types this stream carries (others are dead letters); None: any
        self.accepts = tuple(accepts) if accepts is not None else STREAM_TYPES.get(stream)
        self.lease = Lease(self, max_hold_ms=max_hold_ms)

    def loop_alive(self) -> tuple[bool, dict[str, float]]:
        """Health check: the loop polled Redis within ``max(lease_ms, 60 s)`` + ``block_ms``
        (the lease heartbeat keeps a slow batch's entries, so a minute is the stall limit)."""
        age_s = time.monotonic() - self.last_poll_monotonic
        limit_s = (max(self.lease_ms, STALL_MS) + self.block_ms) / 1000.0
        return age_s <= limit_s, {"since_last_poll_s": round(age_s, 3), "limit_s": limit_s}

    # -- control
    def request_stop(self) -> None:
        """Stop reading; the batch in hand is finished (thread- and signal-safe)."""
        self._stop.set()
        self.lease.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def forget_group(self) -> None:
        """Create the group (and stream) again before the next read (after NOGROUP)."""
        self._group_ready = False

    def run(
        self, *, drain: bool = False, timeout_s: float | None = None, max_batches: int | None = None
    ) -> int:
        """Loop until stopped (or, with ``drain``, until nothing is new or pending).

        Returns the number of entries processed and acked by this consumer. Redis outages
        are waited out with backoff; handler errors never stop the loop.
        """
        batches = 0

        def step() -> int:
            return self.run_once(block_ms=min(self.block_ms, 100) if drain else None)

        def done(handled: int) -> bool:
            nonlocal batches
            if handled:
                batches += 1
                return max_batches is not None and batches >= max_batches
            if drain and self.bus.pending_count(self.stream, self.group) == 0:
                return True
            if drain:
                # pending entries of other (maybe dead) consumers: wait for their lease
                self._stop.wait(min(self.lease_ms / 1000.0, 0.05))
            return False

        run_loop(
            step,
            stop=self._stop,
            done=done,
            timeout_s=timeout_s,
            label=f"consumer {self.name}:",
            on_nogroup=self.forget_group,
            what=f"stream or group {self.key}/{self.group}",
            url=self.bus.url,
        )
        return self.processed

    def run_once(self, *, block_ms: int | None = None) -> int:
        """One cycle: reclaim stale entries, else read new ones; handle and commit.

        Returns the number of entries taken (0 when there was nothing to do).
        """
        self.last_poll_monotonic = time.monotonic()
        entries = self._housekeeping()
        if not entries:
            entries = self._read(self.block_ms if block_ms is None else block_ms)
            if entries and self.fill_wait_ms:
                entries = self._fill(entries)
        if not entries:
            return 0
        self._process(entries)
        return len(entries)

    def _housekeeping(self) -> list[tuple[str, dict, int]]:
        """The non-reading part of a cycle: create the group, refresh the lag gauges when due,
        and reclaim stale entries when due. Returns the reclaimed entries (not yet handled)."""
        if not self._group_ready:
            self.bus.ensure_group(self.stream, self.group)
            self.bus.forget_idle_consumers(self.stream, self.group)
            self._group_ready = True
        if time.monotonic() >= self._lag_due:
            self._lag_due = time.monotonic() + self.lag_interval_s
            self.report_lag()
        entries = []
        if time.monotonic() >= self._claim_due:
            entries = self._claim()
            # keep claiming while there is a backlog of stale entries, else look again soon:
            # nothing can become reclaimable faster than the lease
            pause_s = 0.0 if entries else min(self.lease_ms / 4000.0, 1.0)
            self._claim_due = time.monotonic() + pause_s
        return entries

    def report_lag(self) -> tuple[int, int]:
        """Refresh and return ``(backlog, pending)`` of the group on the input stream.

        ``backlog`` is XINFO GROUPS' ``lag`` (Redis >= 7), else counted server-side by a small
        Lua script (capped at :data:`LAG_COUNT_CAP`).
        """
        import redis

        client = self.bus.client
        try:
            groups = {as_text(g["name"]): g for g in client.xinfo_groups(self.key)}
        except redis.ResponseError:  # the stream vanished (FLUSHALL, DEL): recreate it
            self._group_ready = False
            return 0, 0
        info = groups.get(self.group)
        if info is None:
            return 0, 0
        pending = int(info.get("pending", 0))
        lag = info.get("lag")
        if lag is None:
            last = as_text(info.get("last-delivered-id", b"0-0"))
            lag = client.eval(_LAG_LUA, 1, self.key, last, LAG_COUNT_CAP)
        self.metrics.backlog.set(int(lag))
        self.metrics.pending.set(pending)
        return int(lag), pending

    # -- reading
    def _read(self, block_ms: int) -> list[tuple[str, dict, int]]:
        resp = self.bus.client.xreadgroup(
            self.group, self.name, {self.key: ">"}, count=self.batch_size, block=block_ms
        )
        out = []
        for _stream, rows in resp or []:
            for entry_id, fields in rows:
                out.append((as_text(entry_id), fields, 1))
        return out

    def _fill(self, entries: list[tuple[str, dict, int]]) -> list[tuple[str, dict, int]]:
        """Keep reading until the batch is full or ``max_wait_ms`` has passed."""
        deadline = time.monotonic() + self.fill_wait_ms / 1000.0
        while len(entries) < self.batch_size and not self._stop.is_set():
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            resp = self.bus.client.xreadgroup(
                self.group,
                self.name,
                {self.key: ">"},
                count=self.batch_size - len(entries),
                block=left_ms,
            )
            more = [(as_text(i), f, 1) for _stream, rows in resp or [] for i, f in rows]
            if not more:
                break
            entries.extend(more)
        return entries

    def _claim(self) -> list[tuple[str, dict, int]]:
        client = self.bus.client
        resp = client.xautoclaim(
            self.key,
            self.group,
            self.name,
            min_idle_time=self.lease_ms,
            start_id=self._claim_cursor,
            count=self.batch_size,
        )
        self._claim_cursor = as_text(resp[0])
        rows = resp[1]
        if any(entry_id is None for entry_id, _ in rows):
            self._ack_deleted()  # Redis 6.2 returns nil for entries trimmed away
        rows = [(as_text(i), f) for i, f in rows if i is not None]
        if not rows:
            return []
        ids = [i for i, _ in rows]
        counts = {
            as_text(p["message_id"]): int(p["times_delivered"])
            for p in client.xpending_range(
                self.key, self.group, min=ids[0], max=ids[-1], count=len(ids) + 1000,
                consumername=self.name,
            )
        }  # fmt: skip
        log.info("reclaimed %d entries idle > %d ms from %s", len(rows), self.lease_ms, self.key)
        return [(i, f, counts.get(i, 2)) for i, f in rows]

    def _ack_deleted(self) -> None:
        client = self.bus.client
        pending = client.xpending_range(
            self.key, self.group, min="-", max="+", count=10_000, consumername=self.name
        )
        gone = [
            as_text(p["message_id"])
            for p in pending
            if not client.xrange(self.key, min=p["message_id"], max=p["message_id"])
        ]
        if gone:
            client.xack(self.key, self.group, *gone)
            log.warning("acked %d pending entries that were trimmed from %s", len(gone), self.key)

    # -- handling
    def _process(self, entries: list[tuple[str, dict, int]]) -> None:
        batch: list[Delivery] = []
        fields_of: dict[str, dict] = {}
        for entry_id, fields, count in entries:
            fields_of[entry_id] = fields
            if count > self.max_deliveries:
                error = self._last_errors.pop(entry_id, "") or (
                    f"delivered {count} times without an acknowledgement "
                    "(consumers crashed or exceeded the lease while handling it)"
                )
                self._dead_letter(entry_id, fields, error, count)
                continue
            try:
                message = decode(fields)
            except Exception as exc:  # MessageError, or anything a hostile entry provokes
                why = (
                    " ".join(str(exc).split()) if isinstance(exc, MessageError) else _one_line(exc)
                )
                self._dead_letter(entry_id, fields, f"undecodable: {why}", count)
                continue
            kind = type(message).__name__
            if self.accepts is not None and kind not in self.accepts:
                error = (
                    f"wrong type on {self.key}: expected {' or '.join(self.accepts)}, got {kind}"
                )
                self._dead_letter(entry_id, fields, error, count)
                continue
            batch.append(Delivery(entry_id, message, count))
        if not batch:
            return
        m = self.metrics
        m.items_in.inc(len(batch))
        m.batch_size.observe(len(batch))
        m.in_flight.inc(len(batch))
        self.lease.hold([d.entry_id for d in batch])
        try:
            try:
                self._handle_and_commit(batch)
            except Exception as exc:
                if transient_redis_error(exc):
                    raise  # Redis is down or busy: the loop waits it out, no message is blamed
                if len(batch) == 1:
                    self._failed(batch[0], fields_of, exc)
                    return
                log.warning(
                    "batch of %d failed (%s: %s); retrying one by one",
                    len(batch),
                    type(exc).__name__,
                    exc,
                )
                for delivery in batch:
                    try:
                        self._handle_and_commit([delivery])
                    except Exception as one_exc:
                        if transient_redis_error(one_exc):
                            raise
                        self._failed(delivery, fields_of, one_exc)
        finally:
            self.lease.release([d.entry_id for d in batch])
            m.in_flight.dec(len(batch))

    def _handle_and_commit(self, batch: list[Delivery]) -> None:
        """Handle ``batch`` and commit its outputs; an error in either (but a transient Redis
        one) is the batch's failure: its entries stay pending and are dead-lettered after
        ``max_deliveries``, and the loop goes on."""
        self._commit(batch, self._call(batch))

    def _call(self, batch: list[Delivery]) -> list[tuple[str, Message]]:
        outputs = self.handler(list(batch))
        if outputs is None:
            raise BusError("handler returned None; return a list of (stream, message)")
        out = list(outputs)
        for item in out:
            if (
                not isinstance(item, tuple)
                or len(item) != 2
                or not isinstance(item[0], str)
                or not isinstance(item[1], Message)
            ):
                raise BusError(f"handler output {item!r}: expected (stream name, message)")
        return out

    # -- commit hooks (override in a subclass; see workers/mechanism and workers/catalog)
    def commit(self, batch: list[Delivery], outputs: list[tuple[str, Message]]) -> int:
        """Publish ``outputs``, queue :meth:`commit_writes` and XACK ``batch``, all in one
        MULTI/EXEC. Returns the number of items it put out (``items_out``).

        Override to commit differently (e.g. a WATCH/retry transaction); it must acknowledge
        ``batch`` in the same transaction as its writes, or not at all if it raises.
        """
        pipe = self.bus.client.pipeline(transaction=True)
        for stream, message in outputs:
            pipe.xadd(
                self.bus.key(stream), encode(message), maxlen=self.bus.maxlen, approximate=True
            )
        self.commit_writes(pipe, batch, outputs)
        pipe.xack(self.key, self.group, *[d.entry_id for d in batch])
        pipe.execute()
        return len(outputs)

    def commit_writes(
        self, pipe: Any, batch: list[Delivery], outputs: list[tuple[str, Message]]
    ) -> None:
        """Extra writes queued on the commit's MULTI/EXEC ``pipe`` between the outputs and the
        XACK (state that must be atomic with them). Default: none."""

    def committed(self, batch: list[Delivery], outputs: list[tuple[str, Message]]) -> None:
        """Called after a successful commit (bookkeeping). Default: nothing."""

    def _commit(self, batch: list[Delivery], outputs: list[tuple[str, Message]]) -> None:
        n_out = self.commit(batch, outputs)
        for d in batch:
            self._last_errors.pop(d.entry_id, None)
        self.processed += len(batch)
        self.metrics.items_out.inc(n_out)
        self.metrics.last_processed.set(time.time())
        self.committed(batch, outputs)

    def _failed(self, delivery: Delivery, fields_of: Mapping[str, dict], exc: Exception) -> None:
        self.metrics.errors.inc()
        error = _one_line(exc)
        if delivery.delivery_count >= self.max_deliveries:
            self._dead_letter(
                delivery.entry_id, fields_of[delivery.entry_id], error, delivery.delivery_count
            )
            return
        self._last_errors[delivery.entry_id] = error
        if len(self._last_errors) > 10_000:  # bounded memory: forget the oldest
            self._last_errors.pop(next(iter(self._last_errors)))
        log.warning(
            "entry %s failed (delivery %d of %d), left pending: %s",
            delivery.entry_id,
            delivery.delivery_count,
            self.max_deliveries,
            error,
            exc_info=exc,
        )

    def _dead_letter(self, entry_id: str, fields: dict, error: str, count: int) -> None:
        """Move an entry to the dead-letter stream and ack it, in one MULTI/EXEC."""
        dead = {
            k: v
            for k, v in ((as_text(k), v) for k, v in fields.items())
            if not k.startswith(_DEAD_META)
        }
        dead.update(
            {
                _DEAD_META + "stream": self.key,
                _DEAD_META + "group": self.group,
                _DEAD_META + "entry_id": entry_id,
                _DEAD_META + "consumer": self.name,
                _DEAD_META + "error": error[:4000],
                _DEAD_META + "delivery_count": str(count),
                _DEAD_META + "epoch_s": f"{time.time():.3f}",
            }
        )
        pipe = self.bus.client.pipeline(transaction=True)
        pipe.xadd(self.bus.key(DEAD_STREAM), dead, maxlen=self.bus.maxlen, approximate=True)
        pipe.xack(self.key, self.group, entry_id)
        pipe.execute()
        self._last_errors.pop(entry_id, None)
        self.dead_lettered += 1
        self.metrics.dead_letters.inc()
        log.error(
            "entry %s of %s dead-lettered after %d deliveries: %s", entry_id, self.key, count, error
        )


class MultiConsumer:
    """Several :class:`Consumer` of one group, driven by ONE loop and ONE blocking XREADGROUP.

    New entries on any of the streams wake the read at once; each stream's entries are handled
    and committed by its own consumer (handler, commit hooks, dead letters, metrics), in the
    order of ``consumers`` (e.g. origins before the messages that refer to them), so one
    process never races itself. Every cycle first does each consumer's housekeeping (group
    creation, lag gauges, and handling of entries reclaimed from dead consumers), then reads,
    then calls ``on_cycle()`` (periodic work of the stage; Redis errors raised there are
    retried like the loop's own).

    Args:
        consumers: the consumers, all of the same group and consumer name; the first one's
            ``batch_size`` and ``block_ms`` are used for the shared read.
        on_cycle: optional callable run after every cycle.
        label: names the loop in the ``TimeoutError`` of ``run(timeout_s=...)``.
    """

    def __init__(
        self,
        consumers: Sequence[Consumer],
        *,
        on_cycle: Callable[[], Any] | None = None,
        label: str = "consumer",
    ) -> None:
        consumers = list(consumers)
        if not consumers:
            raise ValueError("consumers: expected at least one Consumer")
        first = consumers[0]
        for c in consumers[1:]:
            if c.bus is not first.bus or c.group != first.group or c.name != first.name:
                raise ValueError(
                    "consumers: expected one bus, group and consumer name for all, got "
                    f"{[(c.group, c.name) for c in consumers]}"
                )
        if len({c.key for c in consumers}) != len(consumers):
            raise ValueError("consumers: expected one consumer per stream")
        self.consumers = consumers
        self.bus = first.bus
        self.group = first.group
        self.name = first.name
        self.batch_size = first.batch_size
        self.block_ms = first.block_ms
        self.on_cycle = on_cycle
        self.label = label
        self._stop = threading.Event()

    @classmethod
    def of(
        cls,
        bus: Bus,
        group: str,
        handlers: Mapping[str, Handler],
        *,
        consumer_cls: type[Consumer] = Consumer,
        on_cycle: Callable[[], Any] | None = None,
        label: str = "consumer",
        **consumer_kwargs: Any,
    ) -> MultiConsumer:
        """One ``consumer_cls(bus, stream, group, handler, **consumer_kwargs)`` per entry of
        ``handlers`` (stream name -> handler, in the order they are to be handled), all under
        one consumer name (``name``, default ``<host>-<pid>``), driven by one loop."""
        consumer_kwargs["name"] = consumer_kwargs.get("name") or default_consumer_name()
        consumers = [
            consumer_cls(bus, stream, group, handler, **consumer_kwargs)
            for stream, handler in handlers.items()
        ]
        return cls(consumers, on_cycle=on_cycle, label=label)

    @property
    def processed(self) -> int:
        """Entries processed and acked by all the consumers."""
        return sum(c.processed for c in self.consumers)

    def loop_alive(self) -> tuple[bool, dict[str, float]]:
        """Health check of the loop (see :meth:`Consumer.loop_alive`)."""
        return self.consumers[0].loop_alive()

    def request_stop(self) -> None:
        """Stop reading; the entries in hand are finished (thread- and signal-safe)."""
        self._stop.set()
        for c in self.consumers:
            c.request_stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run_once(self, *, block_ms: int | None = None) -> int:
        """One cycle: housekeeping of every consumer, one read of all streams, handle and
        commit per stream, then ``on_cycle``. Returns the number of entries taken."""
        n = 0
        for c in self.consumers:
            claimed = c._housekeeping()
            if claimed:
                c._process(claimed)
            n += len(claimed)
        now = time.monotonic()
        for c in self.consumers:
            c.last_poll_monotonic = now
        resp = self.bus.client.xreadgroup(
            self.group,
            self.name,
            {c.key: ">" for c in self.consumers},
            count=self.batch_size,
            block=self.block_ms if block_ms is None else block_ms,
        )
        got: dict[str, list[tuple[str, dict, int]]] = {}
        for key, rows in resp or []:
            got[as_text(key)] = [(as_text(i), f, 1) for i, f in rows]
        for c in self.consumers:  # in the given order
            entries = got.get(c.key, [])
            if entries:
                c._process(entries)
            n += len(entries)
        if self.on_cycle is not None:
            self.on_cycle()
        return n

    def run(self, *, drain: bool = False, timeout_s: float | None = None) -> int:
        """Loop until stopped (or, with ``drain``, until no stream has new or pending entries).

        Returns the number of entries processed and acked by the consumers. Redis outages are
        waited out with backoff; handler errors never stop the loop.
        """

        def done(n: int) -> bool:
            if drain and n == 0:
                pending = sum(self.bus.pending_count(c.stream, self.group) for c in self.consumers)
                return pending == 0
            return False

        def forget_groups() -> None:
            for c in self.consumers:
                c.forget_group()

        run_loop(
            lambda: self.run_once(block_ms=100 if drain else None),
            stop=self._stop,
            done=done,
            timeout_s=timeout_s,
            label=self.label,
            on_nogroup=forget_groups,
            url=self.bus.url,
        )
        return self.processed


def install_signal_handlers(
    stoppable: Any,
    *,
    grace_s: float = 30.0,
    signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT),
) -> Callable[[], None]:
    """Wire SIGTERM/SIGINT to ``stoppable.request_stop()`` (main thread only).

    The first signal asks for a clean stop (finish the batch in hand, ack, exit). If the
    process is still busy ``grace_s`` later, or a second signal arrives, the main thread gets
    ``KeyboardInterrupt``: the unfinished batch stays pending and is reclaimed elsewhere.
    Returns a function that cancels the grace timer and restores the previous handlers; call
    it once the loop has returned.
    """
    sigs = list(signals)
    previous = {s: signal.getsignal(s) for s in sigs}
    state: dict[str, Any] = {"count": 0, "timer": None}

    main_ident = threading.main_thread().ident

    def grace_over() -> None:
        # deliver the signal to the main thread itself, so that a blocking call returns
        log.warning("grace period of %.0f s over: interrupting the batch in hand", grace_s)
        state["count"] += 1
        if main_ident is not None and hasattr(signal, "pthread_kill") and sigs:
            signal.pthread_kill(main_ident, sigs[0])
        else:  # pragma: no cover - non-POSIX
            _thread.interrupt_main()

    def on_signal(signum: int, _frame: Any) -> None:
        state["count"] += 1
        if state["count"] == 1:
            log.info("signal %d: stopping after the batch in hand (grace %.0f s)", signum, grace_s)
            stoppable.request_stop()
            timer = threading.Timer(grace_s, grace_over)
            timer.daemon = True
            timer.start()
            state["timer"] = timer
        else:
            raise KeyboardInterrupt(f"signal {signum}: hard stop")

    for s in sigs:
        signal.signal(s, on_signal)

    def restore() -> None:
        """Cancel the grace timer and put the previous handlers back."""
        if state["timer"] is not None:
            state["timer"].cancel()
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore


HEALTH_TIMEOUT_S = 2.0  # a health check's PING: a hung Redis fails the probe, not hangs it


def redis_check(bus: Bus) -> Callable[[], tuple[bool, str]]:
    """Health check: PING answered within :data:`HEALTH_TIMEOUT_S`, else why not in one line
    (unreachable, timed out, authentication failed: wrong password, ...), e.g. ``redis at
    10.0.0.5:6379: authentication failed``. Its own connection with a short timeout: a Redis
    that accepts connections but does not answer (stopped, swapping) made ``/healthz`` wait
    for the stage's 30 s timeout, past any probe's."""
    import redis

    client = None
    if getattr(bus, "url", None):
        client = redis.Redis.from_url(
            bus.url, socket_timeout=HEALTH_TIMEOUT_S, socket_connect_timeout=HEALTH_TIMEOUT_S
        )

    def check() -> tuple[bool, str]:
        try:
            return bool((client or bus.client).ping()), "PONG"
        except Exception as exc:
            return False, describe_redis_error(exc, bus.url)

    return check


def add_stage_arguments(parser: Any) -> None:
    """The options every consumer-group worker command takes (``firstmotion worker ...``):
    ``--config``, ``--redis``, ``--name``, ``--drain``, ``--metrics-port``."""
    parser.add_argument("--config", default=None, help="TOML config file")
    parser.add_argument("--redis", default=None, help="Redis URL (overrides redis.url)")
    parser.add_argument("--name", default=None, help="consumer name (default host-pid)")
    parser.add_argument("--drain", action="store_true", help="exit when nothing is left")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve /metrics here")


def run_stage(
    runner: Any,
    *,
    bus: Bus | None = None,
    drain: bool = False,
    grace_s: float = 30.0,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
    health: Any = None,
    loop_check: bool = True,
    checks: Mapping[str, Callable[[], Any]] | None = None,
    servers: Sequence[Any] = (),
    on_exit: Sequence[Callable[[], Any]] = (),
) -> int:
    """Run one stage's loop as a service: signals, /metrics + /healthz, clean exit.

    ``runner`` is a :class:`Consumer`, a :class:`MultiConsumer` or a stage worker: anything
    with ``run(drain=...) -> int`` and ``request_stop()``. Installs SIGTERM/SIGINT handling
    (main thread only; see :func:`install_signal_handlers`), serves metrics on
    ``metrics_port`` (if given) with health checks ``redis`` (PING on ``bus``, default
    ``runner.bus``), ``loop`` (``runner.loop_alive``, unless ``loop_check`` is false) and then
    ``checks``, added to ``health`` (a :class:`firstmotion.metrics.Health`), runs the loop and
    tears all of it down: signal handlers, the metrics server, ``servers`` (started by the
    caller, each with ``stop()``), then the ``on_exit`` callables in order (e.g. ``bus.close``).
    Returns what ``runner.run`` returned (the number of entries processed).
    """
    from firstmotion.metrics import Health, start_http_server

    bus = bus if bus is not None else runner.bus
    server = None
    if metrics_port is not None:
        health = health if health is not None else Health()
        health.register("redis", redis_check(bus))
        if loop_check:
            health.register("loop", runner.loop_alive)
        for name, check in (checks or {}).items():
            health.register(name, check)
        server = start_http_server(metrics_host, metrics_port, health=health)
    in_main = threading.current_thread() is threading.main_thread()
    restore = install_signal_handlers(runner, grace_s=grace_s) if in_main else None
    try:
        return runner.run(drain=drain)
    finally:
        if restore is not None:
            restore()
        if server is not None:
            server.stop()
        for other in servers:
            other.stop()
        for done in on_exit:
            done()
