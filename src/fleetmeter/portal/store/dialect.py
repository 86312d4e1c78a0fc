"""``INSERT … ON CONFLICT`` for the two backends we run on (same syntax, separate constructs)."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleetmeter.portal.store.models import Base

Insert = postgresql.Insert | sqlite.Insert


def insert_on_conflict(session: Session, model: type[Base]) -> Insert:
    """An INSERT for ``model`` that supports ``on_conflict_do_nothing/_update``."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model)
    if name == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"unsupported database backend {name!r}: use SQLite or PostgreSQL")
