"""Settings: insecure secrets are refused; a generated one is kept across starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fleetmeter.portal.settings import PortalSettings


@pytest.mark.parametrize("secret", ["changethis", "short", "secret"])
def test_insecure_session_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="insecure"):
        PortalSettings(session_secret=secret)


def test_generated_secret_is_stored_and_reused(tmp_path: Path) -> None:
    settings = PortalSettings(data_dir=tmp_path / "d")
    first = settings.resolve_session_secret()
    assert len(first) >= 32
    path = tmp_path / "d" / "session-secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert PortalSettings(data_dir=tmp_path / "d").resolve_session_secret() == first


def test_default_database_is_sqlite_in_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEETMETER_DATABASE_URL", raising=False)
    monkeypatch.setenv("FLEETMETER_DATA_DIR", str(tmp_path))
    url = PortalSettings().effective_database_url
    assert url == f"sqlite:///{tmp_path.resolve() / 'portal.db'}"
