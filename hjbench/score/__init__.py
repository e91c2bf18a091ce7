"""Scoring: the metric catalogue, the metrics of a fitted method, the bounds and the bound check."""
