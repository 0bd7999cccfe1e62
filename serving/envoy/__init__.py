"""Envoy front proxy: bootstrap config generated from the serving settings."""
