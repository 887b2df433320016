"""Waveform archives: P windows for many picks, reading each file (or SDS station-day) once.

Two layouts:

* files, folders (searched recursively) or globs of anything :func:`obspy.read` reads
  (miniSEED, SAC, ...): every file is read once (miniSEED: vertical channels only, selected
  inside the decoder) and the windows of all requested picks it covers are cut from it;
* an SDS archive root (``YEAR/NET/STA/CHA.D/NET.STA.LOC.CHA.D.YEAR.DAY``, read through
  :class:`obspy.clients.filesystem.sds.Client`): one read per station and day, spanning all of
  that day's windows.

Readers run in a thread pool (obspy's miniSEED decoder is C code called through ctypes, which
releases the GIL). A pick is matched to a vertical trace (channel code ending in ``Z``, or
Hi-net's ``U`` and K-NET's ``UD``: :func:`firstmotion.channels.is_vertical`) of its station:
network, location and channel must agree where the pick gives them; HYPO71's 4-letter codes
match a longer archive code that equals them with zeros removed (``T107`` -> ``T0107``). Among
several matching channels the pick's own channel wins, then its band code (and instrument code;
Nordic's two-letter components give the band code alone), then a seismometer over an
accelerometer (instrument code N: on the small earthquakes first motions are read for, its
self-noise hides what a velocity sensor records), then the higher sampling rate. Windows run
from ``before_s`` before the pick to ``after_s`` after it; samples missing inside a window are
NaN (the polarity preprocessing fills gaps in the context and flags gaps inside the model
window).

Problems never stop the run; they come back counted in :class:`ArchiveReport`: files that are
not seismic data (with obspy's message), and picks without a waveform.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firstmotion.channels import is_vertical
from firstmotion.errors import InputError
from firstmotion.messages import window_float32

log = logging.getLogger(__name__)

WINDOW_BEFORE_S = 5.0  # the model needs ~3.6 s of context before the pick at any rate
WINDOW_AFTER_S = 2.0
MIN_RATE_HZ = 40.0
_SDS_YEAR = re.compile(r"^\d{4}$")


@dataclass(frozen=True)
class Request:
    """A window wanted: key (caller's), station codes as given ('' = any), pick time."""

    key: str
    network: str
    station: str
    location: str
    channel: str
    time_epoch_s: float


@dataclass
class Window:
    """A cut window: ``samples`` float32 (NaN in gaps; counts of a large DC offset less a
    whole number, :func:`firstmotion.messages.window_float32`), first sample at
    ``start_epoch_s``."""

    key: str
    station_id: str
    sampling_rate_hz: float
    start_epoch_s: float
    samples: np.ndarray
    pick_index: int  # the sample nearest the pick
    pick_time_epoch_s: float | None = None  # the pick's own time (not on the sample grid)

    def around_pick(self) -> Window:
        """The window cut to the unbroken record that holds its pick (no NaN): the samples
        before a gap or the record's start are no noise to read the pick against, and a
        reader given them flags the window instead of reading it."""
        bad = np.flatnonzero(~np.isfinite(self.samples))
        k = self.pick_index
        lo = int(bad[bad < k].max()) + 1 if (bad < k).any() else 0
        hi = int(bad[bad > k].min()) if (bad > k).any() else self.samples.size
        if lo == 0 and hi == self.samples.size:
            return self
        return Window(self.key, self.station_id, self.sampling_rate_hz,
                      self.start_epoch_s + lo / self.sampling_rate_hz, self.samples[lo:hi],
                      k - lo, self.pick_time_epoch_s)  # fmt: skip


@dataclass
class ArchiveReport:
    """What could not be used, with messages a person can act on."""

    files_read: int = 0
    bad_files: dict[str, str] = field(default_factory=dict)  # path -> obspy's message
    missing: dict[str, str] = field(default_factory=dict)  # request key -> why

    def merge(self, other: ArchiveReport) -> None:
        self.files_read += other.files_read
        self.bad_files.update(other.bad_files)
        self.missing.update(other.missing)


def squeezed(code: str) -> str:
    """A station code without its zeros, upper case: HYPO71's 4 letters against a longer code."""
    return code.upper().replace("0", "")


def same_station(given: str, code: str) -> bool:
    """Whether a pick's station code ``given`` names the archive's station ``code``: equal,
    or a shorter code equal to it with zeros removed (HYPO71's ``T107`` is ``T0107``)."""
    return given == code or (len(given) < len(code) and squeezed(given) == squeezed(code))


def same_site(network: str, station: str, location: str, net: str, sta: str, loc: str) -> bool:
    """Whether a pick's network, station and location codes ('' where not given) name the
    archive's ``net``, ``sta``, ``loc`` (:func:`same_station` for the station; a record
    without a network or location code, as SAC files often are, may be any: a record with
    the pick's own codes is preferred, :func:`site_codes_given`)."""
    return (
        same_station(station, sta)
        and (network in ("", net) or net == "")
        and (location in ("", loc) or loc == "")
    )


def site_codes_given(network: str, location: str, net: str, loc: str) -> int:
    """How many of the network and location codes a pick gives ('' is not given) a record
    carries."""
    return int(bool(network) and network == net) + int(bool(location) and location == loc)


def _match_score(req: Request, net: str, sta: str, loc: str, cha: str, rate: float):
    """A sortable score (higher is better) if the trace can serve the request, else None."""
    if not is_vertical(cha) or rate < MIN_RATE_HZ:
        return None
    if not same_site(req.network, req.station, req.location, net, sta, loc):
        return None
    if req.channel and len(req.channel) == 3 and is_vertical(req.channel):
        if req.channel != cha:
            return None
    exact = int(req.station == sta)
    codes = site_codes_given(req.network, req.location, net, loc)
    if len(req.channel) == 2:  # Nordic's component: band code and orientation ("HZ", "SZ")
        band = int(cha[:1] == req.channel[:1])
    else:
        band = int(bool(req.channel) and cha[:2] == req.channel[:2])
    seismometer = int(cha[1:2].upper() != "N")  # N: an accelerometer, noisier on small events
    return (exact, codes, band, seismometer, rate)


def _unfit(req: Request, tid: str, rate: float) -> str:
    """Why the vertical ``tid`` of a pick's station cannot serve it, in words."""
    if rate < MIN_RATE_HZ:
        return f"{tid} is sampled at {rate:g} Hz, below the reader's {MIN_RATE_HZ:g} Hz"
    net, _sta, loc, cha = tid.split(".")
    if req.network not in ("", net):
        return f"{tid} is of network {net}, the pick's is {req.network}"
    if req.location not in ("", loc):
        return f"{tid} has location code {loc!r}, the pick's is {req.location!r}"
    return f"{tid} is not the pick's channel {req.channel}"


def is_sds_root(path: str | Path) -> bool:
    """A folder whose children include year folders holding NET/STA/CHA.D folders."""
    p = Path(path)
    if not p.is_dir():
        return False
    for year in p.iterdir():
        if year.is_dir() and _SDS_YEAR.match(year.name):
            for net in year.iterdir():
                for sta in net.iterdir() if net.is_dir() else ():
                    if sta.is_dir() and any(c.name.endswith(".D") for c in sta.iterdir()):
                        return True
    return False


def named_paths(paths: Iterable[str]) -> list[Path]:
    """What ``paths`` name (files and folders, globs expanded), not yet walked; an
    :class:`InputError` for a name that matches nothing."""
    out = []
    for text in paths:
        matches = glob.glob(text, recursive=True) if any(c in text for c in "*?[") else [text]
        if not matches:
            raise InputError(f"--waveforms: nothing matches {text!r}")
        for m in matches:
            if not Path(m).exists():
                raise InputError(f"--waveforms: {text!r} does not exist")
            out.append(Path(m))
    return out


def expand_paths(paths: Iterable[str]) -> list[Path]:
    """Files named by ``paths`` (files, folders searched recursively, globs), sorted."""
    out: set[Path] = set()
    for p in named_paths(paths):
        if p.is_dir():
            for root, _dirs, files in os.walk(p):
                out.update(Path(root) / f for f in files if not f.startswith("."))
        else:
            out.add(p)
    return sorted(out)


class _Collector:
    """Pieces of each request's window from any number of traces; the best trace that covers
    the pick wins (:func:`_match_score`, then the lowest location code: ``''`` before ``00``
    before ``10``; a tie is logged)."""

    def __init__(self, requests: list[Request], before_s: float, after_s: float) -> None:
        self.before_s, self.after_s = before_s, after_s
        self.by_station: dict[str, list[Request]] = defaultdict(list)
        for r in requests:
            self.by_station[squeezed(r.station)].append(r)
        # key -> (trace id, rate) -> (score, [(start_s, samples)]): a channel recorded at two
        # rates (a sampling-rate change, two archives) keeps each rate's pieces apart
        self.pieces: dict[str, dict[tuple[str, float], tuple]] = defaultdict(dict)
        self.unfit: dict[str, set[str]] = defaultdict(set)  # key -> verticals that did not serve

    def feed(self, stream) -> None:
        for tr in stream:
            s = tr.stats
            cands = self.by_station.get(squeezed(s.station))
            if not cands:
                continue
            t0, t1 = float(s.starttime.timestamp), float(s.endtime.timestamp)
            rate = float(s.sampling_rate)
            tid = f"{s.network}.{s.station}.{s.location}.{s.channel}"
            data = None
            for r in cands:
                a, b = r.time_epoch_s - self.before_s, r.time_epoch_s + self.after_s
                if b < t0 or a > t1:
                    continue
                score = _match_score(r, s.network, s.station, s.location, s.channel, rate)
                if score is None:
                    if is_vertical(s.channel):  # say why the station's vertical did not serve
                        self.unfit[r.key].add(_unfit(r, tid, rate))
                    continue
                if data is None:
                    data = np.ma.filled(np.ma.asarray(tr.data, dtype=np.float64), np.nan)
                i0 = max(0, int(np.floor((a - t0) * rate)))
                i1 = min(data.size, int(np.ceil((b - t0) * rate)) + 1)
                if i1 <= i0:
                    continue
                entry = self.pieces[r.key].setdefault((tid, rate), (score, []))
                entry[1].append((t0 + i0 / rate, data[i0:i1].copy()))

    def windows(self, requests: list[Request]) -> tuple[list[Window], dict[str, str]]:
        out, missing, ties = [], {}, []
        for r in requests:
            by_trace = self.pieces.get(r.key)
            if not by_trace:
                unfit = sorted(self.unfit.get(r.key, ()))
                missing[r.key] = (
                    "no waveform (no vertical channel of this station covers the pick)"
                    if not unfit
                    else f"no vertical fits the pick: {'; '.join(unfit[:3])}"
                )
                continue
            ranked = sorted(
                by_trace.items(),
                key=lambda kv: (tuple(-v for v in kv[1][0]), kv[0][0].split(".")[2], kv[0]),
            )
            found = (
                (self._window(r, tid, rate, parts), score) for (tid, rate), (score, parts) in ranked
            )
            window, score = next(((w, sc) for w, sc in found if w is not None), (None, None))
            if window is None:
                missing[r.key] = "no waveform at the pick time (gap)"
                continue
            tid = window.station_id
            others = sorted({t for (t, _), (sc, _) in ranked if sc == score and t != tid})
            if others:
                ties.append(f"{tid} over {', '.join(others)}")
            out.append(window)
        if ties:
            log.warning("%d pick(s) match several channels equally (no location or channel code "
                        "in the pick to tell them apart), took the lowest location code: %s",
                        len(ties), "; ".join(ties[:5]))  # fmt: skip
        return out, missing

    def _window(self, r: Request, tid: str, rate: float, parts: list) -> Window | None:
        """The window of ``r`` from one trace's pieces, or None where it has no data at the
        pick."""
        start = r.time_epoch_s - self.before_s
        n = int(round((self.before_s + self.after_s) * rate))
        buf = np.full(n, np.nan)
        # align on the trace's own sample grid nearest the wanted start
        t_first = min(p[0] for p in parts)
        k0 = int(np.ceil((start - t_first) * rate - 1e-6))
        grid0 = t_first + k0 * rate**-1
        for t, x in parts:
            off = int(round((t - grid0) * rate))
            lo, hi = max(0, off), min(n, off + x.size)
            if hi > lo:
                buf[lo:hi] = x[lo - off : hi - off]
        k = int(round((r.time_epoch_s - grid0) * rate))
        if not 0 <= k < n or not np.isfinite(buf[max(0, k - 5) : k + 5]).all():
            return None
        return Window(r.key, tid, rate, grid0, window_float32(buf), k, r.time_epoch_s)


@dataclass(frozen=True)
class FileEntry:
    """What a file holds, from its headers: (net, sta, loc, cha, start_s, end_s) per trace."""

    path: Path
    traces: tuple[tuple[str, str, str, str, float, float], ...]

    def wanted(self, stations: set[str], span: tuple[float, float], verticals: bool = True) -> bool:
        """Holds a vertical channel (any channel: ``verticals=False``) of one of ``stations``
        (squeezed codes) within ``span``."""
        return any(
            (not verticals or is_vertical(cha))
            and squeezed(sta) in stations
            and b >= span[0]
            and a <= span[1]
            for _net, sta, _loc, cha, a, b in self.traces
        )


def index_files(
    files: list[Path], report: ArchiveReport | None = None
) -> tuple[list[FileEntry], dict[str, str]]:
    """Header-only index of ``files`` (miniSEED: the first and last record of a one-channel
    file, :func:`_one_channel`; anything else, and other miniSEED: obspy's ``headonly``
    read), so that each file is later read in full only
    for the days and stations it serves. Returns the entries and the files that are not
    seismic data (path -> message)."""
    from obspy import read
    from obspy.io.mseed.core import _is_mseed
    from obspy.io.mseed.util import get_record_information, get_start_and_end_time

    entries, bad = [], {}
    for f in files:
        try:
            traces = None
            if _is_mseed(str(f)):
                info = get_record_information(str(f))
                a, b = get_start_and_end_time(str(f))
                one_channel = _one_channel(str(f), info)
                if one_channel:
                    traces = ((info["network"], info["station"], info["location"], info["channel"],
                               float(a.timestamp), float(b.timestamp)),)  # fmt: skip
            if traces is None:
                st = read(str(f), headonly=True)
                traces = tuple(
                    (t.stats.network, t.stats.station, t.stats.location, t.stats.channel,
                     float(t.stats.starttime.timestamp), float(t.stats.endtime.timestamp))
                    for t in st
                )  # fmt: skip
            entries.append(FileEntry(f, traces))
        except Exception as exc:  # obspy raises many types for foreign files
            bad[str(f)] = f"not seismic data obspy can read ({type(exc).__name__}: {exc})"
    return entries, bad


PROBED_RECORDS = 16


def _one_channel(path: str, first: dict) -> bool:
    """Whether a miniSEED file whose first record is ``first`` holds that channel alone, as
    far as the second, the last and :data:`PROBED_RECORDS` records spread over it tell (a
    SeedLink dump interleaves its channels record by record); records of other lengths than
    the first's: no."""
    from obspy.io.mseed.util import get_record_information

    size = first["record_length"]
    n = first["filesize"] // size
    if n * size != first["filesize"]:
        return False
    keys = ("network", "station", "location", "channel")
    for at in sorted({1, n - 1, *range(0, n, max(1, n // PROBED_RECORDS))} - {0}):
        if not 0 < at < n:
            continue
        try:
            other = get_record_information(path, offset=at * size)
        except Exception:  # not a record boundary there
            return False
        if other.get("record_length") != size or any(other[k] != first[k] for k in keys):
            return False
    return True


def _read_file(path: Path, wanted_span: tuple[float, float] | None):
    """obspy Stream of ``path`` (miniSEED: the SEED verticals, selected inside the decoder;
    a file without one is read whole, as its vertical may have a Japanese code), or raise."""
    from obspy import UTCDateTime, read
    from obspy.io.mseed.core import _is_mseed

    if _is_mseed(str(path)):
        kw = {}
        if wanted_span is not None:
            kw = {"starttime": UTCDateTime(wanted_span[0]), "endtime": UTCDateTime(wanted_span[1])}
        st = read(str(path), format="MSEED", sourcename="*Z", **kw)
        return st if len(st) else read(str(path), format="MSEED", **kw)
    return read(str(path))


def cut_windows(
    requests: list[Request],
    paths: list[str],
    *,
    before_s: float = WINDOW_BEFORE_S,
    after_s: float = WINDOW_AFTER_S,
    readers: int = 2,
    files: list[Path] | None = None,
    index: list[FileEntry] | None = None,
    on_file: Callable[[], None] | None = None,
) -> tuple[list[Window], ArchiveReport]:
    """Windows for ``requests`` from the archive ``paths`` (files/folders/globs or SDS root).

    ``files`` (from :func:`expand_paths`) saves re-listing the archive for every chunk of a long
    run; ``index`` (from :func:`index_files`) reads only the files holding a vertical channel
    of a requested station within the requests' time span. Returns the windows found and a
    report of what was not.
    """
    report = ArchiveReport()
    if not requests:
        return [], report
    col = _Collector(requests, before_s, after_s)
    span = (
        min(r.time_epoch_s for r in requests) - before_s - 1.0,
        max(r.time_epoch_s for r in requests) + after_s + 1.0,
    )
    if len(paths) == 1 and is_sds_root(paths[0]):
        _from_sds(paths[0], requests, col, report, before_s, after_s, readers)
    else:
        if index is not None:
            stations = {squeezed(r.station) for r in requests}
            todo = [e.path for e in index if e.wanted(stations, span)]
        else:
            todo = files if files is not None else expand_paths(paths)

        def one(f: Path):
            try:
                return f, _read_file(f, span), None
            except Exception as exc:  # obspy raises many types for foreign files
                return f, None, f"{type(exc).__name__}: {exc}"

        with ThreadPoolExecutor(max(1, readers)) as pool:
            for f, st, err in pool.map(one, todo):
                if on_file is not None:
                    on_file()
                if err is not None:
                    report.bad_files[str(f)] = f"not seismic data obspy can read ({err})"
                    continue
                report.files_read += 1
                col.feed(st)
    windows, missing = col.windows(requests)
    report.missing.update(missing)
    return windows, report


def _sds_station_codes(root, net: str, sta: str, t0: float, t1: float) -> list[str]:
    """The SDS station folders a pick's code names in the years ``t0``-``t1`` span: the code
    itself where it is there, else the longer codes it names (:func:`same_station`:
    HYPO71's ``T107`` is ``T0107``)."""
    from obspy import UTCDateTime

    found = set()
    for year in range(UTCDateTime(t0).year, UTCDateTime(t1).year + 1):
        for net_dir in Path(root, str(year)).glob(net):
            if (net_dir / sta).is_dir():
                return [sta]
            found.update(
                d.name for d in net_dir.iterdir() if d.is_dir() and same_station(sta, d.name)
            )
    return sorted(found) or [sta]


def _from_sds(root, requests, col, report, before_s, after_s, readers) -> None:
    from obspy import UTCDateTime
    from obspy.clients.filesystem.sds import Client

    client = Client(str(root))
    groups: dict[tuple[str, str, str, int], list[Request]] = defaultdict(list)
    for r in requests:
        day = int(r.time_epoch_s // 86400)
        groups[(r.network or "*", r.station, r.location or "*", day)].append(r)

    def one(item):
        (net, sta, loc, _day), reqs = item
        t0 = min(r.time_epoch_s for r in reqs) - before_s - 1.0
        t1 = max(r.time_epoch_s for r in reqs) + after_s + 1.0
        try:
            st = None
            for code in _sds_station_codes(root, net, sta, t0, t1):
                got = client.get_waveforms(net, code, loc, "*Z", UTCDateTime(t0), UTCDateTime(t1))
                if not len(got):  # Hi-net's U, K-NET's UD (the collector keeps only verticals)
                    got = client.get_waveforms(
                        net, code, loc, "U*", UTCDateTime(t0), UTCDateTime(t1)
                    )
                st = got if st is None else st + got
            return st, None
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max(1, readers)) as pool:
        for item, (st, err) in zip(groups.items(), pool.map(one, groups.items()), strict=True):
            if err is not None:
                report.bad_files[f"SDS {item[0][0]}.{item[0][1]} day {item[0][3]}"] = err
                continue
            report.files_read += 1
            col.feed(st)
