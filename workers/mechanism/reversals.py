"""Station polarity reversals: sensors wired upside down for a time range (HASH ``scsn.reverse``).

A reversal list holds (station, start, end) entries; a polarity read at a listed station at a time
inside [start, end] is flipped before inverting. Two file formats are read:

* HASH: whitespace-separated ``STA YYYYMMDD YYYYMMDD`` per line, 0 meaning open-ended (as HASH's
  ``check_pol`` and SKHASH's ``read_reverse_hash_file``); dates are whole days, the end inclusive.
* CSV with a header holding ``station,start_time,end_time`` (ISO-8601 times or 0), optionally
  ``network``, ``location``, ``channel`` (SKHASH's format; the codes are joined with dots).

Station matching: an entry matches a pick's station id when it equals the id, when the id starts
with the entry followed by a dot (``CI.PAS`` matches ``CI.PAS..HHZ``), or when it equals the id's
station code (``PAS`` matches ``CI.PAS..HHZ``; for ids with fewer than four parts such as
HASH's ``IR2.VHZ``, the first part).

A StationXML documents a reversed vertical itself (a dip of +90, the sensor pointing down, or
a negative sensitivity): :func:`with_documented_reversals` adds such channel epochs, keyed by
their full channel id, to a list (the mechanism worker does with ``inventory.stationxml``).
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firstmotion.inventory import (
    OPEN_END_S,
    OPEN_START_S,
    ReversedVertical,
    count_verticals,
    read_stationxml,
    reversed_verticals,
)

log = logging.getLogger(__name__)
_UNDATED_SAID: set[str] = set()  # stations whose dated reversal an undated pick could not use


@dataclass(frozen=True)
class Reversal:
    """One entry: ``station`` reversed from ``start_s`` to ``end_s`` (epoch seconds, inclusive)."""

    station: str
    start_s: float
    end_s: float


def station_code(station_id: str) -> str:
    """The station code of NET.STA.LOC.CHA (``STA``), or the first part of a shorter id."""
    parts = station_id.split(".")
    return parts[1] if len(parts) == 4 else parts[0]


def _matches(entry: str, station_id: str) -> bool:
    return (
        entry == station_id
        or station_id.startswith(entry + ".")
        or ("." not in entry and entry == station_code(station_id))
    )


def _day_s(token: str, *, end: bool) -> float:
    if token.strip() in ("0", ""):
        return OPEN_END_S if end else OPEN_START_S
    day = dt.datetime.strptime(token.strip(), "%Y%m%d").replace(tzinfo=dt.timezone.utc)
    if end:
        day += dt.timedelta(days=1)
        return day.timestamp() - 1e-6
    return day.timestamp()


def _iso_s(token: str, *, end: bool) -> float:
    token = token.strip()
    if token in ("0", ""):
        return OPEN_END_S if end else OPEN_START_S
    t = dt.datetime.fromisoformat(token.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    if end and len(token) == 10:  # a bare date: the whole day
        t += dt.timedelta(days=1)
        return t.timestamp() - 1e-6
    return t.timestamp()


@dataclass(frozen=True)
class ReversalList:
    """A set of :class:`Reversal` entries with lookup and application."""

    entries: tuple[Reversal, ...] = ()

    def is_reversed(self, station_id: str, time_s: float | None = None) -> bool:
        """True if ``station_id`` is reversed at ``time_s`` (epoch s; None: at any time)."""
        for e in self.entries:
            if _matches(e.station, station_id) and (
                time_s is None or e.start_s <= time_s <= e.end_s
            ):
                return True
        return False

    def always_reversed(self, station_id: str) -> bool:
        """True if an entry reverses ``station_id`` at every time (open at both ends)."""
        return any(
            _matches(e.station, station_id) and e.start_s <= OPEN_START_S and e.end_s >= OPEN_END_S
            for e in self.entries
        )

    def apply(
        self,
        station_ids: Sequence[str],
        time_s: float | Sequence[float] | None,
        polarity: Iterable[float],
    ) -> np.ndarray:
        """Polarities with the reversed stations' signs flipped (a new array). A pick without
        a time (an input that carries no event time, as SKHASH's polarity file) is flipped
        only by an entry open at both ends: one limited in time cannot be told (such entries
        flipped the station's picks whatever their date), and is said once per station."""
        pol = np.array(list(polarity), dtype=float)
        if len(station_ids) != pol.shape[0]:
            raise ValueError(f"{len(station_ids)} station ids for {pol.shape[0]} polarities")
        times = (
            [time_s] * len(station_ids) if time_s is None or np.isscalar(time_s) else list(time_s)
        )
        for i, sid in enumerate(station_ids):
            t = times[i]
            if t is not None and np.isfinite(t):
                flip = self.is_reversed(sid, t)
            else:
                flip = self.always_reversed(sid)
                if not flip and self.is_reversed(sid, None) and sid not in _UNDATED_SAID:
                    _UNDATED_SAID.add(sid)
                    log.warning("%s is reversed for a time only in the reversal list, and its "
                                "picks carry no event time: left as read (give the events' "
                                "times, e.g. an origin_time column)", sid)  # fmt: skip
            if flip:
                pol[i] = -pol[i]
        return pol

    def __len__(self) -> int:
        return len(self.entries)

    def union(self, other: ReversalList) -> ReversalList:
        """Both lists' entries: a station listed in both is flipped once (:meth:`apply`)."""
        return ReversalList(self.entries + other.entries)

    @classmethod
    def from_verticals(cls, verticals: Iterable[ReversedVertical]) -> ReversalList:
        """Entries for the vertical channel epochs a StationXML documents as reversed
        (:func:`firstmotion.inventory.reversed_verticals`), each keyed by its full channel id."""
        return cls(tuple(Reversal(v.channel_id, v.start_s, v.end_s) for v in verticals))


def read_reversals(path: str | Path) -> ReversalList:
    """Read a reversal file (HASH whitespace format or CSV with a header), see module doc."""
    path = Path(path)
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        return ReversalList()
    if "," in lines[0] and "station" in lines[0].lower():
        reader = csv.DictReader(lines, skipinitialspace=True)
        rows = list(reader)
        for col in ("station", "start_time", "end_time"):
            if col not in (reader.fieldnames or ()):
                raise ValueError(f"{path}: CSV reversal file needs column {col!r}")
        entries = []
        for r in rows:
            codes = [
                r.get("network", ""),
                r["station"],
                r.get("location", ""),
                r.get("channel", ""),
            ]
            has_full = any(r.get(k) for k in ("network", "location", "channel"))
            sid = ".".join(c or "" for c in codes) if has_full else r["station"]
            entries.append(
                Reversal(
                    sid.strip(),
                    _iso_s(r["start_time"], end=False),
                    _iso_s(r["end_time"], end=True),
                )
            )
        return ReversalList(tuple(entries))
    entries = []
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"{path}:{n}: expected 'STA YYYYMMDD YYYYMMDD', got {line!r}")
        try:
            entries.append(
                Reversal(parts[0], _day_s(parts[1], end=False), _day_s(parts[2], end=True))
            )
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: bad date in {line!r}: {exc}") from exc
    return ReversalList(tuple(entries))


def with_documented_reversals(
    reversals: ReversalList | None, stationxml: str | Path | Any, name: str | Path = ""
) -> ReversalList | None:
    """``reversals`` (or None) with the vertical channels ``stationxml`` (a path or an obspy
    ``Inventory``, named ``name`` in the log) documents as reversed
    (:func:`firstmotion.inventory.reversed_verticals`), each logged; None where there are
    neither. Where most of the file's verticals are documented so, a warning says that
    metadata writing +90 for verticals that point up would turn every first motion."""
    if isinstance(stationxml, (str, Path)):
        name = name or stationxml
        stationxml = read_stationxml(stationxml)
    inventory = stationxml
    documented = reversed_verticals(inventory)
    n_verticals = count_verticals(inventory)
    if len(documented) >= 2 and 2 * len(documented) > n_verticals:
        log.warning(
            "%s documents %d of its %d vertical channel epochs as reversed (dip +90 or a "
            "negative sensitivity): if this metadata writes +90 for verticals that point up, "
            "set mechanism.stationxml_reversals = false, or every first motion is turned",
            name or "the StationXML", len(documented), n_verticals,
        )  # fmt: skip
    for v in documented:
        also = " (also in the reversal list: flipped once)" if (
            reversals is not None and reversals.is_reversed(v.channel_id, None)
        ) else ""  # fmt: skip
        log.info(
            "%s reads upside down by its StationXML (%s)%s: its first motions are flipped "
            "before inverting", v.channel_id, v.why, also,
        )  # fmt: skip
    if not documented:
        return reversals
    listed = ReversalList.from_verticals(documented)
    return listed if reversals is None else reversals.union(listed)
