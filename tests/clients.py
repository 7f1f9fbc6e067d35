"""Real clients for end-to-end tests: fresh venvs, pip and uv isolated from this machine's
configuration (its pip.conf, extra indexes and constraints), so a test exercises headwater's
index and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["clean_env", "installed_version", "make_venv", "pip_install", "run_ok", "uv_install"]


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


def pip_install(index: str, requirement: str, home: Path) -> Path:
    """``pip install`` ``requirement`` from ``index`` into a fresh venv under ``home``, isolated
    from this machine's pip configuration; returns the venv's python."""
    python = make_venv(home / "pip-venv")
    run_ok(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--isolated",
            "--no-cache-dir",
            "--index-url",
            index,
            requirement,
        ],
        clean_env(home),
    )
    return python


def uv_install(uv: Path, index: str, requirement: str, home: Path) -> Path:
    """``uv pip install`` ``requirement`` from ``index`` into a fresh venv under ``home``, with no
    uv configuration or cache from this machine; returns the venv's python."""
    python = make_venv(home / "uv-venv", pip=False)
    run_ok(
        [
            str(uv),
            "pip",
            "install",
            "--no-config",
            "--no-cache",
            "--index-url",
            index,
            "--python",
            str(python),
            requirement,
        ],
        clean_env(home),
    )
    return python
