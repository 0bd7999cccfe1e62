"""Domain errors of the serving processes, each carrying a canonical (gRPC) status code.

The model server and the gateway raise `ServingError`; each transport maps `code` (and, where
one is given, `reason`) to its own status in one place; the data planes know nothing of HTTP
or gRPC.
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


class Reason(enum.Enum):
    """Why a request failed, finer than its code (as `google.rpc.ErrorInfo.reason`).

    Optional: for the answers a canonical code cannot tell apart (REST 413 and 415 are both
    INVALID_ARGUMENT) and for metrics.
    """

    BODY_TOO_LARGE = "body_too_large"
    NOT_JSON = "not_json"
    UPSTREAM_REJECTED = "upstream_rejected"  # a backend refused it: `code` is the backend's


class ServingError(ServiceError):
    """A request the server answers with a non-OK status; `code` says which."""

    def __init__(self, code: Code, message: str, reason: Reason | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason


def invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(Code.NOT_FOUND, message)


def unavailable(message: str) -> ServingError:
    return ServingError(Code.UNAVAILABLE, message)
