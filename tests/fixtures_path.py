"""Where the shared real device captures are (``../shared/fixtures`` beside the checkout)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_fixtures() -> Path:
    """The captures folder, or skip the calling test with the reason."""
    path = Path(os.environ.get("FLEETMETER_FIXTURES", ROOT.parent / "shared" / "fixtures"))
    if not path.is_dir():
        pytest.skip(f"real device captures not found at {path} (set FLEETMETER_FIXTURES)")
    return path
