"""OctoPrint support (3D printers behind OctoPrint's REST API): pure parser, client and the
``octoprint`` driver.

Importing this package registers the driver (``fleetmeter.devices.registry`` imports it
lazily on first use).
"""

from fleetmeter.devices.octoprint.client import OctoPrintClient
from fleetmeter.devices.octoprint.driver import OctoPrintDriver
from fleetmeter.devices.octoprint.parse import parse_report
from fleetmeter.devices.registry import register

__all__ = ["DRIVER", "OctoPrintClient", "OctoPrintDriver", "parse_report"]

DRIVER = register(OctoPrintDriver())
