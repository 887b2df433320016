"""Trained polarity models: ``<name>.pt`` weights beside ``<name>.json`` model cards."""
