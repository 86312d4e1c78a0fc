"""The collector's TOML config: parsed with tomllib, validated by pydantic, one line per error.

Example (every key but ``portal.url``, the token and ``ranges`` has a default)::

    [portal]
    url = "https://portal.example:8443"   # http only to loopback with allow_insecure_http
    token = "…"                            # or token_file = "collector.token"
    ca_file = "ca.pem"                     # optional; default: the system's CAs

    [collector]
    data_dir = "./collector-data"          # relative paths resolve against this file's directory
    speed = 1.0                            # simulated seconds per real second (demo/tests only)

    [schedule]
    usage_interval_minutes = 180           # >= 30
    health_interval_minutes = 5            # >= 1
    discovery_every_usage_intervals = 8    # re-scan the ranges every N usage intervals
    poll_concurrency = 16                  # devices read at once
    probe_concurrency = 64                 # hosts probed at once during discovery

    [upload]
    max_batch_bytes = 100000               # compressed; <= 100 KiB
    interval_seconds = 300                 # routine health; usage and new serious alerts go at once

    [[ranges]]
    targets = ["10.0.1.0/24", "10.0.2.5-10.0.2.9", "printer.local"]
    drivers = ["ledm"]                     # default: every registered driver
    port = 443                             # default: the driver's
    scheme = "https"                       # or "http"
    ca_file = "printers-ca.pem"            # verify devices against this CA instead of pinning

    [ranges.snmp]                          # community = "…", or an SNMPv3 USM user:
    v3_user = "fleet"
    v3_auth_protocol = "SHA256"
    v3_auth_key = "…"                      # >= 8 characters (RFC 3414)
    v3_priv_protocol = "AES"
    v3_priv_key = "…"

    [ranges.octoprint]
    api_key = "…"                          # or api_key_file = "octoprint.key"

    [ranges.moonraker]                     # optional: only when Moonraker requires a key
    api_key = "…"

    [console]                              # the read-only site console (off by default)
    enabled = true
    listen = "127.0.0.1:8470"

    [proxy]                                # optional: portal traffic through this proxy only
    url = "http://proxy.example:3128"      # http or https; no user:password@ in it
    username = "fleet"                     # Basic authentication, optional
    password = "…"                         # or password_file = "proxy.password"
    ca_file = "proxy-ca.pem"               # https proxies only; default: the system's CAs

Without ``[proxy]`` the portal is reached through the environment's ``https_proxy`` /
``HTTPS_PROXY`` (``no_proxy`` / ``NO_PROXY`` honoured); with it, the environment is ignored.
Devices are never reached through a proxy (``collector.uploader.portal_proxy``).

Secrets (the token, SNMP community and keys, API keys, the proxy password) are ``SecretStr``:
they never show in a repr, a dump, a log line or an error message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import socket
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from fleetmeter.collector.privacy import FIELDS as PRIVACY_FIELDS
from fleetmeter.collector.privacy import KEY_FILE as PRIVACY_KEY_FILE
from fleetmeter.collector.privacy import FieldPolicy
from fleetmeter.devices import registry
from fleetmeter.devices.base import Driver, Target
from fleetmeter.signing.documents import DocumentError, parse_public_key
from fleetmeter.wire.codec import MAX_COMPRESSED_BYTES
from fleetmeter.wire.targets import (
    MAX_HOSTS,
    TargetError,
    TargetSpec,
    check_targets,
    parse_target,
)

MIN_USAGE_INTERVAL_MINUTES = 30
"""DESIGN.md: usage is never polled more often than every 30 minutes (devices are shared
production machines; a tighter interval is refused, not clamped)."""


class ConfigError(Exception):
    """The config cannot be used. ``errors`` holds one line per problem, each naming the file
    and the key."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _Section(BaseModel):
    # A misspelt key ("usage_interval_minute") must be an error, not a silently ignored line.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PortalSection(_Section):
    url: str = Field(
        description="Portal base URL; ingest is POSTed to {url}/api/v1/ingest/batches."
    )
    token: SecretStr | None = Field(default=None, description="Collector token (bearer).")
    token_file: Path | None = Field(default=None, description="File holding the token instead.")
    ca_file: Path | None = Field(
        default=None, description="CA bundle for the portal's certificate."
    )
    allow_insecure_http: bool = Field(
        default=False, description="Permit http:// to a loopback portal (tests and demos only)."
    )
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    signing_key: str | None = Field(
        default=None,
        max_length=128,
        description="The portal's public key (ed25519:…), written by `collector enroll`: "
        "settings changed in the portal are accepted only when signed with it.",
    )
    collector_id: uuid.UUID | None = Field(
        default=None, description="This collector's id at the portal (written at enrolment)."
    )

    @model_validator(mode="after")
    def _check(self) -> PortalSection:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url {self.url!r} must look like https://host[:port]")
        if parts.scheme == "http" and not (
            _is_loopback_host(parts.hostname) and self.allow_insecure_http
        ):
            # The token and every job record cross this connection: plain HTTP only where it
            # cannot leave the machine, and only when asked for explicitly.
            raise ValueError(
                "url must use https (plain http is allowed only to a loopback host "
                "with allow_insecure_http = true)"
            )
        if (self.token is None) == (self.token_file is None):
            raise ValueError("set exactly one of token or token_file")
        if self.signing_key is not None:
            try:
                parse_public_key(self.signing_key)
            except DocumentError as exc:
                raise ValueError(f"signing_key: {exc}") from None
        return self

    @property
    def settings_url(self) -> str:
        return self.url.rstrip("/") + "/api/v1/collector/settings"

    @property
    def ingest_url(self) -> str:
        return self.url.rstrip("/") + "/api/v1/ingest/batches"


class CollectorSection(_Section):
    data_dir: Path = Field(default=Path("collector-data"), description="Outbox and state.")
    speed: float = Field(default=1.0, gt=0, description="Simulated seconds per real second.")
    name: str = Field(
        default_factory=socket.gethostname, max_length=256, description="Sender name in batches."
    )


class ScheduleSection(_Section):
    usage_interval_minutes: float = 180
    health_interval_minutes: float = 5
    discovery_every_usage_intervals: int = Field(default=8, ge=1)
    poll_timeout_seconds: float = Field(default=10.0, gt=0)
    probe_timeout_seconds: float = Field(default=3.0, gt=0)
    poll_concurrency: int = Field(
        default=16, ge=1, le=1024, description="Devices read at once; the rest wait their turn."
    )
    probe_concurrency: int = Field(
        default=64, ge=1, le=1024, description="Hosts probed at once during discovery."
    )

    @field_validator("usage_interval_minutes")
    @classmethod
    def _usage_floor(cls, value: float) -> float:
        if value < MIN_USAGE_INTERVAL_MINUTES:
            raise ValueError(
                f"{value:g} is too often: usage is polled at most every "
                f"{MIN_USAGE_INTERVAL_MINUTES} minutes (use speed to accelerate a demo)"
            )
        return value

    @field_validator("health_interval_minutes")
    @classmethod
    def _health_floor(cls, value: float) -> float:
        if value < 1:
            raise ValueError(f"{value:g} is too often: health is polled at most every minute")
        return value


class UploadSection(_Section):
    max_batch_bytes: int = Field(default=100_000, ge=4096, le=MAX_COMPRESSED_BYTES)
    interval_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often the outbox is sent. Usage reports and newly raised error or "
        "critical alerts are sent at once; routine health reports wait for the next round.",
    )
    max_backoff_seconds: float = Field(default=300.0, gt=0)
    outbox_alert_rows: int = Field(
        default=10_000,
        ge=1,
        description="More reports than this waiting for upload: a warning in the log (once per "
        "crossing) and on the site console.",
    )
    max_outbox_bytes: int = Field(
        default=2_000_000_000,
        ge=10_000_000,
        description="Hard cap on the state database's size. At the cap the oldest unsent health "
        "reports are dropped; with only billing data left, usage polls stop (nothing is "
        "deleted) until uploads make room. See docs/collector.md, Outbox retention.",
    )


AuthProtocol = Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"]
PrivProtocol = Literal["DES", "3DES", "AES", "AES128", "AES192", "AES256"]
MIN_V3_KEY_LENGTH = 8
"""RFC 3414 §11.2: USM pass phrases are at least 8 characters; agents refuse shorter ones, so a
short key is a config error rather than a device that never answers."""


_V3_KEYS = ("v3_user", "v3_auth_protocol", "v3_auth_key", "v3_priv_protocol", "v3_priv_key")


class SnmpSection(_Section):
    """``[ranges.snmp]``: a v1/v2c community, or an SNMPv3 USM user (never both)."""

    community: SecretStr | None = Field(default=None, description="SNMPv1/v2c community.")
    v3_user: str | None = Field(
        default=None, min_length=1, max_length=32, description="SNMPv3 USM user name."
    )
    v3_auth_protocol: AuthProtocol | None = Field(
        default=None, description="Default SHA when v3_auth_key is set."
    )
    v3_auth_key: SecretStr | None = Field(default=None, description="authNoPriv / authPriv.")
    v3_priv_protocol: PrivProtocol | None = Field(
        default=None, description="Default AES when v3_priv_key is set."
    )
    v3_priv_key: SecretStr | None = Field(default=None, description="authPriv (needs auth key).")

    @model_validator(mode="after")
    def _check(self) -> SnmpSection:
        # Messages name keys, never values: these are secrets.
        v3_given = [name for name in _V3_KEYS if getattr(self, name) is not None]
        if self.community is not None:
            if v3_given:
                raise ValueError(
                    "set either community (SNMPv1/v2c) or v3_user and its keys (SNMPv3), "
                    f"not both (found {', '.join(v3_given)})"
                )
            if not self.community.get_secret_value():
                raise ValueError("community is empty")
            return self
        if self.v3_user is None:
            if v3_given:
                raise ValueError(f"{', '.join(v3_given)} given without v3_user")
            raise ValueError("set community (SNMPv1/v2c) or v3_user (SNMPv3)")
        if self.v3_priv_key is not None and self.v3_auth_key is None:
            # RFC 3414 §3.1.1: there is no privacy-without-authentication security level.
            raise ValueError("v3_priv_key needs v3_auth_key (SNMPv3 has no privacy without auth)")
        if self.v3_auth_protocol is not None and self.v3_auth_key is None:
            raise ValueError("v3_auth_protocol is given without v3_auth_key")
        if self.v3_priv_protocol is not None and self.v3_priv_key is None:
            raise ValueError("v3_priv_protocol is given without v3_priv_key")
        for name in ("v3_auth_key", "v3_priv_key"):
            key = getattr(self, name)
            if key is not None and len(key.get_secret_value()) < MIN_V3_KEY_LENGTH:
                raise ValueError(
                    f"{name} is shorter than {MIN_V3_KEY_LENGTH} characters "
                    "(RFC 3414 §11.2; agents refuse it)"
                )
        return self

    def credentials(self) -> dict[str, str]:
        """The flat keys ``devices.base.Target.credentials`` documents for snmp."""
        if self.community is not None:
            return {"community": self.community.get_secret_value()}
        assert self.v3_user is not None  # _check
        out = {"v3_user": self.v3_user}
        if self.v3_auth_key is not None:
            out["v3_auth_protocol"] = self.v3_auth_protocol or "SHA"
            out["v3_auth_key"] = self.v3_auth_key.get_secret_value()
        if self.v3_priv_key is not None:
            out["v3_priv_protocol"] = self.v3_priv_protocol or "AES"
            out["v3_priv_key"] = self.v3_priv_key.get_secret_value()
        return out


class ApiKeySection(_Section):
    """``[ranges.octoprint]`` / ``[ranges.moonraker]``: an API key, inline or from a file."""

    api_key: SecretStr | None = Field(default=None, description="The API key.")
    api_key_file: Path | None = Field(
        default=None, description="File holding the key instead (read at load time)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ApiKeySection:
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("set at most one of api_key or api_key_file")
        if self.api_key is not None and not self.api_key.get_secret_value().strip():
            raise ValueError("api_key is empty")
        return self

    def credentials(self) -> dict[str, str]:
        # load_config reads api_key_file into api_key.
        return {"api_key": self.api_key.get_secret_value()} if self.api_key is not None else {}


class OctoPrintSection(ApiKeySection):
    @model_validator(mode="after")
    def _required(self) -> OctoPrintSection:
        # OctoPrint answers nothing useful without a key: better refused here than at 3 a.m.
        if self.api_key is None and self.api_key_file is None:
            raise ValueError("set api_key or api_key_file (OctoPrint's REST API needs a key)")
        return self


class MoonrakerSection(ApiKeySection):
    """Moonraker needs a key only where its ``[authorization]`` section requires one."""


class RangeSection(_Section):
    name: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",
        description="Lets a range set in the portal use this range's credentials (profile).",
    )
    targets: list[str] = Field(min_length=1)
    drivers: list[str] | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    scheme: Literal["https", "http"] = "https"
    ca_file: Path | None = Field(
        default=None,
        description="Verify devices against this CA bundle instead of pinning on first use.",
    )
    snmp: SnmpSection | None = None
    octoprint: OctoPrintSection | None = None
    moonraker: MoonrakerSection | None = None

    @field_validator("targets")
    @classmethod
    def _parse_targets(cls, value: list[str]) -> list[str]:
        return check_targets(value)

    @model_validator(mode="after")
    def _check_options(self) -> RangeSection:
        if self.ca_file is not None and self.scheme == "http":
            raise ValueError(
                'ca_file verifies TLS certificates; it has no use with scheme = "http"'
            )
        if self.drivers is not None:
            for name in DRIVER_SECTIONS:
                if getattr(self, name) is not None and name not in self.drivers:
                    # Most likely a forgotten driver name: the settings would silently go unused.
                    raise ValueError(
                        f"[{name}] settings are given but drivers does not include {name!r}"
                    )
        return self

    def specs(self) -> list[TargetSpec]:
        return [parse_target(text) for text in self.targets]

    def credentials(self) -> dict[str, dict[str, str]]:
        """Per driver id, the secrets its ``Target.credentials`` gets (only that driver's: the
        OctoPrint driver never sees the SNMP community)."""
        out: dict[str, dict[str, str]] = {}
        for name in DRIVER_SECTIONS:
            section: SnmpSection | ApiKeySection | None = getattr(self, name)
            if section is not None and (creds := section.credentials()):
                out[name] = creds
        return out


DRIVER_SECTIONS = ("snmp", "octoprint", "moonraker")
"""Range sub-sections named after the driver whose credentials they hold."""


class ConsoleSection(_Section):
    """``[console]``: the collector's read-only local web page (site console)."""

    enabled: bool = Field(default=False, description="Serve the site console.")
    listen: str = Field(
        default="127.0.0.1:8470",
        description="host:port ([v6]:port); any LAN address may be given. Port 0: any free port.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the console may be reached by besides IP addresses, localhost "
        "and this machine's name (requests naming any other host are refused: DNS rebinding).",
    )

    @field_validator("listen")
    @classmethod
    def _parse_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]


def parse_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8470"`` / ``"[::1]:8470"`` / ``"0.0.0.0:8470"`` → (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:8470 or [::1]:8470)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not (host == "localhost" or parse_target_is_hostname(host)):
            raise ValueError(f"{value!r}: {host!r} is not an IP address or host name") from None
    return host, int(port_text)


def parse_target_is_hostname(text: str) -> bool:
    try:
        return parse_target(text).hostname is not None
    except TargetError:
        return False


class ProxySection(_Section):
    """``[proxy]``: the HTTP(S) proxy that portal traffic goes through (devices never do).

    When this section is present the environment's proxy variables are ignored for portal
    traffic; without it they apply (``collector.uploader.portal_proxy``)."""

    url: str = Field(
        description="http://host:port or https://host:port of the proxy; credentials go in "
        "username and password, never in the URL (it shows in logs and errors)."
    )
    username: str | None = Field(default=None, min_length=1, description="Basic auth user.")
    password: SecretStr | None = Field(default=None, description="Basic auth password.")
    password_file: Path | None = Field(
        default=None, description="File holding the password instead (read at load time)."
    )
    ca_file: Path | None = Field(
        default=None,
        description="CA bundle for an https proxy's own certificate (default: system CAs).",
    )

    @model_validator(mode="after")
    def _check(self) -> ProxySection:
        parts = urlsplit(self.url)
        if "@" in parts.netloc:
            # Never echo the URL here: it holds a password.
            raise ValueError(
                "url must not contain credentials (user:password@); set username and "
                "password (or password_file) instead"
            )
        try:
            parts.port  # noqa: B018 (raises ValueError on a bad port)
        except ValueError:
            raise ValueError(f"url {self.url!r} has an invalid port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"url {self.url!r} must look like http://host:port or https://host:port"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"url {self.url!r} must be scheme://host:port, without a path")
        if self.password is not None and self.password_file is not None:
            raise ValueError("set at most one of password or password_file")
        if self.password is not None and not self.password.get_secret_value():
            raise ValueError("password is empty")
        has_password = self.password is not None or self.password_file is not None
        if self.username is None and has_password:
            raise ValueError("a password needs a username")
        if self.username is not None and not has_password:
            raise ValueError("username needs a password or password_file")
        if self.username is not None and ":" in self.username:
            # RFC 7617 §2: the user-id of Basic authentication cannot contain a colon.
            raise ValueError("username must not contain ':' (HTTP Basic authentication)")
        if self.ca_file is not None and parts.scheme == "http":
            raise ValueError("ca_file verifies an https proxy's certificate; url is http://")
        return self

    @property
    def auth(self) -> tuple[str, str] | None:
        """(username, password) for the proxy, or None. Never log it."""
        if self.username is None or self.password is None:
            return None  # load_config reads password_file into password
        return self.username, self.password.get_secret_value()


class PrivacySection(_Section):
    """This customer's setting for job names and submitter fields (``privacy``): what leaves
    the site as read, as a keyed pseudonym, or not at all."""

    job_name: FieldPolicy = Field(default=FieldPolicy.KEEP, description="The job's name.")
    user: FieldPolicy = Field(
        default=FieldPolicy.PSEUDONYMISE,
        description="The user who sent the job: a person, so a pseudonym unless the customer "
        "asks for names.",
    )
    account: FieldPolicy = FieldPolicy.KEEP
    project: FieldPolicy = FieldPolicy.KEEP
    application: FieldPolicy = FieldPolicy.KEEP
    user_defined: FieldPolicy = FieldPolicy.KEEP
    key_file: Path | None = Field(
        default=None,
        description="The pseudonymisation key (default: privacy.key in the data directory; "
        "created on first use).",
    )

    def policies(self) -> dict[str, FieldPolicy]:
        return {name: getattr(self, name) for name in PRIVACY_FIELDS}


class CollectorConfig(_Section):
    # Errors are reported as `FILE: key: reason` (format_validation_error); the input values
    # pydantic would add to its own message may be secrets (a proxy URL with a password in
    # it, a token of the wrong type), so they stay out of the exception too.
    model_config = ConfigDict(hide_input_in_errors=True)

    version: str | None = Field(
        default=None,
        max_length=64,
        description="Operator's label for this config; shown by the site console.",
    )
    portal: PortalSection
    collector: CollectorSection = Field(default_factory=CollectorSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    upload: UploadSection = Field(default_factory=UploadSection)
    console: ConsoleSection = Field(default_factory=ConsoleSection)
    privacy: PrivacySection = Field(default_factory=PrivacySection)
    proxy: ProxySection | None = Field(
        default=None, description="Proxy for portal traffic (default: the environment's)."
    )
    ranges: list[RangeSection] = Field(
        default_factory=list,
        description="Required unless the portal sets them (portal.signing_key).",
    )
    settings_version: int = Field(
        default=0, exclude=True, description="Version of the portal's settings applied; 0: none."
    )
    source: Path | None = Field(default=None, exclude=True, description="The file it came from.")
    source_sha256: str | None = Field(
        default=None, exclude=True, description="sha256 of the file's bytes (hex)."
    )

    @model_validator(mode="after")
    def _cap_hosts(self) -> CollectorConfig:
        if not self.ranges and self.portal.signing_key is None:
            raise ValueError(
                "no [[ranges]]: list the addresses to scan, or enrol the collector "
                "(`fleetmeter collector enroll`) so that the portal can set them"
            )
        names = [r.name for r in self.ranges if r.name is not None]
        if len(names) != len(set(names)):
            raise ValueError("two [[ranges]] have the same name")
        total = sum(spec.count for r in self.ranges for spec in r.specs())
        if total > MAX_HOSTS:
            raise ValueError(
                f"ranges expand to {total} hosts, more than the {MAX_HOSTS} allowed per "
                "collector; narrow the CIDRs"
            )
        return self

    @property
    def privacy_key_file(self) -> Path:
        return self.privacy.key_file or self.data_dir / PRIVACY_KEY_FILE

    @property
    def token(self) -> str:
        """The collector token (read from token_file at load time). Never log it."""
        assert self.portal.token is not None  # load_config resolves token_file into token
        return self.portal.token.get_secret_value()

    @property
    def data_dir(self) -> Path:
        return self.collector.data_dir

    def describe(self) -> str:
        return str(self.source) if self.source else "config"

    @property
    def config_version(self) -> str:
        """What the console shows as the running config: ``version`` (if set) and the file's
        sha256 prefix, which changes with any edit even when ``version`` was not bumped."""
        digest = (self.source_sha256 or "")[:12] or "unknown"
        local = f"{self.version} (sha256 {digest})" if self.version else f"sha256 {digest}"
        if self.settings_version:
            return f"portal settings v{self.settings_version} · file {local}"
        return local


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def format_validation_error(source: str, exc: ValidationError) -> list[str]:
    return [f"{source}: {_loc(tuple(e['loc']))}: {_message(e)}" for e in exc.errors()]


def load_config(path: Path | str) -> CollectorConfig:
    """Read, validate and resolve a config file; raise ``ConfigError`` (one line per problem)."""
    path = Path(path)
    where = str(path)
    try:
        data = path.read_bytes()
        raw = tomllib.loads(data.decode("utf-8"))
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read config: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{where}: not UTF-8 text: {exc.reason}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{where}: invalid TOML: {exc}"]) from exc
    config = config_from_dict(raw, base_dir=path.resolve().parent, source=path)
    return config.model_copy(update={"source_sha256": hashlib.sha256(data).hexdigest()})


def config_from_dict(
    raw: dict[str, Any], *, base_dir: Path, source: Path | None
) -> CollectorConfig:
    """Validate an already-parsed config; relative paths resolve against ``base_dir``."""
    where = str(source) if source else "config"
    try:
        config = CollectorConfig.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(where, exc)) from exc

    def resolve(p: Path) -> Path:
        p = p.expanduser()
        return p if p.is_absolute() else base_dir / p

    portal = config.portal
    ca_file = resolve(portal.ca_file) if portal.ca_file else None
    errors: list[str] = []
    if ca_file is not None and not ca_file.is_file():
        errors.append(f"{where}: portal.ca_file: {ca_file} does not exist")
    token = portal.token
    if portal.token_file is not None:
        token_path = resolve(portal.token_file)
        try:
            text = token_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            errors.append(f"{where}: portal.token_file: cannot read {token_path}: {exc.strerror}")
        else:
            if not text:
                errors.append(f"{where}: portal.token_file: {token_path} is empty")
            token = SecretStr(text)
    elif token is not None and not token.get_secret_value().strip():
        errors.append(f"{where}: portal.token: is empty")
    ranges = [
        _resolve_range(section, f"{where}: ranges[{i}]", resolve, errors)
        for i, section in enumerate(config.ranges)
    ]
    proxy = _resolve_proxy(config.proxy, f"{where}: proxy", resolve, errors)
    if errors:
        raise ConfigError(errors)
    return config.model_copy(
        update={
            "proxy": proxy,
            "portal": portal.model_copy(update={"ca_file": ca_file, "token": token}),
            "collector": config.collector.model_copy(
                update={"data_dir": resolve(config.collector.data_dir)}
            ),
            "privacy": config.privacy.model_copy(
                update={
                    "key_file": resolve(config.privacy.key_file)
                    if config.privacy.key_file is not None
                    else None
                }
            ),
            "ranges": ranges,
        }
    )


def _resolve_proxy(
    section: ProxySection | None, where: str, resolve: Callable[[Path], Path], errors: list[str]
) -> ProxySection | None:
    """The proxy section with ca_file made absolute (and checked) and password_file read."""
    if section is None:
        return None
    update: dict[str, Any] = {}
    if section.ca_file is not None:
        ca = resolve(section.ca_file)
        if not ca.is_file():
            errors.append(f"{where}.ca_file: {ca} does not exist")
        update["ca_file"] = ca
    if section.password_file is not None:
        path = resolve(section.password_file)
        try:
            # Only the line ending is stripped: a password may start or end with a space.
            text = path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            errors.append(f"{where}.password_file: cannot read {path}: {reason}")
        else:
            if not text:
                errors.append(f"{where}.password_file: {path} is empty")
            update.update(password_file=path, password=SecretStr(text))
    return section.model_copy(update=update) if update else section


def _resolve_range(
    section: RangeSection, where: str, resolve: Callable[[Path], Path], errors: list[str]
) -> RangeSection:
    """The range with its ca_file made absolute (and checked) and api_key_files read."""
    update: dict[str, Any] = {}
    if section.ca_file is not None:
        ca = resolve(section.ca_file)
        if not ca.is_file():
            errors.append(f"{where}.ca_file: {ca} does not exist")
        update["ca_file"] = ca
    for name in ("octoprint", "moonraker"):
        sub: ApiKeySection | None = getattr(section, name)
        if sub is None or sub.api_key_file is None:
            continue
        key_path = resolve(sub.api_key_file)
        try:
            text = key_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            errors.append(f"{where}.{name}.api_key_file: cannot read {key_path}: {reason}")
            continue
        if not text:
            errors.append(f"{where}.{name}.api_key_file: {key_path} is empty")
            continue
        update[name] = sub.model_copy(update={"api_key_file": key_path, "api_key": SecretStr(text)})
    return section.model_copy(update=update) if update else section


# --------------------------------------------------------------------------- drivers & targets


def resolve_drivers(config: CollectorConfig) -> dict[str, Driver]:
    """Every driver the ranges name (all registered ones where a range names none), in the
    registry's priority order: discovery tries them in this order whatever order a range
    lists them in, so a device is read by the protocol that tells the most about it."""
    wanted: set[str] = set()
    errors: list[str] = []
    if not config.ranges:
        # Enrolled, waiting for the portal's ranges: nothing to probe yet, nothing to refuse.
        wanted.update(driver.id for driver in registry.all_drivers())
    for i, section in enumerate(config.ranges):
        if section.drivers is None:
            wanted.update(driver.id for driver in registry.all_drivers())
            continue
        for name in section.drivers:
            try:
                registry.get(name)
            except KeyError as exc:
                errors.append(f"{config.describe()}: ranges[{i}].drivers: {exc.args[0]}")
            else:
                wanted.add(name)
    if errors:
        raise ConfigError(errors)
    out = {driver.id: driver for driver in registry.all_drivers() if driver.id in wanted}
    if not out:
        raise ConfigError([f"{config.describe()}: no device drivers are registered"])
    return out


@dataclass(frozen=True)
class ProbeTarget:
    """One host to probe, with the drivers its range allows (None: all) and, per driver id,
    the range's credentials for that driver (kept out of repr: they are secrets)."""

    target: Target
    drivers: tuple[str, ...] | None
    credentials: Mapping[str, Mapping[str, str]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def allows(self, driver_id: str) -> bool:
        return self.drivers is None or driver_id in self.drivers

    def target_for(self, driver_id: str) -> Target:
        """The target as ``driver_id`` gets it: with that driver's credentials only."""
        creds = self.credentials.get(driver_id)
        return dataclasses.replace(self.target, credentials=creds) if creds else self.target


def expand_ranges(config: CollectorConfig) -> list[ProbeTarget]:
    """Every host of every range, first occurrence wins (a host listed twice is probed once)."""
    seen: set[str] = set()
    out: list[ProbeTarget] = []
    for section in config.ranges:
        drivers = tuple(section.drivers) if section.drivers is not None else None
        # One mapping per range, shared by its hosts (a /16 is 65,534 of them).
        credentials = section.credentials()
        ca_file = str(section.ca_file) if section.ca_file is not None else None
        for spec in section.specs():
            for host in spec.hosts():
                if host in seen:
                    continue
                seen.add(host)
                target = Target(
                    host=host, port=section.port, scheme=section.scheme, ca_file=ca_file
                )
                out.append(ProbeTarget(target=target, drivers=drivers, credentials=credentials))
    return out
