"""Frontier backends plugins."""
