"""A test-upstream project and its files, and how the project looks as a simple page.

:class:`Project` and :class:`DistFile` are what a :class:`~headwater.testing.corpus.Corpus`
holds; a file's bytes are built on first use (and its hashes from them), so a large corpus costs
nothing until a page or file is asked for. :func:`simple_page` is the PEP 691 model of a project
that the test upstream renders, as PyPI would show it (a quarantined project offers no files).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from headwater.simple.model import File, ProjectPage, ProjectStatus
from headwater.simple.names import NormalizedName

__all__ = ["DistFile", "Project", "simple_page"]


@dataclass(slots=True, eq=False)
class DistFile:
    """One distribution file. Its body (and so its hashes) is built on first use and cached."""

    filename: str
    project: NormalizedName
    version: str
    packagetype: str  # "bdist_wheel" or "sdist", as PyPI's JSON API names them
    python_version: str  # "py3", "cp312", or "source" for sdists
    requires_python: str | None
    upload_time: datetime
    build: Callable[[], bytes] = field(repr=False)
    #: The PEP 658 ``.metadata`` content (wheels only).
    metadata: bytes | None = field(default=None, repr=False)
    yanked: bool = False
    yanked_reason: str | None = None
    #: The PEP 740 provenance document served at ``<file>.provenance`` (and listed on the page).
    provenance: bytes | None = field(default=None, repr=False)
    _body: bytes | None = field(default=None, repr=False)
    _hashes: dict[str, str] | None = field(default=None, repr=False)

    @property
    def body(self) -> bytes:
        """The file's bytes (built and cached on first use)."""
        if self._body is None:
            self._body = self.build()
        return self._body

    @property
    def hashes(self) -> dict[str, str]:
        """``sha256``, ``md5`` and ``blake2b_256`` hex digests of the body."""
        if self._hashes is None:
            body = self.body
            self._hashes = {
                "sha256": hashlib.sha256(body).hexdigest(),
                "md5": hashlib.md5(body, usedforsecurity=False).hexdigest(),
                "blake2b_256": hashlib.blake2b(body, digest_size=32).hexdigest(),
            }
        return self._hashes

    @property
    def sha256(self) -> str:
        """The body's sha256 (hex)."""
        return self.hashes["sha256"]

    @property
    def size(self) -> int:
        """The body's length in bytes."""
        return len(self.body)

    @property
    def metadata_sha256(self) -> str | None:
        """The sha256 of the ``.metadata`` file, or ``None`` when there is none."""
        return None if self.metadata is None else hashlib.sha256(self.metadata).hexdigest()

    @property
    def path(self) -> str:
        """The file's path: ``/packages/<sha256[:2]>/<sha256[2:4]>/<sha256[4:]>/<filename>``."""
        sha = self.sha256
        return f"/packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{self.filename}"

    @property
    def pypi_path(self) -> str:
        """The path pypi.org really uses, by blake2b-256: what bandersnatch keeps on disk."""
        b2 = self.hashes["blake2b_256"]
        return f"/packages/{b2[:2]}/{b2[2:4]}/{b2[4:]}/{self.filename}"

    def url_path(self, pypi_paths: bool) -> str:
        return self.pypi_path if pypi_paths else self.path


@dataclass(slots=True, eq=False)
class Project:
    """A project: display name, releases (version -> files, in upload order), status, serial."""

    name: NormalizedName
    display_name: str
    last_serial: int
    releases: dict[str, list[DistFile]] = field(default_factory=dict)
    status: ProjectStatus = ProjectStatus.ACTIVE
    status_reason: str | None = None
    requires_python: str | None = None

    def files(self) -> Iterator[DistFile]:
        """Every file of every release, in upload order."""
        for files in self.releases.values():
            yield from files

    def snapshot(self) -> Project:
        """A copy that later mutations of this project do not change."""
        return dataclasses.replace(
            self,
            releases={v: [dataclasses.replace(f) for f in fs] for v, fs in self.releases.items()},
        )


def simple_page(
    project: Project, base_url: str, serials: bool, metadata: bool, pypi_paths: bool = False
) -> ProjectPage:
    """``project`` as its simple page, file URLs under ``base_url``."""
    quarantined = project.status is ProjectStatus.QUARANTINED
    files: tuple[File, ...] = ()
    if not quarantined:  # item 41: a quarantined project MUST NOT offer any files
        files = tuple(
            File(
                filename=dist.filename,
                url=base_url + dist.url_path(pypi_paths),
                hashes={"sha256": dist.sha256},
                requires_python=dist.requires_python,
                yanked=dist.yanked,
                yanked_reason=dist.yanked_reason,
                core_metadata=(
                    {"sha256": dist.metadata_sha256 or ""}
                    if metadata and dist.metadata is not None
                    else None
                ),
                size=dist.size,
                upload_time=dist.upload_time,
                # PEP 740: rendered only when base_url is https (a secure origin).
                provenance=(
                    base_url + dist.url_path(pypi_paths) + ".provenance"
                    if dist.provenance
                    else None
                ),
            )
            for dist in project.files()
        )
    return ProjectPage(
        name=project.name,
        files=files,
        versions=() if quarantined else tuple(project.releases),
        status=project.status,
        status_reason=project.status_reason,
        last_serial=project.last_serial if serials else None,
    )
