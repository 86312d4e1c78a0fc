"""Ed25519-signed documents: how the portal signs a collector's settings and the collector
checks them.

An envelope is JSON ``{"format", "payload", "signature"}``. ``payload`` is the document's
JSON as URL-safe base64 and the signature covers exactly those bytes, so nothing depends on
both ends serialising JSON the same way. The collector holds only the portal's public key
(``ed25519:<base64>``, received at enrolment); the private key never leaves the portal.

Every failure is one ``DocumentError`` with a one-line reason meant for the operator's log.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import pydantic
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fleetmeter.wire.collector_config import SignedSettings

ENVELOPE_FORMAT = "fleetmeter-signed/1"
KEY_PREFIX = "ed25519:"
MAX_ENVELOPE_BYTES = 1024 * 1024
"""A config is a few KB; 4096 targets in 256 ranges stays well under this. Anything larger is
refused before it is decoded."""


class DocumentError(ValueError):
    """An envelope or key that cannot be used, with the reason."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise DocumentError(f"{what} is not URL-safe base64") from None


def generate_private_key() -> bytes:
    """A new Ed25519 private key as its 32 raw bytes."""
    return Ed25519PrivateKey.generate().private_bytes_raw()


def private_key_from_bytes(raw: bytes) -> Ed25519PrivateKey:
    if len(raw) != 32:
        raise DocumentError(f"an Ed25519 private key is 32 bytes, got {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_text(private: Ed25519PrivateKey) -> str:
    """The public half as ``ed25519:<base64>``: what a collector stores at enrolment."""
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return KEY_PREFIX + _b64encode(raw)


def parse_public_key(text: str) -> Ed25519PublicKey:
    text = text.strip()
    if not text.startswith(KEY_PREFIX):
        raise DocumentError(f"public key must start with {KEY_PREFIX!r}")
    raw = _b64decode(text.removeprefix(KEY_PREFIX), "public key")
    if len(raw) != 32:
        raise DocumentError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign_settings(document: SignedSettings, private: Ed25519PrivateKey) -> dict[str, str]:
    """The envelope for ``document`` (a JSON-ready dict)."""
    payload = document.model_dump_json().encode()
    return {
        "format": ENVELOPE_FORMAT,
        "payload": _b64encode(payload),
        "signature": _b64encode(private.sign(payload)),
    }


def verify_settings(envelope: bytes, public: Ed25519PublicKey) -> SignedSettings:
    """The document inside ``envelope`` once its signature checks out; ``DocumentError``
    otherwise. The signature is checked before the payload is parsed: unsigned input is
    never interpreted."""
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise DocumentError(f"signed document larger than {MAX_ENVELOPE_BYTES} bytes")
    try:
        outer: Any = json.loads(envelope)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DocumentError(f"signed document is not JSON: {exc}") from None
    if not isinstance(outer, dict) or outer.get("format") != ENVELOPE_FORMAT:
        raise DocumentError(f"not a {ENVELOPE_FORMAT} envelope")
    payload_text, signature_text = outer.get("payload"), outer.get("signature")
    if not isinstance(payload_text, str) or not isinstance(signature_text, str):
        raise DocumentError("envelope lacks payload or signature")
    payload = _b64decode(payload_text, "payload")
    signature = _b64decode(signature_text, "signature")
    try:
        public.verify(signature, payload)
    except InvalidSignature:
        raise DocumentError(
            "bad signature: not signed by this portal's key (or altered since)"
        ) from None
    try:
        return SignedSettings.model_validate_json(payload)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise DocumentError(
            f"signed settings are invalid: {where}: {first['msg']} ({exc.error_count()} problem(s))"
        ) from None
