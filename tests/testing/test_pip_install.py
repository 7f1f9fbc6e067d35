"""Real pip, in a fresh venv, installs a generated wheel from the test upstream (loopback only)."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream


@pytest.mark.slow
def test_pip_installs_a_generated_wheel(tmp_path: Path) -> None:
    corpus = Corpus.generate(300, 3, 3, seed=21)
    entry = corpus.project_list().projects[200]  # a two-word, mixed-style name
    project = corpus.get(entry.normalized)
    assert project is not None
    newest = list(project.releases)[-1]
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {
        **os.environ,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "NO_PROXY": "*",
    }
    env.pop("PIP_INDEX_URL", None)
    env.pop("PIP_EXTRA_INDEX_URL", None)
    with Upstream(corpus).running() as up:
        # The host's pip drives the fresh venv (--python), so nothing is fetched from the network.
        result = subprocess.run(
            [
                sys.executable, "-m", "pip", "--isolated", "--python", str(python),
                "install", "--no-cache-dir", "--index-url", up.simple_url, entry.name,
            ],
            env=env, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        # pip used the JSON page and PEP 658 metadata, then downloaded exactly the pure wheel.
        wheel = next(f for f in project.releases[newest] if f.filename.endswith("any.whl"))
        assert up.requests(f"/simple/{entry.normalized}/") == 1
        assert up.requests(wheel.path) == 1
    module = entry.normalized.replace("-", "_")
    out = subprocess.run(
        [str(python), "-c", f"import {module}; print({module}.__version__)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == newest
