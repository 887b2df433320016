"""Mechanisms as a table, their spatial cells, and one inversion per cell.

A cell is a square of ``grid_deg`` degrees of latitude and longitude: row ``floor(lat /
grid_deg)``, column ``floor(lon / grid_deg)``, named ``"<grid_deg>:<row>:<col>"`` (e.g.
``0.5:68:-237``), centred on ``((row + 0.5) grid_deg, (col + 0.5) grid_deg)``. Without a grid
every mechanism is in one cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.stress.invert import StressResult, invert_stress

QUALITIES = ("A", "B", "C", "D")


@dataclass
class MechanismTable:
    """Mechanisms as columns (degrees; latitude/longitude NaN where unknown, quality '' where
    unknown)."""

    strike: np.ndarray
    dip: np.ndarray
    rake: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    depth_km: np.ndarray
    quality: np.ndarray
    event_id: np.ndarray
    stations: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]], stations=None) -> MechanismTable:
        def col(name, default, dtype):
            return np.array([r.get(name, default) for r in rows], dtype=dtype)

        return cls(
            strike=col("strike", np.nan, float),
            dip=col("dip", np.nan, float),
            rake=col("rake", np.nan, float),
            latitude=col("latitude", np.nan, float),
            longitude=col("longitude", np.nan, float),
            depth_km=col("depth_km", np.nan, float),
            quality=col("quality", "", object),
            event_id=col("event_id", "", object),
            stations=dict(stations or {}),
        )

    def __len__(self) -> int:
        return len(self.strike)

    def select(self, mask: np.ndarray) -> MechanismTable:
        return MechanismTable(
            *(getattr(self, f)[mask] for f in (
                "strike", "dip", "rake", "latitude", "longitude", "depth_km", "quality",
                "event_id",
            )),
            stations=self.stations,
        )  # fmt: skip

    def with_quality(self, allowed: tuple[str, ...] | None) -> MechanismTable:
        """Only the mechanisms whose quality letter is in ``allowed`` (None: all)."""
        if not allowed:
            return self
        return self.select(np.isin(self.quality.astype(str), list(allowed)))


def parse_quality(text: str | None) -> tuple[str, ...] | None:
    """``"A,B"`` -> ("A", "B"); None or "" -> None (all)."""
    if not text:
        return None
    out = tuple(q.strip().upper() for q in text.split(",") if q.strip())
    bad = [q for q in out if q not in QUALITIES]
    if bad:
        raise ValueError(f"quality: expected letters of {QUALITIES}, got {bad}")
    return out


def cell_index(lat: float, lon: float, grid_deg: float) -> tuple[int, int]:
    """(row, column) of the cell holding (lat, lon)."""
    lon = (lon + 180.0) % 360.0 - 180.0
    return math.floor(lat / grid_deg), math.floor(lon / grid_deg)


def cell_id(grid_deg: float, row: int, col: int) -> str:
    return f"{grid_deg:g}:{row}:{col}"


def parse_cell_id(text: str) -> tuple[float, int, int]:
    g, r, c = text.split(":")
    return float(g), int(r), int(c)


def cell_centre(grid_deg: float, row: int, col: int) -> tuple[float, float]:
    """(latitude, longitude) of the centre of a cell."""
    return (row + 0.5) * grid_deg, (col + 0.5) * grid_deg


def cell_object(result: StressResult, grid_deg: float, row: int, col: int) -> dict[str, Any]:
    """One entry of ``cells``: the contract object plus the cell's id, centre, count and
    faulting regime."""
    lat, lon = cell_centre(grid_deg, row, col)
    out = result.to_dict()
    out.update(
        {
            "cell": cell_id(grid_deg, row, col),
            "centre": {"latitude_deg": round(lat, 6), "longitude_deg": round(lon, 6)},
            "count": int(result.n_mechanisms),
            "regime": result.regime,
        }
    )
    return out


def group_cells(table: MechanismTable, grid_deg: float) -> dict[tuple[int, int], np.ndarray]:
    """Indices of the mechanisms in each cell (mechanisms without an epicentre are left out)."""
    ok = np.isfinite(table.latitude) & np.isfinite(table.longitude)
    groups: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(ok):
        groups.setdefault(cell_index(table.latitude[i], table.longitude[i], grid_deg), []).append(i)
    return {k: np.array(v) for k, v in sorted(groups.items())}


def invert_cells(
    table: MechanismTable,
    grid_deg: float,
    *,
    min_mechanisms: int = 20,
    progress: bool = False,
    **kwargs: Any,
) -> list[tuple[tuple[int, int], StressResult]]:
    """One :func:`invert_stress` per cell with at least ``min_mechanisms`` mechanisms."""
    groups = [(k, v) for k, v in group_cells(table, grid_deg).items() if len(v) >= min_mechanisms]
    it = groups
    if progress:
        from tqdm import tqdm

        it = tqdm(groups, desc="cells", unit="cell")
    out = []
    for key, idx in it:
        out.append(
            (key, invert_stress(table.strike[idx], table.dip[idx], table.rake[idx], **kwargs))
        )
    return out
