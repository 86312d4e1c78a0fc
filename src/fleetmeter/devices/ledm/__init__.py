"""HP LEDM (Low-End Data Model) support: pure parser, HTTPS client and the ``ledm`` driver.

Importing this package registers the driver (``fleetmeter.devices.registry`` imports it
lazily on first use).
"""

from fleetmeter.devices.ledm.client import LedmClient
from fleetmeter.devices.ledm.driver import LedmDriver
from fleetmeter.devices.ledm.parse import parse_documents
from fleetmeter.devices.registry import register

__all__ = ["DRIVER", "LedmClient", "LedmDriver", "parse_documents"]

DRIVER = register(LedmDriver())
