"""Shared test helpers: offline-built tiny models and their fixtures' building blocks."""
