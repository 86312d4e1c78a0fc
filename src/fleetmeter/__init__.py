"""FleetMeter: pay-per-use metering and monitoring for printer fleets."""

__version__ = "0.1.0"
