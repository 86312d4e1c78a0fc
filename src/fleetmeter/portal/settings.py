"""The portal's one settings object (env prefix ``FLEETMETER_``), validated at start."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetmeter.portal.errors import ConfigError
from fleetmeter.wire.codec import MAX_COMPRESSED_BYTES, MAX_DECOMPRESSED_BYTES

SESSION_SECRET_FILE = "session-secret"  # noqa: S105  (a file name)
SECRETS_KEY_FILE = "secrets-key"
CONFIG_SIGNING_KEY_FILE = "config-signing-key"
SECRETS_KEY_BYTES = 32  # AES-256-GCM
SIGNING_KEY_BYTES = 32  # Ed25519 seed
# A random 32-byte key has ~30 distinct byte values; a typed or patterned one far fewer.
_MIN_DISTINCT_KEY_BYTES = 16
MIN_SECRET_LENGTH = 32
# Values people paste from tutorials; refusing them beats signing sessions with them.
_INSECURE_SECRETS = {"changethis", "changeme", "secret", "password", "development", "dev", "test"}


class PortalSettings(BaseSettings):
    """What a portal process needs to know; each field is settable as ``FLEETMETER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="FLEETMETER_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"), description="Where the SQLite file and the session secret live."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/portal.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db.",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Signs session cookies; if unset, one is generated into data_dir.",
    )
    session_max_age_s: int = Field(default=8 * 3600, ge=60, description="Login lifetime.")
    cookie_secure: bool = Field(
        default=False, description="Send the session cookie only over HTTPS (on when TLS serves)."
    )
    max_ingest_body_bytes: int = Field(
        # The wire limit plus a small margin: a collector's encoder may land a few bytes over.
        default=MAX_COMPRESSED_BYTES + 4096,
        ge=1024,
        description="Largest compressed ingest body accepted; larger is refused with 413 unread.",
    )
    max_decompressed_bytes: int = Field(
        default=MAX_DECOMPRESSED_BYTES, ge=1024, description="Compression-bomb cap."
    )
    sqlite_busy_timeout_ms: int = Field(default=15_000, ge=0)
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Encrypts device secrets at rest: 32 random bytes, URL-safe base64 "
        "(`python -c 'import secrets; print(secrets.token_urlsafe(32))'`); if unset, one is "
        "generated into data_dir. Every portal process and admin command needs the same one.",
    )
    config_signing_key: SecretStr | None = Field(
        default=None,
        description="Signs collector settings (Ed25519): the 32-byte private key, URL-safe "
        "base64; if unset, one is generated into data_dir. Every portal process needs the same "
        "one, and changing it means re-enrolling every collector (they hold the public half).",
    )
    signature_window_s: int = Field(
        default=300,
        ge=30,
        le=3600,
        description="Direct connection: how far a request's signed `created` time may be "
        "from the portal's clock, either way.",
    )

    @field_validator("secrets_key")
    @classmethod
    def _refuse_weak_secrets_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_secrets_key(value.get_secret_value())  # raises ValueError with the reason
        return value

    @field_validator("config_signing_key")
    @classmethod
    def _refuse_weak_signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_signing_key(value.get_secret_value())
        return value

    @field_validator("session_secret")
    @classmethod
    def _refuse_insecure_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if len(raw) < MIN_SECRET_LENGTH or raw.lower() in _INSECURE_SECRETS:
            raise ValueError(
                f"session secret is insecure: use at least {MIN_SECRET_LENGTH} random characters "
                "(or leave it unset to have one generated)"
            )
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'portal.db').resolve()}"

    def ensure_data_dir(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create data dir {self.data_dir}: {exc}") from exc

    def resolve_secrets_key(self) -> bytes:
        """The configured key, else the one kept in the data dir (created on first start)."""
        if self.secrets_key is not None:
            return decode_secrets_key(self.secrets_key.get_secret_value())
        return self._key_file(SECRETS_KEY_FILE, SECRETS_KEY_BYTES, decode_secrets_key)

    def resolve_config_signing_key(self) -> bytes:
        """The configured Ed25519 private key, else the one kept in the data dir (created on
        first start)."""
        if self.config_signing_key is not None:
            return decode_signing_key(self.config_signing_key.get_secret_value())
        return self._key_file(CONFIG_SIGNING_KEY_FILE, SIGNING_KEY_BYTES, decode_signing_key)

    def _key_file(self, name: str, size: int, decode: Callable[[str], bytes]) -> bytes:
        self.ensure_data_dir()
        path = self.data_dir / name
        try:
            if not path.exists():
                value = base64.urlsafe_b64encode(secrets.token_bytes(size)).decode()
                try:
                    # O_EXCL + 0600: two processes starting at once must not overwrite each
                    # other's key, and no other user may read it.
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pass  # another process won the race: use its key
                else:
                    with os.fdopen(fd, "w") as fh:
                        fh.write(value + "\n")
            return decode(path.read_text().strip())
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read or create {path}: {exc}") from exc

    def resolve_session_secret(self) -> str:
        """The configured secret, else the one kept in the data dir (created on first start)."""
        if self.session_secret is not None:
            return self.session_secret.get_secret_value()
        self.ensure_data_dir()
        path = self.data_dir / SESSION_SECRET_FILE
        try:
            if path.exists():
                stored = path.read_text().strip()
                if len(stored) < MIN_SECRET_LENGTH:
                    raise ConfigError(f"{path} holds an insecure (short) secret; delete it")
                return stored
            value = secrets.token_urlsafe(48)
            # O_EXCL: two processes starting at once must not overwrite each other's secret.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(value + "\n")
            return value
        except FileExistsError:
            return path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read or create {path}: {exc}") from exc


def _decode_key(text: str, size: int, what: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not URL-safe base64") from None
    if len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(raw)}")
    if len(set(raw)) < _MIN_DISTINCT_KEY_BYTES:
        raise ValueError(f"{what} is insecure: use {size} random bytes")
    return raw


def decode_signing_key(text: str) -> bytes:
    """The 32-byte Ed25519 private key (seed) from its URL-safe base64 form."""
    return _decode_key(text, SIGNING_KEY_BYTES, "config signing key")


def decode_secrets_key(text: str) -> bytes:
    """The 32-byte key from its URL-safe base64 form; short or patterned keys are refused."""
    return _decode_key(text, SECRETS_KEY_BYTES, "secrets key")
