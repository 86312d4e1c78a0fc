"""Virtual printers with ground truth: large-format printers serving HP-EWS-style LEDM
documents, and industrial powder-bed 3D printers (with their build units and processing
stations) serving FleetMeter's own JSON device API.

Public API: ``SimClock``, ``VirtualPrinter`` / ``build_fleet``, ``ledm_docs.render``,
``AdditivePrinter`` / ``AdditiveFleet``, ``additive_api.respond``, ``Simulator`` /
``SimulatorConfig`` and the ``fleetmeter sim`` command (``cli.register``).
"""

from fleetmeter.simulator.additive import AdditiveFleet, AdditivePrinter, SimBuild
from fleetmeter.simulator.clock import SimClock
from fleetmeter.simulator.printer import Counters, SimJob, VirtualPrinter, build_fleet
from fleetmeter.simulator.server import (
    AdditiveEndpoint,
    DeviceEndpoint,
    Simulator,
    SimulatorConfig,
    SimulatorError,
)

__all__ = [
    "AdditiveEndpoint",
    "AdditiveFleet",
    "AdditivePrinter",
    "Counters",
    "DeviceEndpoint",
    "SimBuild",
    "SimClock",
    "SimJob",
    "Simulator",
    "SimulatorConfig",
    "SimulatorError",
    "VirtualPrinter",
    "build_fleet",
]
