"""``python -m fleetmeter.simulator``: the same as ``fleetmeter sim``."""

import sys

from fleetmeter.simulator.cli import main

sys.exit(main())
