"""Commerce errors, each carrying the HTTP status the API answers with."""

from __future__ import annotations


class CommerceError(Exception):
    """Base: a request commerce refuses, with the status code that says why."""

    status = 400


class Invalid(CommerceError):
    """The request is malformed or refers to something unusable (422)."""

    status = 422


class NotFound(CommerceError, LookupError):
    """No such rfq, quote, order, payment or shipment (404)."""

    status = 404


class Forbidden(CommerceError):
    """The caller's organisation is not a party to this (403)."""

    status = 403


class Conflict(CommerceError):
    """The request clashes with the current state (409)."""

    status = 409
