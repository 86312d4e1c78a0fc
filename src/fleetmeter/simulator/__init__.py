"""Virtual large-format printers serving HP-EWS-style LEDM documents, with ground truth.

Public API: ``SimClock``, ``VirtualPrinter`` / ``build_fleet``, ``ledm_docs.render``,
``Simulator`` / ``SimulatorConfig`` and the ``fleetmeter sim`` command (``cli.register``).
"""

from fleetmeter.simulator.clock import SimClock
from fleetmeter.simulator.printer import Counters, SimJob, VirtualPrinter, build_fleet
from fleetmeter.simulator.server import (
    DeviceEndpoint,
    Simulator,
    SimulatorConfig,
    SimulatorError,
)

__all__ = [
    "Counters",
    "DeviceEndpoint",
    "SimClock",
    "SimJob",
    "Simulator",
    "SimulatorConfig",
    "SimulatorError",
    "VirtualPrinter",
    "build_fleet",
]
