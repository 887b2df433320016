"""The stream stage with the learned picker: packets of three components in, P and S picks out.

:class:`PhaseStage` has :class:`stream.stage.StreamStage`'s interface (``process``,
``snapshot``, ``wants``, ``last_pick_epoch_s``, counters). Channels are grouped into stations
by ``NET.STA.LOC`` and the first two letters of the channel code (``HHZ``, ``HHN``, ``HHE``
or ``HH1``/``HH2``); each channel has its own :class:`~stream.buffer.ChannelBuffer` (gaps up
to ``max_fill_s`` filled, longer gaps a new segment). A station's 100 Hz grid is anchored at
its vertical's segment start; windows of :class:`~stream.picker.PickerParams` run as soon as
the vertical holds them, the horizontals too (a horizontal more than ``component_wait_s``
behind the vertical beyond its longest packet, or absent, is read as zeros: a vertical-only
station is picked on Z alone). All windows ready after a packet (or a batch of packets,
:meth:`process_many`) go through the network in one forward pass; :meth:`flush` publishes
what waits for samples when the data has ended.

Picks: a P pick carries the raw vertical window from ``window_before_s`` before to
``PickerParams.window_after_s`` (1 s) after its refined onset (``pick_index``: what the
polarity stage reads; sent as soon as that much has arrived), an S pick the same window
about its time; both carry ``phase``, ``time_epoch_s`` (PhaseNet's peak: the arrival time)
and the peak ``probability``. Their ``station_id`` is the vertical channel's id.
Each pick also carries the peak three-component vector amplitude in the half second after it
and the noise before it (:mod:`stream.amplitude`, on the components that hold those windows
when the pick ships; none when the vertical does not).

Restart: :meth:`snapshot` of a vertical channel holds the station's grid anchor, its next
and first window starts and each channel's buffer position; of a horizontal, its buffer
position. A restarted process continues the grid there; windows whose samples arrived before
the restart are skipped (the stream process resumes at a checkpoint that lags more than a
window behind, so those windows ran before it), and picks no later than the last one
published per station and phase (``last_pick_epoch_s``, keys ``<Z id>`` for P and
``<Z id>|S`` for S) plus ``min_separation_s`` are dropped. A P pick whose refined onset falls
within ``min_separation_s`` of one shipped before is dropped too
(:func:`stream.picker.separate_refined`; the recent onsets are saved in the statefile's
pick memory, with the second look's).

NaN or infinite samples are counted (:attr:`PhaseStage.nan_samples`) and read as the
channel's mean within the window.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from firstmotion.channels import component, sensor
from firstmotion.messages import Pick, window_float32
from stream.amplitude import AmplitudeParams, span_samples, vector_amplitude
from stream.buffer import NS_PER_S, AppendResult, ChannelBuffer
from stream.picker import (
    RESAMPLE_PAD_S,
    SEGMENT_GRID_NS,
    PhaseNetModel,
    PickerParams,
    StationPick,
    candidate_picks,
    first_window_start,
    is_hot,
    next_window_start,
    picks_in_window,
    raw_span,
    refine_picks,
    second_look_picks,
    separate_refined,
    settle_ready,
    station_window,
)

COMPONENT_INDEX = {"E": 0, "1": 0, "N": 1, "2": 1, "Z": 2}
S_SUFFIX = "|S"
CANDIDATE_SUFFIX = "|Pc"  # last_pick_epoch_s key of a station's last candidate P onset
AMPLITUDE = AmplitudeParams()  # the picks' three-component amplitudes (S/P ratios)
MIN_RATE_HZ = 20.0  # slower channels (LH?, VH?) are not picked

log = logging.getLogger(__name__)


def station_groups(st) -> dict[str, list]:
    """An obspy ``Stream`` as the stage groups its channels: ``{NET.STA.LOC.BI: [E, N, Z]}``
    (traces or ``None``, 1 and 2 as E and N; merged, gaps interpolated; only groups with a
    vertical), the form :func:`stream.picker.pick_traces` reads. Records read from files may
    carry Japanese codes (Hi-net's U, N, E; K-NET's UD, NS, EW), grouped by
    :func:`firstmotion.channels.sensor` (BI is then empty, or KiK-net's sensor number).
    Records of one channel in several sample types (a miniSEED and a SAC copy) are merged as
    float64; one channel at several rates (a sampling-rate change, two archives) keeps the
    rate of its longest span, with a warning."""
    st = st.copy()
    by_id: dict[str, list] = {}
    for tr in st:
        if tr.data.dtype != np.float64:
            tr.data = np.ma.asarray(tr.data, dtype=np.float64)
            if not np.ma.is_masked(tr.data):
                tr.data = np.ma.getdata(tr.data)
        by_id.setdefault(tr.id, []).append(tr)
    for tid, traces in by_id.items():
        spans: dict[float, float] = {}
        for tr in traces:
            rate = tr.stats.sampling_rate
            spans[rate] = spans.get(rate, 0.0) + tr.stats.npts / rate
        if len(spans) > 1:
            keep = max(spans, key=lambda rate: (spans[rate], rate))
            log.warning("%s comes at %s Hz: read at %g Hz (its longest span), the rest left out",
                        tid, " and ".join(f"{r:g}" for r in sorted(spans)), keep)  # fmt: skip
            for tr in traces:
                if tr.stats.sampling_rate != keep:
                    st.remove(tr)
    st.merge(fill_value="interpolate")
    groups: dict[str, list] = {}
    for tr in st:
        comp = component(tr.stats.channel)
        if comp in COMPONENT_INDEX:
            sta = f"{tr.stats.network}.{tr.stats.station}.{tr.stats.location}"
            key = f"{sta}.{sensor(tr.stats.channel)}"
            groups.setdefault(key, [None, None, None])[COMPONENT_INDEX[comp]] = tr
    return {k: v for k, v in groups.items() if v[2] is not None}


@dataclass
class _Station:
    channels: list[str | None] = field(default_factory=lambda: [None, None, None])
    anchor_ns: int | None = None
    z_segment: int = -1
    next_start: int = 0
    first_start: int = 0
    resumed: bool = False
    previous: int | None = None  # start of the window run last (None: the first to come)
    pending: list[StationPick] = field(default_factory=list)
    settling: list[StationPick] = field(default_factory=list)  # P picks awaiting samples


class PhaseStage:
    """Buffers, learned picker and pick assembly for every station (module docstring)."""

    def __init__(
        self,
        params=None,
        *,
        coordinates: Mapping | None = None,
        last_pick_epoch_s: Mapping[str, float] | None = None,
        resume_channels: Mapping[str, dict] | None = None,
        model: PhaseNetModel | None = None,
        pick_memory_state: Mapping[str, dict] | None = None,
    ) -> None:
        from stream.stage import StageParams

        self.params = params or StageParams()
        self.picker: PickerParams = self.params.picker_params
        self.coordinates = dict(coordinates or {})
        self.last_pick_epoch_s: dict[str, float] = dict(last_pick_epoch_s or {})
        # the picker's memory per vertical channel id, saved in the statefile: "recent"
        # ({phase: [epoch s of recent picks]}, what the second look compares with), "done_s"
        # (the start, epoch s, of the last window whose second look ran: a restarted stream
        # re-runs windows from its checkpoint, and their second looks ran before) and
        # "onsets" (the refined P onsets shipped lately, stream.picker.separate_refined)
        self.pick_memory: dict[str, dict] = {
            k: {
                "recent": {ph: [float(x) for x in ts] for ph, ts in v.get("recent", {}).items()},
                **({"done_s": float(v["done_s"])} if "done_s" in v else {}),
                **({"onsets": [float(x) for x in v["onsets"]]} if v.get("onsets") else {}),
            }  # fmt: skip
            for k, v in (pick_memory_state or {}).items()
        }
        self.second_look_picks = 0
        self.candidate_picks = 0
        self.resume_channels = dict(resume_channels or {})
        self.model = model or PhaseNetModel.load(
            self.picker.model, self.picker.device, threads=self.picker.threads
        )
        self.buffers: dict[str, ChannelBuffer] = {}
        # per channel, the longest packet (record) seen, seconds: a horizontal whose records
        # are that long can trail the vertical by that much and still be delivering
        self.packet_s: dict[str, float] = {}
        self.stations: dict[str, _Station] = {}
        self.suppressed = 0
        self.glitches = 0  # not used by the learned picker (kept for the stage interface)
        self.nan_samples = 0
        self.windows_run = 0
        self._ending = False  # flush(): the data ended, nothing more will arrive

    # ----------------------------------------------------------------- interface

    def wants(self, channel: str) -> bool:
        return bool(channel) and channel[-1] in COMPONENT_INDEX

    def warmup_s(self) -> float:
        """Data time a restart must re-read so that no window is skipped."""
        p = self.picker
        return p.window_s + p.stride_s + 2 * RESAMPLE_PAD_S + self.params.window_before_s + 5.0

    def process(self, packet) -> tuple[AppendResult | None, list[Pick]]:
        """Add one packet; returns what its buffer did and the picks completed by it."""
        results, picks = self.process_many([packet])
        return results[0], picks

    def process_many(self, packets) -> tuple[list[AppendResult | None], list[Pick]]:
        """Add packets (any channels), then run every window they completed in one batch."""
        results = [self._append(p) for p in packets]
        touched = {self._station_key(p.seed_id) for p, r in zip(packets, results, strict=True) if r}
        self._run_windows(touched)
        picks: list[Pick] = []
        for key in sorted(touched):
            picks += self._ship(key, packets[-1].received_wall_s if packets else 0.0)
        return results, picks

    def flush(self) -> list[Pick]:
        """The end of the data (a replay or a backfill that ran out; not a live stream, whose
        restart resumes from the statefile): the windows the vertical holds but a
        horizontal's missing end held back run with that end as zeros, and the picks waiting
        for samples ship with what the vertical holds (a P pick's onset refined and gated on
        what there is; its window shorter), as one pass over the records reads them. Without
        this the last seconds of a replay kept their picks (up to ``second_look_tail_s``
        of S picks) unpublished."""
        self._ending = True
        try:
            self._run_windows(set(self.stations))
            picks: list[Pick] = []
            for key in sorted(self.stations):
                picks += self._ship(key, 0.0)
        finally:
            self._ending = False
        return picks

    def _run_windows(self, touched: set[str]) -> None:
        while True:  # rounds: with the hot stride, a window's successor depends on its output
            jobs = []
            for key in sorted(touched):
                jobs += self._ready_windows(key)
            if not jobs:
                break
            windows = np.stack([w for _, _, w in jobs])
            self.windows_run += len(jobs)
            probs = self.model.predict(windows, self.picker.batch_size, self.picker.highpass_hz)
            for (key, start, w), prob in zip(jobs, probs, strict=True):
                self._take(key, start, prob, w)

    def snapshot(self, seed_id: str) -> dict | None:
        buf = self.buffers.get(seed_id)
        if buf is None or buf.sampling_rate_hz is None:
            return None
        snap = {
            "segment_start_ns": buf.segment_start_ns,
            "sampling_rate_hz": buf.sampling_rate_hz,
            "n_samples": buf.end_index,
            "params": self._params_key(),
            "packet_s": self.packet_s.get(seed_id, 0.0),
        }
        st = self.stations.get(self._station_key(seed_id))
        if st is not None and st.channels[2] == seed_id and st.anchor_ns is not None:
            snap["station"] = {"anchor_ns": st.anchor_ns, "next_start": st.next_start,
                               "first_start": st.first_start,
                               "previous": st.previous}  # fmt: skip
        return snap

    # ----------------------------------------------------------------- internals

    def _params_key(self) -> list:
        p = self.picker
        return [
            "phasenet",
            p.window_s,
            p.stride_s,
            p.tail_s,
            p.overlap_s,
            p.model,
            p.highpass_hz,
            p.p_min_snr,
            p.s_min_snr,
            p.second_look_s,
            p.hot_stride_s,
            p.hot_p,
            p.hot_pick_p,
            *((p.candidate_p, p.candidate_stalta, p.candidate_min_snr) if p.candidates else ()),
            *((p.p_max_hv,) if p.p_max_hv else ()),
        ]

    @staticmethod
    def _station_key(seed_id: str) -> str:
        return seed_id[:-1]  # NET.STA.LOC.BI

    def _append(self, packet) -> AppendResult | None:
        if not self.wants(packet.channel) or packet.sampling_rate_hz < MIN_RATE_HZ:
            return None
        sid = packet.seed_id
        key = self._station_key(sid)
        st = self.stations.setdefault(key, _Station())
        comp = COMPONENT_INDEX[packet.channel[-1]]
        st.channels[comp] = sid
        buf = self.buffers.get(sid)
        if buf is None:
            buf = ChannelBuffer(self.params.buffer_s, max_fill_s=self.params.max_fill_s)
            self.buffers[sid] = buf
            snap = self.resume_channels.pop(sid, None)
            if (
                snap is not None
                and snap.get("params") == self._params_key()
                and snap["sampling_rate_hz"] == packet.sampling_rate_hz
            ):
                buf.resume(int(snap["segment_start_ns"]), float(snap["sampling_rate_hz"]),
                           int(snap["n_samples"]))  # fmt: skip
                self.packet_s[sid] = float(snap.get("packet_s", 0.0))
                if comp == 2 and "station" in snap:
                    s = snap["station"]
                    st.anchor_ns, st.z_segment = int(s["anchor_ns"]), buf.segment
                    st.next_start, st.first_start = int(s["next_start"]), int(s["first_start"])
                    st.previous = None if s.get("previous") is None else int(s["previous"])
                    st.resumed = True
        samples = np.asarray(packet.samples, dtype=np.float64)
        duration_s = samples.size / packet.sampling_rate_hz
        if duration_s > self.packet_s.get(sid, 0.0):
            self.packet_s[sid] = duration_s
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        self.nan_samples += bad
        result = buf.append(packet.start_ns, packet.sampling_rate_hz, samples)
        if result.outcome == "rewind":
            self.last_pick_epoch_s.pop(sid, None)
            self.last_pick_epoch_s.pop(sid + S_SUFFIX, None)
            self.last_pick_epoch_s.pop(sid + CANDIDATE_SUFFIX, None)
            self.pick_memory.get(sid, {}).pop("done_s", None)
            self.pick_memory.get(sid, {}).pop("onsets", None)
        if comp == 2 and buf.segment != st.z_segment:  # a new vertical segment: a new grid
            st.z_segment = buf.segment
            st.anchor_ns = buf.segment_start_ns
            start = first_window_start(buf, st.anchor_ns, self.picker.stride_n)
            st.first_start = st.next_start = start
            st.previous = None
            st.pending = []
            st.settling = []
            st.resumed = False
        return result

    def _views(self, st: _Station) -> list:
        return [self.buffers.get(c) if c else None for c in st.channels]

    def _ready_windows(self, key: str) -> list[tuple[str, int, np.ndarray]]:
        st = self.stations[key]
        if st.anchor_ns is None or st.channels[2] is None or st.next_start < 0:
            return []
        views = self._views(st)
        z = views[2]
        n = self.picker.window_n
        out = []
        if st.resumed:  # skip the windows whose samples came before the restart
            first_held = first_window_start(z, st.anchor_ns, self.picker.stride_n)
            if first_held > st.next_start:
                st.next_start, st.previous = first_held, None
            st.resumed = False
        while raw_span(z, st.anchor_ns, st.next_start, n) is not None:
            if not self._horizontals_ready(views, st):
                break
            w = station_window(views, st.anchor_ns, st.next_start, n, self.picker.vertical_only)
            if w is None:
                break
            out.append((key, st.next_start, w))
            if self.picker.hot_stride_n:  # the next start follows from this window's output
                st.next_start = -1
                break
            st.next_start += self.picker.stride_n
        return out

    def _horizontals_ready(self, views, st: _Station, start: int | None = None) -> bool:
        """Each horizontal holds the window (``start``, default the next first-pass one),
        lags the vertical by more than ``component_wait_s`` plus its longest packet, begins
        after the window starts, or is absent (the last three are read as zeros); otherwise
        the window waits for it. A channel arrives in whole records cut at other times than
        the vertical's, so one delivering records of 17 s (512 bytes at 40 Hz) trails it by up
        to 17 s while it keeps up: the lag counts only beyond that, or the windows would
        depend on where the records were cut."""
        if self._ending:
            return True
        start = st.next_start if start is None else start
        z_end = views[2].end_time_ns()
        window_start_ns = st.anchor_ns + start * SEGMENT_GRID_NS
        for sid, view in zip(st.channels[:2], views[:2], strict=True):
            if view is None or view.sampling_rate_hz is None or view.end_index == 0:
                continue
            if raw_span(view, st.anchor_ns, start, self.picker.window_n) is not None:
                continue
            allowed_s = self.picker.component_wait_s + self.packet_s.get(sid, 0.0)
            if z_end - view.end_time_ns() > allowed_s * NS_PER_S:
                continue
            if view.time_ns(view.start_index) > window_start_ns:
                continue
            return False
        return True

    def note_published(self, pick: Pick) -> None:
        """A pick published before a restart (read back from Redis): its repeat from the data
        read again is suppressed, as if the statefile had been saved after it."""
        suffix = CANDIDATE_SUFFIX if pick.candidate else S_SUFFIX if pick.phase == "S" else ""
        key = pick.station_id + suffix
        self.last_pick_epoch_s[key] = max(self.last_pick_epoch_s.get(key, -math.inf),
                                          pick.time_epoch_s)  # fmt: skip
        if not pick.candidate:  # and the second look's memory of the picks it need not add
            look = self.pick_memory.setdefault(pick.station_id, {"recent": {}})
            times = look.setdefault("recent", {}).setdefault(pick.phase, [])
            if pick.time_epoch_s not in times:
                times.append(pick.time_epoch_s)

    def _take(self, key: str, start: int, prob: np.ndarray, window: np.ndarray) -> None:
        st = self.stations[key]
        zid = st.channels[2]
        last = {"P": self.last_pick_epoch_s.get(zid, -np.inf),
                "S": self.last_pick_epoch_s.get(zid + S_SUFFIX, -np.inf),
                "Pc": self.last_pick_epoch_s.get(zid + CANDIDATE_SUFFIX, -np.inf)}  # fmt: skip
        before = dict(last)
        found = picks_in_window(
            prob, start, st.first_start, st.anchor_ns, self.picker, last, st.previous, window
        )
        st.settling += found
        if self.picker.candidates and start % self.picker.stride_n == 0:
            cands = candidate_picks(prob, window[2], start, st.first_start, st.anchor_ns,
                                    self.picker, last, found, window)  # fmt: skip
            self.candidate_picks += len(cands)
            st.settling += cands
        st.previous = start
        if self.picker.hot_stride_n:
            st.next_start = next_window_start(start, is_hot(prob, self.picker), self.picker)
        for phase, k in (("P", zid), ("S", zid + S_SUFFIX), ("Pc", zid + CANDIDATE_SUFFIX)):
            if last[phase] != before[phase]:
                self.last_pick_epoch_s[k] = last[phase]
        if self.picker.second_look_s > 0:
            look = self.pick_memory.setdefault(zid, {"recent": {}})
            for sp in found:
                look["recent"].setdefault(sp.phase, []).append(sp.time_epoch_s)
            if start % self.picker.stride_n:  # a hot-stride window: no second look
                return
            window_s = (st.anchor_ns + start * SEGMENT_GRID_NS) / NS_PER_S
            if window_s <= look.get("done_s", -np.inf):  # it ran before a restart
                return
            look["done_s"] = window_s
            again = second_look_picks(prob, start, st.anchor_ns, self.picker, look["recent"],
                                      window)  # fmt: skip
            self.second_look_picks += len(again)
            st.settling += again
            # picks before this window's start no longer matter to a second look
            for phase, times in look["recent"].items():
                look["recent"][phase] = [
                    t for t in times if t >= window_s - self.picker.min_separation_s
                ]

    def _ship(self, key: str, now_s: float) -> list[Pick]:
        st = self.stations[key]
        if st.settling:  # P onsets refined and gated once the vertical holds what they read
            zid = st.channels[2]
            z = self.buffers[zid]
            ready = [sp for sp in st.settling if self._ending or settle_ready(sp, z)]
            if ready:
                st.settling = [sp for sp in st.settling if sp not in ready]
                onsets = self.pick_memory.setdefault(zid, {"recent": {}}).setdefault("onsets", [])
                refined = refine_picks(ready, self.buffers[zid], self.picker)
                st.pending += separate_refined(refined, onsets, self.picker)
        if not st.pending:
            return []
        zid = st.channels[2]
        z = self.buffers[zid]
        rate = float(z.sampling_rate_hz)
        out = []
        keep = []
        for sp in st.pending:
            index = (sp.onset_s * NS_PER_S - z.segment_start_ns) / NS_PER_S * rate
            nearest = int(round(index))
            stop = nearest + int(math.ceil(self.picker.window_after_s * rate)) + 1
            if stop > z.end_index:
                if not self._ending or nearest >= z.end_index:
                    keep.append(sp)
                    continue
                stop = z.end_index
            start = max(z.start_index, nearest - int(math.ceil(self.params.window_before_s * rate)))
            if nearest < start:  # the pick is older than the buffer: drop
                continue
            vec = self._vector_amplitude(st, sp.onset_s)
            out.append(self._pick(zid, z, sp, start, z.get(start, stop), nearest - start, vec))
        st.pending = keep
        return out

    def _vector_amplitude(self, st: _Station, time_epoch_s: float) -> tuple:
        """(peak vector amplitude, noise) of a pick (:func:`stream.amplitude.vector_amplitude`)
        on the vertical and the horizontals whose buffers hold its windows; (None, None) when
        the vertical does not."""
        z = self.buffers[st.channels[2]]
        rate = float(z.sampling_rate_hz)
        before, after = span_samples(AMPLITUDE, rate)
        rows = []
        for view in [z] + [v for v in self._views(st)[:2] if v is not None]:
            if view.sampling_rate_hz != rate:
                continue
            i = int(round((time_epoch_s * NS_PER_S - view.segment_start_ns) / NS_PER_S * rate))
            if i - before < view.start_index or i + after > view.end_index:
                if view is z:
                    return None, None
                continue
            rows.append(view.get(i - before, i + after))
        return vector_amplitude(np.stack(rows), rate, before, AMPLITUDE)

    def _pick(
        self, zid: str, z: ChannelBuffer, sp: StationPick, start: int, samples, index, vec=None
    ):
        lat, lon, elev = self.coordinates.get(
            zid, self.coordinates.get(".".join(zid.split(".")[:2]), (None,) * 3)
        )
        rate = float(z.sampling_rate_hz)
        snr, amplitude = _snr_amplitude(samples, index, rate)
        vec_amp, vec_noise = vec if vec is not None else (None, None)
        return Pick(
            pick_id=f"{zid}:{'Pc' if sp.candidate else sp.phase}:{sp.time_epoch_s:.3f}",
            station_id=zid,
            phase=sp.phase,
            time_epoch_s=sp.time_epoch_s,
            sampling_rate_hz=rate,
            start_time_epoch_s=z.time_ns(start) / NS_PER_S,
            pick_index=index,
            samples=window_float32(samples),
            snr=snr,
            amplitude=amplitude,
            probability=min(max(float(sp.probability), 0.0), 1.0),
            latitude_deg=lat,
            longitude_deg=lon,
            elevation_m=elev,
            method="phasenet",
            created_epoch_s=time.time(),
            candidate=bool(sp.candidate),
            vector_amplitude=vec_amp,
            vector_noise=vec_noise,
        )


def _snr_amplitude(x: np.ndarray, index: int, rate: float) -> tuple[float, float]:
    """RMS of the first differences over 1 s after ``index`` over that of the 2 s before
    (microseism and drift do not count), and the peak demeaned amplitude in the second after."""
    x = np.asarray(x, dtype=np.float64)
    x = np.where(np.isfinite(x), x, np.nanmean(x[np.isfinite(x)]) if np.isfinite(x).any() else 0)
    after = x[index : index + max(2, int(rate))]
    before = x[max(0, index - int(2 * rate)) : index]
    amplitude = float(np.max(np.abs(after - np.mean(before if before.size else after))))
    if before.size < 3 or after.size < 3:
        return 0.0, amplitude
    noise = float(np.sqrt(np.mean(np.diff(before) ** 2)))
    sig = float(np.sqrt(np.mean(np.diff(after) ** 2)))
    snr = sig / noise if noise > 0 else 1e6
    return float(min(snr, 1e6)), amplitude
