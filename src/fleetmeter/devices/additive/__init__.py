"""Industrial powder-bed 3D printers through the ``fleetmeter-additive`` JSON device API: pure
parser, client and the ``additive`` driver.

Importing this package registers the driver (``fleetmeter.devices.registry`` imports it
lazily on first use).
"""

from fleetmeter.devices.additive.client import AdditiveClient
from fleetmeter.devices.additive.driver import AdditiveDriver
from fleetmeter.devices.additive.parse import parse_report
from fleetmeter.devices.registry import register

__all__ = ["DRIVER", "AdditiveClient", "AdditiveDriver", "parse_report"]

DRIVER = register(AdditiveDriver())
