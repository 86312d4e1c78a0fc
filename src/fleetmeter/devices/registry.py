"""Drivers by stable id. Registering an id twice is an error (a silent override hides bugs)."""

from __future__ import annotations

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


def _load_builtin() -> None:
    # Imported lazily so that importing the registry does not import every protocol stack.
    import fleetmeter.devices.ledm  # noqa: F401  (registers itself)
