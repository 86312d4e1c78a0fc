"""The on-prem collector: config, discovery, polling, durable outbox and upload to the portal."""

from fleetmeter.collector.agent import (
    CollectorError,
    PollOnceResult,
    discover_once,
    poll_once,
    run,
)
from fleetmeter.collector.config import CollectorConfig, ConfigError, load_config

__all__ = [
    "CollectorConfig",
    "CollectorError",
    "ConfigError",
    "PollOnceResult",
    "discover_once",
    "load_config",
    "poll_once",
    "run",
]
