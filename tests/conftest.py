"""Fixtures shared across the suite."""

from __future__ import annotations

import gc
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients import make_venv
from tests.seaweed import s3_bucket, seaweed

__all__ = ["s3_bucket", "seaweed"]  # SeaweedFS fixtures (tests/seaweed.py), usable by every test


@pytest.fixture(scope="session")
def uv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A uv executable, installed once per test session into its own venv (from the machine's own
    package index configuration: uv is a tool here, not the index under test)."""
    python = make_venv(tmp_path_factory.mktemp("uv-tool"))
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "uv"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if installed.returncode != 0:
        pytest.fail(f"could not install uv with pip (needs PyPI): {installed.stderr[-2000:]}")
    return python.parent / "uv"


@pytest.fixture(scope="session")
def twine6(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """twine 6.1, the last twine whose ``--skip-existing`` works with indexes other than PyPI
    (twine 6.2 and 7 refuse the flag for them before uploading anything)."""
    python = make_venv(tmp_path_factory.mktemp("twine6-tool"))
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "twine==6.1.0"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if installed.returncode != 0:
        pytest.fail(
            f"could not install twine 6.1 with pip (needs PyPI): {installed.stderr[-2000:]}"
        )
    return python.parent / "twine"


@pytest.fixture(autouse=True)
def _leaks_fail_the_test_that_made_them() -> Iterator[None]:
    """Collect garbage as each test ends, so an object it left unclosed (a socket, a file) is
    finalized now: its ResourceWarning (an error here, ``filterwarnings = error``) fails the test
    that leaked it, not whichever later test the collector happened to run in."""
    yield
    gc.collect()
