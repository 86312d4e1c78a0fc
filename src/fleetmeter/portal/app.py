"""The app factory: ``create_app(settings)`` wires store, API, web UI and middleware.

The app refuses to start on a database that is not at the newest migration
(``NotMigratedError``); ``fleetmeter portal serve`` migrates before it creates the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from fleetmeter.portal.api import accounts, collectors, device_credentials, direct, ingest, read
from fleetmeter.portal.api import billing as billing_api
from fleetmeter.portal.api.problems import install_problem_handlers
from fleetmeter.portal.services import access
from fleetmeter.portal.services.devices_direct import SecretBox
from fleetmeter.portal.settings import PortalSettings
from fleetmeter.portal.store.db import make_engine, make_session_factory
from fleetmeter.portal.store.migrate import require_current
from fleetmeter.portal.web import alerts as web_alerts
from fleetmeter.portal.web import collectors as web_collectors
from fleetmeter.portal.web import fleet_pages as web_fleet
from fleetmeter.portal.web import jobs as web_jobs
from fleetmeter.portal.web import routes as web
from fleetmeter.portal.web.security import BodyLimitMiddleware, SecurityHeadersMiddleware
from fleetmeter.signing.documents import private_key_from_bytes

INGEST_PATH = "/api/v1/ingest/batches"
DEFAULT_BODY_LIMIT = 64 * 1024  # login form, JSON login: far less than this


def create_app(settings: PortalSettings | None = None) -> FastAPI:
    """Build the portal app. Raises ``PortalError`` on bad settings or an un-migrated DB."""
    settings = settings or PortalSettings()
    secret = settings.resolve_session_secret()
    # Resolved (and generated on first start) before serving: a portal that cannot read
    # device secrets must not start and then fail every direct upload.
    secret_box = SecretBox(settings.resolve_secrets_key())
    config_signing_key = private_key_from_bytes(settings.resolve_config_signing_key())
    engine = make_engine(
        settings.effective_database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    try:
        require_current(engine)
    except Exception:
        engine.dispose()
        raise

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="FleetMeter portal",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # the Swagger UI loads scripts from a CDN, which the CSP forbids
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    # Every ORM read of a request whose caller is known is scoped to its tenant.
    access.install_tenant_scope(app.state.session_factory)
    app.state.secret_box = secret_box
    app.state.config_signing_key = config_signing_key

    install_problem_handlers(app)
    app.include_router(ingest.router)
    app.include_router(direct.router)
    app.include_router(device_credentials.router)
    app.include_router(collectors.router)
    app.include_router(accounts.router)
    app.include_router(read.router)
    app.include_router(billing_api.router)
    app.include_router(web.router)
    app.include_router(web_collectors.router)
    app.include_router(web_fleet.router)
    app.include_router(web_jobs.router)
    app.include_router(web_alerts.router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    # Added innermost first: the security headers wrap everything, even early 413s.
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=DEFAULT_BODY_LIMIT,
        limits={
            INGEST_PATH: settings.max_ingest_body_bytes,
            direct.BATCHES_PATH: settings.max_ingest_body_bytes,
        },
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="fleetmeter_session",
        max_age=settings.session_max_age_s,
        same_site="lax",  # cross-site POSTs carry no cookie; links from mail still log in
        https_only=settings.cookie_secure,
    )
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.cookie_secure)
    return app
