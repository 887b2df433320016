"""Beachball pictures with the observed polarities (obspy.imaging.beachball).

Lower-hemisphere equal-area projection, as obspy draws its beachballs: a ray leaving at azimuth
az and angle i from vertical-down plots at radius sqrt(2) sin(i / 2) (1 at the rim); upgoing
rays (takeoff < 90 from vertical-up) are shown at their antipode, where P has the same sign.
Compressions (up) are filled circles, dilatations open circles; red marks polarities the
preferred mechanism predicts wrongly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from firstmotion.radiation import p_radiation


def project_lower_hemisphere(
    azimuth_deg: np.ndarray, takeoff_deg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(east, north) plot coordinates on the unit beachball for rays (takeoff from vertical-UP)."""
    az = np.asarray(azimuth_deg, dtype=float).copy()
    to = np.asarray(takeoff_deg, dtype=float)
    up = to < 90.0
    az[up] += 180.0
    i_from_down = np.where(up, to, 180.0 - to)
    r = np.sqrt(2.0) * np.sin(np.deg2rad(i_from_down) / 2.0)
    a = np.deg2rad(az)
    return r * np.sin(a), r * np.cos(a)


def plot_mechanism(
    path: str | Path,
    strike_deg: float,
    dip_deg: float,
    rake_deg: float,
    azimuth_deg: np.ndarray,
    takeoff_deg: np.ndarray,
    polarity: np.ndarray,
    *,
    title: str = "",
    alternatives: tuple[tuple[float, float, float], ...] = (),
) -> Path:
    """Write a PNG: the mechanism's beachball, its nodal planes and the polarities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from obspy.imaging.beachball import beach

    path = Path(path)
    fig, ax = plt.subplots(figsize=(4.2, 4.4))
    ax.add_collection(
        beach(
            [strike_deg, dip_deg, rake_deg],
            xy=(0, 0),
            width=2,
            facecolor="0.75",
            linewidth=1,
            zorder=1,
        )
    )
    for s, d, r in alternatives:
        ax.add_collection(
            beach(
                [s, d, r],
                xy=(0, 0),
                width=2,
                nofill=True,
                edgecolor="tab:blue",
                linewidth=0.8,
                zorder=2,
            )
        )
    x, y = project_lower_hemisphere(azimuth_deg, takeoff_deg)
    pol = np.asarray(polarity, dtype=float)
    amp = p_radiation(strike_deg, dip_deg, rake_deg, azimuth_deg, takeoff_deg)
    wrong = amp * pol < 0
    up = pol > 0
    edge = np.where(wrong, "red", "black")
    ax.scatter(x[up], y[up], s=36, c="black", edgecolors=edge[up], linewidths=1.2, zorder=3)
    ax.scatter(x[~up], y[~up], s=36, facecolors="white", edgecolors=edge[~up], zorder=3)
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.text(0, 1.04, "N", ha="center", va="bottom")
    ax.set_title(title or f"{strike_deg:.0f}/{dip_deg:.0f}/{rake_deg:.0f}", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
