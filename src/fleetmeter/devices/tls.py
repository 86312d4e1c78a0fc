"""TLS for device connections: trust-on-first-use certificate pinning.

Printers ship self-signed certificates that no CA vouches for, so chain verification is off
and the device is instead recognised by the SHA-256 of its certificate: recorded on first
contact, compared on every later response (DESIGN.md, "Protocols to devices"). The check runs
on each response, before its body is used, so a device swapped mid-session is caught too.
"""

from __future__ import annotations

import ssl

import httpx

from fleetmeter.devices.base import PinStore
from fleetmeter.devices.errors import CertificateMismatch, DeviceUnreachable
from fleetmeter.signing.certs import fingerprint_der

__all__ = ["check_pin", "peer_certificate", "unverified_context"]


def unverified_context() -> ssl.SSLContext:
    """A client context that accepts any certificate: identity is checked by the pin instead."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
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
    would otherwise silently disable pinning).
    """
    der = peer_certificate(response)
    if der is None:
        raise DeviceUnreachable(f"{key}: no TLS peer certificate to check against the pin")
    actual = fingerprint_der(der)
    expected = pins.pins.get(key)
    if expected is None:
        pins.pins[key] = actual
    elif expected != actual:
        raise CertificateMismatch(key, expected, actual)
    return actual
