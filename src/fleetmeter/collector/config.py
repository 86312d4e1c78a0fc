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
    discovery_every_usage_intervals = 8    # re-scan the ranges every N usage polls

    [upload]
    max_batch_bytes = 100000               # compressed; <= 100 KiB
    interval_seconds = 60

    [[ranges]]
    targets = ["10.0.1.0/24", "10.0.2.5-10.0.2.9", "printer.local"]
    drivers = ["ledm"]                     # default: every registered driver
    port = 443                             # default: the driver's
    scheme = "https"                       # or "http"
"""

from __future__ import annotations

import ipaddress
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
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

from fleetmeter.collector.targets import MAX_HOSTS, TargetError, TargetSpec, parse_target
from fleetmeter.devices import registry
from fleetmeter.devices.base import Driver, Target
from fleetmeter.wire.codec import MAX_COMPRESSED_BYTES

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
        return self

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
    interval_seconds: float = Field(default=60.0, gt=0)
    max_backoff_seconds: float = Field(default=300.0, gt=0)


class RangeSection(_Section):
    targets: list[str] = Field(min_length=1)
    drivers: list[str] | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    scheme: Literal["https", "http"] = "https"

    @field_validator("targets")
    @classmethod
    def _parse_targets(cls, value: list[str]) -> list[str]:
        problems = []
        for text in value:
            try:
                parse_target(text)
            except TargetError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def specs(self) -> list[TargetSpec]:
        return [parse_target(text) for text in self.targets]


class CollectorConfig(_Section):
    portal: PortalSection
    collector: CollectorSection = Field(default_factory=CollectorSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    upload: UploadSection = Field(default_factory=UploadSection)
    ranges: Annotated[list[RangeSection], Field(min_length=1)]
    source: Path | None = Field(default=None, exclude=True, description="The file it came from.")

    @model_validator(mode="after")
    def _cap_hosts(self) -> CollectorConfig:
        total = sum(spec.count for r in self.ranges for spec in r.specs())
        if total > MAX_HOSTS:
            raise ValueError(
                f"ranges expand to {total} hosts, more than the {MAX_HOSTS} allowed per "
                "collector; narrow the CIDRs"
            )
        return self

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
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read config: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{where}: not UTF-8 text: {exc.reason}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{where}: invalid TOML: {exc}"]) from exc
    return config_from_dict(raw, base_dir=path.resolve().parent, source=path)


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
    if errors:
        raise ConfigError(errors)
    return config.model_copy(
        update={
            "portal": portal.model_copy(update={"ca_file": ca_file, "token": token}),
            "collector": config.collector.model_copy(
                update={"data_dir": resolve(config.collector.data_dir)}
            ),
        }
    )


# --------------------------------------------------------------------------- drivers & targets


def resolve_drivers(config: CollectorConfig) -> dict[str, Driver]:
    """Every driver the ranges name (all registered ones where a range names none)."""
    out: dict[str, Driver] = {}
    errors: list[str] = []
    for i, section in enumerate(config.ranges):
        if section.drivers is None:
            for driver in registry.all_drivers():
                out[driver.id] = driver
            continue
        for name in section.drivers:
            try:
                out[name] = registry.get(name)
            except KeyError as exc:
                errors.append(f"{config.describe()}: ranges[{i}].drivers: {exc.args[0]}")
    if errors:
        raise ConfigError(errors)
    if not out:
        raise ConfigError([f"{config.describe()}: no device drivers are registered"])
    return out


@dataclass(frozen=True)
class ProbeTarget:
    """One host to probe, with the drivers its range allows (None: all)."""

    target: Target
    drivers: tuple[str, ...] | None


def expand_ranges(config: CollectorConfig) -> list[ProbeTarget]:
    """Every host of every range, first occurrence wins (a host listed twice is probed once)."""
    seen: set[str] = set()
    out: list[ProbeTarget] = []
    for section in config.ranges:
        drivers = tuple(section.drivers) if section.drivers is not None else None
        for spec in section.specs():
            for host in spec.hosts():
                if host in seen:
                    continue
                seen.add(host)
                target = Target(host=host, port=section.port, scheme=section.scheme)
                out.append(ProbeTarget(target=target, drivers=drivers))
    return out
