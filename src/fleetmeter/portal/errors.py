"""The portal's exception tree.

::

    PortalError                      anything the portal refuses, with a one-line message
     ├── ConfigError                 bad settings (insecure secret, unusable data dir)
     ├── NotMigratedError            the database schema is not at the current revision
     └── TenancyError                unknown reseller / customer, duplicate user, ...

Routes translate these into problem responses; the CLI into one line on stderr.
"""

from __future__ import annotations


class PortalError(Exception):
    """Base of every error the portal raises on purpose."""


class ConfigError(PortalError):
    """The settings cannot be used as given."""


class NotMigratedError(PortalError):
    """The database is missing migrations; run ``fleetmeter portal migrate``."""


class TenancyError(PortalError):
    """A tenancy operation refers to something that does not exist or already exists."""
