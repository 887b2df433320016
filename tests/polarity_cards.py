"""Model cards shared by the polarity tests: the shipped card's path and an untrained one's."""

from __future__ import annotations

from pathlib import Path

from workers.polarity.classifier import CARD_FORMAT_VERSION, DEFAULT_MODEL_NAME
from workers.polarity.model import LABELS
from workers.polarity.preprocess import PreprocessConfig

SHIPPED_CARD = Path(__file__).resolve().parents[1] / "model_weights" / f"{DEFAULT_MODEL_NAME}.json"


def tiny_card(pre: PreprocessConfig | None = None) -> dict:
    """Card of an untrained PolarityCNN with ``pre`` (default preprocessing): mechanics tests."""
    pre = pre or PreprocessConfig()
    return {
        "format_version": CARD_FORMAT_VERSION,
        "name": "tiny",
        "min_firstmotion_version": "0.1.0",
        "labels": list(LABELS),
        "architecture": {
            "class": "PolarityCNN",
            "args": {"window_samples": pre.window_samples, "in_channels": pre.n_channels},
        },
        "preprocessing": pre.to_dict(),
        "temperature": 1.0,
        "thresholds": {"decision": 0.5},
    }
