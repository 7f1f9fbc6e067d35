"""A command's output can be cut short by its reader (``headwater verify | head``): the command
stops quietly with the status a process killed by SIGPIPE has (141), never a traceback. The
handling is in ``headwater.cli.main`` around every command; these drive real commands whose
output is larger than the pipe's buffer or written at exit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream

HEADWATER = str(Path(sys.executable).with_name("headwater"))


def run_into_closed_pipe(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the command with its stdout a pipe whose reader has already gone."""
    proc = subprocess.Popen(
        [HEADWATER, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader went away (as `head` does after its lines)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    return proc.wait(timeout=120), err


def _verify(tmp_path: Path) -> list[str]:
    for i in range(2000):  # many problems, many lines
        orphan = tmp_path / f"web/packages/aa/bb/{'c' * 60}/stray_{i}-1.0.tar.gz"
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"stray")
    return ["verify", "--target", str(tmp_path)]


def _verify_json(tmp_path: Path) -> list[str]:
    return [*_verify(tmp_path), "--format", "json"]


def _nginx(tmp_path: Path) -> list[str]:
    return ["nginx-config", "--root", str(tmp_path)]


@pytest.mark.parametrize("make", [_verify, _verify_json, _nginx], ids=lambda f: f.__name__[1:])
def test_output_into_a_closed_pipe(tmp_path: Path, make: Callable[[Path], list[str]]) -> None:
    status, err = run_into_closed_pipe(make(tmp_path), tmp_path)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert status == 141, (status, err)  # 128 + SIGPIPE, as `yes | head` reports


def test_mirror_dry_run_into_a_closed_pipe(tmp_path: Path) -> None:
    with Upstream(Corpus.generate(300, releases=1, files=1, seed=3)).running() as up:
        status, err = run_into_closed_pipe(
            ["mirror", "--dry-run", "--upstream", up.simple_url, "--target", "t"], tmp_path
        )
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert status == 141, (status, err)
