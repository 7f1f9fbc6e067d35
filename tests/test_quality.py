"""The project's own promises about its code: ruff clean, mypy strict clean on src/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        pytest.param([str(BIN / "ruff"), "check", "src", "tests", "bench"], id="ruff-check"),
        pytest.param(
            [str(BIN / "ruff"), "format", "--check", "src", "tests", "bench"], id="ruff-format"
        ),
        pytest.param([sys.executable, "-m", "mypy"], id="mypy-strict"),
    ],
)
def test_tool_is_clean(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_no_merge_conflict_markers_are_committed() -> None:
    """Several engineers merge into main; a conflict resolved by hand can leave its markers in a
    file no linter reads (docs, templates, TOML, CSS). git knows every tracked text file."""
    listed = subprocess.run(
        ["git", "grep", "-n", "-I", "-E", r"^(<<<<<<<|>>>>>>>) |^=======$", "--", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode == 128:
        pytest.fail(f"git grep failed: {listed.stderr}")
    assert listed.stdout == "", f"conflict markers committed:\n{listed.stdout[:3000]}"
