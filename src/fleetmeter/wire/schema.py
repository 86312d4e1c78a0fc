"""Export the wire model as JSON Schema (``fleetmeter wire-schema`` > docs/wire-schema-v1.json)."""

from __future__ import annotations

import json
from typing import Any

from fleetmeter.wire.model import SCHEMA_VERSION, Batch, BatchReceipt, DeviceReport


def json_schemas() -> dict[str, Any]:
    return {
        "$comment": f"FleetMeter wire model {SCHEMA_VERSION}; generated from fleetmeter.wire",
        "schema_version": SCHEMA_VERSION,
        "batch": Batch.model_json_schema(),
        "device_report": DeviceReport.model_json_schema(),
        "batch_receipt": BatchReceipt.model_json_schema(),
    }


def render() -> str:
    return json.dumps(json_schemas(), indent=2, sort_keys=True) + "\n"
