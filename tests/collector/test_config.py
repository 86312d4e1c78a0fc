"""Config validation: every bad input gives one clear line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetmeter.collector.config import (
    ConfigError,
    expand_ranges,
    load_config,
    resolve_drivers,
)
from fleetmeter.devices import registry
from fleetmeter.wire.targets import MAX_HOSTS

from .conftest import TOKEN, FakeDriver, write_config


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    for line in info.value.errors:
        assert "\n" not in line
        assert line.startswith(str(path) + ": ")
    return info.value.errors


def one_error(path: Path) -> str:
    errors = errors_of(path)
    assert len(errors) == 1, errors
    return errors[0]


def test_minimal_config_gets_defaults_and_resolves_paths(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[portal]\nurl = "https://portal.example:8443"\ntoken_file = "tok"\n'
        '[[ranges]]\ntargets = ["10.0.0.0/30"]\n'
    )
    (tmp_path / "tok").write_text(TOKEN + "\n")
    config = load_config(path)
    assert config.token == TOKEN
    assert config.data_dir == tmp_path / "collector-data"
    assert config.schedule.usage_interval_minutes == 180
    assert config.schedule.health_interval_minutes == 5
    assert config.upload.max_batch_bytes == 100_000
    assert config.upload.interval_seconds == 300
    assert config.collector.speed == 1.0
    assert config.ranges[0].drivers is None
    assert config.portal.ingest_url == "https://portal.example:8443/api/v1/ingest/batches"
    # The token never shows in a repr or a dump (they end up in logs and tracebacks).
    assert TOKEN not in repr(config)
    assert TOKEN not in config.model_dump_json()


def test_usage_interval_29_is_refused_30_accepted(tmp_path: Path) -> None:
    line = one_error(write_config(tmp_path / "c.toml", usage_minutes=29))
    assert "schedule.usage_interval_minutes" in line
    assert "30 minutes" in line
    config = load_config(write_config(tmp_path / "c.toml", usage_minutes=30))
    assert config.schedule.usage_interval_minutes == 30


P = "[portal]\nurl = 'https://p.example'\ntoken = 'x'\n"
R = "[[ranges]]\ntargets = ['10.0.0.1']\n"


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        (
            P + "[schedule]\nhealth_interval_minutes = 0.5\n" + R,
            "schedule.health_interval_minutes",
            "every minute",
        ),
        (P + "[upload]\nmax_batch_bytes = 200000\n" + R, "upload.max_batch_bytes", "102400"),
        (P + "[collector]\nspeed = 0\n" + R, "collector.speed", "greater than 0"),
        (P + "[collector]\nspeeed = 2\n" + R, "collector.speeed", "unknown key"),
        ("[portal]\ntoken = 'x'\n" + R, "portal.url", "required key is missing"),
        ("[portal]\nurl = 'ftp://x'\ntoken = 'x'\n" + R, "portal", "https://host"),
        ("[portal]\nurl = 'http://p.example'\ntoken = 'x'\n" + R, "portal", "must use https"),
        (
            "[portal]\nurl = 'http://127.0.0.1:80'\ntoken = 'x'\n" + R,
            "portal",
            "allow_insecure_http",
        ),
        ("[portal]\nurl = 'https://p.example'\n" + R, "portal", "exactly one of token or"),
        (P + "token_file = 'y'\n" + R, "portal", "exactly one of token or token_file"),
        ("[portal]\nurl = 'https://p.example'\ntoken = ' '\n" + R, "portal.token", "empty"),
        (
            "[portal]\nurl = 'https://p.example'\ntoken_file = 'nope'\n" + R,
            "portal.token_file",
            "cannot read",
        ),
        (P + "ca_file = 'missing.pem'\n" + R, "portal.ca_file", "does not exist"),
        (P + "[[ranges]]\ntargets = []\n", "ranges[0].targets", "at least 1"),
        (
            P + "[[ranges]]\ntargets = ['10.0.0.5/24']\n",
            "ranges[0].targets",
            "host bits set; did you mean 10.0.0.0/24",
        ),
        (
            P + "[[ranges]]\ntargets = ['10.0.0.9-10.0.0.1']\n",
            "ranges[0].targets",
            "end is before its start",
        ),
        (P + "[[ranges]]\ntargets = ['10.0.0.300']\n", "ranges[0].targets", "not a CIDR"),
        (
            P + "[[ranges]]\ntargets = ['a']\nport = 0\n",
            "ranges[0].port",
            "greater than or equal to 1",
        ),
        (
            P + "[[ranges]]\ntargets = ['a']\nscheme = 'ftp'\n",
            "ranges[0].scheme",
            "'https' or 'http'",
        ),
        (P + "[[ranges]]\ntargets = ['a']\ndrivers = []\n", "ranges[0].drivers", "at least 1"),
        (P, "(top level)", "no [[ranges]]"),
    ],
)
def test_each_bad_input_gives_its_clear_message(
    tmp_path: Path, toml: str, key: str, words: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    line = one_error(path)
    assert f": {key}: " in line and words in line, line


def test_several_problems_give_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[portal]\nurl = 'https://p.example'\ntoken = 'x'\n"
        "[schedule]\nusage_interval_minutes = 10\nhealth_interval_minutes = 0\n"
        "[[ranges]]\ntargets = ['not a host!']\n"
    )
    errors = errors_of(path)
    assert len(errors) == 3, errors
    assert [e.split(": ")[1] for e in errors] == [
        "schedule.usage_interval_minutes",
        "schedule.health_interval_minutes",
        "ranges[0].targets",
    ]


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    assert "cannot read config" in one_error(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[portal\nurl = 1\n")
    assert "invalid TOML" in one_error(bad)


def test_insecure_http_only_to_loopback_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[portal]\nurl = 'http://127.0.0.1:8000'\ntoken = 'x'\nallow_insecure_http = true\n"
        "[[ranges]]\ntargets = ['127.0.0.1']\n"
    )
    assert load_config(path).portal.url == "http://127.0.0.1:8000"
    path.write_text(
        "[portal]\nurl = 'http://10.0.0.1:8000'\ntoken = 'x'\nallow_insecure_http = true\n"
        "[[ranges]]\ntargets = ['127.0.0.1']\n"
    )
    assert "must use https" in one_error(path)


def test_host_count_is_capped(tmp_path: Path) -> None:
    # A /16 outside loopback is 65,534 hosts: accepted. A /15 is refused, not truncated.
    ok = load_config(write_config(tmp_path / "c.toml", targets=["10.1.0.0/16"]))
    assert len(expand_ranges(ok)) == MAX_HOSTS - 2
    line = one_error(write_config(tmp_path / "c.toml", targets=["10.0.0.0/15"]))
    assert "131070 hosts" in line and str(MAX_HOSTS) in line
    # The cap counts every range together.
    line = one_error(
        write_config(
            tmp_path / "c.toml",
            targets=["10.1.0.0/16"],
            extra="[[ranges]]\ntargets = ['10.9.0.0/24']\n",
        )
    )
    assert "more than the" in line


def test_unknown_driver_is_a_config_error(tmp_path: Path, fake_driver: FakeDriver) -> None:
    config = load_config(write_config(tmp_path / "c.toml", drivers=["fake", "nosuch"]))
    with pytest.raises(ConfigError) as info:
        resolve_drivers(config)
    assert info.value.errors == [
        f"{tmp_path / 'c.toml'}: ranges[0].drivers: unknown driver 'nosuch' (known: "
        + ", ".join(sorted(registry._DRIVERS))
        + ")"
    ]
    config = load_config(write_config(tmp_path / "c.toml", drivers=["fake"]))
    assert resolve_drivers(config) == {"fake": fake_driver}


# --------------------------------------------------------------------------- range options

V3_AUTH = "auth-secret-123"
V3_PRIV = "priv-secret-456"
COMMUNITY = "c0mmunity-s3cret"
OCTO_KEY = "octo-api-key-789"


def test_range_options_flow_into_each_drivers_target(tmp_path: Path) -> None:
    (tmp_path / "site-ca.pem").write_text("not parsed here")
    (tmp_path / "octo.key").write_text(OCTO_KEY + "\n")
    path = tmp_path / "c.toml"
    path.write_text(
        P
        + "[[ranges]]\ntargets = ['10.0.0.1']\nca_file = 'site-ca.pem'\n"
        + f"[ranges.snmp]\nv3_user = 'fleet'\nv3_auth_key = '{V3_AUTH}'\n"
        + f"v3_priv_protocol = 'AES256'\nv3_priv_key = '{V3_PRIV}'\n"
        + "[ranges.octoprint]\napi_key_file = 'octo.key'\n"
        + "[[ranges]]\ntargets = ['10.0.1.1']\nscheme = 'http'\ndrivers = ['snmp', 'moonraker']\n"
        + f"[ranges.snmp]\ncommunity = '{COMMUNITY}'\n[ranges.moonraker]\n"
    )
    config = load_config(path)
    first, second = expand_ranges(config)
    assert first.target.ca_file == str(tmp_path / "site-ca.pem")
    assert first.target_for("snmp").credentials == {
        "v3_user": "fleet",
        "v3_auth_protocol": "SHA",  # the default when only the key is given
        "v3_auth_key": V3_AUTH,
        "v3_priv_protocol": "AES256",
        "v3_priv_key": V3_PRIV,
    }
    # Each driver sees only its own secrets.
    assert first.target_for("octoprint").credentials == {"api_key": OCTO_KEY}
    assert first.target_for("ledm").credentials == {}
    assert second.target.ca_file is None and second.target.scheme == "http"
    assert second.target_for("snmp").credentials == {"community": COMMUNITY}
    assert second.target_for("moonraker").credentials == {}  # a key is optional there
    # Secrets show in no repr and no dump (logs, tracebacks, `collector status`).
    for text in (
        repr(config),
        config.model_dump_json(),
        repr(first),
        repr(first.target_for("snmp")),
    ):
        for secret in (V3_AUTH, V3_PRIV, COMMUNITY, OCTO_KEY):
            assert secret not in text


@pytest.mark.parametrize(
    ("section", "key", "words"),
    [
        (
            f"[ranges.snmp]\ncommunity = '{COMMUNITY}'\nv3_user = 'u'\n",
            "ranges[0].snmp",
            "not both",
        ),
        ("[ranges.snmp]\nv3_user = 'u'\nv3_auth_key = 'short12'\n", "ranges[0].snmp", "8 char"),
        (
            f"[ranges.snmp]\nv3_user = 'u'\nv3_auth_key = '{V3_AUTH}'\nv3_priv_key = 'tiny'\n",
            "ranges[0].snmp",
            "v3_priv_key is shorter than 8",
        ),
        (
            f"[ranges.snmp]\nv3_user = 'u'\nv3_priv_key = '{V3_PRIV}'\n",
            "ranges[0].snmp",
            "needs v3_auth_key",
        ),
        (f"[ranges.snmp]\nv3_auth_key = '{V3_AUTH}'\n", "ranges[0].snmp", "without v3_user"),
        ("[ranges.snmp]\n", "ranges[0].snmp", "set community"),
        (
            f"[ranges.snmp]\nv3_user = 'u'\nv3_auth_protocol = 'SHA1'\nv3_auth_key = '{V3_AUTH}'\n",
            "ranges[0].snmp.v3_auth_protocol",
            "'SHA256'",
        ),
        (f"[ranges.snmp]\ncomunity = '{COMMUNITY}'\n", "ranges[0].snmp.comunity", "unknown key"),
        ("[ranges.octoprint]\n", "ranges[0].octoprint", "set api_key or api_key_file"),
        (
            f"[ranges.octoprint]\napi_key = '{OCTO_KEY}'\napi_key_file = 'k'\n",
            "ranges[0].octoprint",
            "at most one",
        ),
        (
            "[ranges.octoprint]\napi_key_file = 'missing.key'\n",
            "ranges[0].octoprint.api_key_file",
            "cannot read",
        ),
        ("ca_file = 'missing-ca.pem'\n", "ranges[0].ca_file", "does not exist"),
        ("scheme = 'http'\nca_file = 'x.pem'\n", "ranges[0]", "no use with scheme"),
        (
            f"drivers = ['ledm']\n[ranges.snmp]\ncommunity = '{COMMUNITY}'\n",
            "ranges[0]",
            "drivers does not include 'snmp'",
        ),
    ],
)
def test_bad_range_options_are_refused_without_showing_secrets(
    tmp_path: Path, section: str, key: str, words: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(P + "[[ranges]]\ntargets = ['10.0.0.1']\n" + section)
    line = one_error(path)
    assert f": {key}: " in line and words in line, line
    for secret in (V3_AUTH, V3_PRIV, COMMUNITY, OCTO_KEY, "short12", "tiny"):
        assert secret not in line


def test_console_section_and_config_version(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("version = '2026-01-a'\n" + P + R)
    config = load_config(path)
    assert config.console.enabled is False
    assert (config.console.host, config.console.port) == ("127.0.0.1", 8470)
    assert config.source_sha256 is not None
    assert config.config_version == f"2026-01-a (sha256 {config.source_sha256[:12]})"

    path.write_text(P + "[console]\nenabled = true\nlisten = '[::1]:0'\n" + R)
    config = load_config(path)
    assert (config.console.host, config.console.port) == ("::1", 0)
    assert config.config_version.startswith("sha256 ")

    path.write_text(P + "[console]\nlisten = '8470'\n" + R)
    assert "console.listen" in one_error(path)


def test_drivers_are_tried_in_registry_priority_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_driver: FakeDriver
) -> None:
    second = FakeDriver("fake2")
    monkeypatch.setitem(registry._DRIVERS, second.id, second)
    # The range lists them the other way round: priority is the registry's, not the list's.
    config = load_config(write_config(tmp_path / "c.toml", drivers=["fake2", "fake"]))
    assert list(resolve_drivers(config)) == ["fake", "fake2"]
