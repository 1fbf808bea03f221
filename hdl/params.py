"""Eager parameter checks for the components' keyword-only constructors."""

from __future__ import annotations

import functools

__all__ = ["check_int", "validated"]


def check_int(name: str, value, low: int = 1) -> int:
    """Return ``value`` if it is an integer >= ``low``; else raise (TypeError for a non-integer,
    ValueError for one too small), quoting the bad value."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, not {value!r}")
    return value


def validated(init):
    """Decorate a component's ``__init__``: when it rejects its parameters, mark the half-built
    object as deliberately unused so Amaranth does not also warn that it was never elaborated."""

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except (TypeError, ValueError):
            self._MustUse__silence = True
            raise

    return wrapper
