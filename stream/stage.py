"""The stream stage's core, free of network I/O: packets in, :class:`Pick` messages out.

:class:`StreamStage` keeps, per detected channel, a :class:`~stream.buffer.ChannelBuffer` of
raw counts and a :class:`~stream.detect.ChannelDetector` on the same absolute sample index.
For every packet it appends to the buffer (overlaps trimmed, short gaps filled, a new segment
and a new detector on a long gap or a rate change), feeds the new samples to the detector,
and turns each detection into a :class:`~firstmotion.messages.Pick` once the buffer holds
``window_after_s`` of data after it: a raw-count window from ``window_before_s`` before the
pick (less at the start of a segment) to ``window_after_s`` after it, ``pick_index`` the
sample nearest the pick, ``time_epoch_s`` with sub-sample precision.

One-sample glitches (telemetry bit errors) are repaired before the detector's band-pass
(:class:`firstmotion.glitches.GlitchStream`, from a segment's ninth second on): one left in
would raise the STA/LTA's long-term average, blinding the channel for a minute. Detections
whose "arrival" is still a single sample (see :func:`~stream.detect.single_sample_glitch` on
the raw counts) are dropped. The raw-count windows of the picks are the data as received (the
polarity reader repairs its own noise).

A restarted process continues each channel from a :meth:`StreamStage.snapshot` (filter and
STA/LTA state at a checkpoint packet, see :mod:`stream.ingest`), so the data re-sent after the
checkpoint are detected exactly as the first time. Duplicates are suppressed across restarts:
a pick no later than ``dead_time_s`` after the last pick published on its channel
(:attr:`StreamStage.last_pick_epoch_s`, kept in the statefile by :mod:`stream.ingest`) is
dropped, so data received twice (a resume from an earlier checkpoint) never yields the same
pick twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import astuple, dataclass, field

import numpy as np

from firstmotion.messages import Pick, window_float32
from stream.buffer import NS_PER_S, AppendResult, ChannelBuffer
from stream.detect import ChannelDetector, Detection, DetectParams, single_sample_glitch
from stream.picker import PickerParams

PICKERS = ("phasenet", "stalta")

Coordinates = tuple[float, float, float]  # latitude_deg, longitude_deg, elevation_m


@dataclass(frozen=True)
class Packet:
    """One data packet (a miniSEED record's samples) of one channel."""

    network: str
    station: str
    location: str
    channel: str
    start_ns: int
    sampling_rate_hz: float
    samples: np.ndarray
    sequence: int = -1
    received_wall_s: float = 0.0

    @property
    def seed_id(self) -> str:
        """``NET.STA.LOC.CHA``."""
        return f"{self.network}.{self.station}.{self.location}.{self.channel}"

    @property
    def end_ns(self) -> int:
        """Epoch ns one sample period after the last sample."""
        return self.start_ns + int(round(len(self.samples) * NS_PER_S / self.sampling_rate_hz))

    @classmethod
    def from_trace(cls, trace, sequence: int = -1, received_wall_s: float = 0.0) -> Packet:
        """From an obspy ``Trace`` (e.g. ``SLPacket.get_trace()``)."""
        s = trace.stats
        return cls(
            s.network, s.station, s.location, s.channel, int(s.starttime.ns),
            float(s.sampling_rate), np.asarray(trace.data), sequence, received_wall_s,
        )  # fmt: skip


@dataclass(frozen=True)
class StageParams:
    """Settings of :class:`StreamStage` (seconds)."""

    detect: DetectParams = field(default_factory=DetectParams)
    window_before_s: float = 10.0
    window_after_s: float = 4.0
    buffer_s: float = 120.0
    max_fill_s: float = 1.0
    components: str = "Z"  # last letter of the channels to detect on (STA/LTA)
    picker: str = "phasenet"  # make_stage: "phasenet" (PhaseStage) or "stalta" (StreamStage)
    picker_params: PickerParams = field(default_factory=PickerParams)

    def __post_init__(self) -> None:
        for name in ("window_before_s", "window_after_s", "buffer_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)!r}")
        if not self.max_fill_s >= 0:
            raise ValueError(f"max_fill_s: expected >= 0, got {self.max_fill_s!r}")
        need = self.window_before_s + self.window_after_s + self.detect.lookahead_s() + 5.0
        if self.buffer_s < need:
            raise ValueError(
                f"buffer_s: expected >= {need:g} s for the windows, got {self.buffer_s}"
            )
        if self.picker not in PICKERS:
            raise ValueError(f"detect.picker: expected one of {list(PICKERS)}, got {self.picker!r}")
        if self.picker == "phasenet" and self.buffer_s < self.picker_params.window_s + 10.0:
            raise ValueError(f"buffer_s: expected >= window_s + 10 s, got {self.buffer_s}")
        if not self.components:
            raise ValueError("components: expected channel component letters such as 'Z'")


@dataclass
class _Channel:
    buffer: ChannelBuffer
    detector: ChannelDetector | None = None
    segment: int = 0
    pending: list[Detection] = field(default_factory=list)


def make_stage(params: StageParams | None = None, **kwargs):
    """The stage of ``params.picker``: :class:`stream.phase_stage.PhaseStage` (the learned
    picker, three components) or :class:`StreamStage` (STA/LTA + AIC on verticals); same
    interface, same keyword arguments."""
    params = params or StageParams()
    if params.picker == "phasenet":
        from stream.phase_stage import PhaseStage

        return PhaseStage(params, **kwargs)
    kwargs.pop("model", None)
    kwargs.pop("pick_memory_state", None)
    return StreamStage(params, **kwargs)


class StreamStage:
    """Buffers, STA/LTA detectors and pick assembly for every channel (see the module
    docstring); :func:`make_stage` chooses between it and the learned picker's stage."""

    def __init__(
        self,
        params: StageParams | None = None,
        *,
        coordinates: Mapping[str, Coordinates] | None = None,
        last_pick_epoch_s: Mapping[str, float] | None = None,
        resume_channels: Mapping[str, dict] | None = None,
    ) -> None:
        self.params = params or StageParams()
        self.resume_channels = dict(resume_channels or {})
        self.coordinates = dict(coordinates or {})
        self.last_pick_epoch_s: dict[str, float] = dict(last_pick_epoch_s or {})
        self.channels: dict[str, _Channel] = {}
        self.suppressed = 0  # picks dropped as repeats of a published pick
        self.glitches = 0  # detections dropped as one-sample glitches
        self.glitches_repaired = 0  # one-sample glitches repaired before the detector

    def wants(self, channel: str) -> bool:
        """Whether channel code ``channel`` is detected on."""
        return bool(channel) and channel[-1] in self.params.components

    def process(self, packet: Packet) -> tuple[AppendResult | None, list[Pick]]:
        """Add one packet; returns what the buffer did (``None``: channel not detected on)
        and the picks completed by it."""
        if not self.wants(packet.channel):
            return None, []
        key = packet.seed_id
        ch = self.channels.get(key)
        if ch is None:
            ch = _Channel(ChannelBuffer(self.params.buffer_s, max_fill_s=self.params.max_fill_s))
            self.channels[key] = ch
            snap = self.resume_channels.pop(key, None)
            if (
                snap is not None
                and snap["sampling_rate_hz"] == packet.sampling_rate_hz
                and snap.get("params") == self._params_key()
            ):  # same rate, same detector settings: continue where the last process was
                rate = float(snap["sampling_rate_hz"])
                det = snap["detector"]
                ch.buffer.resume(int(snap["segment_start_ns"]), rate, int(det["n_samples"]))
                ch.segment = ch.buffer.segment
                ch.detector = ChannelDetector.restore(self.params.detect, rate, det)
        buf = ch.buffer
        result = buf.append(packet.start_ns, packet.sampling_rate_hz, packet.samples)
        if result.outcome == "rewind":  # the clock went back: earlier pick times are new picks
            self.last_pick_epoch_s.pop(key, None)
        if buf.segment != ch.segment:  # a new segment: a new detector, pending picks lost
            ch.segment = buf.segment
            ch.pending = []
            ch.detector = ChannelDetector(
                self.params.detect, float(buf.sampling_rate_hz), history_s=30.0
            )
        if result.n_added:
            assert ch.detector is not None
            if result.first_index < buf.start_index:
                raise ValueError(
                    f"{key}: a packet of {result.n_added} samples is longer than the "
                    f"{self.params.buffer_s} s buffer"
                )
            before = ch.detector.glitches_repaired
            ch.pending += ch.detector.feed(buf.get(result.first_index, buf.end_index))
            self.glitches_repaired += ch.detector.glitches_repaired - before
        return result, self._ready(key, ch, packet.received_wall_s)

    def note_published(self, pick: Pick) -> None:
        """A pick published before a restart (read back from Redis): its repeat from the data
        read again is suppressed, as if the statefile had been saved after it."""
        key = pick.station_id
        self.last_pick_epoch_s[key] = max(self.last_pick_epoch_s.get(key, -math.inf),
                                          pick.time_epoch_s)  # fmt: skip

    def _params_key(self) -> list:
        """The detector settings a snapshot was taken under (JSON-ready)."""
        return [list(x) if isinstance(x, tuple) else x for x in astuple(self.params.detect)]

    def snapshot(self, seed_id: str) -> dict | None:
        """JSON-ready state of a channel (segment origin and detector state, no samples) from
        which a restarted process continues: ``StreamStage(resume_channels={id: snap})``."""
        ch = self.channels.get(seed_id)
        if ch is None or ch.detector is None or ch.buffer.sampling_rate_hz is None:
            return None
        return {
            "segment_start_ns": ch.buffer.segment_start_ns,
            "sampling_rate_hz": ch.buffer.sampling_rate_hz,
            "detector": ch.detector.snapshot(),
            "params": self._params_key(),
        }

    def _ready(self, key: str, ch: _Channel, now_s: float) -> list[Pick]:
        buf, rate = ch.buffer, float(ch.buffer.sampling_rate_hz or 0.0)
        after_n = int(math.ceil(self.params.window_after_s * rate))
        before_n = int(math.ceil(self.params.window_before_s * rate))
        out: list[Pick] = []
        while ch.pending:
            det = ch.pending[0]
            nearest = int(round(det.onset_index))
            stop = nearest + after_n + 1
            if stop > buf.end_index:
                break
            ch.pending.pop(0)
            time_s = buf.time_ns(det.onset_index) / NS_PER_S
            last = self.last_pick_epoch_s.get(key)
            if last is not None and time_s <= last + self.params.detect.dead_time_s:
                self.suppressed += 1
                continue
            if self._glitch(buf, det, rate):
                self.glitches += 1
                continue
            start = max(buf.start_index, nearest - before_n)
            out.append(self._pick(key, det, time_s, start, buf.get(start, stop), nearest - start))
            self.last_pick_epoch_s[key] = time_s
        return out

    def _glitch(self, buf: ChannelBuffer, det: Detection, rate: float) -> bool:
        noise_n = int(round(self.params.detect.snr_noise_s * rate))
        signal_n = int(round(self.params.detect.snr_signal_s * rate))
        lo = int(round(det.onset_index)) - noise_n - 1
        hi = int(round(det.onset_index)) + signal_n + 2
        if lo < buf.start_index or hi > buf.end_index:
            return False
        return single_sample_glitch(buf.get(lo, hi), det.onset_index - lo, noise_n, signal_n)

    def _pick(
        self, key: str, det: Detection, time_s: float, start: int, samples: np.ndarray, index: int
    ) -> Pick:
        buf = self.channels[key].buffer
        lat, lon, elev = self.coordinates.get(key, self.coordinates.get(_station(key), (None,) * 3))
        return Pick(
            pick_id=f"{key}:{time_s:.3f}",
            station_id=key,
            time_epoch_s=time_s,
            sampling_rate_hz=float(buf.sampling_rate_hz),  # type: ignore[arg-type]
            start_time_epoch_s=buf.time_ns(start) / NS_PER_S,
            pick_index=index,
            samples=window_float32(samples),
            snr=det.snr,
            amplitude=det.amplitude,
            latitude_deg=lat,
            longitude_deg=lon,
            elevation_m=elev,
            method=f"stalta+{det.method}",
            created_epoch_s=time.time(),
        )


def _station(seed_id: str) -> str:
    """``NET.STA`` of ``NET.STA.LOC.CHA``."""
    return ".".join(seed_id.split(".")[:2])


def coordinates_from_inventory(inventory) -> dict[str, Coordinates]:
    """``{NET.STA.LOC.CHA and NET.STA: (lat, lon, elevation_m)}`` from a StationXML path or
    an obspy Inventory (channel coordinates where given, else the station's)."""
    from firstmotion.inventory import read_sites

    out: dict[str, Coordinates] = {}
    for s in read_sites(inventory):
        key = s.station_id if s.channel is None else f"{s.station_id}.{s.location}.{s.channel}"
        out[key] = (s.latitude, s.longitude, s.elevation_m)
    return out
