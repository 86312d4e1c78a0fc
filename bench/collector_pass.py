"""One collector pass in its own process, timed phase by phase (used by ``bench.poll_fleet``).

``python -m bench.collector_pass --config FILE --kind health`` does what the running collector
does for a health round: poll every device it knows once, then upload the outbox. The devices
are those the collector's state knows from an earlier pass (as the running collector knows
them from its last discovery); ``--discover`` probes the ranges first instead. It prints one
JSON line with the phase times; the caller reads the process's peak memory.
``fleetmeter collector poll-once`` covers the usage pass; it has no health counterpart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from fleetmeter.collector.agent import Agent
from fleetmeter.collector.config import load_config, resolve_drivers
from fleetmeter.collector.state import State
from fleetmeter.wire import ReportKind


async def run_pass(config_path: Path, kind: ReportKind, *, probe: bool) -> dict[str, Any]:
    config = load_config(config_path)
    drivers = resolve_drivers(config)
    with State(config.data_dir) as state:
        agent = Agent(config, state, drivers)
        try:
            t0 = time.perf_counter()
            if probe:
                found = len((await agent.discover()).found)
            else:
                # The known devices, as discovery would add those that stay silent.
                agent.devices = agent._known_but_silent([])
                found = len(agent.devices)
            t1 = time.perf_counter()
            outcomes = await agent.poll(kind)
            t2 = time.perf_counter()
            upload = await agent.upload()
            t3 = time.perf_counter()
        finally:
            await agent.aclose()
    return {
        "kind": str(kind),
        "devices_found": found,
        "discovered": probe,
        "devices_polled": len(outcomes),
        "poll_failures": sum(1 for o in outcomes if o.error is not None),
        "reports_uploaded": upload.reports_sent,
        "batches_sent": upload.batches_sent,
        "upload_error": upload.error,
        "discovery_s": t1 - t0,
        "poll_s": t2 - t1,
        "upload_s": t3 - t2,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--kind", choices=[k.value for k in ReportKind], default="health")
    parser.add_argument("--discover", action="store_true", help="probe the ranges first")
    args = parser.parse_args(argv)
    # The same logging as the ``fleetmeter`` command, so both passes pay the same for it.
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    result = asyncio.run(run_pass(args.config, ReportKind(args.kind), probe=args.discover))
    print(json.dumps(result), flush=True)
    return 0 if result["poll_failures"] == 0 and result["upload_error"] is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
