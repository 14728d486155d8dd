"""Evaluation helpers: quality metrics and Bjontegaard deltas."""
