"""Frontier predictors plugins."""
