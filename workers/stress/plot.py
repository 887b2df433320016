"""Stress map: SHmax bars coloured by faulting regime over epicentres and stations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from workers.stress.cells import MechanismTable

# World Stress Map colours: normal red, strike-slip green, thrust blue, unknown black
REGIME_COLOURS = {
    "NF": "#d62728", "NS": "#e377c2", "SS": "#2ca02c", "TS": "#17becf", "TF": "#1f77b4",
    "U": "#000000",
}  # fmt: skip
REGIME_NAMES = {
    "NF": "normal", "NS": "normal/strike-slip", "SS": "strike-slip",
    "TS": "thrust/strike-slip", "TF": "thrust", "U": "unknown",
}  # fmt: skip


def plot_stress_map(
    cells: list[dict[str, Any]], table: MechanismTable, path: str | Path, *, title: str = ""
) -> None:
    """Write a PNG: epicentres (grey), stations (triangles), per cell an SHmax bar (length ~
    the cell, colour the regime) with its 95% SHmax range as a faint wedge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 7))
    ok = np.isfinite(table.latitude) & np.isfinite(table.longitude)
    ax.scatter(table.longitude[ok], table.latitude[ok], s=6, c="0.6", lw=0, label="epicentres")
    if table.stations:
        lat, lon = np.array(list(table.stations.values())).T
        ax.scatter(lon, lat, marker="^", s=30, c="k", label="stations")
    lat0 = float(np.nanmean(table.latitude[ok])) if ok.any() else 0.0
    kx = 1.0 / max(np.cos(np.radians(lat0)), 1e-3)  # degrees of longitude per degree north
    seen = set()
    for c in cells:
        la, lo = c["centre"]["latitude_deg"], c["centre"]["longitude_deg"]
        half = c.get("_half_deg", 0.35)
        col = REGIME_COLOURS.get(c.get("regime", "U"), "k")
        unc = c.get("uncertainty", {}).get("shmax_half_width_deg")
        if unc:
            for sgn in (-1, 1):
                a = np.radians(c["shmax_azimuth_deg"] + sgn * unc)
                ax.plot(
                    [lo - half * kx * np.sin(a), lo + half * kx * np.sin(a)],
                    [la - half * np.cos(a), la + half * np.cos(a)],
                    c=col,
                    lw=1,
                    alpha=0.3,
                )
        a = np.radians(c["shmax_azimuth_deg"])
        label = REGIME_NAMES.get(c.get("regime", "U")) if c.get("regime") not in seen else None
        seen.add(c.get("regime"))
        ax.plot([lo - half * kx * np.sin(a), lo + half * kx * np.sin(a)],
                [la - half * np.cos(a), la + half * np.cos(a)], c=col, lw=4,
                solid_capstyle="butt", label=label)  # fmt: skip
        ax.annotate(str(c.get("count", "")), (lo, la), fontsize=7, ha="left", va="bottom")
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
    ax.set_aspect(kx)
    ax.ticklabel_format(useOffset=False)
    ax.set_title(title or "SHmax (Lund & Townend 2007) by faulting regime (Zoback 1992)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
