"""Unit tests of the frontier-core package, one file per module."""
