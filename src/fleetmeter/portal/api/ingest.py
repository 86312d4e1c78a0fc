"""``POST /api/v1/ingest/batches``: a collector uploads one compressed ``Batch``.

Order of checks: token (401) → media type and encoding (415) → size, read with a cap
and before any decompression (413) → decompression with a cap (413 for a bomb, 400 for
corrupt data) → wire validation (422 with field paths) → store and commit → receipt.
"""

from __future__ import annotations

import uuid

import pydantic
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from fleetmeter import wire
from fleetmeter.portal.api.deps import get_settings, session_factory
from fleetmeter.portal.api.problems import ProblemError, field_errors
from fleetmeter.portal.services import collectors, tenancy
from fleetmeter.portal.services.ingest import ingest_batch
from fleetmeter.portal.store.models import Collector
from fleetmeter.wire import codec

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"])

_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="fleetmeter-ingest"'}


@router.post(
    "/batches",
    response_model=wire.BatchReceipt,
    responses={401: {}, 413: {}, 415: {}, 422: {}},
)
async def post_batch(request: Request) -> JSONResponse:
    settings = get_settings(request)
    factory = session_factory(request)

    token = _bearer_token(request)
    running = request.headers.get(collectors.CONFIG_VERSION_HEADER)
    # DB work is synchronous (SQLAlchemy sync engine): keep it off the event loop.
    collector_id = await run_in_threadpool(_authenticate, factory, token, running)
    if collector_id is None:
        raise ProblemError(401, "unknown or missing collector token", headers=_BEARER_CHALLENGE)

    encoding = content_encoding(request)
    body = await read_capped(request, settings.max_ingest_body_bytes)
    batch = await run_in_threadpool(decode_body, body, encoding, settings.max_decompressed_bytes)
    receipt = await run_in_threadpool(_store, factory, collector_id, batch)
    return JSONResponse(receipt.model_dump(mode="json"))


def _bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError(401, "missing Bearer collector token", headers=_BEARER_CHALLENGE)
    return token.strip()


def _authenticate(
    factory: sessionmaker[Session], token: str, running_version: str | None
) -> uuid.UUID | None:
    with factory() as session:
        collector = tenancy.authenticate_collector(session, token=token)
        if collector is None:
            return None
        collectors.record_running_version(collector, running_version)
        session.commit()  # last_seen_at, the settings version it runs
        collector_id: uuid.UUID = collector.id
        return collector_id


def content_encoding(request: Request) -> str:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ProblemError(
            415, f"Content-Type must be application/json, not {media_type or 'missing'!r}"
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower() or "identity"
    if encoding not in codec.ENCODINGS:
        raise ProblemError(
            415,
            f"unsupported Content-Encoding {encoding!r}; use one of {', '.join(codec.ENCODINGS)}",
            headers={"Accept-Encoding": ", ".join(codec.ENCODINGS)},
        )
    return encoding


async def read_capped(request: Request, limit: int) -> bytes:
    """The raw (still compressed) body; more than ``limit`` bytes is refused unread."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise ProblemError(400, "invalid Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    # Chunked uploads carry no Content-Length: count as we go and stop at the cap.
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ProblemError:
    return ProblemError(413, f"batch body larger than {limit} bytes (compressed); split it")


def decode_body(body: bytes, encoding: str, limit: int) -> wire.Batch:
    try:
        raw = codec.decompress(body, encoding, limit=limit)
    except codec.CodecError as exc:
        message = str(exc)
        # The codec raises one error type; its size messages mean "bomb", the rest "corrupt".
        if "exceeds" in message or "larger than" in message:
            raise ProblemError(413, f"decompressed batch larger than {limit} bytes") from exc
        raise ProblemError(400, f"body cannot be decompressed: {message}") from exc
    try:
        return wire.Batch.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        errors = field_errors(exc.errors(include_url=False, include_input=False))
        raise ProblemError(
            422,
            "invalid batch: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]),
            errors=errors,
        ) from exc


def _store(
    factory: sessionmaker[Session], collector_id: uuid.UUID, batch: wire.Batch
) -> wire.BatchReceipt:
    with factory() as session:
        collector = session.get(Collector, collector_id)
        if collector is None:  # deleted between authentication and now
            raise ProblemError(401, "unknown collector", headers=_BEARER_CHALLENGE)
        return ingest_batch(session, collector=collector, batch=batch)
