"""Monitoring: the online-quality monitor that follows the event log (`python -m monitoring`)."""
