"""The errors of the application layer; each transport maps them to its own status codes.

==================  ====================  ===========
error               gRPC                  HTTP
==================  ====================  ===========
NotFound            NOT_FOUND             404
InvalidArgument     INVALID_ARGUMENT      422
StaleVersion        FAILED_PRECONDITION   412
FailedPrecondition  FAILED_PRECONDITION   409
Unavailable         UNAVAILABLE           503
Unauthenticated     UNAUTHENTICATED       401
PermissionDenied    PERMISSION_DENIED     403
==================  ====================  ===========
"""

from __future__ import annotations


class ServiceError(Exception):
    """An operation refused with a message meant for the caller."""


class NotFound(ServiceError):
    """The loan, simulation, run, metric or segment asked for does not exist."""


class InvalidArgument(ServiceError):
    """The request is malformed or breaks a rule; ``reasons`` lists every problem found."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class StaleVersion(ServiceError):
    """The update was made from a version (etag) of the loan that is no longer the current one."""


class FailedPrecondition(ServiceError):
    """The system is not in a state the operation needs (e.g. no loan snapshot published yet)."""


class Unavailable(ServiceError):
    """A backend the operation needs (Airflow, the database) did not answer."""


class Unauthenticated(ServiceError):
    """No bearer token, or one that is not valid (signature, issuer, audience, expiry)."""


class PermissionDenied(ServiceError):
    """A valid token without the scope the operation needs."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"insufficient_scope: this operation needs the scope {scope!r}")
        self.scope = scope
