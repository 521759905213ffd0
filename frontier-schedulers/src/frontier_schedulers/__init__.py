"""Frontier schedulers plugins."""
