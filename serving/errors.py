"""Domain errors of the serving processes, each carrying a canonical (gRPC) status code.

The model server and the gateway raise `ServingError`; each transport maps `code` to its own
status in one place; the data planes know nothing of HTTP or gRPC.
"""

from __future__ import annotations

import enum

from aiqleads.errors import ServiceError


class Code(enum.IntEnum):
    """The canonical status codes (numbering shared by gRPC and `tensorflow.error.Code`)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class ServingError(ServiceError):
    """A request the server answers with a non-OK status; `code` says which."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(Code.NOT_FOUND, message)
