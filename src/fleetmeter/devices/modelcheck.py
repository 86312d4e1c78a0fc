"""Turning the wire model's refusals into ``MalformedResponse`` for the LEDM and IPP parsers.

A value the wire model refuses (a level over 100, an over-long name) is the device's
malformed answer, not our crash: public parsers raise only ``MalformedResponse``, with the
first offending field as the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import ParamSpec, TypeVar

from pydantic import BaseModel, ValidationError

from fleetmeter.devices.errors import MalformedResponse

__all__ = ["checked", "validated", "validation_reason"]

_M = TypeVar("_M", bound=BaseModel)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def validation_reason(exc: ValidationError) -> str:
    """A one-line reason naming the first field pydantic refused."""
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"]) or "value"
    return f"device data out of range at {loc}: {first['msg']}"


def validated(model: type[_M], fields: Mapping[str, object]) -> _M:
    """``model`` built from ``fields``, or ``MalformedResponse``."""
    try:
        return model.model_validate(dict(fields))
    except ValidationError as exc:
        raise MalformedResponse(validation_reason(exc)) from exc


def checked(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a public parser so that a ``ValidationError`` escaping it becomes
    ``MalformedResponse``."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            raise MalformedResponse(validation_reason(exc)) from exc

    return wrapper
