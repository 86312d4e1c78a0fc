"""Settings set in the portal: fetched on each contact, verified, kept, applied.

The portal signs each version of a collector's settings with its Ed25519 key; the collector
holds the public half from enrolment (``portal.signing_key``). A fetched document is used
only if its signature checks out, it names this collector, it is not older than the version
running (no rollback: an old signed document replayed by anyone on the path is refused), and
the config it yields is valid here (a ``profile`` must name a local range, drivers must
exist). Only then is it written to ``<data_dir>/settings.signed.json`` (atomically: a crash
leaves the old file or the new, never half of one) and applied.

What it can change is ``wire.collector_config.CollectorSettings``: ranges and schedule. The
file's own values stay in force for everything else, and secrets never come from the portal:
a remote range borrows credentials from the local ``[[ranges]]`` entry its ``profile``
names.

A stored document that no longer verifies (edited, corrupted, key changed) stops the
collector with a message saying what to do; it is never silently replaced or deleted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import httpx

from fleetmeter.collector.config import (
    CollectorConfig,
    ConfigError,
    RangeSection,
    resolve_drivers,
)
from fleetmeter.signing.documents import (
    MAX_ENVELOPE_BYTES,
    DocumentError,
    parse_public_key,
    verify_settings,
)
from fleetmeter.wire.collector_config import RemoteRange, SignedSettings

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.signed.json"
VERSION_HEADER = "FleetMeter-Config-Version"


class SettingsError(RuntimeError):
    """A settings document that must not be used, with the reason (one line)."""


def settings_path(config: CollectorConfig) -> Path:
    return config.data_dir / SETTINGS_FILE


def _verify(config: CollectorConfig, envelope: bytes) -> SignedSettings:
    if config.portal.signing_key is None:
        raise SettingsError(
            "portal.signing_key is not set, so settings from the portal cannot be verified "
            "(enrol with `fleetmeter collector enroll`, or add the key to the config)"
        )
    try:
        document = verify_settings(envelope, parse_public_key(config.portal.signing_key))
    except DocumentError as exc:
        raise SettingsError(str(exc)) from None
    expected = config.portal.collector_id
    if expected is not None and document.collector_id != expected:
        raise SettingsError(
            f"settings are for collector {document.collector_id}, this is {expected}"
        )
    return document


def apply(config: CollectorConfig, document: SignedSettings) -> CollectorConfig:
    """``config`` with the document's settings in force; ``SettingsError`` if they cannot be
    used here."""
    settings = document.settings
    update: dict[str, Any] = {"settings_version": document.version}
    if settings.ranges is not None:
        profiles = {r.name: r for r in config.ranges if r.name is not None}
        update["ranges"] = [_range(r, profiles, i) for i, r in enumerate(settings.ranges)]
    changes = settings.schedule.model_dump(exclude_none=True)
    if changes:
        update["schedule"] = config.schedule.model_copy(update=changes)
    applied = config.model_copy(update=update)
    try:
        resolve_drivers(applied)
    except ConfigError as exc:
        raise SettingsError("; ".join(exc.errors)) from None
    return applied


def _range(remote: RemoteRange, profiles: dict[str, RangeSection], index: int) -> RangeSection:
    base: dict[str, Any] = {}
    if remote.profile is not None:
        profile = profiles.get(remote.profile)
        if profile is None:
            known = ", ".join(sorted(profiles)) or "none"
            raise SettingsError(
                f"ranges[{index}].profile {remote.profile!r} names no local [[ranges]] entry "
                f"(named ones: {known})"
            )
        base = {
            "ca_file": profile.ca_file,
            "snmp": profile.snmp,
            "octoprint": profile.octoprint,
            "moonraker": profile.moonraker,
        }
    fields = remote.model_dump(exclude_none=True, exclude={"profile"})
    section = RangeSection.model_validate(fields)
    if section.scheme == "http":
        base.pop("ca_file", None)  # a CA verifies TLS; a plain-HTTP range has none to verify
    # The profile's parts were validated and resolved at load (CA path, key files read).
    return section.model_copy(update=base) if base else section


def load(config: CollectorConfig) -> CollectorConfig:
    """``config`` with the stored settings applied (or as it is when none are stored).
    ``ConfigError`` if the stored file cannot be used: it is left as it is."""
    path = settings_path(config)
    try:
        envelope = path.read_bytes()
    except FileNotFoundError:
        return config
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read stored portal settings: {exc.strerror}"]) from exc
    try:
        return apply(config, _verify(config, envelope))
    except SettingsError as exc:
        raise ConfigError(
            [
                f"{path}: stored portal settings cannot be used: {exc}. The file was left "
                "as it is; move it away to start from the config file's own settings (the "
                "portal sends its newest settings again on the next contact)"
            ]
        ) from None


def accept(config: CollectorConfig, envelope: bytes) -> CollectorConfig | None:
    """The new effective config if ``envelope`` holds newer valid settings, None if it holds
    the version running; ``SettingsError`` (nothing stored) otherwise."""
    document = _verify(config, envelope)
    running = config.settings_version
    if document.version < running:
        raise SettingsError(
            f"refusing settings version {document.version}: older than version {running} "
            "which runs (no rollback)"
        )
    if document.version == running:
        return None
    applied = apply(config, document)
    _write_atomically(settings_path(config), envelope)
    return applied


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def fetch(client: httpx.AsyncClient, config: CollectorConfig) -> bytes | None:
    """The portal's newest signed settings for this collector (None: it has none).
    Raises ``SettingsError`` with a one-line reason when the portal cannot answer."""
    headers = {
        "Authorization": f"Bearer {config.token}",
        VERSION_HEADER: str(config.settings_version),
        "Accept": "application/json",
    }
    url = config.portal.settings_url
    try:
        async with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 204:
                return None
            if response.status_code == 404:
                return None  # a portal from before remote settings
            if response.status_code != 200:
                raise SettingsError(f"portal answered {response.status_code} for settings")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_ENVELOPE_BYTES:
                    raise SettingsError(f"settings larger than {MAX_ENVELOPE_BYTES} bytes")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise SettingsError(f"cannot fetch settings: {type(exc).__name__}: {exc}") from None


async def refresh(client: httpx.AsyncClient, config: CollectorConfig) -> CollectorConfig | None:
    """Fetch and accept: the new effective config, or None when nothing changed or the
    settings were refused or unreachable (logged; the running config stays)."""
    if config.portal.signing_key is None:
        return None  # not enrolled: this collector runs its file alone
    try:
        envelope = await fetch(client, config)
        if envelope is None:
            return None
        applied = accept(config, envelope)
    except SettingsError as exc:
        log.error("portal settings not applied: %s", exc)
        return None
    if applied is not None:
        log.info(
            "portal settings version %d applied: %d range(s), usage every %g min, health "
            "every %g min",
            applied.settings_version,
            len(applied.ranges),
            applied.schedule.usage_interval_minutes,
            applied.schedule.health_interval_minutes,
        )
    return applied
