"""Helpers shared by the tests and the benchmarks: fixture run folders and a real terminal (not installed)."""
