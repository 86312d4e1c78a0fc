"""``python -m fleetmeter`` is the ``fleetmeter`` command."""

from fleetmeter.cli import main

raise SystemExit(main())
