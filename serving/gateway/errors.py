"""Domain errors of the gateway; each transport maps them to a status in exactly one place."""

from __future__ import annotations

from aiqleads.errors import AiqleadsError, ServiceError


class InvalidRequestError(AiqleadsError):
    """The client sent a request the API cannot accept (REST 400, gRPC INVALID_ARGUMENT)."""


class PayloadTooLargeError(InvalidRequestError):
    """The request body exceeds the size limit (REST 413, gRPC INVALID_ARGUMENT)."""


class UnsupportedMediaTypeError(InvalidRequestError):
    """The REST body is not JSON (REST 415)."""


class NotFoundError(AiqleadsError):
    """The model, version or label asked for does not exist (REST 404, gRPC NOT_FOUND)."""


class ModelUnavailableError(ServiceError):
    """No model server answered in time (REST 503, gRPC UNAVAILABLE)."""


class ModelRejectedError(AiqleadsError):
    """The model server refused a pass-through request as invalid (REST 400, gRPC as given)."""

    def __init__(self, message: str, grpc_code_name: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.grpc_code_name = grpc_code_name
