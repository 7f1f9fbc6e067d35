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
- after the switch (the first sync), the old names are files no page references: that sync
  removes them as it replaces each page (freeing nothing, since the bytes are shared).

Every file is hashed before it is adopted, even where the page records its sha256 and size: a
file at its sha256 key is trusted by every later sync without a second look (only its size is
checked), so a name there must be earned by the bytes, not by a page's word. Measured on the
2,000-project benchmark, hashing 6,000 files of ~1 KB is ~0.1-0.2 s (the open/read/close, not
the digest); the directories the sha256 layout needs cost more. A file whose bytes do not match
the sha256 its page gives is not adopted (it is reported, and the next sync downloads the right
one). PEP 658 ``.metadata`` files bandersnatch kept are adopted the same way; for a wheel whose
page promises one that is missing, it is taken from the wheel (its ``.dist-info/METADATA``, byte
for byte) when it hashes to the promised digest.

The existing pages are left as they are (they keep linking the old names, which stay valid):
adoption records every adopted project in the mirror's state without a serial, so the next
``headwater mirror`` fetches each project's page (one request per project; the files are all
present, so none is downloaded), writes headwater's page over the old one, and releases the old
names the old page listed (:class:`~headwater.sync.references.References`, one batched removal
per project). Rewriting the pages here instead cost more than everything else adoption does
(each replaced page is a rename over an existing file, ~1 ms at load), and the sync rewrites
them anyway. What was adopted goes to ``state/adopted.json``.

Until that sync, every name adoption made must count as referenced for ``verify`` (and its
``--repair`` orphan sweep) and for the sweep that ends the sync, or they remove what adoption
found and the sync downloads it again. A name adopted from a page is referenced by that page,
which lists the file by the sha256 the name is made of (:func:`~headwater.sync.references.digest_keys`).
A name adopted from a ``--files`` directory has no page yet: it is recorded in the state as
*held* for its project's next sync, the mechanism that keeps the files a failed project already
fetched (verify counts them as held; the sweeps keep them; the sync that publishes the project
releases what its page does not list, and a project that sync does not keep releases them all).
Page-adopted names are not held too: on a PyPI-sized tree that would put every file's key in the
state snapshot, which is read and written whole at every sync.
"""

# The per-file path works on str paths with os calls (as storage/filesystem.py does): pathlib
# objects for every file were a measurable share of adopting a tree of small files.
# ruff: noqa: PTH102, PTH105, PTH108, PTH110, PTH116

from __future__ import annotations

import asyncio
import contextlib
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
from headwater.simple.json import parse_project_page_json
from headwater.simple.model import File, InvalidPage, ProjectPage
from headwater.simple.names import NormalizedName, is_normalized
from headwater.storage.base import InvalidKey, check_key
from headwater.storage.filesystem import FileStorage
from headwater.storage.layout import (
    IN_PROGRESS,
    ROOT_INDEX_DIR,
    STATE_DIR,
    WEB,
    file_key,
)
from headwater.sync.references import owner_of

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
            from headwater.simple.html import parse_project_page_html  # HTML-only trees

            return parse_project_page_html(html.read_bytes(), name=name)
    except InvalidPage:
        return None
    return None


def _refuse_hash_index(root: Path) -> None:
    """bandersnatch's ``hash-index = true`` keeps each page at ``web/simple/<first letter>/<name>/``
    behind an nginx rewrite; headwater serves ``web/simple/<name>/``. Adopting such a tree would
    leave that rewrite serving the old pages while the sync removes the names they link. A hashed
    page beside a flat one (left by ``bandersnatch mirror --force-check`` after ``hash-index =
    false``) is not in the way: the flat page is the one adopted."""
    simple = root / ROOT_INDEX_DIR
    if not simple.is_dir():
        return
    for letter in simple.iterdir():
        if len(letter.name) != 1 or not letter.is_dir():
            continue
        for directory in letter.iterdir():
            flat = simple / directory.name  # the page hash-index = false writes
            if (flat / "index.html").is_file() or (flat / "index.v1_json").is_file():
                continue  # a leftover of the hashed layout: the flat page is the one adopted
            if (directory / "index.html").is_file() or (directory / "index.v1_json").is_file():
                raise AdoptError(
                    f"{root} is a bandersnatch tree with hash-index = true (pages under "
                    f"web/simple/{letter.name}/{directory.name}/ behind a rewrite); headwater "
                    "serves web/simple/<name>/ and cannot adopt that layout in place. Set "
                    "hash-index = false, run `bandersnatch mirror --force-check` once to write "
                    "the pages at web/simple/<name>/ (no file is downloaded again), drop the "
                    "rewrite from nginx, then adopt; the web/simple/<letter>/ directories can go "
                    "once nothing serves them (nothing was changed)"
                )


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
        if page is None and len(directory.name) == 1 and not any(directory.glob("index*")):
            continue  # a hash-index letter directory left beside the flat pages (see above)
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


def _hash(path: str) -> tuple[str, int] | None:
    """sha256 and size of the file at ``path``, None if it cannot be read. Plain descriptors,
    not buffered file objects: on trees of small files the open/read/close is the whole cost."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    digest = hashlib.sha256()
    size = 0
    try:
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
            size += len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return digest.hexdigest(), size


def _make_directory(directory: str, made: set[str]) -> None:
    """Make ``directory`` and its missing parents, remembering each in ``made`` (shared by the
    threads: a sha256 directory is usually new, its two levels above it usually not)."""
    if directory in made:
        return
    try:
        os.mkdir(directory)
    except FileExistsError:
        pass
    except FileNotFoundError:
        _make_directory(directory.rpartition("/")[0], made)
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory)
    made.add(directory)


def _place(source: str, target: str, digest: str, made: set[str]) -> str:
    """Give ``source``'s (verified) bytes the name ``target``: "present", "linked" or "copied".
    A different file already at ``target`` counts only if it hashes to ``digest``; otherwise it is
    replaced (atomically: a reader sees the old bytes or the new). The common case, a new name,
    costs one ``link(2)`` (and a ``mkdir`` when the directory is new)."""
    _make_directory(target.rpartition("/")[0], made)
    try:
        os.link(source, target)
        return "linked"
    except FileExistsError:
        if os.stat(target).st_ino == os.stat(source).st_ino:
            return "present"
        hashed = _hash(target)
        if hashed is not None and hashed[0] == digest:
            return "present"
        # wrong bytes under the name: replaced below
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
    tmp = f"{target.rpartition('/')[0]}/.{target.rpartition('/')[2]}.adopt-tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.link(source, tmp)
        outcome = "linked"
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        shutil.copyfile(source, tmp)
        outcome = "copied"
    os.replace(tmp, target)
    return outcome


_Outcome = tuple[str, int, list[str], str | None, str]


def _adopt_one(root: str, candidate: _Candidate, made: set[str]) -> _Outcome:
    """Hash, then place the file and its .metadata. Returns (outcome, size, metadata outcomes,
    why not adopted, the key it now has: empty when not adopted)."""
    source = str(candidate.source)
    hashed = _hash(source)
    if hashed is None:
        return "missing", 0, [], "not in the tree", ""
    digest, size = hashed
    if candidate.sha256 is not None and digest != candidate.sha256:
        return "mismatch", size, [], "its bytes do not match the sha256 its page gives", ""
    try:
        key = file_key(digest, candidate.filename)
    except ValueError:
        return "unsafe", size, [], "unsafe file name", ""
    outcome = _place(source, f"{root}/{key}", digest, made)
    metas: list[str] = []
    if candidate.wants_metadata:
        metas.append(_adopt_metadata(f"{root}/{key}.metadata", source, candidate, made))
    return outcome, size, metas, None, key


def _adopt_metadata(target: str, source: str, candidate: _Candidate, made: set[str]) -> str:
    promised = candidate.metadata_sha256
    hashed = _hash(source + ".metadata")
    if hashed is not None and (promised is None or hashed[0] == promised):
        outcome = _place(source + ".metadata", target, hashed[0], made)
        return "present" if outcome == "present" else "adopted"
    if os.path.exists(target):
        return "present"
    if candidate.filename.endswith(".whl"):
        from headwater.sync.wheels import wheel_metadata  # rare: a promised .metadata missing

        extracted = wheel_metadata(candidate.filename, Path(source).read_bytes())
        if extracted is not None and (
            promised is None or hashlib.sha256(extracted).hexdigest() == promised
        ):
            tmp = Path(target).with_name(f".{Path(target).name}.adopt-tmp")
            tmp.write_bytes(extracted)
            tmp.replace(target)
            return "from-wheel"
    return "missing"


def _adopt_all(root: Path, candidates: list[_Candidate], workers: int) -> list[_Outcome]:
    """:func:`_adopt_one` for every candidate, in order, by ``workers`` threads that each take a
    contiguous share (one task per thread, not per file: on trees of small files a task per file
    cost more in the pool than the file itself)."""
    made: set[str] = set()
    base = str(root)
    if workers <= 1 or len(candidates) < 2 * workers:
        return [_adopt_one(base, c, made) for c in candidates]
    share = -(-len(candidates) // workers)
    slices = [candidates[i : i + share] for i in range(0, len(candidates), share)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = pool.map(lambda part: [_adopt_one(base, c, made) for c in part], slices)
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
    _refuse_hash_index(root)
    storage = FileStorage(root)
    with storage.exclusive():
        candidates, projects = _candidates_from_pages(root, report)
        extra = list(_candidates_from_directories(directories or []))
        if not candidates and not extra:
            raise AdoptError(
                f"{root} has no project pages under web/simple/ and no --files directory was "
                "given: nothing to adopt (nothing was changed)"
            )
        # The next sync runs as after an interrupted one: it sweeps every file no page lists at
        # its end. Adopted files of a project that sync does not keep (a --files download the
        # closure or the filters do not want, a project gone upstream) have no page of their
        # own to release them, and old names only an HTML page listed would stay too. Written
        # before any link, so an adoption killed midway is swept the same way.
        (root / STATE_DIR).mkdir(parents=True, exist_ok=True)
        (root / IN_PROGRESS).write_bytes(b"adopted: the next sync sweeps what no page lists\n")
        owners: set[str] = set(projects)
        held: dict[str, list[str]] = {}
        everything = [*candidates, *extra]
        for candidate, (outcome, size, metas, why, key) in zip(
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
                # No page lists it before the sync: held for that sync (see the docstring).
                held.setdefault(candidate.project, []).append(key)
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
        # No barrier of its own: the state's commit makes the new names durable with it, and
        # a name lost to a crash before that only means the sync downloads that file.
        asyncio.run(_record_state(storage, upstream, sorted(owners), held))
        tmp = root / STATE_DIR / ".adopted.json.tmp"
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(report)))
        tmp.replace(root / ADOPTED)
    return report


async def _record_state(
    storage: FileStorage, upstream: str, projects: list[str], held: dict[str, list[str]]
) -> None:
    """Every adopted project in the mirror's state, without a serial: the next sync fetches its
    page (files it finds on disk are not downloaded) and writes headwater's page over the old.
    Files adopted from directories are held for their project's next sync (see :func:`adopt`)."""
    # Imported here, not at the top: the mirror's state pulls in filters and policy, a
    # measurable share of a short command's start (python -X importtime; docs/mirror.md).
    from headwater.sync.state import MirrorState, ProjectState

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
    for name, keys in held.items():
        state.hold(NormalizedName(name), keys)
    await state.commit(state.serial, filters=state.filters, wants=state.wants)
