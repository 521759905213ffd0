"""Registers the plugins of this distribution."""
