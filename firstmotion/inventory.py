"""Station and channel coordinates from StationXML: the one reader every stage keys its own way.

:func:`read_sites` turns a StationXML file (or an obspy ``Inventory`` already read) into flat
:class:`Site` rows: one per station, then one per channel with the channel's coordinates where
the StationXML gives them and the station's otherwise (an Inventory built in code may leave
a channel's out; a missing elevation reads as 0 m). :func:`reversed_verticals` gives the
vertical channel epochs whose metadata says they record the ground's up as down (a dip of
+90 or a negative sensitivity).
obspy is imported when a file is read, never at import.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firstmotion.channels import is_vertical
from firstmotion.errors import InputError

OPEN_START_S = -1e18  # an epoch without a start or end (also the reversal list's open ends)
OPEN_END_S = 1e18


@dataclass(frozen=True)
class Site:
    """A station (``location`` and ``channel`` None) or one of its channels."""

    network: str
    station: str
    location: str | None
    channel: str | None
    latitude: float
    longitude: float
    elevation_m: float

    @property
    def station_id(self) -> str:
        """``NET.STA``."""
        return f"{self.network}.{self.station}"


def read_stationxml(path: str | Path) -> Any:
    """The obspy ``Inventory`` of a StationXML file (or any format obspy reads); an
    :class:`~firstmotion.errors.InputError` naming the file when it is not one."""
    from obspy import read_inventory

    if not Path(path).is_file():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    try:
        return read_inventory(str(path))
    except Exception as exc:  # obspy raises what its format readers raise
        raise InputError(f"{path}: not StationXML obspy can read ({exc})") from None


def read_sites(source: str | Path | Any) -> list[Site]:
    """Sites of a StationXML path or an obspy ``Inventory``: each station's row followed by
    its channels' rows (channel coordinates, else the station's), in the file's order."""
    if isinstance(source, (str, Path)):
        source = read_stationxml(source)
    out: list[Site] = []
    for net in source:
        for sta in net:
            here = (
                float(sta.latitude),
                float(sta.longitude),
                float(sta.elevation or 0.0),
            )
            out.append(Site(net.code, sta.code, None, None, *here))
            for cha in sta:
                out.append(
                    Site(
                        net.code,
                        sta.code,
                        cha.location_code,
                        cha.code,
                        here[0] if cha.latitude is None else float(cha.latitude),
                        here[1] if cha.longitude is None else float(cha.longitude),
                        here[2] if cha.elevation is None else float(cha.elevation),
                    )
                )
    return out


@dataclass(frozen=True)
class ReversedVertical:
    """A vertical channel's epoch whose StationXML says its counts rise as the ground moves
    down: a first motion read on it is the ground's with the sign flipped."""

    channel_id: str  # NET.STA.LOC.CHA, as picks name their vertical
    start_s: float  # epoch seconds; OPEN_START_S / OPEN_END_S where the epoch is open
    end_s: float
    why: str  # what the StationXML says: "dip +90" or "negative sensitivity"


def _sensitivity_sign(channel: Any) -> int:
    """-1 where a channel's response says counts fall as its input rises: the overall
    sensitivity's sign, else the product of its stages' gains; +1 without a response."""
    response = getattr(channel, "response", None)
    if response is None:
        return 1
    overall = getattr(response, "instrument_sensitivity", None)
    value = getattr(overall, "value", None)
    if value:
        return 1 if float(value) > 0 else -1
    sign = 1
    for stage in getattr(response, "response_stages", None) or ():
        gain = getattr(stage, "stage_gain", None)
        if gain:
            sign *= 1 if float(gain) > 0 else -1
    return sign


def _is_vertical(channel: Any) -> bool:
    """A channel within 45 degrees of the vertical by its dip, or, where the dip is not given
    (or 0, as metadata often leaves it), one whose code names a vertical
    (:func:`firstmotion.channels.is_vertical`: ending in Z; Hi-net's U, K-NET's UD)."""
    dip = channel.dip
    if dip is not None and abs(float(dip)) >= 45.0:
        return True
    return (dip is None or float(dip) == 0.0) and is_vertical(str(channel.code))


def count_verticals(source: str | Path | Any) -> int:
    """How many vertical channel epochs a StationXML path (or obspy ``Inventory``) holds."""
    if isinstance(source, (str, Path)):
        source = read_stationxml(source)
    return sum(_is_vertical(cha) for net in source for sta in net for cha in sta)


def reversed_verticals(source: str | Path | Any) -> list[ReversedVertical]:
    """The vertical channel epochs of a StationXML path (or obspy ``Inventory``) whose
    metadata documents the recorded polarity reversed against the ground motion: the sensor
    pointing down (a dip above 45 degrees: SEED counts dip down from the horizontal, so -90
    points up and +90 down) or a negative overall sensitivity, not both (together they
    cancel: a down-pointing sensor of negative gain records an upward motion as positive)."""
    if isinstance(source, (str, Path)):
        source = read_stationxml(source)
    out: list[ReversedVertical] = []
    for net in source:
        for sta in net:
            for cha in sta:
                if not _is_vertical(cha):
                    continue
                down = cha.dip is not None and float(cha.dip) >= 45.0
                negative = _sensitivity_sign(cha) < 0
                if down == negative:
                    continue
                start = OPEN_START_S if cha.start_date is None else float(cha.start_date.timestamp)
                end = OPEN_END_S if cha.end_date is None else float(cha.end_date.timestamp)
                out.append(
                    ReversedVertical(
                        f"{net.code}.{sta.code}.{cha.location_code}.{cha.code}",
                        start,
                        end,
                        f"dip {float(cha.dip):+g}" if down else "negative sensitivity",
                    )
                )
    return out
