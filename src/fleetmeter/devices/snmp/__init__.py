"""SNMP support: Printer-MIB (RFC 3805) and Host Resources MIB (RFC 2790) read-only over
SNMP v1/v2c/v3 — a data profile of OIDs, a pure parser, a pysnmp client and the ``snmp``
driver.

Importing this package registers the driver (``fleetmeter.devices.registry`` imports it lazily
on first use) with the default credentials, community "public". Until credentials flow from
the collector's configuration, a caller that needs others builds its own
``SnmpDriver(credentials, credentials_by_host=...)``.
"""

from fleetmeter.devices.registry import register
from fleetmeter.devices.snmp.client import SnmpClient, SnmpValue, VarBinds
from fleetmeter.devices.snmp.credentials import SnmpCommunity, SnmpCredentials, SnmpUsmUser
from fleetmeter.devices.snmp.driver import SnmpDriver
from fleetmeter.devices.snmp.parse import parse_identity, parse_report
from fleetmeter.devices.snmp.profile import Profile, load_profile

__all__ = [
    "DRIVER",
    "Profile",
    "SnmpClient",
    "SnmpCommunity",
    "SnmpCredentials",
    "SnmpDriver",
    "SnmpUsmUser",
    "SnmpValue",
    "VarBinds",
    "load_profile",
    "parse_identity",
    "parse_report",
]

DRIVER = register(SnmpDriver())
