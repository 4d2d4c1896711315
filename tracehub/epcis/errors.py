"""Errors of the EPCIS module."""

from __future__ import annotations

from tracehub.errors import InvalidError

__all__ = ["EPCISValidationError"]


class EPCISValidationError(InvalidError):
    """An EPCIS document or event is not valid; the message names the failing field's path."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
