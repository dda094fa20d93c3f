"""Helpers for tests and benchmarks: tiny random-init models that load through the production loaders."""
