"""Picture of a scenario: per event, a station map and a beachball with the stations' polarities.

Polarities are the ground motion's (truth ``polarity``); stations wired upside down are marked
"(reversed)" on the map (their recorded polarity is the opposite).

Beachballs are lower-hemisphere equal-area (Schmidt) projections (obspy.imaging.beachball);
an up-going ray (takeoff < 90) is plotted at its antipode (azimuth + 180, 180 - takeoff), as
in HASH and SKHASH plots.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

POLARITY_STYLE = {
    1: {"marker": "^", "color": "#d62728", "label": "up (+1)"},
    -1: {"marker": "v", "color": "#1f77b4", "label": "down (-1)"},
    0: {"marker": "o", "color": "#9a9a9a", "label": "unknown (0)"},
}


def lower_hemisphere_xy(azimuth_deg, takeoff_deg) -> tuple[np.ndarray, np.ndarray]:
    """Equal-area lower-hemisphere coordinates (x east, y north; unit radius = horizontal ray)
    of rays with takeoff from vertical-UP."""
    az = np.asarray(azimuth_deg, dtype=float)
    takeoff = np.asarray(takeoff_deg, dtype=float)
    up = takeoff < 90.0
    az = np.where(up, az + 180.0, az)
    from_down = np.radians(np.where(up, takeoff, 180.0 - takeoff))  # angle from vertical-down
    r = np.sqrt(2.0) * np.sin(from_down / 2.0)
    return r * np.sin(np.radians(az)), r * np.cos(np.radians(az))


def plot_truth(truth: dict, out_png: str | Path) -> Path:
    """Draw ``truth`` (the dict of truth.json) to ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from obspy.imaging.beachball import beach

    events = truth["events"]
    n = max(len(events), 1)
    fig, axes = plt.subplots(n, 2, figsize=(10, 4.6 * n), squeeze=False)
    st_lon = np.array([s["longitude"] for s in truth["stations"]])
    st_lat = np.array([s["latitude"] for s in truth["stations"]])
    for row, ev in enumerate(events):
        ax_map, ax_bb = axes[row]
        pol = np.array([r["polarity"] for r in ev["stations"]])
        for value, style in POLARITY_STYLE.items():
            sel = pol == value
            ax_map.scatter(
                st_lon[sel], st_lat[sel], marker=style["marker"], c=style["color"], s=55,
                edgecolors="k", linewidths=0.5, zorder=3,
            )  # fmt: skip
        for other in events:
            ax_map.plot(
                other["longitude"], other["latitude"], "*", color="#cccccc", ms=10, zorder=2
            )
        ax_map.plot(ev["longitude"], ev["latitude"], "*", color="gold", mec="k", ms=18, zorder=4)
        for s in truth["stations"]:
            name = s["station"] + (" (reversed)" if s.get("reversed") else "")
            ax_map.annotate(name, (s["longitude"], s["latitude"]), fontsize=6,
                            xytext=(3, 3), textcoords="offset points")  # fmt: skip
        ax_map.set_xlabel("longitude (deg)")
        ax_map.set_ylabel("latitude (deg)")
        ax_map.set_aspect(1.0 / np.cos(np.radians(ev["latitude"])))
        ax_map.set_title(
            f"{ev['event_id']}  Mw {ev['magnitude']:.2f}  depth {ev['depth_km']:.1f} km\n"
            f"{ev['origin_time']}", fontsize=9,
        )  # fmt: skip
        ball = beach((ev["strike"], ev["dip"], ev["rake"]), xy=(0, 0), width=2.0, linewidth=1,
                     facecolor="#f2b6b6", bgcolor="white", edgecolor="k", zorder=1)  # fmt: skip
        ax_bb.add_collection(ball)
        x, y = lower_hemisphere_xy(
            [r["azimuth_deg"] for r in ev["stations"]], [r["takeoff_deg"] for r in ev["stations"]]
        )
        for value, style in POLARITY_STYLE.items():
            sel = pol == value
            ax_bb.scatter(
                x[sel], y[sel], marker=style["marker"], c=style["color"], s=55,
                edgecolors="k", linewidths=0.5, zorder=3, label=style["label"],
            )  # fmt: skip
        ax_bb.set_xlim(-1.15, 1.15)
        ax_bb.set_ylim(-1.15, 1.15)
        ax_bb.set_aspect("equal")
        ax_bb.axis("off")
        if row == 0:
            ax_bb.legend(fontsize=7, loc="lower left", bbox_to_anchor=(-0.08, -0.06), frameon=False)
        ax_bb.set_title(
            f"strike {ev['strike']:.0f}  dip {ev['dip']:.0f}  rake {ev['rake']:.0f}\n"
            f"{ev['n_polarities']} polarities (lower hemisphere, equal area)", fontsize=9,
        )  # fmt: skip
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def plot_scenario_dir(scenario_dir: str | Path) -> Path:
    """Read ``DIR/truth.json`` and write ``DIR/scenario.png``."""
    d = Path(scenario_dir)
    truth_path = d / "truth.json"
    if not truth_path.exists():
        raise FileNotFoundError(f"{truth_path} not found: not a scenario directory")
    return plot_truth(json.loads(truth_path.read_text()), d / "scenario.png")
