"""An in-memory PyPI-like state for the test upstream: projects, releases, files and serials.

A :class:`Corpus` is what the test upstream serves. It has three sources of projects:

- *synthetic* projects, generated from ``(seed, index)`` on first use, so a 700,000-project corpus
  costs nothing until a page is asked for (:meth:`Corpus.generate`);
- projects read from a directory of distribution files (:meth:`Corpus.from_directory`);
- projects created by mutations (:meth:`Corpus.add_release`).

Every mutation advances the global serial and sets the project's last serial to it, as PyPI's
changelog does, and keeps a snapshot of the project as it was, so a fault can serve the previous
state ("a stale CDN"). The same seed always gives the same names, versions and file bytes.

The corpus is shared between the server thread and test code, so every public method takes one
lock; pages are built outside the server's hot path (it caches rendered bytes). A project and
its files are :mod:`headwater.testing.projects`; the names, tags and times of synthetic projects
are :mod:`headwater.testing._synthetic`.
"""

from __future__ import annotations

import random
import threading
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path

from headwater.errors import HeadwaterError
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.model import ProjectList, ProjectListEntry, ProjectPage, ProjectStatus
from headwater.simple.names import InvalidName, NormalizedName, normalize_name
from headwater.testing import wheels
from headwater.testing._synthetic import (
    EPOCH,
    FILE_KINDS,
    MUTATION_EPOCH,
    REQUIRES_PYTHON,
    SDIST,
    generated_filename,
    synthetic_display,
    synthetic_index,
)
from headwater.testing.projects import DistFile, Project, simple_page

__all__ = ["Corpus", "CorpusError"]


class CorpusError(HeadwaterError):
    """The corpus cannot do what was asked (unknown project, version or file; bad directory)."""


class Corpus:
    """The state the test upstream serves. See the module docstring.

    Build one with :meth:`generate` or :meth:`from_directory`, or empty (``Corpus()``) and fill it
    with :meth:`add_release`. Page builders take ``base_url`` (the server's own URL, no trailing
    slash) because PyPI serves absolute file URLs and bandersnatch downloads from them.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        releases: int = 3,
        files: int = 2,
        metadata_only: bool = False,
        sizes: Callable[[str], int] | None = None,
    ) -> None:
        self.seed = seed
        #: The size (bytes, about) each generated file is to have, by its filename (None: as
        #: small as it comes, ~1 KB): padded with random bytes. See bench/bench_adopt.py.
        self.sizes = sizes
        self.releases_per_project = releases
        self.files_per_release = files
        self.metadata_only = metadata_only
        self._lock = threading.RLock()
        self._synthetic = 0
        self._serial = 0
        self._projects: dict[NormalizedName, Project] = {}
        self._extra: dict[NormalizedName, None] = {}  # non-synthetic projects, in creation order
        self._deleted: set[NormalizedName] = set()
        self._files: dict[str, DistFile] = {}
        self._previous: dict[NormalizedName, Project | None] = {}
        #: Signs generated files: called with each generated file's name and sha256 (its body is
        #: built then) for its PEP 740 provenance document (e.g. :meth:`TestSigstore.provenance
        #: <headwater.testing.sigstore_root.TestSigstore.provenance>`); None serves none.
        self.attest: Callable[[str, str], bytes] | None = None

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        projects: int,
        releases: int = 3,
        files: int = 2,
        *,
        seed: int = 0,
        metadata_only: bool = False,
        sizes: Callable[[str], int] | None = None,
    ) -> Corpus:
        """``projects`` synthetic projects with ``releases`` releases of ``files`` files each.

        Nothing is built until asked for, so this returns at once even for 700,000 projects. With
        ``metadata_only`` the file bodies are small placeholders instead of real archives. With
        ``sizes`` each generated file is padded to about ``sizes(filename)`` bytes.

        Raises:
            CorpusError: a count is negative, or ``files`` exceeds the tags available.
        """
        if projects < 0 or releases < 0 or files < 0:
            raise CorpusError("project, release and file counts must be zero or more")
        if files > len(FILE_KINDS):
            raise CorpusError(f"at most {len(FILE_KINDS)} files per release are supported")
        corpus = cls(
            seed=seed, releases=releases, files=files, metadata_only=metadata_only, sizes=sizes
        )
        corpus._synthetic = projects
        # Synthetic project i was last changed at serial i + 1.
        corpus._serial = projects
        return corpus

    @classmethod
    def from_directory(cls, directory: Path | str, *, seed: int = 0) -> Corpus:
        """A corpus of the wheels and sdists in ``directory`` (not recursive).

        Name and version come from the filename; a wheel's ``METADATA`` is served as its PEP 658
        ``.metadata`` and gives the display name and Requires-Python. Bodies are read on demand.

        Raises:
            CorpusError: the directory does not exist, or holds a file that is not a wheel/sdist.
        """
        root = Path(directory)
        if not root.is_dir():
            raise CorpusError(f"{root} is not a directory; pass a folder of .whl/.tar.gz files")
        corpus = cls(seed=seed, files=0)
        for path in sorted(p for p in root.iterdir() if p.is_file()):
            if path.name.startswith(".") or path.suffix in (".metadata", ".provenance"):
                continue
            if path.suffix == ".attestation":
                continue
            try:
                parsed = parse_filename(path.name)
            except InvalidFilename as exc:
                raise CorpusError(
                    f"{path} is not a wheel or sdist the test upstream can serve ({exc}); "
                    "move it out of the directory"
                ) from exc
            metadata = _wheel_metadata(path) if parsed.kind == "wheel" else None
            headers = BytesHeaderParser().parsebytes(metadata) if metadata else None
            display = (headers.get("Name") if headers else None) or parsed.name
            requires = headers.get("Requires-Python") if headers else None
            with corpus._lock:
                project = corpus._ensure_project(parsed.name, str(display))
                corpus._serial += 1
                project.last_serial = corpus._serial
                dist = DistFile(
                    filename=path.name,
                    project=parsed.name,
                    version=str(parsed.version),
                    packagetype="bdist_wheel" if parsed.kind == "wheel" else "sdist",
                    python_version=_python_tag(path.name) if parsed.kind == "wheel" else "source",
                    requires_python=requires,
                    upload_time=EPOCH + timedelta(minutes=corpus._serial),
                    build=path.read_bytes,
                    metadata=metadata,
                    provenance=_sidecar(path, ".provenance"),
                )
                project.releases.setdefault(dist.version, []).append(dist)
                corpus._files[dist.filename] = dist
        return corpus

    # -- reading --------------------------------------------------------------------------------

    @property
    def serial(self) -> int:
        """The global serial: the last change's number (PyPI's ``changelog_last_serial``)."""
        return self._serial

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for _ in self._iter_entries())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(NormalizedName(name)) is not None

    def _iter_entries(self) -> Iterator[tuple[str, NormalizedName, int, ProjectStatus]]:
        for i in range(self._synthetic):
            display = synthetic_display(i, self.seed)
            name = NormalizedName(display.replace("_", "-").replace(".", "-").lower())
            project = self._projects.get(name)
            if project is not None:
                yield project.display_name, name, project.last_serial, project.status
            elif name not in self._deleted:
                yield display, name, i + 1, ProjectStatus.ACTIVE
        for name in self._extra:
            project = self._projects[name]
            yield project.display_name, name, project.last_serial, project.status

    def project_list(self, *, serials: bool = True) -> ProjectList:
        """The root page: every project except quarantined ones (item 61), with serials."""
        with self._lock:
            entries = tuple(
                ProjectListEntry(display, serial if serials else None)
                for display, _, serial, status in self._iter_entries()
                if status is not ProjectStatus.QUARANTINED
            )
            return ProjectList(projects=entries, last_serial=self._serial if serials else None)

    def get(self, name: str) -> Project | None:
        """The project with normalized name ``name``, built on first use; ``None`` if unknown."""
        with self._lock:
            key = NormalizedName(name)
            project = self._projects.get(key)
            if project is not None or key in self._deleted:
                return project
            index = synthetic_index(key, self.seed)
            if index is None or index >= self._synthetic:
                return None
            return self._materialize(index)

    def project_serial(self, name: str) -> int | None:
        """A project's last serial without building it; ``None`` if unknown."""
        with self._lock:
            key = NormalizedName(name)
            project = self._projects.get(key)
            if project is not None:
                return project.last_serial
            if key in self._deleted:
                return None
            index = synthetic_index(key, self.seed)
            return None if index is None or index >= self._synthetic else index + 1

    def project_page(
        self,
        name: str,
        base_url: str,
        *,
        serials: bool = True,
        metadata: bool = True,
        pypi_paths: bool = False,
    ) -> ProjectPage | None:
        """The project's Simple API page with absolute file URLs under ``base_url`` (by
        blake2b-256, as pypi.org's, with ``pypi_paths``)."""
        with self._lock:
            project = self.get(name)
            return (
                None
                if project is None
                else simple_page(project, base_url, serials, metadata, pypi_paths)
            )

    def previous_page(
        self,
        name: str,
        base_url: str,
        *,
        serials: bool = True,
        metadata: bool = True,
        pypi_paths: bool = False,
    ) -> ProjectPage | None:
        """The page as it was before the project's last mutation (``None`` if there was none)."""
        with self._lock:
            project = self._previous.get(NormalizedName(name))
            return (
                None
                if project is None
                else simple_page(project, base_url, serials, metadata, pypi_paths)
            )

    def previous_project(self, name: str) -> Project | None:
        """The project as it was before its last mutation (``None`` if never mutated)."""
        with self._lock:
            return self._previous.get(NormalizedName(name))

    def file(self, filename: str) -> DistFile | None:
        """The file called ``filename`` (building its project if needed); ``None`` if unknown."""
        with self._lock:
            dist = self._files.get(filename)
            if dist is not None:
                return dist
            stem = filename.split("-", 1)[0] if filename.endswith(".whl") else filename
            if filename.endswith(".tar.gz"):
                stem = filename.rsplit("-", 1)[0]
            try:
                name = normalize_name(stem)
            except InvalidName:
                return None
            if NormalizedName(name) not in self._projects:
                self.get(name)
            return self._files.get(filename)

    # -- mutations ------------------------------------------------------------------------------

    def add_release(
        self,
        name: str,
        version: str,
        *,
        files: int | None = None,
        requires_python: str | None = None,
    ) -> int:
        """Add release ``version`` with ``files`` generated files (default: the corpus's count).

        Creates the project if it does not exist (``name`` is its display name). Returns the new
        serial.

        Raises:
            CorpusError: the name is invalid or the release exists.
        """
        try:
            key = normalize_name(name)
        except InvalidName as exc:
            raise CorpusError(str(exc)) from exc
        with self._lock:
            existing = self.get(key)
            if existing is not None and version in existing.releases:
                raise CorpusError(f"{key} {version} already exists; pick another version")
            self._remember(key, existing)
            project = self._ensure_project(key, name)
            serial = self._advance(project)
            count = self.files_per_release if files is None else files
            project.releases[version] = []
            for kind in FILE_KINDS[:count]:
                self._add_generated(project, version, kind, requires_python, serial)
            return serial

    def add_file(
        self,
        name: str,
        version: str,
        *,
        filename: str | None = None,
        body: bytes | None = None,
        tag: str | None = None,
        metadata: bytes | None = None,
        requires_python: str | None = None,
    ) -> int:
        """Add a file to an existing release; returns the new serial.

        With ``filename`` and ``body`` the file is exactly that (``metadata``: its PEP 658
        ``.metadata``, which must be the wheel's METADATA; ``requires_python``: the page's
        value); otherwise a generated wheel for ``tag`` (default: the next tag the release
        lacks).

        Raises:
            CorpusError: unknown project or release, duplicate filename, or no tag left.
        """
        with self._lock:
            project = self._require(name)
            if version not in project.releases:
                raise CorpusError(f"{project.name} has no release {version}; add_release first")
            self._remember(project.name, project)
            serial = self._advance(project)
            if filename is not None and body is not None:
                if filename in self._files:
                    raise CorpusError(f"{filename} already exists")
                data = body
                dist = DistFile(
                    filename=filename,
                    project=project.name,
                    version=version,
                    packagetype="bdist_wheel" if filename.endswith(".whl") else "sdist",
                    python_version=_python_tag(filename) if filename.endswith(".whl") else "source",
                    requires_python=requires_python or project.requires_python,
                    upload_time=MUTATION_EPOCH + timedelta(minutes=serial),
                    build=lambda: data,
                    metadata=metadata,
                )
                project.releases[version].append(dist)
                self._files[filename] = dist
                return serial
            present = {f.filename for f in project.releases[version]}
            for kind in (tag,) if tag else FILE_KINDS:
                if generated_filename(project.name, version, kind) not in present:
                    self._add_generated(project, version, kind, project.requires_python, serial)
                    return serial
            raise CorpusError(f"{project.name} {version} already has every generated file kind")

    def yank(self, name: str, version: str, reason: str | None = None) -> int:
        """Yank every file of a release (PEP 592), with an optional reason; returns the serial."""
        return self._set_yanked(name, version, True, reason)

    def unyank(self, name: str, version: str) -> int:
        """Undo :meth:`yank`; returns the new serial."""
        return self._set_yanked(name, version, False, None)

    def delete_file(self, name: str, filename: str) -> int:
        """Remove one file (a release left with no files stays listed); returns the serial.

        Raises:
            CorpusError: unknown project or file.
        """
        with self._lock:
            project = self._require(name)
            for files in project.releases.values():
                for dist in files:
                    if dist.filename == filename:
                        self._remember(project.name, project)
                        files.remove(dist)
                        self._files.pop(filename, None)
                        return self._advance(project)
            raise CorpusError(f"{project.name} has no file {filename!r}")

    def delete_project(self, name: str) -> int:
        """Remove a project and its files; returns the new serial.

        Raises:
            CorpusError: unknown project.
        """
        with self._lock:
            project = self._require(name)
            self._remember(project.name, project)
            self._serial += 1
            for dist in project.files():
                self._files.pop(dist.filename, None)
            del self._projects[project.name]
            self._extra.pop(project.name, None)
            self._deleted.add(project.name)
            return self._serial

    def set_status(self, name: str, status: ProjectStatus | str, reason: str | None = None) -> int:
        """Set the PEP 792 project status (and reason); returns the new serial.

        Raises:
            CorpusError: unknown project or status marker.
        """
        try:
            marker = ProjectStatus(status)
        except ValueError as exc:
            raise CorpusError(
                f"unknown project status {status!r}; use one of "
                + ", ".join(s.value for s in ProjectStatus)
            ) from exc
        with self._lock:
            project = self._require(name)
            self._remember(project.name, project)
            project.status = marker
            project.status_reason = reason
            return self._advance(project)

    # -- internals ------------------------------------------------------------------------------

    def _materialize(self, index: int) -> Project:
        display = synthetic_display(index, self.seed)
        name = normalize_name(display)
        # Test data, not secrets: a seeded PRNG is the point (same seed, same corpus).
        rng = random.Random(f"{self.seed}:{index}")  # noqa: S311
        requires_python = rng.choice(REQUIRES_PYTHON)
        project = Project(name, display, index + 1, requires_python=requires_python)
        major, minor, patch = rng.randint(0, 3), rng.randint(0, 9), 0
        for j in range(self.releases_per_project):
            version = f"{major}.{minor}.{patch}"
            project.releases[version] = []
            when = EPOCH + timedelta(minutes=index, days=j, microseconds=rng.randint(0, 999_999))
            for kind in FILE_KINDS[: self.files_per_release]:
                self._add_generated(project, version, kind, requires_python, None, when)
            if rng.random() < 0.3:
                minor, patch = minor + 1, 0
            else:
                patch += 1
        self._projects[name] = project
        return project

    def _add_generated(
        self,
        project: Project,
        version: str,
        kind: str,
        requires_python: str | None,
        serial: int | None,
        when: datetime | None = None,
    ) -> DistFile:
        name, display, seed = project.name, project.display_name, self.seed
        metadata = wheels.core_metadata(display, version, requires_python=requires_python)
        filename = generated_filename(name, version, kind)
        build: Callable[[], bytes]
        if self.metadata_only:

            def build() -> bytes:
                return wheels.placeholder_body(filename, seed)
        elif kind == SDIST:

            def build() -> bytes:
                body = wheels.build_sdist(name, display, version, metadata=metadata)
                pad = self.sizes(filename) - len(body) if self.sizes else 0
                if pad <= 0:
                    return body
                return wheels.build_sdist(name, display, version, metadata=metadata, pad=pad)
        else:

            def build() -> bytes:
                body = wheels.build_wheel(name, display, version, tag=kind, metadata=metadata)
                pad = self.sizes(filename) - len(body) if self.sizes else 0
                if pad <= 0:
                    return body
                return wheels.build_wheel(
                    name, display, version, tag=kind, metadata=metadata, pad=pad
                )

        dist = DistFile(
            filename=filename,
            project=name,
            version=version,
            packagetype="sdist" if kind == SDIST else "bdist_wheel",
            python_version="source" if kind == SDIST else kind.split("-", 1)[0],
            requires_python=requires_python,
            upload_time=when or MUTATION_EPOCH + timedelta(minutes=serial or 0),
            build=build,
            metadata=None if kind == SDIST else metadata,
        )
        if self.attest is not None:
            dist.provenance = self.attest(dist.filename, dist.sha256)
        project.releases.setdefault(version, []).append(dist)
        self._files[filename] = dist
        return dist

    def _ensure_project(self, name: NormalizedName, display: str) -> Project:
        project = self.get(name)
        if project is None:
            project = Project(name, display, self._serial)
            self._projects[name] = project
            self._deleted.discard(name)
            index = synthetic_index(name, self.seed)
            if index is None or index >= self._synthetic:
                self._extra[name] = None
        return project

    def _require(self, name: str) -> Project:
        try:
            key = normalize_name(name)
        except InvalidName as exc:
            raise CorpusError(str(exc)) from exc
        project = self.get(key)
        if project is None:
            raise CorpusError(f"no project {key!r} in the corpus")
        return project

    def _remember(self, name: NormalizedName, project: Project | None) -> None:
        self._previous[name] = None if project is None else project.snapshot()

    def _advance(self, project: Project) -> int:
        self._serial += 1
        project.last_serial = self._serial
        return self._serial

    def _set_yanked(self, name: str, version: str, yanked: bool, reason: str | None) -> int:
        with self._lock:
            project = self._require(name)
            if version not in project.releases:
                raise CorpusError(f"{project.name} has no release {version}")
            self._remember(project.name, project)
            for dist in project.releases[version]:
                dist.yanked, dist.yanked_reason = yanked, reason if yanked else None
            return self._advance(project)


def _python_tag(filename: str) -> str:
    # PEP 427: the python tag is the third field from the end.
    return filename[: -len(".whl")].split("-")[-3]


def _wheel_metadata(path: Path) -> bytes | None:
    try:
        with zipfile.ZipFile(path) as archive:
            for entry in archive.namelist():
                parts = entry.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    return archive.read(entry)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorpusError(f"{path} is not a readable wheel: {exc}") from exc
    return None


def _sidecar(path: Path, suffix: str) -> bytes | None:
    """``<path><suffix>`` beside a distribution (its PEP 740 provenance), if there is one."""
    sidecar = path.with_name(path.name + suffix)
    return sidecar.read_bytes() if sidecar.is_file() else None
