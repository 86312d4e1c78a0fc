"""SNMP client pieces that need no network: value conversion and credentials."""

from __future__ import annotations

import pytest
from pysnmp.proto import rfc1902, rfc1905  # type: ignore[import-untyped]

from fleetmeter.devices.base import Target
from fleetmeter.devices.snmp import SnmpCommunity, SnmpDriver, SnmpUsmUser
from fleetmeter.devices.snmp.client import to_value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (rfc1902.Counter32(15232), 15232),
        (rfc1902.Counter64(2**40), 2**40),
        (rfc1902.Integer32(-3), -3),
        (rfc1902.Gauge32(7), 7),
        (rfc1902.TimeTicks(139939), 139939),
        (rfc1902.OctetString(b"Tray 1"), b"Tray 1"),
        (rfc1902.OctetString(hexValue="00ff"), b"\x00\xff"),
        (rfc1902.IpAddress("192.0.2.1"), b"\xc0\x00\x02\x01"),
        (rfc1902.ObjectIdentifier("1.3.6.1.4.1.11.2.3.9.1"), (1, 3, 6, 1, 4, 1, 11, 2, 3, 9, 1)),
        (rfc1905.NoSuchInstance(""), None),
        (rfc1905.NoSuchObject(""), None),
        (rfc1905.EndOfMibView(""), None),
    ],
)
def test_pysnmp_values_become_plain_python(value: object, expected: object) -> None:
    assert to_value(value) == expected


def test_secrets_stay_out_of_repr() -> None:
    user = SnmpUsmUser("ops", auth_key="auth-secret", priv_key="priv-secret")
    community = SnmpCommunity("s3cret-community")
    assert "secret" not in repr(user) and "s3cret" not in repr(community)
    assert "s3cret" not in repr(SnmpDriver(community, credentials_by_host={"10.0.0.9": user}))


def test_usm_levels_are_checked() -> None:
    with pytest.raises(ValueError, match="needs an authentication key"):
        SnmpUsmUser("ops", priv_key="priv-secret")
    with pytest.raises(ValueError, match="at least 8"):
        SnmpUsmUser("ops", auth_key="short")
    SnmpUsmUser("ops")  # noAuthNoPriv is a valid (if weak) level


def test_credentials_by_host_override_the_default() -> None:
    driver = SnmpDriver(credentials_by_host={"10.0.0.9": SnmpCommunity("other")})
    assert driver.credentials_for(Target("10.0.0.8")) == SnmpCommunity("public")
    assert driver.credentials_for(Target("10.0.0.9")) == SnmpCommunity("other")
