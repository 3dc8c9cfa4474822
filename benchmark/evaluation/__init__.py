"""Evaluation: exact retrieval metrics, embedding of image sets, separated and concatenated models."""

from benchmark.evaluation.metrics import compute_metrics

__all__ = ["compute_metrics"]
