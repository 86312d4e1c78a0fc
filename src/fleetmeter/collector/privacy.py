"""What of a job's name and submitter leaves the site: keep, pseudonymise or drop (issue 11).

The collector is bound to one customer, so its ``[privacy]`` section is that customer's
setting. It is applied to every report as the driver returns it, before the report reaches
the outbox: a dropped or pseudonymised value is never written to disk at the site and never
sent. Job content (documents, previews, spool files) is never read by any driver at all.

A pseudonym is ``p-`` and 16 base32 characters of HMAC-SHA256 under a per-customer key that
exists only in the collector's data directory (``privacy.key``, created on first use,
readable by the collector's user only). The same value of the same field maps to the same
pseudonym on every printer of the site and in every run, so billing and statements per user
or account work unchanged; the portal (and the reseller) cannot reverse it. Whoever holds the
key can compute a pseudonym from a name (``fleetmeter collector pseudonym``) to find a
person's jobs; losing the key means new pseudonyms from then on. The value is normalised
before hashing (surrounding white space removed, case folded) because printers spell the same
account differently ("ALICE", "alice ").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from fleetmeter.devices.base import Driver, PinStore, ReadOptions, Target
from fleetmeter.wire import BuildJob, DeviceIdentity, DeviceReport, JobRecord

KEY_FILE = "privacy.key"
KEY_BYTES = 32
PREFIX = "p-"


class PrivacyError(Exception):
    """The privacy key cannot be read or created."""


class FieldPolicy(StrEnum):
    KEEP = "keep"
    PSEUDONYMISE = "pseudonymise"
    DROP = "drop"


# The job fields a customer can set, as named in the config (and in docs/privacy.md).
SUBMITTER_FIELDS = ("user", "account", "project", "application", "user_defined")
FIELDS = ("job_name", *SUBMITTER_FIELDS)


def load_or_create_key(path: Path) -> bytes:
    """The site's pseudonymisation key: read, or created (0600) if the file does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
        key = secrets.token_bytes(KEY_BYTES)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two collectors starting at once must not each write their own key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_key(path)
        except OSError as exc:
            raise PrivacyError(f"{path}: cannot create the privacy key: {exc.strerror}") from exc
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.hex().encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        return key
    except OSError as exc:
        raise PrivacyError(f"{path}: cannot read the privacy key: {exc.strerror}") from exc
    text = data.decode("ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        # Never replaced silently: a new key would give every user a new pseudonym.
        raise PrivacyError(
            f"{path}: not a privacy key ({KEY_BYTES * 2} hex digits expected); restore it from "
            "a backup, or move it away to start a new one (pseudonyms change)"
        )
    return key


def pseudonym(key: bytes, field: str, value: str) -> str:
    """``value``'s pseudonym in ``field`` (the field is part of the input: a user and an
    account with the same name do not share a pseudonym)."""
    normalised = value.strip().casefold()
    digest = hmac.new(key, f"{field}\x00{normalised}".encode(), hashlib.sha256).digest()
    return PREFIX + base64.b32encode(digest[:10]).decode("ascii").lower()


@dataclass(frozen=True)
class Privacy:
    """One customer's setting: a policy per field, and the key pseudonyms are made with."""

    policies: Mapping[str, FieldPolicy]
    key: bytes

    @property
    def keeps_everything(self) -> bool:
        return all(p is FieldPolicy.KEEP for p in self.policies.values())

    def _apply(self, field: str, value: str | None) -> str | None:
        policy = self.policies.get(field, FieldPolicy.KEEP)
        if value is None or policy is FieldPolicy.KEEP:
            return value
        if policy is FieldPolicy.DROP or not value.strip():
            return None
        return pseudonym(self.key, field, value)

    def job(self, job: JobRecord) -> JobRecord:
        submitter = job.submitter.model_copy(
            update={f: self._apply(f, getattr(job.submitter, f)) for f in SUBMITTER_FIELDS}
        )
        return job.model_copy(
            update={"name": self._apply("job_name", job.name), "submitter": submitter}
        )

    def build(self, build: BuildJob) -> BuildJob:
        """A 3D build as the status shows it (current and recent): its name is a job name."""
        return build.model_copy(update={"name": self._apply("job_name", build.name)})

    def report(self, report: DeviceReport) -> DeviceReport:
        if self.keeps_everything:
            return report
        update: dict[str, object] = {}
        if report.jobs:
            update["jobs"] = [self.job(job) for job in report.jobs]
        additive = report.additive
        if additive is not None and (additive.build_job or additive.recent_builds):
            update["additive"] = additive.model_copy(
                update={
                    "build_job": self.build(additive.build_job) if additive.build_job else None,
                    "recent_builds": [self.build(b) for b in additive.recent_builds],
                }
            )
        return report.model_copy(update=update) if update else report


class PrivateDriver:
    """A driver whose reports leave it with the site's privacy setting applied."""

    def __init__(self, inner: Driver, privacy: Privacy) -> None:
        self.inner = inner
        self.privacy = privacy
        self.id = inner.id

    async def identify(
        self, target: Target, pins: PinStore, *, timeout_s: float = 5.0
    ) -> DeviceIdentity | None:
        return await self.inner.identify(target, pins, timeout_s=timeout_s)

    async def read(self, target: Target, pins: PinStore, options: ReadOptions) -> DeviceReport:
        return self.privacy.report(await self.inner.read(target, pins, options))


def private_drivers(drivers: Mapping[str, Driver], privacy: Privacy) -> dict[str, Driver]:
    """``drivers`` with ``privacy`` applied to what they read (unchanged when it keeps all)."""
    if privacy.keeps_everything:
        return dict(drivers)
    return {driver_id: PrivateDriver(d, privacy) for driver_id, d in drivers.items()}
