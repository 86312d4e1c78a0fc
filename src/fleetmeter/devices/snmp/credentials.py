"""SNMP credentials: a v1/v2c community or an SNMPv3 USM user (RFC 3414).

Secrets never appear in ``repr`` (log lines, tracebacks): only the user and the protocols do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

__all__ = [
    "AuthProtocol",
    "PrivProtocol",
    "SnmpCommunity",
    "SnmpCredentials",
    "SnmpUsmUser",
]

AuthProtocol = Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"]
PrivProtocol = Literal["DES", "3DES", "AES", "AES128", "AES192", "AES256"]


@dataclass(frozen=True)
class SnmpCommunity:
    """SNMPv2c (default) or SNMPv1 community. v1 has no GETBULK; tables are walked with
    GETNEXT."""

    community: str = field(default="public", repr=False)
    version: Literal["1", "2c"] = "2c"


@dataclass(frozen=True)
class SnmpUsmUser:
    """An SNMPv3 USM user (RFC 3414). No ``auth_key``: noAuthNoPriv; ``auth_key`` only:
    authNoPriv; both keys: authPriv. ``context_name`` selects a context on agents that serve
    several (most printers use the default, empty one)."""

    user: str
    auth_key: str | None = field(default=None, repr=False)
    auth_protocol: AuthProtocol = "SHA"
    priv_key: str | None = field(default=None, repr=False)
    priv_protocol: PrivProtocol = "AES"
    context_name: str = ""

    def __post_init__(self) -> None:
        if self.priv_key is not None and self.auth_key is None:
            # RFC 3414 §3.1.1: privacy without authentication is not a USM security level.
            raise ValueError("SNMPv3: a privacy key needs an authentication key")
        for key in (self.auth_key, self.priv_key):
            if key is not None and len(key) < 8:
                # RFC 3414 §11.2: pass phrases are at least 8 characters; agents refuse less.
                raise ValueError("SNMPv3 keys are at least 8 characters long")


SnmpCredentials = SnmpCommunity | SnmpUsmUser
"""What the driver authenticates with."""


def credentials_from_target(values: Mapping[str, str]) -> SnmpCredentials | None:
    """The credentials a collector range configured (``Target.credentials``), if any.

    Keys (see ``devices.base.Target``): ``community`` (v2c), or ``v3_user`` with
    ``v3_auth_protocol``, ``v3_auth_key``, ``v3_priv_protocol``, ``v3_priv_key``.
    Raises ValueError for a combination that is not a USM security level.
    """
    if "v3_user" in values:
        if "community" in values:
            raise ValueError("SNMP: give a community or a v3 user, not both")
        return SnmpUsmUser(
            user=values["v3_user"],
            auth_key=values.get("v3_auth_key"),
            auth_protocol=cast(AuthProtocol, values.get("v3_auth_protocol", "SHA").upper()),
            priv_key=values.get("v3_priv_key"),
            priv_protocol=cast(PrivProtocol, values.get("v3_priv_protocol", "AES").upper()),
        )
    if "community" in values:
        return SnmpCommunity(values["community"])
    return None
