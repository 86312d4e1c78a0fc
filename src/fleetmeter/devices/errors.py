"""The devices package's exception tree.

    DeviceError                 anything that went wrong reading one device
     ├── DeviceUnreachable      connection refused / timed out / TLS handshake failed
     ├── CertificateMismatch    the device's certificate is not the pinned one
     ├── NotSupported           the device answers but this driver cannot read it
     └── MalformedResponse      the device answered with something that cannot be parsed

Drivers raise only these (``raise … from exc``); the collector turns them into one poll error
per device with the message as its reason.
"""

from __future__ import annotations


class DeviceError(Exception):
    """Reading a device failed; ``str(exc)`` is a one-line reason fit for a log or a CLI."""


class DeviceUnreachable(DeviceError):
    pass


class CertificateMismatch(DeviceError):
    def __init__(self, address: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{address}: TLS certificate changed "
            f"(pinned sha256 {expected[:16]}…, got {actual[:16]}…)"
        )
        self.address = address
        self.expected = expected
        self.actual = actual


class NotSupported(DeviceError):
    pass


class MalformedResponse(DeviceError):
    pass
