"""Observers from outside the worker: remote control, the events stream, Prometheus metrics."""
