"""Frontier profiling plugins."""
