"""TLS for device connections: trust-on-first-use certificate pinning, or a site's own CA.

Printers ship self-signed certificates that no CA vouches for, so chain verification is off
and the device is instead recognised by the SHA-256 of its certificate: recorded on first
contact, compared on every later response (DESIGN.md, "Protocols to devices"). The check runs
on each response, before its body is used, so a device swapped mid-session is caught too.

Where a range names a ``ca_file`` (``Target.ca_file``: the site issues its printers'
certificates), ``device_context`` verifies chain and host name against that CA during the
handshake instead, and ``check_pin`` then pins nothing: a certificate renewed by the site's CA
is expected, not an alert.
"""

from __future__ import annotations

import dataclasses
import functools
import ssl

import httpx

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import CertificateMismatch, DeviceUnreachable
from fleetmeter.signing.certs import fingerprint_der

__all__ = ["check_pin", "device_context", "peer_certificate", "unverified_context"]


def resolve_target(target: Target, *, https_port: int, http_port: int) -> Target:
    """``target`` with its port filled in from the driver's defaults (the pin key, and for
    some drivers the derived serial, must name the real port). Every other field, the CA
    file and the credentials included, is kept."""
    if target.scheme not in ("https", "http"):
        raise ValueError(f"unsupported scheme {target.scheme!r} (https or http)")
    if target.port is not None:
        return target
    return dataclasses.replace(target, port=https_port if target.scheme == "https" else http_port)


def device_context(target: Target) -> ssl.SSLContext:
    """The client context for ``target``: verified against ``target.ca_file`` when set, else
    ``unverified_context()`` (the pin checks the device's identity instead)."""
    if target.ca_file is None:
        return unverified_context()
    try:
        return _ca_context(target.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise DeviceUnreachable(
            f"{target.host}: cannot load ca_file {target.ca_file}: {exc}"
        ) from exc


@functools.lru_cache(maxsize=16)
def _ca_context(ca_file: str) -> ssl.SSLContext:
    # One context per CA file, shared: loading the bundle for every device read is wasted work
    # (an SSLContext is safe to share between connections). check_hostname stays on: a
    # certificate the CA issued to another printer must not vouch for this one.
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)


@functools.cache
def unverified_context() -> ssl.SSLContext:
    """A client context that accepts any certificate: identity is checked by the pin instead.

    One per process, shared by every client of every driver: building a context costs tens of
    milliseconds of CPU, which at thousands of devices per poll round was minutes
    (docs/performance.md). It holds no per-device state; pins are checked on each response.
    No CA store is loaded: nothing is verified against it.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def peer_certificate(response: httpx.Response) -> bytes | None:
    """The DER certificate the server presented on this response's connection, if TLS."""
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    ssl_object = stream.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return bytes(der) if der else None


def check_pin(pins: PinStore, key: str, response: httpx.Response) -> str:
    """Record (first use) or compare the response's certificate pin; return the fingerprint.

    Raises ``CertificateMismatch`` when it differs from the pinned one, and
    ``DeviceUnreachable`` when an HTTPS response carries no certificate to check (which
    would otherwise silently disable pinning). A connection made with a CA-verifying context
    (``device_context`` for a target with ``ca_file``) was verified in the handshake: nothing
    is pinned or compared.
    """
    der = peer_certificate(response)
    if der is None:
        raise DeviceUnreachable(f"{key}: no TLS peer certificate to check against the pin")
    actual = fingerprint_der(der)
    if _verified_by_ca(response):
        return actual
    expected = pins.pins.get(key)
    if expected is None:
        pins.pins[key] = actual
    elif expected != actual:
        raise CertificateMismatch(key, expected, actual)
    return actual


def _verified_by_ca(response: httpx.Response) -> bool:
    """Was this response's connection verified against a CA (chain and host name)?"""
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return False
    context = ssl_object.context
    return context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
