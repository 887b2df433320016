"""Wire messages: the only place message payloads are defined.

Every message is a frozen, slotted dataclass validated on construction, with
``to_json() -> bytes`` and ``from_json(data)``. On the wire a message is one JSON object::

    {"schema_version": 1, "type": "Pick", "pick_id": ..., ...}

Decoding is strict: a missing or wrong ``schema_version``, a missing or unknown field, or a
value of the wrong type or range raises :class:`MessageError` (a ``ValueError``) naming the
field, e.g. ``Pick.sampling_rate_hz: expected a positive number, got 'abc'``. Nested messages
(``Origin.arrivals``, ``Mechanism.picks``, ``CatalogEvent.origin``) are plain objects without
their own version. In ``to_json`` waveform windows are base64 of little-endian float32 samples.

Redis stream entries are built and read with :func:`encode` / :func:`decode` only
(fields ``{"type": "Pick", "data": <json>}``); nothing else builds message dicts by hand. A
Pick's entry carries its samples as raw little-endian float32 bytes in a field of their own
(:data:`BINARY_SAMPLES_FIELD`) beside the JSON metadata; entries with base64 samples in the
JSON are still read.

Conventions: times in epoch seconds (UTC), angles in degrees, takeoff from vertical-UP
(0 up, 180 down), polarity +1 up (compression), -1 down, 0 unknown; ``station_id`` is
``NET.STA.LOC.CHA`` (LOC may be empty).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

SCHEMA_VERSION = 1
MAX_SAMPLES = 100_000  # per pick window (~400 KB): continuous data never goes through Redis

# Limits of a stream entry, checked BEFORE parsing (a hostile or broken producer must not make
# a consumer parse megabytes or recurse without bound): the bytes of all its fields together,
# and the nesting of '[' and '{' in its JSON (the deepest message, a CatalogEvent's origin's
# arrivals, nests 4 deep).
MAX_ENTRY_BYTES = 1 << 20
MAX_JSON_DEPTH = 16
# Value ranges (documented in docs/operations.md): every field that reaches the catalog is
# bounded, so a message with a 1 MB id or an origin time in the year 33658 is a dead letter.
MAX_ID_CHARS = 256  # event_id, pick_id, and every other string field
MAX_STATION_ID_CHARS = 64  # NET.STA.LOC.CHA (FDSN codes are 8 characters at most each)
MAX_EPOCH_S = 4_102_444_800.0  # 2100-01-01T00:00:00Z: any time field is in [1970, 2100)
MIN_DEPTH_KM = -15.0  # above the highest topography
MAX_DEPTH_KM = 1000.0  # below the deepest earthquakes (~700 km)
MAGNITUDE_RANGE = (-5.0, 10.0)
MAX_DISTANCE_KM = 20_100.0  # half the Earth's circumference
MAX_SECONDS_SPAN = 86_400.0  # |residual|, rms: a day is far beyond any travel time
MAX_ITEMS = 10_000  # arrivals of an origin, picks of a mechanism
MAX_REVISION = 1_000_000
MAX_SAMPLING_RATE_HZ = 1_000_000.0
ELEVATION_RANGE_M = (-12_000.0, 9_000.0)

# The message types each stream carries (any other type there is a dead letter for every
# consumer group). ``origins`` also carries retractions (a CatalogEvent with status deleted).
STREAM_TYPES: dict[str, tuple[str, ...]] = {
    "picks": ("Pick",),
    "polarities": ("Polarity",),
    "origins": ("Origin", "CatalogEvent"),
    "mechanisms": ("Mechanism",),
}

M = TypeVar("M", bound="Message")
Check = Callable[[str, Any], Any]


class MessageError(ValueError):
    """A message that cannot be built or decoded; the text names the offending field."""


# --------------------------------------------------------------------------- field checks


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _num(
    lo: float | None = None,
    hi: float | None = None,
    *,
    positive: bool = False,
    optional: bool = False,
    tol: float = 0.0,
) -> Check:
    """A finite float within ``[lo, hi]`` (or > 0 when ``positive``); ``None`` if optional.

    Values outside ``[lo, hi]`` by at most ``tol`` (floating-point rounding of angles) are
    clamped to the bound.
    """
    if positive:
        what = "a positive number"
    elif lo is not None and hi is not None:
        what = f"a number in [{lo:g}, {hi:g}]"
    elif lo is not None:
        what = f"a number >= {lo:g}"
    else:
        what = "a finite number"

    def check(name: str, value: Any) -> float | None:
        if value is None and optional:
            return None
        if not _is_number(value):
            raise MessageError(f"{name}: expected {what}, got {_show(value)}")
        out = float(value)
        if tol and lo is not None and lo - tol <= out < lo:
            out = lo
        if tol and hi is not None and hi < out <= hi + tol:
            out = hi
        if (
            not math.isfinite(out)
            or (positive and out <= 0)
            or (lo is not None and out < lo)
            or (hi is not None and out > hi)
        ):
            raise MessageError(f"{name}: expected {what}, got {_show(value)}")
        return out

    return check


def _int(
    lo: int | None = None, choices: tuple[int, ...] | None = None, hi: int | None = None
) -> Check:
    if choices:
        what = f"one of {list(choices)}"
    elif hi is not None:
        what = f"an integer in [{lo}, {hi}]"
    else:
        what = f"an integer >= {lo}"

    def check(name: str, value: Any) -> int:
        ok_type = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        if isinstance(value, float) and value.is_integer():  # JSON writers may emit 3.0
            ok_type, value = True, int(value)
        if not ok_type:
            raise MessageError(f"{name}: expected {what}, got {_show(value)}")
        out = int(value)
        if (
            (choices and out not in choices)
            or (lo is not None and out < lo)
            or (hi is not None and out > hi)
        ):
            raise MessageError(f"{name}: expected {what}, got {_show(value)}")
        return out

    return check


def _str(
    *, nonempty: bool = True, choices: tuple[str, ...] | None = None, max_len: int = MAX_ID_CHARS
) -> Check:
    if choices:
        what = f"one of {list(choices)}"
    else:
        what = "a non-empty string" if nonempty else "a string"
        what += f" of at most {max_len} printable characters"

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or (nonempty and not value):
            raise MessageError(f"{name}: expected {what}, got {_show(value)}")
        if choices and value not in choices:
            raise MessageError(f"{name}: expected {what}, got {_show(value)}")
        if len(value) > max_len or not value.isprintable():
            raise MessageError(f"{name}: expected {what}, got {_show(value)} ({len(value)} chars)")
        return value

    return check


def _station_id(name: str, value: Any) -> str:
    ok = (
        isinstance(value, str)
        and len(value) <= MAX_STATION_ID_CHARS
        and value.isprintable()
        and not any(c.isspace() for c in value)
    )
    parts = value.split(".") if ok else []
    if len(parts) != 4 or not parts[0] or not parts[1] or not parts[3]:
        raise MessageError(f"{name}: expected NET.STA.LOC.CHA, got {_show(value)}")
    return value


def _samples(name: str, value: Any) -> np.ndarray:
    """Float32 waveform: an array-like, or base64 of little-endian float32 from the wire."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise MessageError(f"{name}: expected base64 float32 samples ({exc})") from None
        if len(raw) % 4:
            raise MessageError(f"{name}: base64 payload of {len(raw)} bytes is not float32")
        arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    else:
        try:
            arr = np.ascontiguousarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            msg = f"{name}: expected an array of numbers, got {_show(value)}"
            raise MessageError(msg) from None
        if not (arr is value and not arr.flags.writeable):  # a read-only array is kept
            arr = arr.copy()
    if arr.ndim != 1 or arr.size == 0:
        raise MessageError(f"{name}: expected a non-empty 1-D array, got shape {arr.shape}")
    if arr.size > MAX_SAMPLES:
        raise MessageError(
            f"{name}: {arr.size} samples is more than {MAX_SAMPLES}: picks carry a short "
            "window, never continuous data"
        )
    if arr.flags.writeable:
        arr.setflags(write=False)
    return arr


_UNIT = _num(0.0, 1.0)


def _probabilities(name: str, value: Any) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) != 3:
        raise MessageError(f"{name}: expected [up, down, unknown], got {_show(value)}")
    probs = tuple(_UNIT(f"{name}[{i}]", v) for i, v in enumerate(value))
    if abs(sum(probs) - 1.0) > 1e-3:
        raise MessageError(f"{name}: expected probabilities summing to 1, got sum {sum(probs):.4f}")
    return probs  # type: ignore[return-value]


def _nested(cls_name: str, *, optional: bool = False) -> Check:
    def check(name: str, value: Any) -> Message | None:
        cls = MESSAGE_TYPES[cls_name]
        if value is None and optional:
            return None
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls._from_dict(value, name, nested=True)
        raise MessageError(f"{name}: expected a {cls_name} object, got {_show(value)}")

    return check


def _tuple_of(cls_name: str) -> Check:
    item = _nested(cls_name)

    def check(name: str, value: Any) -> tuple:
        if not isinstance(value, (list, tuple)):
            raise MessageError(f"{name}: expected a list of {cls_name}, got {_show(value)}")
        if len(value) > MAX_ITEMS:
            raise MessageError(f"{name}: {len(value)} items is more than {MAX_ITEMS}")
        return tuple(item(f"{name}[{i}]", v) for i, v in enumerate(value))

    return check


_TIME = _num(0.0, MAX_EPOCH_S)
_OPT_LAT = _num(-90.0, 90.0, optional=True)
_OPT_LON = _num(-180.0, 360.0, optional=True)
_OPT_ELEV = _num(*ELEVATION_RANGE_M, optional=True)
_REVISION = _int(0, hi=MAX_REVISION)
_COUNT = _int(0, hi=MAX_ITEMS)
_ANGLE_TOL_DEG = 1e-6
_AZIMUTH = _num(0.0, 360.0, tol=_ANGLE_TOL_DEG)
_TAKEOFF = _num(0.0, 180.0, tol=_ANGLE_TOL_DEG)
_STRIKE = _num(0.0, 360.0, tol=_ANGLE_TOL_DEG)
_DIP = _num(0.0, 90.0, tol=_ANGLE_TOL_DEG)
_RAKE = _num(-180.0, 180.0, tol=_ANGLE_TOL_DEG)
_POLARITY = _int(choices=(-1, 0, 1))


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise MessageError(f"{name}: expected true or false, got {_show(value)}")
    return bool(value)


# --------------------------------------------------------------------------- base class


class Message:
    """Shared encode/decode/validation for the wire dataclasses below."""

    __slots__ = ()
    _checks: ClassVar[dict[str, Check]]

    def __post_init__(self) -> None:
        cls = type(self)
        if getattr(_PREVALIDATED, "on", False):  # built by _from_dict from checked values
            _PREVALIDATED.on = False
            extra = getattr(self, "_validate", None)
            if extra is not None:
                extra()
            return
        for name, check in cls._checks.items():
            object.__setattr__(self, name, check(f"{cls.__name__}.{name}", getattr(self, name)))
        extra = getattr(self, "_validate", None)
        if extra is not None:
            extra()

    # -- encoding
    def to_dict(self, *, nested: bool = False) -> dict[str, Any]:
        """A JSON-ready dict; the top level carries ``schema_version`` and ``type``."""
        out: dict[str, Any] = (
            {}
            if nested
            else {
                "schema_version": SCHEMA_VERSION,
                "type": type(self).__name__,
            }
        )
        for name in _field_table(type(self)):
            out[name] = _to_wire(getattr(self, name))
        return out

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON bytes of this message."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()

    # -- decoding
    @classmethod
    def from_json(cls: type[M], data: bytes | str) -> M:
        """Parse and validate one message; raises :class:`MessageError` on any problem."""
        obj = _parse_json(data, cls.__name__)
        if not isinstance(obj, dict):
            raise MessageError(f"{cls.__name__}: expected a JSON object, got {_show(obj)}")
        return cls._from_dict(obj, cls.__name__, nested=False)

    @classmethod
    def from_dict(cls: type[M], data: Mapping[str, Any]) -> M:
        """Validate a decoded top-level dict (with ``schema_version``)."""
        return cls._from_dict(data, cls.__name__, nested=False)

    @classmethod
    def _from_dict(cls: type[M], data: Mapping[str, Any], path: str, *, nested: bool) -> M:
        if not isinstance(data, Mapping):
            raise MessageError(f"{path}: expected an object, got {_show(data)}")
        data = dict(data)
        if not nested:
            present = "schema_version" in data
            _check_version(path, data.pop("schema_version", None), present)
            kind = data.pop("type", cls.__name__)
            if kind != cls.__name__:
                raise MessageError(f"{path}.type: expected {cls.__name__!r}, got {_show(kind)}")
        fields = _field_table(cls)
        unknown = sorted(set(data) - fields.keys())
        if unknown:
            raise MessageError(f"{path}: unknown field(s) {unknown}")
        kwargs = {}
        checks = cls._checks
        for name, required in fields.items():
            if name in data:
                kwargs[name] = checks[name](f"{path}.{name}", data[name])
            elif required:
                raise MessageError(f"{path}.{name}: missing")
        try:
            _PREVALIDATED.on = True  # every field was just checked: __post_init__ skips them
            return cls(**kwargs)
        except MessageError as exc:  # cross-field checks: re-root the path
            text = str(exc)
            if text.startswith(cls.__name__ + ".") and path != cls.__name__:
                text = path + text[len(cls.__name__) :]
            raise MessageError(text) from None
        finally:
            _PREVALIDATED.on = False


_PREVALIDATED = threading.local()


@functools.cache
def _field_table(cls: type) -> dict[str, bool]:
    """Field name -> required (no default), in declaration order, per message class."""
    return {
        f.name: f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        for f in dataclasses.fields(cls)
    }


def _check_version(path: str, version: Any, present: bool) -> None:
    if version is None and not present:
        raise MessageError(f"{path}.schema_version: missing")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        msg = f"{path}.schema_version: expected {SCHEMA_VERSION}, got {_show(version)}"
        raise MessageError(msg)


def _parse_json(data: bytes | str, what: str) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageError(f"{what}: not UTF-8 ({exc})") from None
    if not isinstance(data, str):
        raise MessageError(f"{what}: expected JSON bytes or str, got {type(data).__name__}")
    brackets = data.count("[") + data.count("{")  # a bound on the depth, at C speed
    depth = json_depth(data) if brackets > MAX_JSON_DEPTH else 0
    if depth > MAX_JSON_DEPTH:
        raise MessageError(f"{what}: JSON nested {depth} deep, more than {MAX_JSON_DEPTH}")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise MessageError(f"{what}: not valid JSON ({exc})") from None
    except RecursionError:  # unreachable after the depth check; kept as the last guard
        raise MessageError(f"{what}: JSON nested too deep") from None


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of ``[``/``{`` in JSON ``text``, brackets inside strings not
    counted, without parsing it: vectorised and linear in the length (a quote opens or closes
    a string unless an odd run of backslashes precedes it)."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    if b"[" not in raw and b"{" not in raw:
        return 0
    a = np.frombuffer(raw, dtype=np.uint8)
    step = np.zeros(a.size, dtype=np.int32)
    step[(a == 0x5B) | (a == 0x7B)] = 1  # [ {
    step[(a == 0x5D) | (a == 0x7D)] = -1  # ] }
    quotes = np.flatnonzero(a == 0x22)
    if quotes.size:
        idx = np.arange(a.size, dtype=np.int32)
        last_plain = np.maximum.accumulate(np.where(a != 0x5C, idx, -1))  # last non-backslash
        before = np.maximum(quotes - 1, 0)
        run = np.where(quotes > 0, before - last_plain[before], 0)  # backslashes before each
        toggle = np.zeros(a.size, dtype=np.int32)
        toggle[quotes[run % 2 == 0]] = 1
        step[(np.cumsum(toggle) & 1) == 1] = 0  # inside a string
    return max(0, int(np.cumsum(step).max()))


def _to_wire(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return base64.b64encode(value.astype("<f4").tobytes()).decode("ascii")
    if isinstance(value, Message):
        return value.to_dict(nested=True)
    if isinstance(value, tuple):
        return [_to_wire(v) for v in value]
    return value


def make_pick_id(station_id: str, time_epoch_s: float) -> str:
    """Deterministic pick id: ``NET.STA.LOC.CHA@<epoch seconds, 3 decimals>``.

    The same onset picked twice (a replayed or reclaimed packet) gets the same id, which makes
    every downstream handler idempotent on it.
    """
    _station_id("station_id", station_id)
    return f"{station_id}@{_TIME('time_epoch_s', time_epoch_s):.3f}"


# --------------------------------------------------------------------------- messages


FLOAT32_EXACT = 2.0**24  # float32 holds every integer up to this


def window_float32(samples) -> np.ndarray:
    """A waveform window as float32, as the wire carries it: the samples less a whole-number
    offset (their median) where they reach :data:`FLOAT32_EXACT`. A datalogger's DC offset
    can be tens of millions of counts, where float32 steps by 2 or more: a cast would round
    away a first motion of a few counts (it turned a real weak INGV onset's read over). The
    level changes no read (every reader removes it); samples already smaller are unchanged."""
    x = np.asarray(samples, dtype=np.float64)
    finite = x[np.isfinite(x)]
    if finite.size and np.abs(finite).max() >= FLOAT32_EXACT:
        x = x - np.round(np.median(finite))
    return x.astype(np.float32)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pick(Message):
    """A P or S pick (``phase``) with its waveform window (raw counts or velocity, vertical
    component) and, optionally, its three-component amplitude and the noise before it."""

    pick_id: str
    station_id: str
    phase: str = "P"
    time_epoch_s: float
    sampling_rate_hz: float
    start_time_epoch_s: float
    # the sample of ``samples`` where the first motion is read: the P onset (the learned
    # picker refines it by AIC, and it may lie up to 0.2 s from time_epoch_s, the arrival
    # time the picker gives); for other picks the sample at time_epoch_s
    pick_index: int
    samples: np.ndarray
    snr: float
    amplitude: float
    latitude_deg: float | None = None
    longitude_deg: float | None = None
    elevation_m: float | None = None
    method: str = "stalta+aic"
    created_epoch_s: float = field(default_factory=time.time)
    probability: float = 1.0  # the picker's confidence (PhaseNet peak; 1 for STA/LTA)
    # a candidate P onset the picker does not vouch for (below its threshold or gate): never
    # an event on its own; the associator takes it only at a located event's predicted P
    # (absent: False)
    candidate: bool = False
    # three-component peak vector amplitude after the pick and before it (band-passed counts,
    # stream.amplitude): what S/P amplitude ratios are made of; None where not measured
    vector_amplitude: float | None = None
    vector_noise: float | None = None

    _checks: ClassVar[dict[str, Check]] = {
        "pick_id": _str(),
        "station_id": _station_id,
        "phase": _str(max_len=8),
        "candidate": _bool,
        "probability": _num(0.0, 1.0),
        "time_epoch_s": _TIME,
        "sampling_rate_hz": _num(0.0, MAX_SAMPLING_RATE_HZ, positive=True),
        "start_time_epoch_s": _TIME,
        "pick_index": _int(0),
        "samples": _samples,
        "snr": _num(0.0),
        "amplitude": _num(),
        "latitude_deg": _OPT_LAT,
        "longitude_deg": _OPT_LON,
        "elevation_m": _OPT_ELEV,
        "method": _str(),
        "created_epoch_s": _TIME,
        "vector_amplitude": _num(0.0, optional=True),
        "vector_noise": _num(0.0, optional=True),
    }

    def to_dict_meta(self) -> dict[str, Any]:
        """:meth:`to_dict` without ``samples`` (they travel as raw bytes beside it)."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "type": "Pick"}
        for name in self._checks:
            if name != "samples":
                out[name] = getattr(self, name)
        return out

    def _validate(self) -> None:
        if self.pick_index >= self.samples.size:
            raise MessageError(
                f"Pick.pick_index: expected < len(samples) = {self.samples.size}, "
                f"got {self.pick_index}"
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pick):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, n), getattr(other, n), equal_nan=True)
            if n == "samples"
            else getattr(self, n) == getattr(other, n)
            for n in self._checks
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Polarity(Message):
    """The first-motion polarity of one pick, as read by the polarity model."""

    pick_id: str
    station_id: str
    time_epoch_s: float
    polarity: int
    probabilities: tuple[float, float, float]
    confidence: float
    model_version: str
    # "" (read by the network), "first_lobe" (read from the first lobe where the network
    # left it unknown), "low_confidence" / "evidence_conflict" / "pick_sensitive" (unknown;
    # the last: the read of the other sign with the pick moved 30 ms), or why the window
    # could not be read ("nan", "flat", "too_short")
    reason: str = ""
    latitude_deg: float | None = None
    longitude_deg: float | None = None
    elevation_m: float | None = None
    created_epoch_s: float = field(default_factory=time.time)
    # the evidence a seismologist checks (None/0/False from models without it): sign and peak
    # (noise sigmas) of the first lobe beyond 4 noise sigmas, the read lobe's rise (noise
    # sigmas per 10 ms), the onset the reading refers to, and whether the first lobe was read
    # as a datalogger FIR precursor of the opposite main swing; ``fir_corrected``: the window
    # was read after the channel's linear-phase FIR stages (StationXML) were made minimum-phase;
    # ``read_at_arrival``: read at the pick's arrival time (the learned picker's peak) because
    # the refined onset it is read at gave no sign; ``read_at_own_onset``: a pick given alone
    # read at the reader's own onset estimate near it because the pick gave no sign
    first_lobe_sign: int = 0
    first_lobe_snr: float | None = None
    onset_sharpness: float | None = None
    onset_time_epoch_s: float | None = None
    precursor: bool = False
    fir_corrected: bool = False
    read_at_arrival: bool = False
    read_at_own_onset: bool = False

    _checks: ClassVar[dict[str, Check]] = {
        "pick_id": _str(),
        "station_id": _station_id,
        "time_epoch_s": _TIME,
        "polarity": _POLARITY,
        "probabilities": _probabilities,
        "confidence": _num(0.0, 1.0),
        "model_version": _str(),
        "reason": _str(nonempty=False),
        "latitude_deg": _OPT_LAT,
        "longitude_deg": _OPT_LON,
        "elevation_m": _OPT_ELEV,
        "created_epoch_s": _TIME,
        "first_lobe_sign": _POLARITY,
        "first_lobe_snr": _num(0.0, optional=True),
        "onset_sharpness": _num(0.0, optional=True),
        "onset_time_epoch_s": _num(0.0, optional=True),
        "precursor": _bool,
        "fir_corrected": _bool,
        "read_at_arrival": _bool,
        "read_at_own_onset": _bool,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Arrival(Message):
    """One pick associated with an origin: ray geometry at the source (nested in Origin)."""

    pick_id: str
    station_id: str
    phase: str = "P"
    azimuth_deg: float
    takeoff_deg: float
    distance_km: float
    residual_s: float | None = None
    time_epoch_s: float | None = None  # the pick's time (absent: only in its pick id)

    _checks: ClassVar[dict[str, Check]] = {
        "pick_id": _str(),
        "station_id": _station_id,
        "phase": _str(max_len=8),
        "azimuth_deg": _AZIMUTH,
        "takeoff_deg": _TAKEOFF,
        "distance_km": _num(0.0, MAX_DISTANCE_KM),
        "residual_s": _num(-MAX_SECONDS_SPAN, MAX_SECONDS_SPAN, optional=True),
        "time_epoch_s": _num(0.0, MAX_EPOCH_S, optional=True),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin(Message):
    """A located event (one revision) with its associated arrivals."""

    event_id: str
    revision: int
    time_epoch_s: float
    latitude_deg: float
    longitude_deg: float
    depth_km: float
    magnitude: float | None = None
    arrivals: tuple[Arrival, ...] = ()
    rms_s: float | None = None
    method: str = "pyocto"
    created_epoch_s: float = field(default_factory=time.time)

    _checks: ClassVar[dict[str, Check]] = {
        "event_id": _str(),
        "revision": _REVISION,
        "time_epoch_s": _TIME,
        "latitude_deg": _num(-90.0, 90.0),
        "longitude_deg": _num(-180.0, 360.0),
        "depth_km": _num(MIN_DEPTH_KM, MAX_DEPTH_KM),
        "magnitude": _num(*MAGNITUDE_RANGE, optional=True),
        "arrivals": _tuple_of("Arrival"),
        "rms_s": _num(0.0, MAX_SECONDS_SPAN, optional=True),
        "method": _str(),
        "created_epoch_s": _TIME,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class MechanismPick(Message):
    """One polarity used by a mechanism inversion (nested in Mechanism)."""

    station_id: str
    pick_id: str
    azimuth_deg: float
    takeoff_deg: float
    polarity: int
    weight: float = 1.0

    _checks: ClassVar[dict[str, Check]] = {
        "station_id": _station_id,
        "pick_id": _str(),
        "azimuth_deg": _AZIMUTH,
        "takeoff_deg": _TAKEOFF,
        "polarity": _int(choices=(-1, 1)),
        "weight": _num(0.0),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Mechanism(Message):
    """A focal mechanism (HASH-style) for one origin revision; fields as ``invert``'s result."""

    event_id: str
    revision: int
    origin_revision: int
    strike: float
    dip: float
    rake: float
    aux_strike: float
    aux_dip: float
    aux_rake: float
    quality: str
    fault_plane_uncertainty_deg: float
    aux_plane_uncertainty_deg: float
    misfit: float
    probability: float
    station_distribution_ratio: float
    n_polarities: int
    n_stations: int
    model_version: str
    picks: tuple[MechanismPick, ...] = ()
    azimuthal_gap_deg: float | None = None
    takeoff_gap_deg: float | None = None
    created_epoch_s: float = field(default_factory=time.time)
    n_sp_ratios: int = 0  # S/P amplitude ratios used with the polarities
    # the misfit floor the accepted set used (polarities; mechanism.misfit_floor): a plane
    # was accepted with up to max(this, badfrac share) misfits above the best
    misfit_floor: float | None = None

    _checks: ClassVar[dict[str, Check]] = {
        "event_id": _str(),
        "revision": _REVISION,
        "origin_revision": _REVISION,
        "strike": _STRIKE,
        "dip": _DIP,
        "rake": _RAKE,
        "aux_strike": _STRIKE,
        "aux_dip": _DIP,
        "aux_rake": _RAKE,
        "quality": _str(choices=("A", "B", "C", "D")),
        "fault_plane_uncertainty_deg": _num(0.0, 180.0, tol=_ANGLE_TOL_DEG),
        "aux_plane_uncertainty_deg": _num(0.0, 180.0, tol=_ANGLE_TOL_DEG),
        "misfit": _num(0.0, 1.0),
        "probability": _num(0.0, 1.0),
        "station_distribution_ratio": _num(0.0, 1.0),
        "n_polarities": _COUNT,
        "n_stations": _COUNT,
        "model_version": _str(nonempty=False),
        "picks": _tuple_of("MechanismPick"),
        "azimuthal_gap_deg": _num(0.0, 360.0, optional=True, tol=_ANGLE_TOL_DEG),
        "takeoff_gap_deg": _num(0.0, 180.0, optional=True, tol=_ANGLE_TOL_DEG),
        "created_epoch_s": _TIME,
        "n_sp_ratios": _COUNT,
        "misfit_floor": _num(0.0, 1e6, optional=True),
    }


CATALOG_STATUSES = ("preliminary", "final", "deleted")


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogEvent(Message):
    """The catalog's current view of one event: latest origin and mechanism."""

    event_id: str
    revision: int
    status: str
    origin: Origin
    mechanism: Mechanism | None = None
    updated_epoch_s: float = field(default_factory=time.time)

    _checks: ClassVar[dict[str, Check]] = {
        "event_id": _str(),
        "revision": _REVISION,
        "status": _str(choices=CATALOG_STATUSES),
        "origin": _nested("Origin"),
        "mechanism": _nested("Mechanism", optional=True),
        "updated_epoch_s": _TIME,
    }

    def _validate(self) -> None:
        for part in (self.origin, self.mechanism):
            if part is not None and part.event_id != self.event_id:
                raise MessageError(
                    f"CatalogEvent.{type(part).__name__.lower()}.event_id: expected "
                    f"{self.event_id!r}, got {part.event_id!r}"
                )


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.__name__: cls
    for cls in (Pick, Polarity, Arrival, Origin, MechanismPick, Mechanism, CatalogEvent)
}


# --------------------------------------------------------------------------- stream entries


BINARY_SAMPLES_FIELD = "samples_f32le"
"""Stream-entry field holding a Pick's window as raw little-endian float32 bytes (the JSON in
``data`` then has no ``samples``): no base64, no JSON string of kilobytes, and the reader gets
the array with :func:`numpy.frombuffer` without a copy."""


def encode(message: Message, *, binary: bool = True) -> dict[str, bytes]:
    """Redis stream entry fields for ``message``: ``{"type": b"Pick", "data": <json>}``.

    A :class:`Pick` (with ``binary``, the default) carries its window beside the JSON as
    :data:`BINARY_SAMPLES_FIELD`; ``binary=False`` writes the older all-JSON entry (base64
    samples inside ``data``), which :func:`decode` reads as well.
    """
    if not isinstance(message, Message):
        raise MessageError(f"encode: expected a message, got {type(message).__name__}")
    kind = type(message).__name__.encode()
    if binary and isinstance(message, Pick):
        return encode_pick_binary(message)
    return {"type": kind, "data": message.to_json()}


def encode_pick_binary(pick: Pick) -> dict[str, bytes]:
    """A Pick's stream entry with the samples as raw ``<f4`` bytes beside its JSON metadata."""
    meta = pick.to_dict_meta()
    return {
        "type": b"Pick",
        "data": json.dumps(meta, separators=(",", ":"), allow_nan=False).encode(),
        BINARY_SAMPLES_FIELD: np.ascontiguousarray(pick.samples, dtype="<f4").tobytes(),
    }


def _entry_fields(stream_fields: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        (k.decode("utf-8", "replace") if isinstance(k, bytes) else k): v
        for k, v in dict(stream_fields).items()
    }


def decode(stream_fields: Mapping[Any, Any]) -> Message:
    """The message in a Redis stream entry (keys/values as bytes or str).

    Reads both Pick entry forms: samples as raw bytes in :data:`BINARY_SAMPLES_FIELD`, or as
    base64 inside the JSON (older writers, ``encode(..., binary=False)``). An entry larger than
    :data:`MAX_ENTRY_BYTES` is refused before anything is parsed.
    """
    fields = _entry_fields(stream_fields)
    size = sum(len(k) + (len(v) if isinstance(v, (bytes, str)) else 0) for k, v in fields.items())
    if size > MAX_ENTRY_BYTES:
        raise MessageError(f"stream entry: {size} bytes is more than {MAX_ENTRY_BYTES}")
    kind = fields.get("type")
    if isinstance(kind, bytes):
        kind = kind.decode("utf-8", "replace")
    if kind is None:
        raise MessageError("stream entry: missing field 'type'")
    cls = MESSAGE_TYPES.get(kind)
    if cls is None:
        raise MessageError(f"stream entry.type: unknown message type {_show(kind)}")
    if "data" not in fields:
        raise MessageError(f"stream entry: missing field 'data' for {kind}")
    raw = fields.get(BINARY_SAMPLES_FIELD)
    if raw is None:
        return cls.from_json(fields["data"])
    if cls is not Pick:
        raise MessageError(f"stream entry: field {BINARY_SAMPLES_FIELD!r} on a {kind}")
    obj = _parse_json(fields["data"], kind)
    if not isinstance(obj, dict):
        raise MessageError(f"{kind}: expected a JSON object, got {_show(obj)}")
    if "samples" in obj:
        raise MessageError(f"{kind}.samples: given both in JSON and in {BINARY_SAMPLES_FIELD!r}")
    obj["samples"] = samples_from_bytes(raw, f"{kind}.samples")
    return cls.from_dict(obj)


def samples_from_bytes(raw: Any, name: str = "samples") -> np.ndarray:
    """A read-only float32 view of raw little-endian float32 bytes (no copy)."""
    if isinstance(raw, str):
        raw = raw.encode("latin-1")
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise MessageError(f"{name}: expected raw float32 bytes, got {type(raw).__name__}")
    if len(raw) % 4:
        raise MessageError(f"{name}: {len(raw)} bytes is not a whole number of float32 samples")
    arr = np.frombuffer(bytes(raw) if not isinstance(raw, bytes) else raw, dtype="<f4")
    if arr.dtype != np.float32:  # a big-endian host: native order for the model
        arr = arr.astype(np.float32)
        arr.setflags(write=False)
    return arr
