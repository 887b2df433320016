"""Station and channel coordinates from StationXML: the one reader every stage keys its own way.

:func:`read_sites` turns a StationXML file (or an obspy ``Inventory`` already read) into flat
:class:`Site` rows: one per station, then one per channel with the channel's coordinates where
the StationXML gives them and the station's otherwise (an Inventory built in code may leave
a channel's out; a missing elevation reads as 0 m).
obspy is imported when a file is read, never at import.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firstmotion.errors import InputError


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
