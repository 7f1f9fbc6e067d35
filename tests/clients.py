"""Real clients for end-to-end tests: fresh venvs, pip and uv isolated from this machine's
configuration (its pip.conf, extra indexes and constraints), so a test exercises headwater's
index and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["clean_env", "installed_version", "make_venv", "run_ok"]


def clean_env(home: Path) -> dict[str, str]:
    """An environment with no pip or uv configuration and caches under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        HOME=str(home),
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(home / "uv-cache"),
    )
    return env


def run_ok(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; fail with its output if it fails."""
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result


def make_venv(path: Path, *, pip: bool = True) -> Path:
    """A fresh venv at ``path``; returns its python."""
    args = [sys.executable, "-m", "venv", str(path)]
    if not pip:
        args.insert(3, "--without-pip")
    subprocess.run(args, check=True, capture_output=True)
    return path / "bin" / "python"


def installed_version(python: Path, module: str) -> str:
    """``module.__version__`` as the venv of ``python`` sees it."""
    out = subprocess.run(
        [str(python), "-c", f"import {module}; print({module}.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()
