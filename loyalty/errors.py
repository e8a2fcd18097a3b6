"""The one error the domain raises for input it cannot use."""

from __future__ import annotations


class InvalidEventError(ValueError):
    """An event that cannot be processed; the message says why (it goes to a dead letter)."""
