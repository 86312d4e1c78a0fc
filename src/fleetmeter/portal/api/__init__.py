"""The JSON API: ingest for collectors, read endpoints for users and scripts."""
