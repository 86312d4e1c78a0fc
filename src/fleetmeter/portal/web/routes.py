"""Web pages: login and logout, and what every page shares (``render``, CSRF, filters).

The fleet and device pages live in ``fleet_pages``, jobs in ``jobs``, alerts in ``alerts``.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from fleetmeter.portal.api.deps import (
    SESSION_USER_KEY,
    SessionDep,
    client_address,
    session_factory,
    user_from_session,
)
from fleetmeter.portal.api.problems import ProblemError
from fleetmeter.portal.services import access
from fleetmeter.portal.store.models import User

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
REFRESH_SECONDS = 10
CSRF_KEY = "csrf"

router = APIRouter(include_in_schema=False)


def _format_dt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "never"


def _format_num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "\N{EN DASH}"
    return f"{value:,.{digits}f}"


# autoescape=True for every template: job names and device strings are untrusted text.
_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
_env.filters["dt"] = _format_dt
_env.filters["num"] = _format_num
templates = Jinja2Templates(env=_env)


def _csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[CSRF_KEY] = token
    return token


def check_csrf(request: Request, submitted: object) -> None:
    expected = request.session.get(CSRF_KEY)
    if (
        not isinstance(expected, str)
        or not isinstance(submitted, str)
        or not hmac.compare_digest(expected.encode(), submitted.encode())
    ):
        raise ProblemError(403, "invalid or missing CSRF token; reload the page and try again")


def _authenticate(
    factory: sessionmaker[Session], email: str, password: str, address: str | None
) -> User | None:
    with factory() as session:
        return access.login(session, email=email, password=password, address=address)


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    context = {"csrf_token": _csrf_token(request), "refresh": None, **context}
    return templates.TemplateResponse(request, name, context, status_code=status)


@router.get("/")
def index(request: Request, session: SessionDep) -> Response:
    target = "/fleet" if user_from_session(request, session) else "/login"
    return RedirectResponse(target, status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return render(request, "login.html", {"error": None, "email": ""})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    # Small caps: a login form has two fields and a token.
    form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
    check_csrf(request, form.get("csrf"))
    email, password = form.get("email"), form.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        return render(
            request, "login.html", {"error": "Enter email and password.", "email": ""}, 400
        )
    # argon2 verify is CPU-bound (~50 ms): a thread keeps the event loop responsive.
    try:
        user = await run_in_threadpool(
            _authenticate, session_factory(request), email, password, client_address(request)
        )
    except access.LoginThrottled as exc:
        return render(request, "login.html", {"error": str(exc), "email": email}, 429)
    if user is None:
        return render(
            request, "login.html", {"error": "Wrong email or password.", "email": email}, 401
        )
    request.session.clear()  # new session on login: no session fixation
    request.session[SESSION_USER_KEY] = str(user.id)
    request.session[CSRF_KEY] = secrets.token_urlsafe(32)
    return RedirectResponse("/fleet", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=5, max_part_size=1024)
    check_csrf(request, form.get("csrf"))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
