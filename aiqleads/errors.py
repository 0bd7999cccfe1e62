"""Domain errors. Each says what went wrong and what to do; the CLI prints the message alone."""

from __future__ import annotations


class AiqleadsError(Exception):
    """Base class of every error the CLI reports as a one-line message (exit code 2)."""

    exit_code = 2


class ConfigError(AiqleadsError):
    """A configuration file or value is invalid."""


class DataError(AiqleadsError):
    """Input data violates a contract or cannot be read."""


class ServiceError(AiqleadsError):
    """A service could not be started, reached, or answered badly."""
