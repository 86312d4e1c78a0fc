"""The portal: multi-tenant ingest API, store, web UI and tenancy CLI.

Public entry points: ``fleetmeter.portal.app.create_app``, ``fleetmeter.portal.server.serve``
and ``fleetmeter.portal.cli.register``. Importing this package imports nothing heavy.
"""
