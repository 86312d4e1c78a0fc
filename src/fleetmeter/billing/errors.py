"""The billing exception tree.

::

    BillingError            anything billing refuses, with a one-line reason
    ├── PlanError           a price plan file or model is invalid (names the key path)
    └── UsageError          usage cannot be built or read (conflicting jobs, bad usage file)
"""

from __future__ import annotations


class BillingError(Exception):
    """Base of every billing error; ``str(error)`` is one line meant for a person."""


class PlanError(BillingError):
    """A price plan is invalid. The message names the file (if any) and the key path."""


class UsageError(BillingError):
    """Usage cannot be built: conflicting duplicate jobs, a bad usage file, an unknown meter."""


def key_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the key path a person would write: ``tiers[2].up_to``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
