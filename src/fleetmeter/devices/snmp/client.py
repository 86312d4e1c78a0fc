"""A small read-only SNMP client over pysnmp's asyncio hlapi: GET, and table walks with
GETBULK (v2c, v3) or GETNEXT (v1). It never sends SET.

Values come back as plain Python (``SnmpValue``): integers for INTEGER / Counter / Gauge /
TimeTicks, ``bytes`` for OCTET STRING (and IpAddress, Opaque, BITS), and ``Oid`` tuples for
OBJECT IDENTIFIER, so that the parser stays pure and is tested without a network. Every pysnmp
error is translated into the devices package's exception tree with ``raise … from``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Self

from pyasn1.type import univ  # type: ignore[import-untyped]

# pysnmp ships no type information (no py.typed); everything from it is Any here and is
# converted to SnmpValue before it leaves this module.
from pysnmp.error import PySnmpError  # type: ignore[import-untyped]
from pysnmp.hlapi.v3arch.asyncio import (  # type: ignore[import-untyped]
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CBC168_3DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES,
    USM_PRIV_CFB256_AES,
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.proto import errind, rfc1905  # type: ignore[import-untyped]

from fleetmeter.devices.errors import DeviceUnreachable, MalformedResponse
from fleetmeter.devices.snmp.credentials import SnmpCommunity, SnmpCredentials, SnmpUsmUser

__all__ = ["DEFAULT_PORT", "Oid", "SnmpClient", "SnmpValue", "VarBinds"]

DEFAULT_PORT = 161

Oid = tuple[int, ...]
SnmpValue = int | bytes | Oid
VarBinds = dict[str, SnmpValue]
"""Dotted OID (no leading dot) → value. Absent objects (noSuchObject, ...) are left out."""

# GETBULK max-repetitions: enough for a supplies table in one or two round trips, small
# enough to stay under a printer's message size (RFC 3416 §4.2.3 lets it return fewer).
_MAX_REPETITIONS = 24
# A walk that goes on past this many objects is not a printer table but a loop or an attack.
MAX_WALK_OBJECTS = 10_000
_MAX_OCTETS = 65_535

_AUTH = {
    "MD5": USM_AUTH_HMAC96_MD5,
    "SHA": USM_AUTH_HMAC96_SHA,
    "SHA224": USM_AUTH_HMAC128_SHA224,
    "SHA256": USM_AUTH_HMAC192_SHA256,
    "SHA384": USM_AUTH_HMAC256_SHA384,
    "SHA512": USM_AUTH_HMAC384_SHA512,
}
_PRIV = {
    "DES": USM_PRIV_CBC56_DES,
    "3DES": USM_PRIV_CBC168_3DES,
    "AES": USM_PRIV_CFB128_AES,
    "AES128": USM_PRIV_CFB128_AES,
    "AES192": USM_PRIV_CFB192_AES,
    "AES256": USM_PRIV_CFB256_AES,
}
# USM failures (RFC 3414 §3.2): the agent answered, but not to these credentials.
_AUTH_FAILURES = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.DecryptionError,
    errind.AuthenticationFailure,
    errind.AuthenticationError,
    errind.UnsupportedSecurityLevel,
    errind.UnknownSecurityName,
    errind.NotInTimeWindow,
    errind.UnknownCommunityName,
)


_NO_VALUE = (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView, univ.Null)


def _auth_data(credentials: SnmpCredentials) -> Any:
    if isinstance(credentials, SnmpCommunity):
        # mpModel 0 = SNMPv1, 1 = SNMPv2c (RFC 3412 §5 message processing models).
        return CommunityData(credentials.community, mpModel=0 if credentials.version == "1" else 1)
    kwargs: dict[str, Any] = {}
    if credentials.auth_key is not None:
        kwargs["authKey"] = credentials.auth_key
        kwargs["authProtocol"] = _AUTH[credentials.auth_protocol]
    if credentials.priv_key is not None:
        kwargs["privKey"] = credentials.priv_key
        kwargs["privProtocol"] = _PRIV[credentials.priv_protocol]
    # The security level is the operator's choice: some printers offer only authNoPriv.
    return UsmUserData(credentials.user, **kwargs)  # noqa: S509


def to_value(value: Any) -> SnmpValue | None:
    """A pysnmp/pyasn1 value → ``SnmpValue``; None for SNMP exceptions and NULL."""
    # noSuchObject / noSuchInstance / endOfMibView (RFC 3416 §3) carry no value. Checked
    # first: pysnmp derives them from OctetString.
    if isinstance(value, _NO_VALUE):
        return None
    if isinstance(value, univ.ObjectIdentifier):
        return tuple(int(part) for part in value)
    if isinstance(value, univ.Integer):  # Integer32, Counter32/64, Gauge32, TimeTicks
        return int(value)
    if isinstance(value, univ.OctetString):  # OctetString, IpAddress, Opaque, BITS
        return bytes(value.asOctets())[:_MAX_OCTETS]
    return None


def _is_under(oid: Oid, prefix: Oid) -> bool:
    return len(oid) > len(prefix) and oid[: len(prefix)] == prefix


def _dotted(oid: Oid) -> str:
    return ".".join(str(part) for part in oid)


def _parse_oid(dotted: str) -> Oid:
    return tuple(int(part) for part in dotted.strip(".").split("."))


class SnmpClient:
    """One agent, one set of credentials. ``async with SnmpClient(...) as client``.

    ``timeout_s`` is per request (pysnmp retransmits ``retries`` times on silence). A
    silent agent raises ``DeviceUnreachable``: SNMP agents do not answer unknown communities,
    so a wrong community looks exactly like a host that is down (RFC 3584 §4.1 / RFC 1157 §4.1).
    """

    def __init__(
        self,
        host: str,
        credentials: SnmpCredentials,
        *,
        port: int = DEFAULT_PORT,
        timeout_s: float = 2.0,
        retries: int = 1,
    ) -> None:
        self.host = host
        self.port = port
        self.credentials = credentials
        self.timeout_s = timeout_s
        self.retries = retries
        self._engine: Any = None
        self._target: Any = None
        self._auth = _auth_data(credentials)
        context = credentials.context_name if isinstance(credentials, SnmpUsmUser) else ""
        self._context = ContextData(contextName=context.encode())

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        try:
            self._target = await UdpTransportTarget.create(
                (self.host, self.port), timeout=self.timeout_s, retries=self.retries
            )
        except PySnmpError as exc:
            raise DeviceUnreachable(f"{self.address}: cannot resolve address ({exc})") from exc
        self._engine = SnmpEngine()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close_dispatcher()

    def _check(self, error_indication: Any, error_status: Any, error_index: Any) -> None:
        if error_indication:
            if isinstance(error_indication, errind.RequestTimedOut):
                raise DeviceUnreachable(
                    f"{self.address}: no SNMP answer within {self.timeout_s:g}s "
                    f"x{self.retries + 1} (device down, SNMP disabled, or wrong "
                    "community/credentials: agents stay silent on those)"
                )
            if isinstance(error_indication, _AUTH_FAILURES):
                raise DeviceUnreachable(
                    f"{self.address}: SNMP credentials refused ({error_indication})"
                )
            if isinstance(error_indication, errind.OidNotIncreasing):
                raise MalformedResponse(f"{self.address}: agent returned OIDs out of order")
            raise DeviceUnreachable(f"{self.address}: SNMP error: {error_indication}")
        if error_status and int(error_status) != 0:
            raise MalformedResponse(
                f"{self.address}: SNMP agent error {error_status.prettyPrint()} "
                f"at varbind {int(error_index)}"
            )

    def _require_open(self) -> None:
        if self._engine is None:
            raise RuntimeError("SnmpClient used outside 'async with'")

    async def get(self, oids: Iterable[str]) -> VarBinds:
        """GET these instance OIDs in one request; objects the agent lacks are left out."""
        self._require_open()
        names = list(oids)
        if not names:
            return {}
        try:
            indication, status, index, var_binds = await get_cmd(
                self._engine,
                self._auth,
                self._target,
                self._context,
                *(ObjectType(ObjectIdentity(name)) for name in names),
                lookupMib=False,
            )
        except PySnmpError as exc:
            raise DeviceUnreachable(f"{self.address}: SNMP GET failed ({exc})") from exc
        if status and int(status) == 2 and isinstance(self.credentials, SnmpCommunity):
            # SNMPv1 answers a GET for a missing object with noSuchName(2) for the whole
            # request (RFC 1157 §4.1.2): ask one object at a time instead.
            if len(names) > 1:
                out: VarBinds = {}
                for name in names:
                    out.update(await self.get([name]))
                return out
            return {}
        self._check(indication, status, index)
        return self._collect(var_binds)

    def _collect(self, var_binds: Sequence[Any]) -> VarBinds:
        out: VarBinds = {}
        for name, value in var_binds:
            converted = to_value(value)
            if converted is not None:
                out[str(name)] = converted
        return out

    async def walk(self, prefix: str, *, max_objects: int = MAX_WALK_OBJECTS) -> VarBinds:
        """Every object under ``prefix`` (a table entry or column), in OID order.

        Stops at the end of the subtree, at endOfMibView, or raises ``MalformedResponse``
        when the agent loops (non-increasing OIDs) or returns more than ``max_objects``.
        """
        self._require_open()
        root = _parse_oid(prefix)
        out: VarBinds = {}
        cursor = root
        bulk = not (isinstance(self.credentials, SnmpCommunity) and self.credentials.version == "1")
        while True:
            request = ObjectType(ObjectIdentity(_dotted(cursor)))
            try:
                if bulk:
                    indication, status, index, rows = await bulk_cmd(
                        self._engine,
                        self._auth,
                        self._target,
                        self._context,
                        0,
                        _MAX_REPETITIONS,
                        request,
                        lookupMib=False,
                    )
                else:
                    indication, status, index, rows = await next_cmd(
                        self._engine,
                        self._auth,
                        self._target,
                        self._context,
                        request,
                        lookupMib=False,
                    )
            except PySnmpError as exc:
                raise DeviceUnreachable(f"{self.address}: SNMP walk failed ({exc})") from exc
            if not bulk and status and int(status) == 2:
                return out  # SNMPv1 noSuchName: past the end of the MIB view
            self._check(indication, status, index)
            if not rows:
                return out
            for name, value in rows:
                oid = tuple(int(part) for part in name)
                if not _is_under(oid, root):
                    return out
                converted = to_value(value)
                if converted is None:
                    # endOfMibView. Checked before the order: it comes back under the name
                    # that was asked for (RFC 3416 §4.2.2), which is not past the cursor.
                    return out
                if oid <= cursor:
                    # RFC 3416 §4.2.2: GETNEXT must move forward; a looping agent would
                    # otherwise keep us here for ever.
                    raise MalformedResponse(
                        f"{self.address}: agent returned OIDs out of order under {prefix}"
                    )
                cursor = oid
                out[_dotted(oid)] = converted
                if len(out) > max_objects:
                    raise MalformedResponse(
                        f"{self.address}: more than {max_objects} objects under {prefix}"
                    )

    async def walk_many(self, prefixes: Iterable[str]) -> VarBinds:
        """Walk several subtrees concurrently (one engine, one socket) and merge them."""
        results = await asyncio.gather(*(self.walk(prefix) for prefix in prefixes))
        merged: VarBinds = {}
        for result in results:
            merged.update(result)
        return merged
