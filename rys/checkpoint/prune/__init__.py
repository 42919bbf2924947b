"""Structured pruning: what can go, calibration, importance, the uniform and per-layer cuts."""
