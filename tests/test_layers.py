"""The import-layer contract: headwater.simple and headwater.policy stay pure (no I/O imports), and
layers import downward only. Enforced with import-linter using the contracts in pyproject.toml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_contracts_hold() -> None:
    result = _lint(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_contract_catches_io_in_simple(tmp_path: Path) -> None:
    # The same check on a copy of the package where simple/ imports socket must fail, or the
    # contract above proves nothing.
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "headwater", copy / "headwater")
    names = copy / "headwater" / "simple" / "names.py"
    names.write_text("import socket  # noqa\n" + names.read_text())
    result = _lint(copy)
    assert result.returncode != 0
    assert "headwater.simple.names -> socket" in result.stdout
