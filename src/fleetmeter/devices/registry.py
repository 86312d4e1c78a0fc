"""Drivers by stable id. Registering an id twice is an error (a silent override hides bugs)."""

from __future__ import annotations

import importlib

from fleetmeter.devices.base import Driver

_DRIVERS: dict[str, Driver] = {}


def register(driver: Driver) -> Driver:
    if driver.id in _DRIVERS:
        raise ValueError(f"driver id {driver.id!r} is already registered")
    _DRIVERS[driver.id] = driver
    return driver


def get(driver_id: str) -> Driver:
    _load_builtin()
    try:
        return _DRIVERS[driver_id]
    except KeyError:
        known = ", ".join(sorted(_DRIVERS)) or "none"
        raise KeyError(f"unknown driver {driver_id!r} (known: {known})") from None


def all_drivers() -> list[Driver]:
    _load_builtin()
    return list(_DRIVERS.values())


BUILTIN: tuple[str, ...] = ("ledm", "additive", "ipp", "octoprint", "moonraker", "snmp")
"""Built-in drivers in discovery priority: a vendor's own protocol tells more than IPP, and
IPP more than SNMP, so a device is read by the first of these that recognises it. ``ledm``
and ``additive`` never both recognise one device (different documents on the same port)."""


def _load_builtin() -> None:
    # Imported lazily so that importing the registry does not import every protocol stack;
    # each module registers itself, in this order.
    for name in BUILTIN:
        importlib.import_module(f"fleetmeter.devices.{name}")
