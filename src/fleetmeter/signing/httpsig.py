"""HTTP Message Signatures (RFC 9421) for direct-connected devices: one HMAC-SHA256 profile.

A device signs every request with a secret shared at provisioning; the secret itself never
travels. The profile (docs/direct-connection.md) is fixed, so that a verifier accepts
exactly what a signer produces and nothing looser:

- covered components ``("@method" "@path" "@authority" "content-digest")``, in that order
  when signing (a verifier accepts any order, and extra components, but never fewer);
- signature parameters ``created`` (integer seconds), ``nonce``, ``keyid``,
  ``alg="hmac-sha256"`` and ``tag="fleetmeter-direct"`` (the tag keeps a signature made for
  this protocol from being accepted by any other that shares the key);
- ``Content-Digest`` (RFC 9530) with ``sha-256`` over the body bytes exactly as sent, that
  is *before* any content coding is undone: a verifier checks it before decompressing.

Verification checks, in order: the headers parse and carry one signature with our tag, its
parameters are all present and of the right type, ``created`` lies within ``±window_s`` of
the verifier's clock, the HMAC matches under one of the caller's secrets (several during a
rotation overlap) in constant time, then the digest matches the body. Replay protection
(a nonce seen before) needs shared storage, so it is the caller's job, with the nonce and
``created`` returned here.

The RFC machinery (structured fields, signature base, digest) is the well-kept
``http-message-signatures`` library; this module pins the profile on top of it and turns
every failure into one ``SignatureError`` whose ``reason`` is for logs, never for clients.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import http_sf
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)

ALGORITHM = "hmac-sha256"
TAG = "fleetmeter-direct"
LABEL = "fm"
COVERED_COMPONENTS: tuple[str, ...] = ("@method", "@path", "@authority", "content-digest")
REQUIRED_PARAMS = ("created", "keyid", "nonce", "alg", "tag")
DEFAULT_WINDOW_S = 300
"""How far ``created`` may be from the verifier's clock, either way (device clocks drift)."""

MIN_NONCE_LENGTH = 16
MAX_NONCE_LENGTH = 128
MAX_KEY_ID_LENGTH = 64
# Printable ASCII without the characters that need escaping in a structured-field string:
# a key id or nonce is then the same byte string in every serialisation.
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=:-]+")


class SignatureError(Exception):
    """A request's signature does not verify. ``reason`` is a short code for logs.

    Codes: ``missing``, ``malformed``, ``wrong_profile``, ``unknown_key``, ``revoked``,
    ``created_out_of_window``, ``expired``, ``bad_signature``, ``digest_mismatch``,
    ``replayed`` (the last three kinds of key state are decided by the caller).
    Clients are told only that verification failed: which check failed would help an
    attacker more than a genuine device.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SignatureInput:
    """The unverified parameters of a request's signature: enough to look its key up."""

    key_id: str
    nonce: str
    created: int


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature that verified: who signed (``key_id``), which secret, and its nonce."""

    key_id: str
    nonce: str
    created: datetime
    secret_index: int
    """Index into the secrets given to ``verify_request`` (0 = current, 1 = previous)."""


# --------------------------------------------------------------------------- helpers


def secret_bytes(secret: str | bytes) -> bytes:
    """The HMAC key: the secret string's UTF-8 bytes exactly as provisioned."""
    return secret if isinstance(secret, bytes) else secret.encode("utf-8")


def new_nonce() -> str:
    """128 random bits, URL-safe base64: unique per request for all practical purposes."""
    return secrets.token_urlsafe(16)


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` field value for ``body`` (RFC 9530, sha-256)."""
    return ContentDigest.create(body)


class _Headers:
    """Read-write header view over (name, value) pairs, in wire order (what the library reads)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs: list[tuple[str, str]] = list(pairs)

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __iter__(self) -> Any:
        return iter([name for name, _ in self._pairs])

    def __contains__(self, name: object) -> bool:
        return any(n == name for n, _ in self._pairs)

    def __getitem__(self, name: str) -> str:
        for n, v in self._pairs:
            if n.lower() == name.lower():
                return v
        raise KeyError(name)

    def __setitem__(self, name: str, value: str) -> None:
        self._pairs = [(n, v) for n, v in self._pairs if n.lower() != name.lower()]
        self._pairs.append((name, value))

    def __delitem__(self, name: str) -> None:
        self._pairs = [(n, v) for n, v in self._pairs if n != name]


@dataclass
class _Message:
    method: str
    url: str
    headers: _Headers


class _OneKey(HTTPSignatureKeyResolver):
    """Resolves exactly one key id to one secret: the caller has already chosen the key."""

    def __init__(self, key_id: str, secret: bytes) -> None:
        self.key_id = key_id
        self.secret = secret

    def resolve_public_key(self, key_id: str) -> bytes | None:
        return self.secret if key_id == self.key_id else None

    def resolve_private_key(self, key_id: str) -> bytes:
        if key_id != self.key_id:
            raise KeyError(key_id)
        return self.secret


class _ProfileVerifier(HTTPMessageVerifier):
    """The library's verifier with our time window instead of its ``max_age`` check."""

    def __init__(self, *, resolver: _OneKey, now: float, window_s: int) -> None:
        super().__init__(signature_algorithm=algorithms.HMAC_SHA256, key_resolver=resolver)
        self.now = now
        self.window_s = window_s

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        # Already checked by _check_params; repeated here because this is the hook the
        # library calls before verifying, so nothing can reach the HMAC without it.
        _check_times(sig_input.params, now=self.now, window_s=self.window_s)


def _check_times(params: Mapping[str, Any], *, now: float, window_s: int) -> None:
    created = params.get("created")
    if type(created) is not int:
        raise SignatureError("malformed", "created must be an integer")
    if abs(now - created) > window_s:
        raise SignatureError(
            "created_out_of_window", f"created {created} is {now - created:+.0f} s from now"
        )
    expires = params.get("expires")
    if expires is not None and (type(expires) is not int or expires < now):
        raise SignatureError("expired", "expires is in the past")


# --------------------------------------------------------------------------- signing


def sign_request(
    *,
    method: str,
    url: str,
    body: bytes,
    key_id: str,
    secret: str | bytes,
    headers: Mapping[str, str] | None = None,
    created: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign this request: ``Content-Digest``, ``Signature-Input``, ``Signature``.

    ``url`` is the absolute URL the request goes to (its path and authority are covered);
    ``body`` the bytes exactly as sent (compressed, if the request is). ``created`` defaults
    to the wall clock, ``nonce`` to a fresh random one. The secret is used as the HMAC key
    and appears in none of the returned values.
    """
    _check_token(key_id, "key id", MAX_KEY_ID_LENGTH)
    nonce = nonce if nonce is not None else new_nonce()
    _check_token(nonce, "nonce", MAX_NONCE_LENGTH)
    created_s = int(time.time()) if created is None else created
    message = _Message(method.upper(), url, _Headers((headers or {}).items()))
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.HMAC_SHA256,
        key_resolver=_OneKey(key_id, secret_bytes(secret)),
    )
    try:
        signer.sign(
            message,
            key_id=key_id,
            created=datetime.fromtimestamp(created_s, UTC),
            nonce=nonce,
            label=LABEL,
            tag=TAG,
            include_alg=True,
            covered_component_ids=COVERED_COMPONENTS,
            body=body,
            use_existing_digest=False,
        )
    except HTTPMessageSignaturesException as exc:
        raise ValueError(f"cannot sign request: {exc}") from exc
    wanted = ("content-digest", "signature-input", "signature")
    out = {name: value for name, value in message.headers.items() if name.lower() in wanted}
    return {
        "Content-Digest": out["Content-Digest"],
        "Signature-Input": out["Signature-Input"],
        "Signature": out["Signature"],
    }


def _check_token(value: str, what: str, max_length: int) -> None:
    if not value or len(value) > max_length or not _TOKEN.fullmatch(value):
        raise ValueError(f"{what} must be 1..{max_length} characters of [A-Za-z0-9._~+/=:-]")


# --------------------------------------------------------------------------- verifying


def read_signature_input(headers: Iterable[tuple[str, str]]) -> SignatureInput:
    """Parse (without verifying) the one signature carrying our tag; raises ``SignatureError``.

    The verifier needs the key id to find the secret, and the nonce to check replays, before
    it can verify anything; nothing read here is trusted until ``verify_request`` passes.
    """
    fields: dict[str, list[str]] = {}
    for name, value in headers:
        fields.setdefault(name.lower(), []).append(value)
    for name in ("signature-input", "signature", "content-digest"):
        if name not in fields:
            raise SignatureError("missing", f"no {name} header")
    try:
        parsed: Any = http_sf.parse(
            ", ".join(fields["signature-input"]).encode(), tltype="dictionary"
        )
    except (ValueError, TypeError) as exc:
        raise SignatureError("malformed", f"Signature-Input: {exc}") from exc
    # A Dictionary parses to {label: (member, params)}; a signature's member is an inner list.
    ours = [
        (member, params)
        for member, params in parsed.values()
        if isinstance(member, list) and params.get("tag") == TAG
    ]
    if len(ours) != 1:
        raise SignatureError("wrong_profile", f"{len(ours)} signatures tagged {TAG!r}, want 1")
    covered = {value for value, item_params in ours[0][0] if not item_params}
    if not covered.issuperset(COVERED_COMPONENTS):
        missing = sorted(set(COVERED_COMPONENTS) - covered)
        raise SignatureError("wrong_profile", f"components not covered: {missing}")
    params: dict[str, Any] = dict(ours[0][1])
    _check_params(params)
    return SignatureInput(key_id=params["keyid"], nonce=params["nonce"], created=params["created"])


def _check_params(params: Mapping[str, Any]) -> None:
    missing = [p for p in REQUIRED_PARAMS if p not in params]
    if missing:
        raise SignatureError("wrong_profile", f"missing parameters {missing}")
    if params["alg"] != ALGORITHM:
        raise SignatureError("wrong_profile", f"alg {params['alg']!r}, want {ALGORITHM!r}")
    if type(params["created"]) is not int:
        raise SignatureError("malformed", "created must be an integer")
    for name, limit, minimum in (
        ("keyid", MAX_KEY_ID_LENGTH, 1),
        ("nonce", MAX_NONCE_LENGTH, MIN_NONCE_LENGTH),
    ):
        value = params[name]
        if (
            not isinstance(value, str)
            or not minimum <= len(value) <= limit
            or not _TOKEN.fullmatch(value)
        ):
            raise SignatureError("malformed", f"{name} is not a {minimum}..{limit} char token")


def verify_request(
    *,
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    valid_secrets: Sequence[str | bytes],
    now: float | None = None,
    window_s: int = DEFAULT_WINDOW_S,
) -> VerifiedSignature:
    """Verify a request signed by ``sign_request`` under one of ``secrets``; raise otherwise.

    ``url`` is the absolute URL as the server received it (scheme, ``Host`` and raw path),
    ``body`` the raw bytes still content-coded. ``valid_secrets`` are the key's valid secrets,
    current first (a rotation overlap adds the previous one). ``now`` is the verifier's
    clock in epoch seconds (default: the wall clock).
    """
    pairs = list(headers)
    sig_input = read_signature_input(pairs)
    now_s = time.time() if now is None else now
    _check_times({"created": sig_input.created}, now=now_s, window_s=window_s)
    if not valid_secrets:
        raise SignatureError("unknown_key", "no valid secret for this key id")
    first_error: SignatureError | None = None
    for index, secret in enumerate(valid_secrets):
        verifier = _ProfileVerifier(
            resolver=_OneKey(sig_input.key_id, secret_bytes(secret)), now=now_s, window_s=window_s
        )
        message = _Message(method.upper(), url, _Headers(pairs))
        try:
            results = verifier.verify(
                message, max_age=None, expect_tag=TAG, require_components=COVERED_COMPONENTS
            )
        except SignatureError as exc:
            first_error = first_error or exc
            continue
        except HTTPMessageSignaturesException as exc:
            # The library raises one type; a failed HMAC is the one a wrong secret causes.
            failed_hmac = isinstance(exc.__cause__, CryptoInvalidSignature)
            reason = "bad_signature" if failed_hmac else "malformed"
            first_error = first_error or SignatureError(reason, str(exc) or "HMAC mismatch")
            continue
        # The signature covers the Content-Digest *field*; only now is it worth comparing
        # that field with the body, and it must hold for every signature selected.
        try:
            for result in results:
                if not ContentDigest.verify_components(result.covered_components, body):
                    raise SignatureError("wrong_profile", "content-digest not covered")
        except HTTPMessageSignaturesException as exc:
            raise SignatureError("digest_mismatch", str(exc)) from exc
        return VerifiedSignature(
            key_id=sig_input.key_id,
            nonce=sig_input.nonce,
            created=datetime.fromtimestamp(sig_input.created, UTC),
            secret_index=index,
        )
    assert first_error is not None
    raise first_error
