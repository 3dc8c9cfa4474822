"""Fixtures shared across test folders: ``stop_at_call`` (tests/training/stops.py)."""

pytest_plugins = ("tests.training.stops",)
