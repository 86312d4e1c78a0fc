"""Keyset pagination on (time, id), newest first, for tables that grow without bound.

A page starts from the (time, id) of the last row shown instead of skipping N rows with
OFFSET, so the millionth row costs what the first does: the database walks its
(reseller_id, time) index from the cursor. The id breaks ties between rows with the same
time, so no row is skipped or shown twice across pages.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, SQLColumnExpression, and_, or_

T = TypeVar("T")
_FORMAT = "%Y%m%dT%H%M%S.%fZ"


@dataclass(frozen=True)
class Cursor:
    """The position of one row: its time and id; in URLs ``20260301T080000.000000Z~<hex>``."""

    at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        return f"{self.at.astimezone(UTC).strftime(_FORMAT)}~{self.id.hex}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse an encoded cursor; ``ValueError`` if it is not one."""
        at, sep, ident = text.partition("~")
        if not sep or len(text) > 64:
            raise ValueError("not a page cursor")
        return cls(datetime.strptime(at, _FORMAT).replace(tzinfo=UTC), uuid.UUID(hex=ident))


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    newer: Cursor | None  # pass as ``after`` for the previous (newer) page; None on the first
    older: Cursor | None  # pass as ``before`` for the next (older) page; None on the last


def keyset_page(
    stmt: Select[Any],
    *,
    at: SQLColumnExpression[datetime],
    ident: SQLColumnExpression[uuid.UUID],
    before: Cursor | None,
    after: Cursor | None,
    limit: int,
    execute: Callable[[Select[Any]], Sequence[Any]],
    position: Callable[[Any], Cursor],
) -> Page[Any]:
    """One page of ``stmt`` newest first: the first page, the one ``before`` a cursor
    (older rows) or the one ``after`` it (newer rows). ``position`` gives a row's cursor.

    One extra row is fetched to know whether another page follows. Paging back to the
    newest rows returns the first page itself, so it is always full.
    """
    if after is not None:
        rows = list(
            execute(
                stmt.where(_after(at, ident, after))
                .order_by(at.asc(), ident.asc())
                .limit(limit + 1)
            )
        )
        if len(rows) > limit:
            shown = list(reversed(rows[:limit]))
            return Page(shown, newer=position(shown[0]), older=position(shown[-1]))
        after = None  # nothing newer than a full page: this is the first page
    query = stmt.order_by(at.desc(), ident.desc())
    if before is not None:
        query = query.where(_before(at, ident, before))
    rows = list(execute(query.limit(limit + 1)))
    shown = rows[:limit]
    return Page(
        shown,
        newer=position(shown[0]) if before is not None and shown else None,
        older=position(shown[-1]) if len(rows) > limit else None,
    )


def _before(
    at: SQLColumnExpression[datetime], ident: SQLColumnExpression[uuid.UUID], c: Cursor
) -> Any:
    # The redundant ``at <= c.at`` is the sargable part: both SQLite and PostgreSQL start the
    # (reseller_id, time) index range there instead of evaluating the OR on every row.
    return and_(at <= c.at, or_(at < c.at, ident < c.id))


def _after(
    at: SQLColumnExpression[datetime], ident: SQLColumnExpression[uuid.UUID], c: Cursor
) -> Any:
    return and_(at >= c.at, or_(at > c.at, ident > c.id))
