"""IPP support (IPP Everywhere and IPP/1.1 printers): pure parser, client and the ``ipp``
driver, built on pyipp's encoder and decoder.

Importing this package registers the driver (``fleetmeter.devices.registry`` imports it
lazily on first use).
"""

from fleetmeter.devices.ipp.client import IppClient
from fleetmeter.devices.ipp.driver import IppDriver
from fleetmeter.devices.ipp.parse import parse_report
from fleetmeter.devices.registry import register

__all__ = ["DRIVER", "IppClient", "IppDriver", "parse_report"]

DRIVER = register(IppDriver())
