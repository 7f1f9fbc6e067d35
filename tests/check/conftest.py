"""Three real indexes on loopback for ``headwater check``: "private", "public" and "extra".

Each is a :class:`~headwater.testing.upstream.Upstream` (real HTTP, fault injection) serving a
corpus built for the incident scenarios of docs/policy.md's worked examples. The corpus here can also put PEP 708
``tracks`` and ``alternate-locations`` on a project's page (the test upstream's own corpus has
no such switch), so agreement and disagreement are served over the wire like any other page.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from headwater.simple.model import ProjectPage
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream

SCRIPT = Path(sys.executable).with_name("headwater")


class ProvenanceCorpus(Corpus):
    """A corpus whose pages may carry PEP 708 metadata, set per project before it is served
    (the upstream caches rendered pages per serial, so set it before the first request)."""

    def __init__(self) -> None:
        super().__init__(releases=1, files=1)
        self.tracks: dict[str, tuple[str, ...]] = {}
        self.alternates: dict[str, tuple[str, ...]] = {}

    def project_page(
        self,
        name: str,
        base_url: str,
        *,
        serials: bool = True,
        metadata: bool = True,
        pypi_paths: bool = False,
    ) -> ProjectPage | None:
        page = super().project_page(
            name, base_url, serials=serials, metadata=metadata, pypi_paths=pypi_paths
        )
        if page is None:
            return None
        return msgspec.structs.replace(
            page,
            tracks=self.tracks.get(name, ()),
            alternate_locations=self.alternates.get(name, ()),
        )


@dataclass
class World:
    """The three running indexes and their corpora."""

    private: Upstream
    public: Upstream
    extra: Upstream

    def sha256(self, upstream: Upstream, project: str) -> str:
        """The sha256 of the (only) file of ``project`` on ``upstream``."""
        found = upstream.corpus.get(project)
        assert found is not None
        return next(iter(found.files())).sha256


def _populate(private: ProvenanceCorpus, public: ProvenanceCorpus, extra: ProvenanceCorpus) -> None:
    # torchtriton: the private index has it; the public index has a higher version.
    private.add_release("torchtriton", "2.0.0")
    public.add_release("torchtriton", "3.0.0")
    # Birsan: an internal name, on the private index only (written Foo_Bar on the index).
    private.add_release("Foo_Bar", "1.0")
    # Only the extra index has it: private too (the extra index is not public).
    extra.add_release("extra-only", "0.5")
    # Public only: the normal case.
    public.add_release("requests", "2.32.3")
    public.add_release("requests", "2.31.0")
    # Same name on private and public, private newer: confusion but not shadowed.
    private.add_release("newer-private", "5.0")
    public.add_release("newer-private", "1.0")
    # tracks: the private copy tracks the public project (a mirror that adds wheels).
    private.add_release("tracked-lib", "1.0")
    public.add_release("tracked-lib", "1.0")
    # alternate-locations that disagree.
    private.add_release("alt-lib", "1.0")
    public.add_release("alt-lib", "1.1")
    # On both, different versions (so different files): a hash pin picks the private file.
    private.add_release("pinned-lib", "1.0")
    public.add_release("pinned-lib", "9999.0")
    # A name an index fails for (a fault is injected on demand).
    private.add_release("flaky-lib", "1.0")
    public.add_release("flaky-lib", "1.0")


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    private, public, extra = ProvenanceCorpus(), ProvenanceCorpus(), ProvenanceCorpus()
    _populate(private, public, extra)
    with (
        Upstream(private).running() as up_private,
        Upstream(public).running() as up_public,
        Upstream(extra).running() as up_extra,
    ):
        # PEP 708 metadata names the other index's URLs, known only once the servers listen.
        private.tracks["tracked-lib"] = (f"{up_public.simple_url}tracked-lib/",)
        private.alternates["alt-lib"] = (
            f"{up_private.simple_url}alt-lib/",
            "https://elsewhere.example/simple/alt-lib/",
        )
        public.alternates["alt-lib"] = (f"{up_public.simple_url}alt-lib/",)
        yield World(private=up_private, public=up_public, extra=up_extra)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment with no pip or uv configuration from this machine (its pip.conf,
    PIP_FIND_LINKS ...), a temporary HOME and XDG directories, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "XDG_", "VIRTUAL_ENV"))
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CONFIG_DIRS=str(home / "etc-xdg"),
        PIP_CONFIG_FILE=os.devnull,
        UV_NO_CONFIG="1",
        NO_COLOR="1",
    )
    env.update(extra)
    return env


def run_check(
    args: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``headwater check ARGS`` as a subprocess (the installed console script)."""
    return subprocess.run(
        [str(SCRIPT), "check", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
