"""Builders shared by the billing tests: job records, plans from TOML snippets, one-device usage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from itertools import count
from typing import Any

from fleetmeter.billing import DeviceUsage, PeriodUsage, PricePlan, parse_plan
from fleetmeter.wire import JobRecord

_ids = count(1)


def job(**fields: Any) -> JobRecord:
    """A completed print job on 15 March 2026 (UTC) unless ``fields`` say otherwise."""
    fields.setdefault("job_uuid", uuid.UUID(int=next(_ids)))
    fields.setdefault("sequence_number", 1)
    fields.setdefault("completed_at", datetime(2026, 3, 15, 12, 0, tzinfo=UTC))
    return JobRecord.model_validate(fields)


def plan(toml: str) -> PricePlan:
    return parse_plan(toml, source="test.toml")


def one_device(meters: dict[str, int], device: str = "D1") -> PeriodUsage:
    return PeriodUsage(devices=(DeviceUsage(device=device, meters=meters),))
