"""Tools behind ``fleetmeter parse`` and ``fleetmeter probe``: read captured responses (a
directory of LEDM documents, an IPP response body, an SNMP recording) or one live device into
a ``DeviceReport`` without the collector."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from fleetmeter.devices import registry
from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import DeviceError, DeviceUnreachable, NotSupported
from fleetmeter.wire import DeviceReport, ReportKind

__all__ = ["parse_capture", "probe"]

_MAX_FILE_BYTES = 8 * 1024 * 1024


def _parse_ledm_directory(path: Path) -> DeviceReport:
    from fleetmeter.devices.ledm.parse import DOCUMENTS, parse_documents

    docs: dict[str, bytes] = {}
    for file in sorted(path.glob("*.xml")):
        if file.name not in DOCUMENTS or not file.is_file():
            continue
        if file.stat().st_size > _MAX_FILE_BYTES:
            raise ValueError(f"{file}: larger than {_MAX_FILE_BYTES} bytes")
        docs[file.name] = file.read_bytes()
    if not docs:
        known = ", ".join(DOCUMENTS)
        raise ValueError(f"{path}: no LEDM document found (expected files named like {known})")
    return parse_documents(docs, address=None)


def _read_capture_file(path: Path) -> bytes:
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size > _MAX_FILE_BYTES:
        raise ValueError(f"{path}: larger than {_MAX_FILE_BYTES} bytes")
    return path.read_bytes()


def _parse_ipp_file(path: Path) -> DeviceReport:
    from fleetmeter.devices.ipp.parse import parse_report

    return parse_report(_read_capture_file(path), address=None)


def _parse_snmprec_file(path: Path) -> DeviceReport:
    from fleetmeter.devices.snmp.parse import parse_report
    from fleetmeter.devices.snmp.snmprec import parse_snmprec

    values = parse_snmprec(_read_capture_file(path).decode("utf-8", "replace"), source=str(path))
    if not values:
        raise ValueError(f"{path}: no OID|type|value lines (an snmpsim .snmprec recording)")
    return parse_report(values, address=None)


# What a capture is for each driver that can parse one: (a directory?, the parser).
_CAPTURE_PARSERS: dict[str, tuple[bool, Callable[[Path], DeviceReport]]] = {
    "ledm": (True, _parse_ledm_directory),
    "ipp": (False, _parse_ipp_file),
    "snmp": (False, _parse_snmprec_file),
}


def parse_capture(driver_id: str, path: Path) -> DeviceReport:
    """Parse what was captured from a device.

    For ``ledm`` a directory of documents named as on the device (``ProductUsageDyn.xml``,
    ...); for ``ipp`` a Get-Printer-Attributes response body; for ``snmp`` an snmpsim
    ``.snmprec`` recording. Raises ``ValueError`` (unknown driver, no such file or directory,
    nothing recognisable) or ``DeviceError`` (a capture that cannot be parsed)."""
    try:
        registry.get(driver_id)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    entry = _CAPTURE_PARSERS.get(driver_id)
    if entry is None:
        known = ", ".join(sorted(_CAPTURE_PARSERS))
        raise ValueError(f"driver {driver_id!r} cannot parse captures (these can: {known})")
    is_directory, parser = entry
    if is_directory and not path.is_dir():
        raise ValueError(f"{path}: no such directory (the {driver_id} driver reads a directory)")
    return parser(path)


async def probe(
    host: str,
    *,
    driver_id: str | None = None,
    port: int | None = None,
    scheme: str = "https",
    timeout_s: float = 10,
    pins: PinStore | None = None,
    credentials: Mapping[str, str] | None = None,
) -> DeviceReport:
    """Identify and read one live device, read-only. Tries ``driver_id`` or every registered
    driver in turn; the first that recognises the device reads it (a USAGE report).

    ``pins`` defaults to an empty store: the certificate is trusted on first use for the
    duration of the probe. Raises ``DeviceUnreachable`` when nothing answered, ``NotSupported``
    when something answered but no driver recognised it, or another ``DeviceError``.
    """
    if scheme not in ("https", "http"):
        raise ValueError(f"unsupported scheme {scheme!r} (https or http)")
    if driver_id is not None:
        try:
            drivers = [registry.get(driver_id)]
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
    else:
        drivers = registry.all_drivers()
    store = pins if pins is not None else PinStore()
    target = Target(host=host, port=port, scheme=scheme, credentials=dict(credentials or {}))
    failures: list[DeviceError] = []
    answered = False  # a driver reached the host but it was not one of its devices
    for driver in drivers:
        try:
            identity = await driver.identify(target, store, timeout_s=timeout_s)
        except (DeviceUnreachable, NotSupported) as exc:
            # Another driver may speak another protocol on another port: keep trying.
            failures.append(exc)
            continue
        answered = True
        if identity is not None:
            options = ReadOptions(kind=ReportKind.USAGE, timeout_s=timeout_s)
            return await driver.read(target, store, options)
    tried = ", ".join(driver.id for driver in drivers)
    unreachable = [exc for exc in failures if isinstance(exc, DeviceUnreachable)]
    if not answered and failures and len(unreachable) == len(failures):
        raise unreachable[0]
    if failures:
        raise NotSupported(f"{host}: not recognised by any driver (tried {tried}): {failures[0]}")
    raise NotSupported(f"{host}: not recognised by any driver (tried {tried})")
