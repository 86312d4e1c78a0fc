"""The collector settings a reseller may change from the portal, and the signed document
that carries them (``fleetmeter-collector-config/1``).

What can be set remotely is deliberately narrow: which addresses and host names to scan, with
which drivers, ports and schemes, and how often to poll. Secrets (SNMP communities, API keys,
CA files) never leave the site: a remote range names a local ``[[ranges]]`` entry as its
``profile`` to borrow that entry's credentials. Nothing here can address a device with a
command; the collector only ever reads.

Both ends validate with these models: the portal before it signs (a bad edit is refused at
the edge, with the field that is wrong), the collector after it verified the signature.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fleetmeter.wire.model import UtcDatetime
from fleetmeter.wire.targets import MAX_HOSTS, check_targets, parse_target

FORMAT: Literal["fleetmeter-collector-config/1"] = "fleetmeter-collector-config/1"
MIN_USAGE_INTERVAL_MINUTES = 30
"""Usage is never polled more often than this (DESIGN.md): the counters move slowly and every
poll costs the customer's network and the device's web server."""
MAX_RANGES = 256
MAX_TARGETS_PER_RANGE = 4096
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

DriverName = Annotated[str, Field(pattern=_NAME.pattern, description="A driver id, e.g. ipp.")]


class _Strict(BaseModel):
    # Unknown keys are refused, not kept: a typo must not silently do nothing, and a newer
    # portal must not be able to slip in settings an older collector would ignore.
    model_config = ConfigDict(extra="forbid", frozen=True)


class RemoteRange(_Strict):
    """One range to scan: what ``[[ranges]]`` holds in the collector's file, minus secrets."""

    targets: list[Annotated[str, Field(max_length=256)]] = Field(
        min_length=1,
        max_length=MAX_TARGETS_PER_RANGE,
        description="CIDRs, a.b.c.d-e.f.g.h ranges, addresses or host names.",
    )
    drivers: list[DriverName] | None = Field(default=None, min_length=1, max_length=16)
    port: int | None = Field(default=None, ge=1, le=65535)
    scheme: Literal["https", "http"] | None = None
    profile: str | None = Field(
        default=None,
        pattern=_NAME.pattern,
        description="Name of a local [[ranges]] entry whose credentials and CA this range uses.",
    )

    @field_validator("targets")
    @classmethod
    def _parse_targets(cls, value: list[str]) -> list[str]:
        return [text.strip() for text in check_targets(value)]

    def host_count(self) -> int:
        return sum(parse_target(text).count for text in self.targets)


class RemoteSchedule(_Strict):
    usage_interval_minutes: float | None = Field(
        default=None, ge=MIN_USAGE_INTERVAL_MINUTES, le=7 * 24 * 60
    )
    health_interval_minutes: float | None = Field(default=None, ge=1, le=24 * 60)
    discovery_every_usage_intervals: int | None = Field(default=None, ge=1, le=1000)


class CollectorSettings(_Strict):
    """What the portal sends. A key left out keeps the collector's local value."""

    ranges: list[RemoteRange] | None = Field(default=None, max_length=MAX_RANGES)
    schedule: RemoteSchedule = Field(default_factory=RemoteSchedule)

    @model_validator(mode="after")
    def _cap_hosts(self) -> CollectorSettings:
        total = sum(r.host_count() for r in self.ranges or ())
        if total > MAX_HOSTS:
            raise ValueError(
                f"ranges expand to {total} hosts, more than the {MAX_HOSTS} allowed per "
                "collector; narrow the CIDRs"
            )
        return self


class SignedSettings(_Strict):
    """The signed payload: settings bound to one collector and one version."""

    format: Literal["fleetmeter-collector-config/1"] = FORMAT
    collector_id: uuid.UUID
    version: int = Field(ge=1, le=2**63 - 1)
    issued_at: UtcDatetime
    settings: CollectorSettings


def new_payload(
    *, collector_id: uuid.UUID, version: int, issued_at: datetime, settings: CollectorSettings
) -> SignedSettings:
    return SignedSettings(
        collector_id=collector_id, version=version, issued_at=issued_at, settings=settings
    )
