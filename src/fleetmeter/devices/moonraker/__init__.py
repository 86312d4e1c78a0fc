"""Moonraker support (Klipper 3D printers through Moonraker's HTTP API): pure parser, client
and the ``moonraker`` driver.

Importing this package registers the driver (``fleetmeter.devices.registry`` imports it
lazily on first use).
"""

from fleetmeter.devices.moonraker.client import MoonrakerClient
from fleetmeter.devices.moonraker.driver import MoonrakerDriver
from fleetmeter.devices.moonraker.parse import parse_report
from fleetmeter.devices.registry import register

__all__ = ["DRIVER", "MoonrakerClient", "MoonrakerDriver", "parse_report"]

DRIVER = register(MoonrakerDriver())
