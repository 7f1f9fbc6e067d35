"""``headwater adopt``: take over an existing mirror in place, downloading nothing it already has.

Two kinds of existing trees:

- a **bandersnatch** tree: ``web/simple/<project>/index.html`` (and ``index.v1_json``) whose
  links carry ``#sha256=``, and files at the upstream's URL paths ``web/packages/xx/yy/<hash>/<file>``
  (pypi.org's paths are by blake2b-256, not sha256);
- **a directory of files** (``pip download``, ``uv``, a wheelhouse): each file's sha256 is
  computed; the upstream's pages later say which project lists it.

Decision: **hard links into headwater's layout** (``web/packages/<sha256 path>/<file>``), not
serving the existing paths and not renaming. Why:

- headwater's tree is content-addressed: "a present file with the right size at its sha256 key is
  the right file" is what lets a sync skip downloads, lets ``verify`` check a file without its
  page, and lets shared files be counted. Serving bandersnatch's paths would need a second
  addressing scheme in every one of those places.
- a **rename** would break the tree while it is being served: bandersnatch's pages, which nginx
  keeps serving until headwater rewrites each one, point at the old paths. A hard link leaves both
  names valid, so the same nginx serves the tree throughout the switch, and costs no space and no
  copy (a link is one directory entry). Where the file system has no hard links the file is copied
  (say so: it costs the space once).
- after the switch, the old names are files no page references: ``headwater verify --repair``
  removes them (freeing nothing, since the bytes are shared, until the last name goes).

Every file is hashed before it is adopted: a file whose bytes do not match the sha256 its page
gives is not adopted (it is reported, and the next sync downloads the right one). PEP 658
``.metadata`` files bandersnatch kept are adopted the same way; for a wheel whose page promises
one that is missing, it is taken from the wheel (its ``.dist-info/METADATA``, byte for byte) when
it hashes to the promised digest.

Once the links are durable, each project's pages are rewritten with the same content linking the
sha256 names (:func:`_repoint_pages` says why). The next ``headwater mirror`` writes headwater's
own page for each project (one request per project; the files are all present): adoption records
every adopted project in the mirror's state without a serial, so that sync looks for their files
on disk. What was adopted goes to ``state/adopted.json``.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from posixpath import normpath

import msgspec

from headwater.errors import HeadwaterError
from headwater.simple.html import parse_project_page_html
from headwater.simple.json import parse_project_page_json
from headwater.simple.model import File, InvalidPage, ProjectPage
from headwater.simple.names import NormalizedName, is_normalized
from headwater.storage.base import InvalidKey, check_key
from headwater.storage.filesystem import FileStorage
from headwater.storage.layout import (
    ROOT_INDEX_DIR,
    STATE_DIR,
    WEB,
    file_key,
    file_url_from_project_page,
    metadata_key,
)
from headwater.sync.references import owner_of
from headwater.sync.state import MirrorState, ProjectState
from headwater.sync.tree import Tree
from headwater.sync.wheels import wheel_metadata

__all__ = ["ADOPTED", "AdoptError", "Adoption", "adopt"]

ADOPTED = f"{STATE_DIR}/adopted.json"
_PACKAGES = f"{WEB}/packages/"
_NO_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV, errno.EMLINK}
)


class AdoptError(HeadwaterError):
    """The tree cannot be adopted (not a tree, another upstream's state, busy)."""


class NotAdopted(msgspec.Struct, frozen=True):
    project: str
    file: str
    why: str


class Adoption(msgspec.Struct, kw_only=True):
    """What was adopted (written to ``state/adopted.json`` and printed)."""

    when: str
    upstream: str
    projects: int = 0
    files: int = 0  # distribution files now at their sha256 key
    bytes: int = 0
    linked: int = 0  # of those, given a second name (hard link or copy)
    copied: int = 0  # of those linked, copied (no hard links on this file system)
    metadata: int = 0  # .metadata files now at their key
    metadata_from_wheels: int = 0
    from_directories: int = 0  # files found in --files directories
    not_adopted: list[NotAdopted] = msgspec.field(default_factory=list)


@dataclass
class _Candidate:
    project: str
    source: Path
    sha256: str | None  # promised by a page (None: compute, a directory file)
    filename: str
    metadata_sha256: str | None = None
    wants_metadata: bool = False


def _page_of(directory: Path) -> ProjectPage | None:
    """The project's page as the existing tree has it: JSON when present, else HTML."""
    name = directory.name
    json_page = directory / "index.v1_json"
    try:
        if json_page.is_file():
            return parse_project_page_json(json_page.read_bytes())
        html = directory / "index.html"
        if html.is_file():
            return parse_project_page_html(html.read_bytes(), name=name)
    except InvalidPage:
        return None
    return None


def _candidates_from_pages(root: Path, report: Adoption) -> tuple[list[_Candidate], set[str]]:
    candidates: list[_Candidate] = []
    projects: set[str] = set()
    simple = root / ROOT_INDEX_DIR
    if not simple.is_dir():
        return candidates, projects
    for directory in sorted(simple.iterdir()):
        if not directory.is_dir() or not is_normalized(directory.name):
            continue
        page = _page_of(directory)
        if page is None:
            report.not_adopted.append(NotAdopted(directory.name, "", "its page is unreadable"))
            continue
        projects.add(directory.name)
        for file in page.files:
            candidate = _candidate(root, directory.name, file, report)
            if candidate is not None:
                candidates.append(candidate)
    return candidates, projects


def _candidate(root: Path, project: str, file: File, report: Adoption) -> _Candidate | None:
    sha256 = file.hashes.get("sha256")
    url = file.url.partition("#")[0]
    if sha256 is None:
        report.not_adopted.append(NotAdopted(project, file.filename, "its page gives no sha256"))
        return None
    if "://" in url or url.startswith("/"):
        report.not_adopted.append(NotAdopted(project, file.filename, "its URL is outside the tree"))
        return None
    key = normpath(f"{ROOT_INDEX_DIR}/{project}/{url}")
    try:
        check_key(key)
        file_key(sha256, file.filename)
    except (InvalidKey, ValueError):
        report.not_adopted.append(NotAdopted(project, file.filename, "unsafe URL, name or digest"))
        return None
    if not key.startswith(_PACKAGES):
        report.not_adopted.append(
            NotAdopted(project, file.filename, "its URL is outside web/packages")
        )
        return None
    meta = file.core_metadata
    return _Candidate(
        project=project,
        source=root / key,
        sha256=sha256,
        filename=file.filename,
        metadata_sha256=meta.get("sha256") if isinstance(meta, dict) else None,
        wants_metadata=bool(meta),
    )


def _candidates_from_directories(directories: list[Path]) -> Iterator[_Candidate]:
    for directory in directories:
        if not directory.is_dir():
            raise AdoptError(f"{directory} is not a directory of files to adopt")
        for dirpath, _dirs, files in os.walk(directory):
            for name in sorted(files):
                owner = owner_of(f"x/{name}")
                if owner is None:
                    continue  # not a distribution file's name
                yield _Candidate(
                    project=owner, source=Path(dirpath) / name, sha256=None, filename=name
                )


def _hash(path: Path) -> tuple[str, int] | None:
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except OSError:
        return None
    return digest.hexdigest(), size


def _place(source: Path, target: Path, digest: str) -> str:
    """Give ``source``'s (verified) bytes the name ``target``: "present", "linked" or "copied".
    A different file already at ``target`` counts only if it hashes to ``digest``; otherwise it is
    replaced (atomically: a reader sees the old bytes or the new). The common case, a new name,
    costs one ``link(2)`` (a ``mkdir`` more when the directory is new)."""
    for _attempt in range(2):
        try:
            os.link(source, target)
            return "linked"
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            if target.stat().st_ino == source.stat().st_ino:
                return "present"
            hashed = _hash(target)
            if hashed is not None and hashed[0] == digest:
                return "present"
            break  # wrong bytes under the name: replaced below
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            break
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.adopt-tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
        outcome = "linked"
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        shutil.copyfile(source, tmp)
        outcome = "copied"
    tmp.replace(target)
    return outcome


def _adopt_one(root: Path, candidate: _Candidate) -> tuple[str, int, list[str], str | None]:
    """Hash, then place the file and its .metadata. Returns (outcome, size, metadata outcomes,
    why not adopted)."""
    hashed = _hash(candidate.source)
    if hashed is None:
        return "missing", 0, [], "not in the tree"
    digest, size = hashed
    if candidate.sha256 is not None and digest != candidate.sha256:
        return "mismatch", size, [], "its bytes do not match the sha256 its page gives"
    try:
        key = file_key(digest, candidate.filename)
    except ValueError:
        return "unsafe", size, [], "unsafe file name"
    outcome = _place(candidate.source, root / key, digest)
    metas: list[str] = []
    if candidate.wants_metadata:
        metas.append(_adopt_metadata(root, candidate, digest))
    return outcome, size, metas, None


def _adopt_metadata(root: Path, candidate: _Candidate, digest: str) -> str:
    target = root / metadata_key(digest, candidate.filename)
    if target.exists():
        return "present"
    source = candidate.source.with_name(candidate.source.name + ".metadata")
    promised = candidate.metadata_sha256
    hashed = _hash(source) if source.is_file() else None
    if hashed is not None and (promised is None or hashed[0] == promised):
        _place(source, target, hashed[0])
        return "adopted"
    if candidate.filename.endswith(".whl"):
        extracted = wheel_metadata(candidate.filename, candidate.source.read_bytes())
        if extracted is not None and (
            promised is None or hashlib.sha256(extracted).hexdigest() == promised
        ):
            tmp = target.with_name(f".{target.name}.adopt-tmp")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(extracted)
            tmp.replace(target)
            return "from-wheel"
    return "missing"


def _adopt_all(
    root: Path, candidates: list[_Candidate], workers: int
) -> list[tuple[str, int, list[str], str | None]]:
    """:func:`_adopt_one` for every candidate, in order, by ``workers`` threads that each take a
    contiguous share (hashing releases the GIL; one task per thread, not per file: on trees of
    small files a task per file cost more in the pool than the file itself)."""
    if workers <= 1 or len(candidates) < 2 * workers:
        return [_adopt_one(root, c) for c in candidates]
    share = -(-len(candidates) // workers)
    slices = [candidates[i : i + share] for i in range(0, len(candidates), share)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(lambda part: [_adopt_one(root, c) for c in part], slices)
        return [outcome for part in parts for outcome in part]


def adopt(
    root: Path,
    upstream: str,
    *,
    directories: list[Path] | None = None,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> Adoption:
    """Adopt the tree at ``root`` (and the files in ``directories``) for a mirror of ``upstream``.

    Raises:
        AdoptError: nothing to adopt, or the tree's state belongs to another upstream.
        StorageError: another headwater process works on the tree.
    """
    report = Adoption(when=datetime.now(UTC).replace(microsecond=0).isoformat(), upstream=upstream)
    if not root.is_dir():
        raise AdoptError(f"{root} does not exist: give the existing mirror's directory")
    storage = FileStorage(root)
    with storage.exclusive():
        candidates, projects = _candidates_from_pages(root, report)
        extra = list(_candidates_from_directories(directories or []))
        if not candidates and not extra:
            raise AdoptError(
                f"{root} has no project pages under web/simple/ and no --files directory was "
                "given: nothing to adopt (nothing was changed)"
            )
        owners: set[str] = set(projects)
        everything = [*candidates, *extra]
        #: (project, filename) -> (sha256, whether its .metadata is at its key) for page files.
        placed: dict[tuple[str, str], tuple[str, bool]] = {}
        for candidate, (outcome, size, metas, why) in zip(
            everything, _adopt_all(root, everything, workers), strict=True
        ):
            if progress is not None:
                progress(size)
            if why is not None:
                if candidate.sha256 is not None:  # files of a directory: only what is usable
                    report.not_adopted.append(
                        NotAdopted(candidate.project, candidate.filename, why)
                    )
                continue
            report.files += 1
            report.bytes += size
            report.linked += outcome in ("linked", "copied")
            report.copied += outcome == "copied"
            if candidate.sha256 is None:
                report.from_directories += 1
                owners.add(candidate.project)
            else:
                placed[(candidate.project, candidate.filename)] = (
                    candidate.sha256,
                    "missing" not in metas,
                )
            for meta in metas:
                if meta == "missing":
                    report.not_adopted.append(
                        NotAdopted(
                            candidate.project,
                            candidate.filename + ".metadata",
                            "missing, and not in the wheel as promised",
                        )
                    )
                else:
                    report.metadata += 1
                    report.metadata_from_wheels += meta == "from-wheel"
        report.projects = len(owners)
        # The adopted names are durable before a page points at them or the state says the
        # sync may rely on them.
        if storage.durability == "syncfs":
            storage._syncfs()
        else:
            os.sync()
        asyncio.run(_repoint_pages(storage, sorted(projects), placed))
        asyncio.run(_record_state(storage, upstream, sorted(owners)))
        tmp = root / STATE_DIR / ".adopted.json.tmp"
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(report)))
        tmp.replace(root / ADOPTED)
    return report


async def _repoint_pages(
    storage: FileStorage, projects: list[str], placed: dict[tuple[str, str], tuple[str, bool]]
) -> None:
    """Rewrite each project's pages with the same content, its adopted files linked at their
    sha256 names (which exist: both names are valid while the old page is replaced, atomically).
    Why: the next sync replaces a page and then removes what the old page listed but the new one
    does not; with the old names still listed that would be one removal per adopted file, paid
    during the sync. Now the old names are orphans, removed by ``verify --repair`` when the
    operator chooses. Files not adopted keep their old URLs (the sync fetches them)."""
    tree = Tree(storage)
    batch: list[ProjectPage] = []
    for name in projects:
        page = _page_of(storage.root / ROOT_INDEX_DIR / name)
        if page is None:
            continue
        files = []
        for file in page.files:
            found = placed.get((name, file.filename))
            if found is None:
                files.append(file)
                continue
            sha256, has_metadata = found
            files.append(
                msgspec.structs.replace(
                    file,
                    url=file_url_from_project_page(sha256, file.filename),
                    # a promised .metadata that is not at the new name is no longer promised
                    core_metadata=file.core_metadata if has_metadata else None,
                )
            )
        batch.append(msgspec.structs.replace(page, files=tuple(files)))
        if len(batch) >= 256:
            await tree.write_projects(batch)
            batch = []
    if batch:
        await tree.write_projects(batch)


async def _record_state(storage: FileStorage, upstream: str, projects: list[str]) -> None:
    """Every adopted project in the mirror's state, without a serial: the next sync fetches its
    page (files it finds on disk are not downloaded) and writes headwater's page over the old."""
    state = MirrorState(storage, upstream)
    try:
        await state.load()
    except HeadwaterError as exc:
        raise AdoptError(
            f"{exc} (the files adopted so far stay; nothing else was changed)"
        ) from exc
    for name in projects:
        if name not in state.serials:
            state.record(NormalizedName(name), ProjectState(None))
    await state.commit(state.serial, filters=state.filters, wants=state.wants)
