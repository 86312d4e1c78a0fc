"""The package layering of DESIGN.md holds: checked by import-linter, not by hope."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run(
        [lint, "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Every contract named in pyproject.toml was checked, none skipped.
    assert "0 broken" in result.stdout, result.stdout
    assert "Contracts: 5 kept" in result.stdout, result.stdout
