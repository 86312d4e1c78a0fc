"""Request dependencies: the DB session, the settings and who is calling (``Principal``)."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter.portal.api.problems import ProblemError
from fleetmeter.portal.services import tenancy
from fleetmeter.portal.settings import PortalSettings
from fleetmeter.portal.store.models import User

SESSION_USER_KEY = "user_id"


@dataclass(frozen=True)
class Principal:
    """A logged-in user; every read is scoped by ``reseller_id``."""

    reseller_id: uuid.UUID
    user_id: uuid.UUID
    email: str


def session_factory(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def get_settings(request: Request) -> PortalSettings:
    settings: PortalSettings = request.app.state.settings
    return settings


def get_db(request: Request) -> Iterator[Session]:
    with session_factory(request)() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[PortalSettings, Depends(get_settings)]


def user_from_session(request: Request, session: Session) -> User | None:
    raw = request.session.get(SESSION_USER_KEY)
    if not isinstance(raw, str):
        return None
    try:
        user_id = uuid.UUID(raw)
    except ValueError:
        return None
    # Looked up on every request, so a deleted user loses access at once.
    return session.get(User, user_id)


def _user_from_basic(request: Request, session: Session) -> User | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        email, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not sep:
        return None
    return tenancy.authenticate_user(session, email=email, password=password)


def current_principal(request: Request, session: SessionDep) -> Principal:
    """The session's user, else HTTP Basic (email:password) for scripts; 401 otherwise."""
    user = user_from_session(request, session) or _user_from_basic(request, session)
    if user is None:
        raise ProblemError(
            401,
            "log in (POST /api/v1/session) or send HTTP Basic email:password",
            headers={"WWW-Authenticate": 'Basic realm="fleetmeter", charset="UTF-8"'},
        )
    return Principal(reseller_id=user.reseller_id, user_id=user.id, email=user.email)


PrincipalDep = Annotated[Principal, Depends(current_principal)]
