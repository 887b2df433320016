"""SeedLink v3 wire format: miniSEED record headers, packets, INFO records, selectors, commands.

Pure functions over bytes and strings, no I/O; :mod:`stream.replay` is the asyncio shell that
uses them. What is implemented is what SeedLink v3.1 servers (SeisComP ``seedlink``,
ringserver) speak and what obspy's clients (``SLClient``, ``EasySeedLinkClient``,
``basic_client.Client``) send and parse:

* a data packet is ``b"SL"`` + six upper-case hex digits of the sequence number + one 512-byte
  miniSEED record; sequence numbers are 24-bit and wrap (``0xFFFFFF`` is followed by ``0``);
* an INFO response is one or more packets ``b"SLINFO *"`` (more follow) ... ``b"SLINFO  "``
  (last), each carrying a 512-byte ASCII (encoding 0) miniSEED log record whose payload is a
  piece of one XML document;
* commands are ASCII lines ended by CR, LF or CR LF; replies are ``OK\\r\\n`` / ``ERROR\\r\\n``;
* selectors are ``[!][LL]CCC[.T]``: location (2), channel (3), type (1), ``?`` matches one
  character, ``--`` is the empty location, a leading ``!`` excludes.

.. seealso:: SeedLink protocol, SeisComP documentation ("seedlink" module, "SeedLink protocol
   v3"); SEED Reference Manual v2.4 ch. 8 (fixed header, blockettes 100, 1000, 1001).
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from dataclasses import dataclass

import numpy as np

SL_RECORD_BYTES = 512
SL_HEADER_BYTES = 8
SEQ_MODULUS = 0x1000000  # 24-bit sequence numbers, 000000..FFFFFF
OK = b"OK\r\n"
ERROR = b"ERROR\r\n"
END = b"END"
MAX_COMMAND_BYTES = 255
INFO_CHUNK_BYTES = SL_RECORD_BYTES - 64  # ASCII payload of one INFO log record

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_NS_PER_S = 1_000_000_000
_NS_PER_TICK = 100_000  # BTIME ticks are 0.0001 s


# --------------------------------------------------------------------------- record headers


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """What the replay needs from one miniSEED 2 data record (SEED 2.4 fixed header).

    ``start_ns`` is the time of the first sample (time correction and blockette-1001
    microseconds applied), ``end_ns`` the time just after the last sample
    (``start + n / rate``): the moment a digitizer has filled the record and can send it.
    """

    network: str
    station: str
    location: str
    channel: str
    quality: str
    start_ns: int
    end_ns: int
    n_samples: int
    sampling_rate_hz: float
    encoding: int
    record_bytes: int
    big_endian: bool

    @property
    def stream_id(self) -> str:
        """``NET.STA.LOC.CHA``."""
        return f"{self.network}.{self.station}.{self.location}.{self.channel}"


def _btime_order(header: bytes) -> str | None:
    """``'>'`` or ``'<'`` from a plausible BTIME year/day, ``None`` when neither is."""
    for order in (">", "<"):
        year, doy = struct.unpack(order + "HH", header[20:24])
        if 1900 <= year <= 2200 and 1 <= doy <= 366:
            return order
    return None


def looks_like_mseed(head: bytes) -> bool:
    """True when ``head`` (>= 48 bytes) starts like a miniSEED 2 record.

    Checks the six-character sequence field (digits, spaces or NULs), the quality indicator
    (D, R, Q, M) and a plausible BTIME; cheap enough to sniff every file in a folder.
    """
    if len(head) < 48:
        return False
    seq = head[0:6]
    if not all(c in b"0123456789 \x00" for c in seq):
        return False
    if head[6:7] not in (b"D", b"R", b"Q", b"M"):
        return False
    return _btime_order(head) is not None


def _rate_hz(factor: int, multiplier: int) -> float:
    """Nominal sample rate from the SEED factor/multiplier pair (SEED 2.4, fixed header)."""
    if factor == 0 or multiplier == 0:
        return 0.0
    if factor > 0 and multiplier > 0:
        return float(factor * multiplier)
    if factor > 0 > multiplier:
        return -factor / multiplier
    if factor < 0 < multiplier:
        return -multiplier / factor
    return 1.0 / (factor * multiplier)


def btime_to_ns(year: int, doy: int, hour: int, minute: int, second: int, ticks: int) -> int:
    """Epoch nanoseconds of a SEED BTIME (``ticks`` in 0.0001 s)."""
    day = dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=doy - 1)
    whole_s = int((day - _EPOCH).total_seconds()) + hour * 3600 + minute * 60 + second
    return whole_s * _NS_PER_S + ticks * _NS_PER_TICK


def ns_to_btime(t_ns: int) -> tuple[int, int, int, int, int, int]:
    """Inverse of :func:`btime_to_ns`; sub-tick nanoseconds are dropped."""
    whole_s, rest_ns = divmod(t_ns, _NS_PER_S)
    moment = _EPOCH + dt.timedelta(seconds=whole_s)
    doy = moment.timetuple().tm_yday
    return moment.year, doy, moment.hour, moment.minute, moment.second, rest_ns // _NS_PER_TICK


def parse_record_header(record: bytes) -> RecordHeader:
    """Parse the fixed header and blockettes 100/1000/1001 of one miniSEED 2 record.

    Raises ``ValueError`` for bytes that are not a miniSEED 2 record or lack blockette 1000
    (then the record length is unknown).
    """
    if len(record) < 48:
        raise ValueError(f"miniSEED record needs >= 48 bytes, got {len(record)}")
    if not looks_like_mseed(record):
        raise ValueError("not a miniSEED 2 record (bad sequence/quality/BTIME fields)")
    order = _btime_order(record)
    assert order is not None  # looks_like_mseed checked it
    (year, doy, hour, minute, second, _unused, ticks, n_samples, factor, multiplier) = (
        struct.unpack(order + "HHBBBBHHhh", record[20:36])
    )
    activity, _io, _dq, n_blockettes, correction, _data_off, blk_off = struct.unpack(
        order + "BBBBiHH", record[36:48]
    )
    rate_hz = _rate_hz(factor, multiplier)
    encoding, reclen, micro_s = -1, 0, 0
    seen = 0
    while blk_off and seen < max(n_blockettes, 1) + 8 and blk_off + 4 <= len(record):
        blk_type, next_off = struct.unpack(order + "HH", record[blk_off : blk_off + 4])
        if blk_type == 1000 and blk_off + 8 <= len(record):
            encoding = record[blk_off + 4]
            reclen = 1 << record[blk_off + 6]
        elif blk_type == 1001 and blk_off + 8 <= len(record):
            micro_s = struct.unpack("b", record[blk_off + 5 : blk_off + 6])[0]
        elif blk_type == 100 and blk_off + 8 <= len(record):
            actual = struct.unpack(order + "f", record[blk_off + 4 : blk_off + 8])[0]
            if actual > 0:
                rate_hz = float(actual)
        seen += 1
        if next_off <= blk_off:
            break
        blk_off = next_off
    if reclen == 0:
        raise ValueError("miniSEED record without blockette 1000: record length unknown")
    start_ns = btime_to_ns(year, doy, hour, minute, second, ticks) + micro_s * 1000
    if not activity & 0x02:  # time correction not yet applied
        start_ns += correction * _NS_PER_TICK
    duration_ns = round(n_samples * _NS_PER_S / rate_hz) if rate_hz > 0 else 0
    return RecordHeader(
        network=record[18:20].decode("ascii", "replace").strip(),
        station=record[8:13].decode("ascii", "replace").strip(),
        location=record[13:15].decode("ascii", "replace").strip(),
        channel=record[15:18].decode("ascii", "replace").strip(),
        quality=chr(record[6]),
        start_ns=start_ns,
        end_ns=start_ns + duration_ns,
        n_samples=n_samples,
        sampling_rate_hz=rate_hz,
        encoding=encoding,
        record_bytes=reclen,
        big_endian=order == ">",
    )


def shift_record_time(record: bytes, shift_s: int) -> bytes:
    """A copy of ``record`` with its BTIME moved by a whole number of seconds.

    Used to replay a recording again later in time (``--loop``): only the start-time field
    changes; samples, blockettes and sub-second ticks are untouched.
    """
    if shift_s == 0:
        return record
    order = _btime_order(record)
    if order is None:
        raise ValueError("not a miniSEED 2 record: cannot shift its start time")
    year, doy, hour, minute, second, unused, ticks = struct.unpack(order + "HHBBBBH", record[20:30])
    t_ns = btime_to_ns(year, doy, hour, minute, second, 0) + int(shift_s) * _NS_PER_S
    year, doy, hour, minute, second, _ = ns_to_btime(t_ns)
    btime = struct.pack(order + "HHBBBBH", year, doy, hour, minute, second, unused, ticks)
    return record[:20] + btime + record[30:]


# --------------------------------------------------------------------------- packets


def data_packet(sequence: int, record: bytes) -> bytes:
    """``SL`` + 6 hex digits (sequence modulo 2**24) + the 512-byte record."""
    if len(record) != SL_RECORD_BYTES:
        raise ValueError(f"SeedLink v3 carries {SL_RECORD_BYTES}-byte records, got {len(record)}")
    return b"SL%06X" % (sequence % SEQ_MODULUS) + record


def _log_record(text: bytes, start_ns: int, station: bytes = b"INFO") -> bytes:
    """One 512-byte miniSEED 2 ASCII (encoding 0) record holding ``text`` (<= 448 bytes)."""
    if len(text) > INFO_CHUNK_BYTES:
        raise ValueError(f"log record payload is at most {INFO_CHUNK_BYTES} bytes")
    year, doy, hour, minute, second, ticks = ns_to_btime(start_ns)
    header = (
        b"000000D "
        + station.ljust(5)[:5]
        + b"  "
        + b"LOG"
        + b"SL"
        + struct.pack(">HHBBBBH", year, doy, hour, minute, second, 0, ticks)
        + struct.pack(">Hhh", len(text), 0, 0)
        + struct.pack(">BBBBiHH", 0, 0, 0, 1, 0, 64, 48)
        + struct.pack(">HHBBBB", 1000, 0, 0, 1, 9, 0)  # blockette 1000: ASCII, big-endian, 512
    )
    header = header.ljust(64, b"\x00")
    return (header + text).ljust(SL_RECORD_BYTES, b"\x00")


def info_packets(xml: str, now_ns: int) -> list[bytes]:
    """The packets of one INFO response: ``SLINFO *`` for all but the last, ``SLINFO  `` last.

    obspy concatenates the payloads of these packets (in order) and parses the XML.
    """
    body = xml.encode("utf-8")
    chunks = [body[i : i + INFO_CHUNK_BYTES] for i in range(0, len(body), INFO_CHUNK_BYTES)]
    chunks = chunks or [b""]
    out = []
    for i, chunk in enumerate(chunks):
        head = b"SLINFO *" if i < len(chunks) - 1 else b"SLINFO  "
        out.append(head + _log_record(chunk, now_ns))
    return out


# --------------------------------------------------------------------------- selectors


_SELECTOR_RE = re.compile(r"^(!?)([A-Z0-9?*\-]{2})?([A-Z0-9?*]{3})(?:\.([A-Z?]))?$")


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for c in pattern:
        parts.append("." if c == "?" else ".*" if c == "*" else re.escape(c))
    return re.compile("^" + "".join(parts) + "$")


@dataclass(frozen=True, slots=True)
class Selector:
    """One parsed SeedLink selector ``[!][LL]CCC[.T]``."""

    text: str
    negate: bool
    location: re.Pattern[str] | None  # matches the 2-character, space-padded location
    channel: re.Pattern[str]
    record_type: str | None  # 'D' data, 'E' event, 'C' calibration, ... or None for all

    def matches(self, location: str, channel: str, record_type: str = "D") -> bool:
        """Whether a record of this location/channel/type matches (ignoring ``negate``)."""
        if self.location is not None and not self.location.match(location.ljust(2)[:2]):
            return False
        if not self.channel.match(channel):
            return False
        return self.record_type is None or self.record_type in ("?", record_type)


def parse_selector(text: str) -> Selector:
    """Parse one selector, e.g. ``"00HHZ"``, ``"??HH?"``, ``"HHZ"``, ``"HH?.D"``, ``"!LOG"``.

    Raises ``ValueError`` naming the selector when it is malformed.
    """
    up = text.strip().upper()
    m = _SELECTOR_RE.match(up)
    if not m:
        raise ValueError(f"bad selector {text!r}: expected [!][LL]CCC[.T] with ? wildcards")
    negate, loc, cha, rtype = m.groups()
    location = None
    if loc is not None:
        location = re.compile(r"^  $") if loc == "--" else _wildcard_regex(loc.replace("-", " "))
    return Selector(
        text=up,
        negate=bool(negate),
        location=location,
        channel=_wildcard_regex(cha),
        record_type=rtype,
    )


def selectors_match(
    selectors: tuple[Selector, ...], location: str, channel: str, record_type: str = "D"
) -> bool:
    """SeedLink selection: any positive selector matches (or there is none), no negative does."""
    positive = [s for s in selectors if not s.negate]
    if positive and not any(s.matches(location, channel, record_type) for s in positive):
        return False
    return not any(s.matches(location, channel, record_type) for s in selectors if s.negate)


def name_matches(pattern: str, name: str) -> bool:
    """Station/network name match with ``?`` (one character) and ``*`` (any) wildcards."""
    return bool(_wildcard_regex(pattern.upper()).match(name.upper()))


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Command:
    """One command line, upper-cased verb and its arguments (original case)."""

    verb: str
    args: tuple[str, ...]


KNOWN_VERBS = frozenset(
    {"HELLO", "CAT", "STATION", "SELECT", "DATA", "FETCH", "TIME", "END", "BYE", "INFO"}
)


def parse_command(line: bytes) -> Command:
    """Parse one command line (without its terminator).

    Raises ``ValueError`` for empty, over-long, non-ASCII or unknown commands.
    """
    if len(line) > MAX_COMMAND_BYTES:
        raise ValueError(f"command longer than {MAX_COMMAND_BYTES} bytes")
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("command is not ASCII") from None
    if not text.isprintable():
        raise ValueError("command contains control characters")
    tokens = text.split()
    if not tokens:
        raise ValueError("empty command")
    verb = tokens[0].upper()
    if verb not in KNOWN_VERBS:
        raise ValueError(f"unknown command {tokens[0]!r}")
    return Command(verb=verb, args=tuple(tokens[1:]))


def parse_sequence(text: str) -> int:
    """A hexadecimal sequence number as sent by DATA/FETCH (``"1A2B"``, ``"0x1a2b"``).

    obspy sends ``hex(last + 1)``, which can be ``0x1000000`` after ``FFFFFF``: the value is
    returned modulo 2**24.
    """
    body = text[2:] if text.lower().startswith("0x") else text
    if not body or len(body) > 8 or not all(c in "0123456789abcdefABCDEF" for c in body):
        raise ValueError(f"bad sequence number {text!r}: expected hexadecimal")
    return int(body, 16) % SEQ_MODULUS


def parse_seedlink_time(text: str) -> int:
    """``YYYY,MM,DD,hh,mm,ss[.ffff]`` (SeedLink time) to epoch nanoseconds.

    Raises ``ValueError`` naming the text when it does not parse.
    """
    parts = text.split(",")
    if len(parts) != 6:
        raise ValueError(f"bad SeedLink time {text!r}: expected YYYY,MM,DD,hh,mm,ss")
    try:
        year, month, day, hour, minute = (int(p) for p in parts[:5])
        sec = float(parts[5])
        base = dt.datetime(year, month, day, hour, minute, tzinfo=dt.timezone.utc)
    except ValueError:
        raise ValueError(f"bad SeedLink time {text!r}: expected YYYY,MM,DD,hh,mm,ss") from None
    if not 0 <= sec < 61:
        raise ValueError(f"bad SeedLink time {text!r}: seconds out of range")
    return int((base - _EPOCH).total_seconds()) * _NS_PER_S + round(sec * _NS_PER_S)


def format_info_time(t_ns: int) -> str:
    """``YYYY/MM/DD hh:mm:ss.ffff`` as SeisComP writes times in INFO XML."""
    moment = _EPOCH + dt.timedelta(microseconds=t_ns // 1000)
    return moment.strftime("%Y/%m/%d %H:%M:%S.") + f"{moment.microsecond // 100:04d}"


# --------------------------------------------------------------------------- INFO XML


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One stream (location + channel) of a station as INFO STREAMS lists it."""

    location: str
    channel: str
    begin_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class StationInfo:
    """One station as INFO STATIONS/STREAMS lists it; ``begin_seq``/``end_seq`` are the
    sequence numbers of its oldest and newest record in the server's ring (-1 when none)."""

    network: str
    station: str
    description: str
    begin_seq: int
    end_seq: int
    streams: tuple[StreamInfo, ...]


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """One client connection as INFO CONNECTIONS lists it."""

    host: str
    port: int
    connected_ns: int
    packets_sent: int
    stations: tuple[str, ...]


INFO_LEVELS = ("ID", "CAPABILITIES", "STATIONS", "STREAMS", "GAPS", "CONNECTIONS", "ALL")
CAPABILITIES = (
    "dialup",
    "multistation",
    "window-extraction",
    "info:id",
    "info:capabilities",
    "info:stations",
    "info:streams",
    "info:gaps",
    "info:connections",
    "info:all",
)


def _seq_attr(seq: int) -> str:
    return "000000" if seq < 0 else f"{seq % SEQ_MODULUS:06X}"


def info_xml(
    level: str,
    *,
    software: str,
    organization: str,
    started_ns: int,
    stations: tuple[StationInfo, ...] = (),
    connections: tuple[ConnectionInfo, ...] = (),
) -> str:
    """The XML document answering ``INFO level`` in the layout SeisComP's seedlink uses.

    ``<seedlink software= organization= started=>`` holds ``<capability name=>`` (CAPABILITIES),
    ``<station name= network= description= begin_seq= end_seq= stream_check=>`` (STATIONS)
    with ``<stream location= seedname= type= begin_time= end_time=>`` children (STREAMS, GAPS,
    ALL) or ``<connection>`` children (CONNECTIONS). Raises ``ValueError`` for other levels.
    """
    from xml.sax.saxutils import quoteattr as q

    level = level.upper()
    if level not in INFO_LEVELS:
        raise ValueError(f"unsupported INFO level {level!r}; one of {', '.join(INFO_LEVELS)}")
    head = (
        f"<seedlink software={q(software)} organization={q(organization)} "
        f"started={q(format_info_time(started_ns))}"
    )
    if level == "ID":
        return '<?xml version="1.0"?>\n' + head + "/>"
    lines = ['<?xml version="1.0"?>', head + ">"]
    if level in ("CAPABILITIES", "ALL"):
        lines += [f"<capability name={q(name)}/>" for name in CAPABILITIES]
    if level in ("STATIONS", "STREAMS", "GAPS", "ALL"):
        for st in stations:
            attrs = (
                f"name={q(st.station)} network={q(st.network)} description={q(st.description)}"
                f" begin_seq={q(_seq_attr(st.begin_seq))} end_seq={q(_seq_attr(st.end_seq))}"
                ' stream_check="enabled"'
            )
            if level == "STATIONS":
                lines.append(f"<station {attrs}/>")
                continue
            lines.append(f"<station {attrs}>")
            for s in st.streams:
                lines.append(
                    f'<stream location={q(s.location)} seedname={q(s.channel)} type="D"'
                    f" begin_time={q(format_info_time(s.begin_ns))}"
                    f" end_time={q(format_info_time(s.end_ns))}"
                    ' begin_recno="0" end_recno="0" gap_check="disabled" gap_treshold="0"/>'
                )
            lines.append("</station>")
    if level in ("CONNECTIONS", "ALL"):
        for c in connections:
            lines.append(
                f'<station name={q(",".join(c.stations) or "*")} network="">'
                f'<connection host={q(c.host)} port="{c.port}"'
                f" ctime={q(format_info_time(c.connected_ns))}"
                f' begin_seq="000000" end_seq="000000" txcount="{c.packets_sent}"'
                ' sequence_gaps="0" object_count="0"/></station>'
            )
    lines.append("</seedlink>")
    return "\n".join(lines)


# --------------------------------------------------------------------------- vectorized headers


@dataclass(frozen=True, slots=True)
class HeaderArrays:
    """The fields of :class:`RecordHeader` for N records at once (numpy arrays, length N).

    ``ids`` holds the raw 12 bytes ``STA(5) LOC(2) CHA(3) NET(2)`` of each fixed header
    (:func:`decode_id` turns one into strings).
    """

    ids: np.ndarray  # dtype S12
    start_ns: np.ndarray  # int64
    end_ns: np.ndarray  # int64
    n_samples: np.ndarray  # int64
    sampling_rate_hz: np.ndarray  # float64
    encoding: np.ndarray  # int64
    record_bytes: np.ndarray  # int64


def decode_id(raw_id: bytes) -> tuple[str, str, str, str]:
    """``(net, sta, loc, cha)`` from the 12 bytes at offset 8 of a fixed header."""
    text = raw_id.ljust(12).decode("ascii", "replace")
    return text[10:12].strip(), text[0:5].strip(), text[5:7].strip(), text[7:10].strip()


def _days_before_year(year: np.ndarray) -> np.ndarray:
    y = year - 1
    return 365 * y + y // 4 - y // 100 + y // 400


def parse_record_headers_512(records: np.ndarray) -> HeaderArrays | None:
    """Vectorized :func:`parse_record_header` for an ``(N, 512)`` uint8 array of records.

    Returns ``None`` (the caller falls back to the per-record parser) when the records are
    not uniformly parseable: mixed byte order, a field that does not look like miniSEED, a
    missing blockette 1000 or more than 4 blockettes. Cross-checked against
    :func:`parse_record_header` in the tests.
    """
    a = np.asarray(records)
    if a.ndim != 2 or a.shape[1] != SL_RECORD_BYTES or a.dtype != np.uint8:
        raise ValueError("expected an (N, 512) uint8 array of records")
    n = a.shape[0]
    if n == 0:
        return None
    head = a[:, :48].astype(np.int64)
    seq_ok = np.isin(a[:, :6], np.frombuffer(b"0123456789 \x00", np.uint8)).all(axis=1)
    quality_ok = np.isin(a[:, 6], np.frombuffer(b"DRQM", np.uint8))
    if not (seq_ok.all() and quality_ok.all()):
        return None

    def plausible(order_big: bool) -> np.ndarray:
        hi, lo = (0, 1) if order_big else (1, 0)
        year = head[:, 20 + hi] * 256 + head[:, 20 + lo]
        doy = head[:, 22 + hi] * 256 + head[:, 22 + lo]
        return (year >= 1900) & (year <= 2200) & (doy >= 1) & (doy <= 366)

    # per record, parse_record_header takes big-endian whenever its BTIME is plausible
    be_ok = plausible(True)
    if be_ok.all():
        big = True
    elif not be_ok.any() and plausible(False).all():
        big = False
    else:
        return None
    rows = np.arange(n)

    def u16(col: np.ndarray | int) -> np.ndarray:
        hi = a[rows, col].astype(np.int64)
        lo = a[rows, np.asarray(col) + 1].astype(np.int64)
        return hi * 256 + lo if big else lo * 256 + hi

    def u32(col: np.ndarray | int) -> np.ndarray:
        b = [a[rows, np.asarray(col) + k].astype(np.uint32) for k in range(4)]
        if not big:
            b = b[::-1]
        return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]

    year, doy = u16(20), u16(22)
    hour, minute, second = head[:, 24], head[:, 25], head[:, 26]
    ticks, n_samples = u16(28), u16(30)
    factor = u16(32).astype(np.uint16).view(np.int16).astype(np.int64)
    multiplier = u16(34).astype(np.uint16).view(np.int16).astype(np.int64)
    activity = head[:, 36]
    correction = u32(40).view(np.int32).astype(np.int64)

    f, m = factor.astype(np.float64), multiplier.astype(np.float64)
    safe_f = np.where(f == 0, 1.0, f)
    safe_m = np.where(m == 0, 1.0, m)
    rate = np.select(
        [(f > 0) & (m > 0), (f > 0) & (m < 0), (f < 0) & (m > 0), (f < 0) & (m < 0)],
        [f * m, -f / safe_m, -m / safe_f, 1.0 / (safe_f * safe_m)],
        default=0.0,
    )
    encoding = np.full(n, -1, dtype=np.int64)
    exponent = np.full(n, -1, dtype=np.int64)
    micro_s = np.zeros(n, dtype=np.int64)
    offset = u16(46)
    for _ in range(4):
        live = (offset > 0) & (offset + 8 <= SL_RECORD_BYTES)
        if not live.any():
            break
        at = np.where(live, offset, 0)
        kind = np.where(live, u16(at), 0)
        nxt = np.where(live, u16(at + 2), 0)
        is1000, is1001, is100 = live & (kind == 1000), live & (kind == 1001), live & (kind == 100)
        encoding = np.where(is1000, a[rows, at + 4], encoding)
        exponent = np.where(is1000, a[rows, at + 6], exponent)
        micro_s = np.where(is1001, a[rows, at + 5].astype(np.int8).astype(np.int64), micro_s)
        actual = u32(at + 4).view(np.float32).astype(np.float64)
        rate = np.where(is100 & (actual > 0), actual, rate)
        offset = np.where(live & (nxt > offset), nxt, 0)
    else:
        if np.any((offset > 0) & (offset + 4 <= SL_RECORD_BYTES)):
            return None  # longer blockette chains: the slow parser follows them
    if np.any(exponent < 0):
        return None
    days = _days_before_year(year) - _days_before_year(np.int64(1970)) + doy - 1
    whole_s = days * 86400 + hour * 3600 + minute * 60 + second
    start = whole_s * _NS_PER_S + ticks * _NS_PER_TICK + micro_s * 1000
    start = start + np.where(activity & 0x02, 0, correction * _NS_PER_TICK)
    with np.errstate(divide="ignore", invalid="ignore"):
        duration = np.where(
            rate > 0, np.rint(n_samples * _NS_PER_S / np.where(rate > 0, rate, 1.0)), 0
        )
    ids = np.ascontiguousarray(a[:, 8:20]).view("S12").reshape(n)
    return HeaderArrays(
        ids=ids,
        start_ns=start.astype(np.int64),
        end_ns=(start + duration.astype(np.int64)).astype(np.int64),
        n_samples=n_samples,
        sampling_rate_hz=rate.astype(np.float64),
        encoding=encoding,
        record_bytes=np.left_shift(1, exponent),
    )
