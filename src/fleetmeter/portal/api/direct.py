"""``POST /api/v1/direct/batches``: a direct-connected device uploads one signed ``Batch``.

Order of checks: the body is read with a cap (413) — its digest is part of the signature,
so it must be read first, but it is neither decompressed nor parsed — → signature, key
state, time window and nonce (401, one generic detail for every reason; the reason goes
to the log) → media type and encoding (415) → decompression with a cap (413 / 400) → wire
validation (422) → every report is about the credential's own device (403) → store and
commit → receipt.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from fleetmeter import wire
from fleetmeter.portal.api.deps import get_settings, session_factory
from fleetmeter.portal.api.ingest import content_encoding, decode_body, read_capped
from fleetmeter.portal.api.problems import ProblemError
from fleetmeter.portal.services.devices_direct import SecretBox, authenticate_device
from fleetmeter.portal.services.ingest import ForeignDeviceError, Sender, ingest_batch
from fleetmeter.portal.store.models import DeviceCredential
from fleetmeter.signing import httpsig

log = logging.getLogger("fleetmeter.portal.direct")

router = APIRouter(prefix="/api/v1/direct", tags=["direct"])

BATCHES_PATH = "/api/v1/direct/batches"
SIGNATURE_FAILED = "signature verification failed"
# RFC 9421 §5.1: tell a client what a valid signature must cover (it is public anyway).
_ACCEPT_SIGNATURE = {
    "Accept-Signature": f'{httpsig.LABEL}=("@method" "@path" "@authority" "content-digest")'
    f';alg="{httpsig.ALGORITHM}";tag="{httpsig.TAG}"'
}


@router.post(
    "/batches",
    response_model=wire.BatchReceipt,
    responses={401: {}, 403: {}, 413: {}, 415: {}, 422: {}},
)
async def post_device_batch(request: Request) -> JSONResponse:
    settings = get_settings(request)
    factory = session_factory(request)
    box: SecretBox = request.app.state.secret_box

    body = await read_capped(request, settings.max_ingest_body_bytes)
    url = _received_url(request)
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]
    credential_id = await run_in_threadpool(
        _authenticate, factory, box, request.method, url, headers, body, settings.signature_window_s
    )

    encoding = content_encoding(request)
    batch = await run_in_threadpool(decode_body, body, encoding, settings.max_decompressed_bytes)
    receipt = await run_in_threadpool(_store, factory, credential_id, batch)
    return JSONResponse(receipt.model_dump(mode="json"))


def _received_url(request: Request) -> str:
    """The URL as this server received it: scheme, Host header and the raw (undecoded) path.

    ``@authority`` comes from the Host header, so a signature made for another portal (or
    a staging copy) does not verify here; ``@path`` from the raw path, as the device sent it.
    """
    host = request.headers.get("host", "")
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    return f"{request.url.scheme}://{host}{raw_path.decode('latin-1')}"


def _authenticate(
    factory: sessionmaker[Session],
    box: SecretBox,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    window_s: int,
) -> uuid.UUID:
    with factory() as session:
        try:
            credential = authenticate_device(
                session,
                box=box,
                method=method,
                url=url,
                headers=headers,
                body=body,
                window_s=window_s,
            )
        except httpsig.SignatureError as exc:
            # The reason is for operators only: the client learns nothing about which check
            # failed (a key id that exists, a secret that almost matched, ...).
            log.warning("direct upload refused: reason=%s (%s)", exc.reason, exc.detail)
            raise ProblemError(401, SIGNATURE_FAILED, headers=_ACCEPT_SIGNATURE) from None
        except ValueError as exc:
            # A stored secret that does not decrypt: this portal runs with another secrets
            # key than the one the device was provisioned under. An operator must fix it.
            log.error("direct upload failed: %s (check FLEETMETER_SECRETS_KEY)", exc)
            raise ProblemError(500, "the portal cannot check signatures right now") from None
        credential_id: uuid.UUID = credential.id
        return credential_id


def _store(
    factory: sessionmaker[Session], credential_id: uuid.UUID, batch: wire.Batch
) -> wire.BatchReceipt:
    with factory() as session:
        credential = session.get(DeviceCredential, credential_id)
        if credential is None or credential.revoked_at is not None:  # revoked meanwhile
            log.warning("direct upload refused: reason=revoked (while uploading)")
            raise ProblemError(401, SIGNATURE_FAILED, headers=_ACCEPT_SIGNATURE)
        try:
            return ingest_batch(session, sender=Sender.of_device(credential), batch=batch)
        except ForeignDeviceError as exc:
            log.warning("direct upload refused: key_id=%s %s", credential.key_id, exc)
            raise ProblemError(403, str(exc)) from None
