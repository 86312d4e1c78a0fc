"""Direct connection: provisioning device credentials and authenticating signed uploads.

A reseller registers a device (vendor, serial) for one of its customers and receives the
device's key id and secret once. The portal keeps the secret encrypted at rest (AES-256-GCM
under the settings' secrets key, the key id as associated data, so a ciphertext copied onto
another row does not decrypt), because verifying an HMAC needs the secret itself. A secret
can be rotated (the previous one stays valid for an overlap, so a device that has not yet
picked up the new one keeps working) and a credential revoked for good.

``authenticate_device`` is the gate of ``POST /api/v1/direct/batches``: signature (RFC 9421
profile of ``fleetmeter.signing.httpsig``), key state, then the nonce, recorded in the
database so that every portal process refuses a replay.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fleetmeter.portal.errors import TenancyError
from fleetmeter.portal.store.dialect import insert_on_conflict
from fleetmeter.portal.store.models import Customer, DeviceCredential, Reseller, SeenNonce
from fleetmeter.signing import httpsig
from fleetmeter.wire import now_utc

KEY_ID_PREFIX = "fmk_"
SECRET_PREFIX = "fms_"  # noqa: S105  (a prefix that lets secret scanners spot leaked secrets)
DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=30)
_CIPHER_VERSION = "v1"
# Nonce rows outlive the window a little: portal processes' clocks differ by a few seconds.
_NONCE_SLACK = timedelta(seconds=60)


class SecretBox:
    """Encrypts device secrets at rest with AES-256-GCM; the key id is the associated data."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, secret: str, *, key_id: str) -> str:
        nonce = secrets.token_bytes(12)  # 96-bit random nonce, never reused with this key
        sealed = self._aead.encrypt(nonce, secret.encode(), key_id.encode())
        return f"{_CIPHER_VERSION}:" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, stored: str, *, key_id: str) -> str:
        version, _, payload = stored.partition(":")
        if version != _CIPHER_VERSION:
            raise ValueError(f"unknown secret encryption {version!r}")
        raw = base64.urlsafe_b64decode(payload)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], key_id.encode()).decode()
        except InvalidTag:
            raise ValueError("secret does not decrypt: wrong secrets key or tampered row") from None


@dataclass(frozen=True)
class NewDeviceSecret:
    """What provisioning and rotation show once: the key id and the secret in clear."""

    credential_id: uuid.UUID
    key_id: str
    secret: str
    vendor: str
    serial_number: str
    customer_id: uuid.UUID
    previous_valid_until: datetime | None = None


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def add_device(
    session: Session,
    *,
    box: SecretBox,
    reseller: Reseller,
    customer: Customer,
    serial_number: str,
    vendor: str = "HP",
) -> NewDeviceSecret:
    """Register a device for direct connection; the secret is in the result and nowhere else."""
    serial_number, vendor = serial_number.strip(), vendor.strip()
    if not serial_number or len(serial_number) > 256 or not vendor or len(vendor) > 256:
        raise TenancyError("serial number and vendor must be 1..256 characters")
    if customer.reseller_id != reseller.id:
        raise TenancyError("customer belongs to another reseller")
    active = session.scalar(
        select(DeviceCredential.key_id).where(
            DeviceCredential.reseller_id == reseller.id,
            DeviceCredential.vendor == vendor,
            DeviceCredential.serial_number == serial_number,
            DeviceCredential.revoked_at.is_(None),
        )
    )
    if active is not None:
        raise TenancyError(
            f"device {vendor} {serial_number} already has credential {active}: "
            "rotate its secret, or revoke it first"
        )
    key_id = KEY_ID_PREFIX + secrets.token_hex(12)
    secret = new_secret()
    credential = DeviceCredential(
        reseller_id=reseller.id,
        customer_id=customer.id,
        key_id=key_id,
        vendor=vendor,
        serial_number=serial_number,
        secret_encrypted=box.seal(secret, key_id=key_id),
    )
    session.add(credential)
    session.flush()
    return NewDeviceSecret(
        credential.id, key_id, secret, vendor, serial_number, customer.id, previous_valid_until=None
    )


def find_credential(
    session: Session, *, key_id: str, reseller_id: uuid.UUID | None = None
) -> DeviceCredential:
    """The credential ``key_id``; with ``reseller_id``, only if it is that reseller's."""
    query = select(DeviceCredential).where(DeviceCredential.key_id == key_id)
    if reseller_id is not None:
        query = query.where(DeviceCredential.reseller_id == reseller_id)
    credential = session.scalar(query)
    if credential is None:
        raise TenancyError(f"no device credential {key_id!r}")
    return credential


def list_credentials(session: Session, *, reseller_id: uuid.UUID) -> Sequence[DeviceCredential]:
    return session.scalars(
        select(DeviceCredential)
        .where(DeviceCredential.reseller_id == reseller_id)
        .order_by(DeviceCredential.created_at, DeviceCredential.key_id)
    ).all()


def rotate_secret(
    session: Session,
    *,
    box: SecretBox,
    key_id: str,
    reseller_id: uuid.UUID | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
    now: datetime | None = None,
) -> NewDeviceSecret:
    """A new secret for ``key_id``; the current one stays valid for ``overlap``, then not."""
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise TenancyError(f"overlap must be between 0 and {MAX_OVERLAP.days} days")
    credential = find_credential(session, key_id=key_id, reseller_id=reseller_id)
    if credential.revoked_at is not None:
        raise TenancyError(f"credential {key_id} is revoked: provision the device again")
    now = now or now_utc()
    secret = new_secret()
    # Only the secret in use now carries over: a secret two rotations old is dead at once.
    credential.previous_secret_encrypted = credential.secret_encrypted if overlap else None
    credential.previous_valid_until = now + overlap if overlap else None
    credential.secret_encrypted = box.seal(secret, key_id=key_id)
    credential.rotated_at = now
    session.flush()
    return NewDeviceSecret(
        credential.id,
        key_id,
        secret,
        credential.vendor,
        credential.serial_number,
        credential.customer_id,
        previous_valid_until=credential.previous_valid_until,
    )


def revoke(
    session: Session,
    *,
    key_id: str,
    reseller_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> DeviceCredential:
    """Refuse every later request signed with ``key_id``. Revoking twice keeps the first time."""
    credential = find_credential(session, key_id=key_id, reseller_id=reseller_id)
    if credential.revoked_at is None:
        credential.revoked_at = now or now_utc()
        # Nothing signed with this key may pass again, whatever was kept for the overlap.
        credential.previous_secret_encrypted = None
        credential.previous_valid_until = None
    session.flush()
    return credential


# --------------------------------------------------------------------------- authentication


def valid_secrets(credential: DeviceCredential, *, box: SecretBox, now: datetime) -> list[str]:
    """The secrets a request may be signed with now: current, then previous during overlap."""
    out = [box.open(credential.secret_encrypted, key_id=credential.key_id)]
    if (
        credential.previous_secret_encrypted is not None
        and credential.previous_valid_until is not None
        and now < credential.previous_valid_until
    ):
        out.append(box.open(credential.previous_secret_encrypted, key_id=credential.key_id))
    return out


def authenticate_device(
    session: Session,
    *,
    box: SecretBox,
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    window_s: int = httpsig.DEFAULT_WINDOW_S,
    now: datetime | None = None,
) -> DeviceCredential:
    """The credential that signed this request, its nonce recorded (committed); else raise.

    Raises ``httpsig.SignatureError`` with the reason for the log: ``unknown_key``,
    ``revoked``, ``replayed`` or any reason of ``httpsig.verify_request``.
    """
    pairs = list(headers)
    claimed = httpsig.read_signature_input(pairs)
    now = now or now_utc()
    credential = session.scalar(
        select(DeviceCredential).where(DeviceCredential.key_id == claimed.key_id)
    )
    if credential is None:
        raise httpsig.SignatureError("unknown_key", f"key id {claimed.key_id!r}")
    if credential.revoked_at is not None:
        raise httpsig.SignatureError("revoked", f"key id {claimed.key_id!r}")
    verified = httpsig.verify_request(
        method=method,
        url=url,
        headers=pairs,
        body=body,
        valid_secrets=valid_secrets(credential, box=box, now=now),
        now=now.timestamp(),
        window_s=window_s,
    )
    _claim_nonce(session, credential=credential, verified=verified, window_s=window_s, now=now)
    credential.last_seen_at = now
    session.commit()
    return credential


def _claim_nonce(
    session: Session,
    *,
    credential: DeviceCredential,
    verified: httpsig.VerifiedSignature,
    window_s: int,
    now: datetime,
) -> None:
    """Record the nonce; a nonce recorded before (by any process) means a replay.

    Only after the signature verified: an attacker cannot use up a device's nonces.
    ``ON CONFLICT DO NOTHING`` decides atomically on the primary key, so two copies of one
    request racing to two portal processes cannot both pass.
    """
    session.execute(
        delete(SeenNonce).where(
            SeenNonce.reseller_id == credential.reseller_id, SeenNonce.expires_at < now
        )
    )
    expires_at = verified.created + timedelta(seconds=window_s) + _NONCE_SLACK
    stmt = insert_on_conflict(session, SeenNonce).values(
        reseller_id=credential.reseller_id,
        key_id=credential.key_id,
        nonce=verified.nonce,
        expires_at=max(expires_at, now + _NONCE_SLACK),
    )
    claimed = session.execute(stmt.on_conflict_do_nothing().returning(SeenNonce.nonce)).first()
    if claimed is None:
        session.rollback()
        raise httpsig.SignatureError("replayed", f"nonce {verified.nonce!r} seen before")
