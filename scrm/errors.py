"""Domain errors that services raise; the HTTP layer maps each to a status and a JSON envelope."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a service may raise on purpose.

    Attributes:
        status: the HTTP status the edge should answer with.
        code: a stable, machine-readable snake_case code.
        details: extra JSON-safe context for the client (never secrets or personal data).
    """

    status = 400
    code = "bad_request"

    def __init__(self, message: str | None = None, *, code: str | None = None, details: dict[str, Any] | None = None):
        self.message = message or self.__class__.__doc__ or self.code
        if code:
            self.code = code
        self.details = details or {}
        super().__init__(self.message)


class InvalidInput(DomainError):
    """The input is well-formed but not acceptable."""

    status = 422
    code = "invalid_input"


class NotFound(DomainError):
    """The resource does not exist (or is not yours)."""

    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The request conflicts with the current state."""

    status = 409
    code = "conflict"


class Unauthorized(DomainError):
    """Authentication is missing or invalid."""

    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    """Authenticated, but not allowed to do this."""

    status = 403
    code = "forbidden"


class RateLimited(DomainError):
    """Too many requests; try again later."""

    status = 429
    code = "rate_limited"


class ServiceUnavailable(DomainError):
    """A dependency is unavailable; try again later."""

    status = 503
    code = "service_unavailable"
