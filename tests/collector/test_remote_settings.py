"""Settings from the portal, on the collector's side: signature, binding to this collector,
no rollback, profiles for credentials, atomic storage, clear refusals.

Documents are signed with a key made here by the same ``fleetmeter.signing.documents`` the
portal uses; the portal's own half is tested in tests/portal/test_collectors.py and both
together in tests/test_enrolment_end_to_end.py.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from fleetmeter.collector import remote_settings
from fleetmeter.collector.config import CollectorConfig, ConfigError, config_from_dict
from fleetmeter.signing.documents import (
    generate_private_key,
    private_key_from_bytes,
    public_key_text,
    sign_settings,
)
from fleetmeter.wire import now_utc
from fleetmeter.wire.collector_config import CollectorSettings, new_payload

KEY = private_key_from_bytes(generate_private_key())
OTHER_KEY = private_key_from_bytes(generate_private_key())
COLLECTOR_ID = uuid.uuid4()


def _config(tmp_path: Path, *, ranges: bool = True, key: str | None = None) -> CollectorConfig:
    raw: dict[str, object] = {
        "portal": {
            "url": "https://portal.example",
            "token": "fmc_x",
            "signing_key": key or public_key_text(KEY),
            "collector_id": str(COLLECTOR_ID),
        },
        "collector": {"data_dir": str(tmp_path / "data")},
    }
    if ranges:
        raw["ranges"] = [
            {
                "name": "office",
                "targets": ["10.0.0.1"],
                "drivers": ["snmp"],
                "snmp": {"community": "s3cret-community"},
            }
        ]
    return config_from_dict(raw, base_dir=tmp_path, source=None)


def _envelope(
    version: int,
    settings: dict[str, object],
    *,
    key: object = KEY,
    collector_id: uuid.UUID = COLLECTOR_ID,
) -> bytes:
    document = new_payload(
        collector_id=collector_id,
        version=version,
        issued_at=now_utc(),
        settings=CollectorSettings.model_validate(settings),
    )
    return json.dumps(sign_settings(document, key)).encode()  # type: ignore[arg-type]


RANGES = {"ranges": [{"targets": ["10.0.1.0/30"], "drivers": ["snmp"], "profile": "office"}]}


def test_newer_settings_are_applied_and_stored(tmp_path: Path) -> None:
    config = _config(tmp_path)
    applied = remote_settings.accept(
        config, _envelope(1, {**RANGES, "schedule": {"usage_interval_minutes": 60}})
    )
    assert applied is not None
    assert applied.settings_version == 1
    assert [r.targets for r in applied.ranges] == [["10.0.1.0/30"]]
    # The profile lends the local range's community; it never came from the portal.
    snmp = applied.ranges[0].snmp
    assert snmp is not None and snmp.community is not None
    assert snmp.community.get_secret_value() == "s3cret-community"
    assert applied.schedule.usage_interval_minutes == 60
    assert applied.schedule.health_interval_minutes == config.schedule.health_interval_minutes
    assert "portal settings v1" in applied.config_version
    # Stored, and loaded again at the next start.
    reloaded = remote_settings.load(config)
    assert reloaded.settings_version == 1 and reloaded.ranges == applied.ranges
    # The same version again changes nothing.
    assert remote_settings.accept(applied, _envelope(1, RANGES)) is None


def test_older_version_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    running = remote_settings.accept(config, _envelope(3, RANGES))
    assert running is not None
    stored = remote_settings.settings_path(config).read_bytes()
    with pytest.raises(remote_settings.SettingsError, match="older than version 3"):
        remote_settings.accept(running, _envelope(2, {}))
    assert remote_settings.settings_path(config).read_bytes() == stored


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (lambda: _envelope(1, RANGES, key=OTHER_KEY), "bad signature"),
        (lambda: _envelope(1, RANGES, collector_id=uuid.uuid4()), "this is"),
        (lambda: b"{not json", "not JSON"),
        (lambda: b'{"format": "other"}', "envelope"),
        (
            lambda: _envelope(1, {"ranges": [{"targets": ["10.0.0.1"], "profile": "nope"}]}),
            "names no local",
        ),
        (lambda: _envelope(1, {"ranges": [{"targets": ["10.0.0.1"], "drivers": ["fax"]}]}), "fax"),
    ],
)
def test_unusable_documents_are_refused_and_not_stored(
    tmp_path: Path, envelope: object, reason: str
) -> None:
    config = _config(tmp_path)
    with pytest.raises(remote_settings.SettingsError, match=reason):
        remote_settings.accept(config, envelope())  # type: ignore[operator]
    assert not remote_settings.settings_path(config).exists()


def test_a_tampered_payload_fails_the_signature(tmp_path: Path) -> None:
    config = _config(tmp_path)
    envelope = json.loads(_envelope(1, RANGES))
    envelope["payload"] = envelope["payload"][:-4] + "AAAA"
    with pytest.raises(remote_settings.SettingsError, match="bad signature"):
        remote_settings.accept(config, json.dumps(envelope).encode())


def test_a_corrupted_stored_file_is_a_clear_error_and_kept(tmp_path: Path) -> None:
    config = _config(tmp_path)
    remote_settings.accept(config, _envelope(1, RANGES))
    path = remote_settings.settings_path(config)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ConfigError) as refused:
        remote_settings.load(config)
    message = refused.value.errors[0]
    assert str(path) in message and "move it away" in message
    assert len(path.read_bytes()) == 40


def test_a_config_without_ranges_needs_the_signing_key(tmp_path: Path) -> None:
    enrolled = _config(tmp_path, ranges=False)
    assert enrolled.ranges == []
    raw = {"portal": {"url": "https://p.example", "token": "t"}}
    with pytest.raises(ConfigError, match=r"no \[\[ranges\]\]"):
        config_from_dict(raw, base_dir=tmp_path, source=None)
    with pytest.raises(ConfigError, match="signing_key"):
        _config(tmp_path, key="ed25519:short")
