"""Crustal stress from focal mechanisms: inversion, cells, the ``stress`` CLI and worker.

``from workers.stress import invert_stress`` is the stable entry point (see DESIGN.md).
"""

from workers.stress.invert import StressResult, invert_stress, regime, shmax_azimuth

__all__ = ["StressResult", "invert_stress", "regime", "shmax_azimuth"]
