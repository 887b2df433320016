"""P first-motion polarity classification: ``PolarityClassifier`` (see DESIGN.md's contract).

``from workers.polarity import PolarityClassifier``; ``PolarityClassifier.load()`` reads the
shipped model from ``model_weights/``. Nothing is loaded at import time.
"""

from workers.polarity.classifier import PolarityClassifier, PolarityResult

__all__ = ["PolarityClassifier", "PolarityResult"]
