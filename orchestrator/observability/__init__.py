"""Prometheus adapters: each process's own metrics, on a port of its own (docs/operations.md)."""
