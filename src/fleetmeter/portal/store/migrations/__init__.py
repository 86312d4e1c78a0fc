"""Alembic environment and revisions (a package so that setuptools ships the *.py files)."""
