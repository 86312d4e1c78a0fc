"""Hostile input to the portal's ingest endpoints (collector and direct-connection) and JSON
APIs: compression bombs, oversized bodies (declared and chunked), deep JSON, invalid UTF-8,
wrong content types and encodings, wrong types in every field of a batch (fuzzed).

The contract: a clear 4xx answer as an RFC 9457 problem document, never a 500, and nothing
stored (every tenant table's row count is unchanged). Real app, real codec, real database
(SQLite, and PostgreSQL when reachable).
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import zstandard
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter.portal.api.ingest import decode_body
from fleetmeter.portal.api.problems import ProblemError
from fleetmeter.portal.services import devices_direct
from fleetmeter.portal.services.devices_direct import NewDeviceSecret, SecretBox
from fleetmeter.portal.settings import PortalSettings
from fleetmeter.portal.store.models import (
    Alert,
    CounterReading,
    Customer,
    Device,
    IngestedBatch,
    JobRecord,
    Reseller,
)
from fleetmeter.signing.httpsig import sign_request
from fleetmeter.wire.codec import MAX_DECOMPRESSED_BYTES
from tests.devices.hostile_support import SCALE, json_mutations
from tests.portal.portal_builders import PASSWORD, Tenant, batch, job, report

INGEST = "/api/v1/ingest/batches"
DIRECT = "/api/v1/direct/batches"
SERIAL = "SG12345678"  # the serial portal_builders.report uses
STORED = (IngestedBatch, Device, JobRecord, CounterReading, Alert)

# Hypothesis with the function-scoped app and database: the examples share them on purpose
# (each posts a new batch id; what is refused must leave the counts as they were).
FUZZ_PORTAL = settings(
    max_examples=60 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def _counts(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        return {
            m.__name__: session.scalar(select(func.count()).select_from(m)) or 0 for m in STORED
        }


def _good() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(batch(report(jobs=[job(1)])).model_dump_json())
    return doc


def _fresh(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "batch_id": str(uuid.uuid4())} if isinstance(doc, dict) else doc


class Poster:
    """Posts to one ingest endpoint with valid credentials (a bearer token, or a fresh
    RFC 9421 signature per request), whatever the body."""

    def __init__(
        self, client: TestClient, path: str, tenant: Tenant, device: NewDeviceSecret | None
    ) -> None:
        self.client, self.path, self.tenant, self.device = client, path, tenant, device

    def __call__(self, body: bytes | Iterator[bytes], **headers: str) -> Any:
        sent = {"Content-Type": "application/json", **headers}
        if self.path == INGEST:
            sent.setdefault("Authorization", f"Bearer {self.tenant.token}")
        else:
            assert self.device is not None
            signed = body if isinstance(body, bytes) else b""
            sent.update(
                sign_request(
                    method="POST",
                    url="http://testserver" + DIRECT,
                    body=signed,
                    key_id=self.device.key_id,
                    secret=self.device.secret,
                )
            )
        return self.client.post(self.path, content=body, headers=sent)


@pytest.fixture
def device(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: PortalSettings,
    tenant: Tenant,
) -> NewDeviceSecret:
    box = SecretBox(settings.resolve_secrets_key())
    with session_factory() as session:
        reseller = session.get(Reseller, tenant.reseller_id)
        customer = session.get(Customer, tenant.customer_id)
        assert reseller is not None and customer is not None
        new = devices_direct.add_device(
            session, box=box, reseller=reseller, customer=customer, serial_number=SERIAL
        )
        session.commit()
    return new


@pytest.fixture(params=[INGEST, DIRECT])
def post(
    request: pytest.FixtureRequest, client: TestClient, tenant: Tenant, device: NewDeviceSecret
) -> Poster:
    return Poster(client, request.param, tenant, device)


def _refused(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == response.status_code and problem["detail"]
    return problem


def test_a_healthy_batch_is_stored_on_both_endpoints(
    post: Poster, session_factory: sessionmaker[Session]
) -> None:
    """The baseline the refusals are measured against: the same poster stores a good batch."""
    response = post(json.dumps(_good()).encode())
    assert response.status_code == 200, response.text
    assert _counts(session_factory)["IngestedBatch"] == 1


# --------------------------------------------------------------------------- bodies

BOMB_SIZE = MAX_DECOMPRESSED_BYTES * 4


def _zstd_bomb(*, with_size: bool) -> bytes:
    zero = bytes(BOMB_SIZE)
    if with_size:
        return zstandard.ZstdCompressor(level=3).compress(zero)
    # Streamed: the frame header does not say how large the content is.
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    return compressor.compress(zero) + compressor.flush()


def _json_bomb() -> bytes:
    """Valid JSON that is mostly whitespace: small compressed, huge decompressed."""
    return gzip.compress(b"{" + b" " * BOMB_SIZE + b"}")


COMPRESSION_ABUSE = [
    ("zstd-bomb", "zstd", 413),
    ("zstd-bomb-unsized", "zstd", 413),
    ("gzip-bomb", "gzip", 413),
    ("gzip-json-bomb", "gzip", 413),
    ("corrupt-zstd", "zstd", 400),
    ("corrupt-gzip", "gzip", 400),
    ("truncated-gzip", "gzip", 400),
    ("gzip-as-zstd", "zstd", 400),
]


def test_compression_abuse(post: Poster, session_factory: sessionmaker[Session]) -> None:
    """Bombs (64 MB from under 100 kB) and corrupt streams: 413 / 400, nothing stored.
    (One app per endpoint and database, every case in it: an app costs a second to make.)"""
    good = gzip.compress(json.dumps(_good()).encode())
    bodies = {
        "zstd-bomb": lambda: _zstd_bomb(with_size=True),
        "zstd-bomb-unsized": lambda: _zstd_bomb(with_size=False),
        "gzip-bomb": lambda: gzip.compress(bytes(BOMB_SIZE)),
        "gzip-json-bomb": _json_bomb,
        "corrupt-zstd": lambda: b"(\xb5/\xfd" + b"\x00garbage" * 10,
        "corrupt-gzip": lambda: b"\x1f\x8b\x08\x00" + b"garbage" * 10,
        "truncated-gzip": lambda: good[: len(good) // 2],
        "gzip-as-zstd": lambda: good,
    }
    before = _counts(session_factory)
    for name, encoding, status in COMPRESSION_ABUSE:
        body = bodies[name]()
        assert len(body) < 100 * 1024, f"{name}: must pass the compressed-size cap to be a test"
        problem = _refused(post(body, **{"Content-Encoding": encoding}), status)
        assert problem["status"] == status, name
    assert _counts(session_factory) == before


def test_oversized_declared_body(post: Poster, session_factory: sessionmaker[Session]) -> None:
    _refused(post(b"{" + b" " * 200_000 + b"}"), 413)
    assert _counts(session_factory)["IngestedBatch"] == 0


def test_oversized_chunked_body(post: Poster, session_factory: sessionmaker[Session]) -> None:
    """No Content-Length: counted as it streams, refused at the cap."""

    def chunks() -> Iterator[bytes]:
        yield b"{"
        for _ in range(64):
            yield b" " * 8192

    _refused(post(chunks()), 401, 413)
    assert _counts(session_factory)["IngestedBatch"] == 0


def test_invalid_content_length_is_refused(client: TestClient, tenant: Tenant) -> None:
    headers = {"Authorization": f"Bearer {tenant.token}", "Content-Type": "application/json"}
    for value in ("-1", "1e3", "abc"):
        response = client.post(INGEST, content=b"{}", headers={**headers, "Content-Length": value})
        assert 400 <= response.status_code < 500, (value, response.status_code)


BAD_JSON: dict[str, bytes] = {
    "deep-list": b"[" * 50_000 + b"]" * 50_000,
    "deep-object": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "deep-in-an-extra-field": json.dumps(_good())[:-1].encode()
    + b', "x": '
    + b"[" * 5000
    + b"]" * 5000
    + b"}",
    "invalid-utf8": b'{"batch_id": "\xff\xfe"}',
    "lone-surrogate": b'{"batch_id": "\\ud800"}',
    "utf16": json.dumps(_good()).encode("utf-16"),
    "nan": b'{"batch_id": NaN}',
    "huge-number": b'{"batch_id": ' + b"9" * 5000 + b"}",
    "truncated": json.dumps(_good()).encode()[:100],
    "empty": b"",
    "not-json": b"<html></html>",
    "array": b"[]",
    "null": b"null",
}


def test_malformed_json_is_refused(post: Poster, session_factory: sessionmaker[Session]) -> None:
    for name, body in BAD_JSON.items():
        encoding = "identity"
        if len(body) > 100_000:  # the deep documents: sent compressed, as a collector would
            body, encoding = gzip.compress(body), "gzip"
        response = post(body, **{"Content-Encoding": encoding})
        assert 400 <= response.status_code < 500, (name, response.status_code)
        _refused(response, 400, 413, 422)
    assert set(_counts(session_factory).values()) == {0}


WRONG_MEDIA = [
    ("text/plain", "identity"),
    ("application/x-www-form-urlencoded", "identity"),
    ("multipart/form-data; boundary=x", "identity"),
    ("application/xml", "identity"),
    ("", "identity"),
    ("application/json", "br"),
    ("application/json", "deflate"),
    ("application/json", "gzip, zstd"),
    ("application/json", "x" * 500),
]


def test_wrong_content_type_or_encoding(
    post: Poster, session_factory: sessionmaker[Session]
) -> None:
    body = json.dumps(_good()).encode()
    for content_type, encoding in WRONG_MEDIA:
        response = post(body, **{"Content-Type": content_type, "Content-Encoding": encoding})
        assert response.status_code == 415, (content_type, encoding[:20], response.status_code)
        _refused(response, 415)
    assert set(_counts(session_factory).values()) == {0}


def test_hostile_bodies_without_credentials_are_refused_unread(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    for path in (INGEST, DIRECT):
        for body in (_zstd_bomb(with_size=False), BAD_JSON["invalid-utf8"], b""):
            response = client.post(
                path,
                content=body,
                headers={"Content-Type": "application/json", "Content-Encoding": "zstd"},
            )
            _refused(response, 401)
    assert set(_counts(session_factory).values()) == {0}


# --------------------------------------------------------------------------- fields

WRONG_TYPES: list[Any] = [None, True, 0, -1, 2**63, 2**64, 1e308, "", "x" * 3000, [], {}, [1]]
WRONG_TYPES += ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", str(uuid.UUID(int=0))]
POSTED_AT_MOST = 60
"""Of the odd-but-valid batches, this many (spread over the fields) go through HTTP and the
database: each post costs tens of milliseconds, validation alone microseconds."""


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out += _paths(value, (*prefix, index))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = json.loads(json.dumps(doc))
    node = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copy


def test_wrong_types_in_every_field(
    client: TestClient, tenant: Tenant, session_factory: sessionmaker[Session]
) -> None:
    """Every field of a batch (and the batch itself), each replaced by values of every JSON
    type and absurd sizes. The wire validation (``decode_body``, what both endpoints run)
    answers each with a 4xx problem or accepts it; what it accepts is then posted for real
    and must be stored or refused below 500, a refusal storing nothing."""
    good = _good()
    accepted: dict[tuple[Any, ...], dict[str, Any]] = {}
    tried = 0
    for path in _paths(good):
        for value in WRONG_TYPES:
            doc = _fresh(_set(good, path, value))
            tried += 1
            try:
                decode_body(json.dumps(doc).encode(), "identity", MAX_DECOMPRESSED_BYTES)
            except ProblemError as exc:
                assert 400 <= exc.status < 500 and exc.detail, (path, value, exc.status)
                continue
            # One per field shape (list indices aside) and value type.
            shape = tuple("*" if isinstance(step, int) else step for step in path)
            accepted.setdefault((*shape, type(value).__name__), doc)
    assert tried > 1500 and accepted  # extra fields, nullable ones: odd but valid
    docs = list(accepted.values())
    step = max(1, len(docs) // POSTED_AT_MOST)
    post = Poster(client, INGEST, tenant, None)
    for doc in docs[::step]:
        before = _counts(session_factory)
        response = post(json.dumps(doc).encode())
        assert response.status_code < 500, (doc, response.text[:300])
        if response.status_code != 200:
            _refused(response, 400, 403, 409, 413, 415, 422)
            assert _counts(session_factory) == before


def _without_nul(doc: Any) -> Any:
    if isinstance(doc, str):
        return doc.replace("\x00", "\x01")
    if isinstance(doc, list):
        return [_without_nul(v) for v in doc]
    if isinstance(doc, dict):
        return {_without_nul(k): _without_nul(v) for k, v in doc.items()}
    return doc


@FUZZ_PORTAL
@given(data=st.data())
def test_fuzzed_batches(
    post: Poster, session_factory: sessionmaker[Session], data: st.DataObject
) -> None:
    """One to three nodes of a good batch replaced by JSON of any type and magnitude."""
    # NUL in text has its own (xfail on PostgreSQL) test: kept out of the fuzzing.
    doc = _fresh(_without_nul(data.draw(json_mutations(_good()))))
    before = _counts(session_factory)
    response = post(json.dumps(doc).encode(), **{"Content-Encoding": "identity"})
    assert response.status_code < 500, response.text[:300]
    if response.status_code != 200:
        _refused(response, 400, 403, 409, 413, 415, 422)
        assert _counts(session_factory) == before


# --------------------------------------------------------------------------- known bugs


@pytest.mark.xfail(
    strict=True,
    reason=(
        "wire/model.py _to_utc: value.astimezone(UTC) raises OverflowError (not ValueError) "
        "for an aware timestamp whose UTC equivalent is outside datetime's range, e.g. "
        "'0001-01-01T00:00:00+05:00' or '9999-12-31T23:59:59-05:00'; pydantic does not turn "
        "OverflowError into a ValidationError, so portal/api/ingest.py decode_body answers 500"
    ),
)
@pytest.mark.parametrize(
    ("field", "stamp"),
    [("created_at", "0001-01-01T00:00:00+05:00"), ("collected_at", "9999-12-31T23:59:59-05:00")],
)
def test_timestamps_beyond_utc_are_refused(
    post: Poster, session_factory: sessionmaker[Session], field: str, stamp: str
) -> None:
    doc = _fresh(_good())
    if field == "created_at":
        doc["created_at"] = stamp
    else:
        doc["reports"][0]["collected_at"] = stamp
    _refused(post(json.dumps(doc).encode()), 422)
    assert _counts(session_factory)["IngestedBatch"] == 0


def test_nul_characters_are_refused(
    post: Poster,
    session_factory: sessionmaker[Session],
    database_url: str,
    request: pytest.FixtureRequest,
) -> None:
    if database_url.startswith("postgresql"):
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason=(
                    "PostgreSQL text cannot hold NUL (0x00): the wire model's ShortText/"
                    "LongText accept '\\x00', and portal/services/ingest.py ingest_batch "
                    "passes it to INSERT INTO job_records (or devices), which raises "
                    "psycopg.DataError: a 500 instead of a 422 (SQLite stores it)"
                ),
            )
        )
    doc = _fresh(_good())
    doc["reports"][0]["jobs"][0]["name"] = "plan\x00.pdf"
    response = post(json.dumps(doc).encode())
    assert response.status_code < 500, response.text[:300]


# --------------------------------------------------------------------------- JSON APIs


JSON_API_POSTS = ["/api/v1/session", "/api/v1/users", "/api/v1/api-tokens", "/api/v1/contracts"]


def test_json_apis_refuse_malformed_bodies(client: TestClient, tenant: Tenant) -> None:
    """Malformed bodies to the JSON APIs, logged out and logged in: 4xx problems."""
    basic = base64.b64encode(f"{tenant.email}:{PASSWORD}".encode()).decode()
    for auth in ({}, {"Authorization": f"Basic {basic}"}):
        for path in JSON_API_POSTS:
            for name in ("deep-list", "deep-object", "invalid-utf8", "nan", "not-json", "utf16"):
                headers = {"Content-Type": "application/json", **auth}
                response = client.post(path, content=BAD_JSON[name], headers=headers)
                assert 400 <= response.status_code < 500, (path, name, response.status_code)
                assert response.headers["content-type"].startswith("application/problem+json")
