"""Strict JSON decoding and typed access for the parsers of JSON device APIs (OctoPrint, Moonraker).

Device answers are untrusted: a body is decoded strictly (no ``NaN``/``Infinity``, bounded
nesting) and every value is type-checked before use, so a hostile or broken server yields
``MalformedResponse`` with a one-line reason naming where (``where``), never a crash. Every
getter takes the raw value and answers ``None`` for JSON ``null`` or a missing key; ``req_obj``
is the one that insists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from fleetmeter.devices.errors import MalformedResponse

__all__ = [
    "LONG_TEXT",
    "MAX_NUMBER",
    "SHORT_TEXT",
    "array",
    "boolean",
    "decode",
    "non_negative",
    "number",
    "obj",
    "req_obj",
    "rounded",
    "shifted",
    "text",
    "timestamp",
    "type_name",
    "validated",
]

SHORT_TEXT = 256
"""The wire model's limit for names and ids."""
LONG_TEXT = 2048
"""The wire model's limit for paths and messages."""
MAX_NUMBER = 1e15
"""The largest magnitude accepted: ms timestamps are ~1.8e12; anything near 1e15 is garbage."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def decode(body: bytes, *, what: str, max_depth: int) -> Any:
    """Strict JSON: refuses NaN/Infinity, nesting deeper than ``max_depth`` and undecodable
    bytes."""
    try:
        value = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise MalformedResponse(f"{what}: JSON nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise MalformedResponse(f"{what}: not JSON ({reason})") from exc
    # Iterative: a document just under the decoder's recursion limit must not make *our*
    # walkers recurse that deep.
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise MalformedResponse(f"{what}: JSON nested too deeply")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return value


def type_name(value: Any) -> str:
    """The JSON-ish name of ``value``'s type, for error messages."""
    return "null" if value is None else type(value).__name__


def obj(value: Any, where: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedResponse(f"{where}: expected an object, got {type_name(value)}")
    return value


def req_obj(value: Any, where: str) -> Mapping[str, Any]:
    found = obj(value, where)
    if found is None:
        raise MalformedResponse(f"{where}: missing")
    return found


def array(value: Any, where: str) -> Sequence[Any]:
    """A JSON list; ``null`` reads as the empty list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedResponse(f"{where}: expected a list, got {type_name(value)}")
    return value


def text(value: Any, where: str, limit: int = SHORT_TEXT) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedResponse(f"{where}: expected text, got {type_name(value)}")
    # Untrusted text is cut to the wire model's limit rather than failing the whole report.
    return value[:limit]


def boolean(value: Any, where: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise MalformedResponse(f"{where}: expected true/false, got {type_name(value)}")
    return value


def number(value: Any, where: str) -> float | None:
    """A finite JSON number within ``MAX_NUMBER``; ``true``/``false`` are not numbers."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResponse(f"{where}: expected a number, got {type_name(value)}")
    try:
        result = float(value)
    except OverflowError as exc:  # an integer beyond a double
        raise MalformedResponse(f"{where}: number out of range") from exc
    if not math.isfinite(result) or abs(result) > MAX_NUMBER:
        raise MalformedResponse(f"{where}: number out of range")
    return result


def non_negative(value: Any, where: str) -> float | None:
    result = number(value, where)
    if result is not None and result < 0:
        raise MalformedResponse(f"{where}: negative value {result:g}")
    return result


def rounded(value: Any, where: str) -> int | None:
    """A non-negative number rounded to an integer (seconds, millimetres)."""
    result = non_negative(value, where)
    return None if result is None else round(result)


def timestamp(value: Any, where: str) -> datetime | None:
    """Seconds since the Unix epoch → aware UTC."""
    result = non_negative(value, where)
    if result is None:
        return None
    try:
        return datetime.fromtimestamp(result, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise MalformedResponse(f"{where}: timestamp out of range") from exc


def shifted(moment: datetime, seconds: float, where: str) -> datetime:
    """``moment`` moved by ``seconds`` (negative: earlier). A device's duration may be any
    number up to ``MAX_NUMBER``, far beyond what ``datetime`` holds (year 1 to 9999), so an
    overflow is the device's malformed answer, not our crash."""
    try:
        return moment + timedelta(seconds=seconds)
    except OverflowError as exc:
        raise MalformedResponse(f"{where}: duration out of range") from exc


def validated(model: type[Any], fields: Mapping[str, object], where: str) -> Any:
    """``model`` built from ``fields``; a pydantic refusal becomes ``MalformedResponse``
    naming the first offending field."""
    try:
        return model.model_validate(dict(fields))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"]) or "value"
        raise MalformedResponse(f"{where}: value out of range at {loc}: {first['msg']}") from exc
