"""Tiny models with example inputs, for tests and docs (each exports to all three runtimes)."""
