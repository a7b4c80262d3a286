"""Analyses and rewrites over the IR. Each module holds one pass."""
