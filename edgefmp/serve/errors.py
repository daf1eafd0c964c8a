"""The one error a request handler raises: a refusal with its HTTP status.

Handlers never let bad input become a 500: everything a client can get wrong (JSON, tensor
shapes, unknown model, oversized body, missing token) is a `RequestRejected` with a 4xx status
and a message naming the field and the valid choices. 503 means a backend of this server is
unavailable (a client should retry or fall back); 422 that the model could not answer this
input (not a server fault, so a client's circuit breaker does not count it).
"""

from __future__ import annotations

from edgefmp.errors import EdgeFMPError

# reason label of the errors metric, by status
REASONS: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "bad_request",
    413: "too_large",
    415: "bad_request",
    422: "model_error",
    503: "unavailable",
}


def reason_for(status: int) -> str:
    return REASONS.get(status, "internal" if status >= 500 else "bad_request")


class RequestRejected(EdgeFMPError):
    """A request refused with `status` (4xx, or 503 for an unavailable backend)."""

    def __init__(self, status: int, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param

    @property
    def reason(self) -> str:
        return reason_for(self.status)


def bad_request(message: str, param: str | None = None) -> RequestRejected:
    return RequestRejected(400, message, param=param)
