"""``headwater verify``: check a static tree against its own pages.

Pages that exist are the truth for what the tree serves and which files it references: every
project directory with a page is checked, whether or not the root page lists it (an adopted tree,
or a sync killed between writing the root and removing a page, has pages the root does not list,
and their files are not orphans). For each page:

* every format exists and parses completely (a JSON page that is cut short fails to parse; an HTML
  page must end with ``</html>``), ``index.html`` and ``index.v1_html`` hold the same bytes, and the
  HTML lists the same files as the JSON;
* every file and ``.metadata`` it lists exists and hashes to the sha256 it promises;
* every file it lists with PEP 740 provenance has its ``.provenance`` beside it, and (given a trust
  root) the document verifies offline for that file: signatures, certificate chain, transparency
  log, subject (the check uploads and the mirror use, so an rsync'd copy is checked the same way);
* it agrees with what the configuration wants (:meth:`TreeWants.disagreements`), when given.

The root page must exist in every format and list the same projects in each; a page it does not
list is reported. Files under ``web/packages/`` that no page references are orphans; when some
page cannot be read in any format its references are unknown, and orphans are then reported but
``references_known`` is False (repair deletes none until the pages are rewritten).

Hashing is the slow part, so it runs concurrently and records a checkpoint (projects are checked
in sorted order): a verify that is killed resumes after the last project it finished. Repair is
the caller's (``headwater verify --repair``), so a report can be read before anything is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Set
from typing import Any, Literal

import msgspec

from headwater.simple.html import parse_project_list_html, parse_project_page_html
from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.simple.model import InvalidPage, ProjectList, ProjectPage
from headwater.simple.names import NormalizedName, is_normalized
from headwater.storage.base import NotFound, Storage
from headwater.storage.layout import PAGE_FILES, STATE_DIR, WEB, page_key, sha256_of_file_key
from headwater.sync.references import (
    REFS,
    digest_keys,
    foreign_keys,
    marker_key,
    page_file_keys,
)
from headwater.sync.tree import empty_directories
from headwater.sync.wants import TreeWants

__all__ = [
    "Problem",
    "Report",
    "page_file_keys",
    "project_pages_on_disk",
    "sweep_orphans",
    "verify_tree",
]

CHECKPOINT = f"{STATE_DIR}/verify-checkpoint.json"
Kind = Literal[
    "missing",  # a file a page lists is not there
    "corrupt",  # a file does not hash to what its page promises
    "orphan",  # a file no page references
    "missing-page",  # a format of a project's page is missing
    "bad-page",  # a page does not parse completely, or its formats disagree
    "missing-root",  # the root page's JSON is missing or unreadable
    "bad-root",  # a root HTML format is missing, cut short, or lists other projects
    "unlisted",  # a project page the root page does not list
    "unwanted",  # a page the configuration does not want as it is (filters, tracks, metadata)
    "empty-dir",  # a directory with nothing in it (a static server answers 200/403, not 404)
    "unrecorded-ref",  # a page lists a file it does not own, without the marker that keeps it
    "stale-ref",  # a marker for a reference no page makes (it only keeps a file too long)
    "bad-provenance",  # a file's PEP 740 provenance does not verify against the trust root
]
# Problems that a re-sync of their project fixes (the rest: orphans, and the root, which every
# repair run rewrites).
_RESYNC: frozenset[str] = frozenset(
    {"missing", "corrupt", "missing-page", "bad-page", "unlisted", "unwanted"}
)
_HTML_FORMATS = ("html", "plain-html")


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong with the tree: what, where, which project, and details a person can read."""

    kind: Kind
    key: str
    project: str | None = None
    detail: str = ""


class Report(msgspec.Struct, kw_only=True):
    """What verify found. ``resumed_after`` names the checkpoint it skipped to, if any;
    ``references_known`` is False when some page could not be read in any format (so which files
    are orphans is not certain)."""

    projects: int = 0
    files: int = 0
    bytes: int = 0
    problems: list[Problem] = msgspec.field(default_factory=list)
    resumed_after: str | None = None
    references_known: bool = True
    #: Files no page lists that are kept for the next sync of a project whose last sync failed.
    held: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def projects_to_resync(self) -> list[NormalizedName]:
        """Projects whose files or pages must be fetched again (or removed, if unwanted)."""
        return sorted(
            {NormalizedName(p.project) for p in self.problems if p.project and p.kind in _RESYNC}
        )

    @property
    def root_damaged(self) -> bool:
        """The root page needs rewriting."""
        return any(p.kind in ("missing-root", "bad-root", "unlisted") for p in self.problems)


class _Checkpoint(msgspec.Struct):
    done_through: str
    problems: list[Problem]


async def project_pages_on_disk(storage: Storage) -> list[NormalizedName]:
    """Every project with at least one page format in the tree, sorted (the root page is not
    consulted: it can lack a project whose page is still served)."""
    found: set[NormalizedName] = set()
    names = set(PAGE_FILES.values())
    async for key in storage.iter_keys(f"{WEB}/simple"):
        parts = key.split("/")
        if len(parts) == 4 and parts[3] in names and is_normalized(parts[2]):
            found.add(NormalizedName(parts[2]))
    return sorted(found)


def _html_complete(raw: bytes) -> bool:
    # Every page headwater writes (and bandersnatch, and PyPI) ends the document, followed at most
    # by a ``<!--SERIAL n-->`` comment; one that stops earlier was cut short, even if the anchors
    # it still has parse.
    end = raw.rstrip()
    if end.endswith(b"-->"):
        end = end[: end.rfind(b"<!--")].rstrip()
    return end.lower().endswith(b"</html>")


def _file_set(page: ProjectPage) -> set[tuple[str, str, str | None]]:
    return {(f.filename, f.url.partition("#")[0], f.hashes.get("sha256")) for f in page.files}


class _PageCheck(msgspec.Struct):
    """A project's pages as read: the page (from the JSON, else from an HTML format), the keys
    it references (None: no format could be read), and the problems found."""

    page: ProjectPage | None
    references: set[str] | None
    problems: list[Problem]


async def _read(storage: Storage, key: str) -> bytes | None:
    try:
        return await storage.read_bytes(key)
    except NotFound:
        return None


async def _check_pages(storage: Storage, name: NormalizedName) -> _PageCheck:
    problems: list[Problem] = []
    raws = {fmt: await _read(storage, page_key(name, fmt)) for fmt in PAGE_FILES}  # type: ignore[arg-type]
    for fmt, raw in raws.items():
        if raw is None:
            problems.append(
                Problem("missing-page", page_key(name, fmt), name, f"the {fmt} page is missing")  # type: ignore[arg-type]
            )
    page: ProjectPage | None = None
    json_raw = raws["json"]
    if json_raw is not None:
        try:
            page = parse_project_page_json(json_raw)
        except InvalidPage as exc:
            problems.append(Problem("bad-page", page_key(name, "json"), name, str(exc)))
        else:
            if page.name != name:
                problems.append(
                    Problem(
                        "bad-page",
                        page_key(name, "json"),
                        name,
                        f"the page is for {page.name!r}, not {name!r}",
                    )
                )
                page = msgspec.structs.replace(page, name=name)  # its URLs are relative to here
    html_pages: list[ProjectPage] = []
    judged: tuple[bytes, list[str]] | None = None
    for fmt in _HTML_FORMATS:
        raw = raws[fmt]
        if raw is None:
            continue
        key = page_key(name, fmt)  # type: ignore[arg-type]
        if judged is not None and judged[0] == raw:
            # The second name of the same bytes (usually a hard link): parsed once, reported
            # under both names.
            problems.extend(Problem("bad-page", key, name, d) for d in judged[1])
            continue
        found: list[str] = []
        parsed: ProjectPage | None = None
        if not _html_complete(raw):
            found.append("the page is cut short (no </html>)")
        try:
            parsed = parse_project_page_html(raw, name=name)
        except InvalidPage as exc:
            found.append(str(exc))
        else:
            html_pages.append(parsed)
            if page is not None and _file_set(parsed) != _file_set(page):
                found.append("the page lists other files than the JSON page")
        problems.extend(Problem("bad-page", key, name, d) for d in found)
        judged = (raw, found)
    if None not in (raws["html"], raws["plain-html"]) and raws["html"] != raws["plain-html"]:
        problems.append(
            Problem(
                "bad-page",
                page_key(name, "plain-html"),
                name,
                f"{PAGE_FILES['plain-html']} and {PAGE_FILES['html']} differ",
            )
        )
    # What the tree serves references files: the JSON page, and the HTML pages too when they
    # disagree with it (a file either lists is not an orphan). So does a file's sha256 name where
    # a page lists the file by that digest but links it elsewhere: an adopted tree before its
    # first sync (references.digest_keys).
    readable = ([page] if page is not None else []) + html_pages
    references: set[str] | None = None
    if readable:
        references = {key for p in readable for key, _, _ in page_file_keys(p)}
        references.update(key for p in readable for key in digest_keys(p))
    return _PageCheck(
        page if page is not None else next(iter(html_pages), None), references, problems
    )


async def _references(storage: Storage) -> tuple[set[str], set[str]] | None:
    """Every ``web/packages/`` key some project page in the tree references, over every page that
    exists (not only those the root lists), and the reference markers those pages call for; None
    when some page cannot be read in any format."""
    referenced: set[str] = set()
    markers: set[str] = set()
    for name in await project_pages_on_disk(storage):
        checked = await _check_pages(storage, name)
        if checked.references is None:
            return None
        referenced |= checked.references
        if checked.page is not None:
            markers.update(marker_key(k, name) for k in foreign_keys(checked.page))
    return referenced, markers


async def sweep_orphans(storage: Storage, *, keep: Set[str] = frozenset()) -> list[str]:
    """Remove every file under ``web/packages/`` that no page in the tree points at (except those
    in ``keep``: files held for a failed project's next sync), and every reference marker no page
    calls for (a sync killed between removing a page and its marker); return the removed file keys
    (none when some page is unreadable: its references are unknown). Run after an interrupted
    sync, when no other writer touches the tree. Every page on disk counts, whether or not the
    state knows its project."""
    found = await _references(storage)
    if found is None:
        return []
    referenced, markers = found
    removed = [
        key
        async for key in storage.iter_keys(f"{WEB}/packages")
        if key not in referenced and key not in keep
    ]
    for key in removed:
        await storage.delete(key)
    for key in [key async for key in storage.iter_keys(REFS) if key not in markers]:
        await storage.delete(key)
    return removed


async def _check_root(storage: Storage, report: Report) -> ProjectList | None:
    raw = await _read(storage, page_key(None, "json"))
    root: ProjectList | None = None
    if raw is not None:
        try:
            root = parse_project_list_json(raw)
        except InvalidPage:
            root = None
    if root is None:
        report.problems.append(
            Problem(
                "missing-root",
                page_key(None, "json"),
                detail="the root page is missing or unreadable",
            )
        )
    listed = {e.normalized for e in root.projects} if root is not None else None
    for fmt in _HTML_FORMATS:
        key = page_key(None, fmt)  # type: ignore[arg-type]
        html = await _read(storage, key)
        if html is None:
            report.problems.append(
                Problem("bad-root", key, detail=f"the root {fmt} page is missing")
            )
            continue
        if not _html_complete(html):
            report.problems.append(Problem("bad-root", key, detail="the root page is cut short"))
            continue
        try:
            names = {e.normalized for e in parse_project_list_html(html).projects}
        except InvalidPage as exc:
            report.problems.append(Problem("bad-root", key, detail=str(exc)))
            continue
        if listed is not None and names != listed:
            report.problems.append(
                Problem("bad-root", key, detail="lists other projects than the JSON root page")
            )
    return root


async def verify_tree(
    storage: Storage,
    *,
    workers: int = 8,
    resume: bool = True,
    wants: TreeWants | None = None,
    upstream: str | None = None,
    held: Set[str] = frozenset(),
    trust: Any = None,
) -> Report:
    """Check the tree in ``storage``; return the report (``ok`` when nothing is wrong).

    With ``resume`` and a checkpoint from an interrupted run, projects up to the checkpoint are
    not re-hashed (their problems are carried over); the orphan scan always covers everything.
    With ``wants``, every page is also checked against it (``upstream``, the tree's upstream simple
    URL, makes the expected ``tracks`` exact). Files in ``held`` (with their ``.metadata``: the
    state's files kept for a failed project's next sync) are not orphans. With ``trust`` (a
    :class:`headwater.provenance.TrustRoot`), every ``.provenance`` is verified too.
    """
    started = time.monotonic()
    report = Report()
    root = await _check_root(storage, report)
    on_disk = await project_pages_on_disk(storage)
    listed = {entry.normalized for entry in root.projects} if root is not None else set()
    names = sorted(listed | set(on_disk))
    with_pages = set(on_disk)
    base = None if upstream is None else upstream.rstrip("/") + "/"

    skip_through = None
    if resume:
        try:
            checkpoint = msgspec.json.decode(await storage.read_bytes(CHECKPOINT), type=_Checkpoint)
        except (NotFound, msgspec.DecodeError):
            checkpoint = None
        if checkpoint is not None:
            skip_through = checkpoint.done_through
            report.resumed_after = skip_through
            report.problems.extend(checkpoint.problems)

    referenced: set[str] = set()
    markers: dict[str, NormalizedName] = {}  # the markers the pages call for -> their project
    slots = asyncio.Semaphore(workers)
    lock = asyncio.Lock()
    done: set[str] = set()

    async def check_file(project: str, key: str, sha256: str | None, what: str) -> None:
        async with slots:
            try:
                actual, size = await storage.digest(key)
            except NotFound:
                report.problems.append(Problem("missing", key, project, f"{what} is missing"))
                return
        report.files += 1
        report.bytes += size
        if trust is not None and key.endswith(".provenance"):
            await check_provenance(project, key, what)
        if sha256 is not None and actual != sha256:
            report.problems.append(
                Problem(
                    "corrupt", key, project, f"{what} has sha256 {actual}, the page says {sha256}"
                )
            )

    async def check_provenance(project: str, key: str, what: str) -> None:
        from headwater.provenance import ProvenanceInvalid, verify_provenance_document

        file_sha256 = sha256_of_file_key(key.removesuffix(".provenance"))
        filename = what.removesuffix(".provenance")
        raw = await storage.read_bytes(key)
        try:
            await asyncio.to_thread(
                verify_provenance_document, raw, filename, file_sha256 or "", trust
            )
        except ProvenanceInvalid as exc:
            report.problems.append(Problem("bad-provenance", key, project, f"{what}: {exc}"))

    async def check_project(name: NormalizedName) -> None:
        hash_it = skip_through is None or name > skip_through
        if name not in with_pages:  # listed by the root, no page at all
            if hash_it:
                for fmt in PAGE_FILES:
                    key = page_key(name, fmt)  # type: ignore[arg-type]
                    report.problems.append(
                        Problem("missing-page", key, name, f"the {fmt} page is missing")
                    )
            async with lock:
                done.add(name)
            return
        checked = await _check_pages(storage, name)
        if checked.page is not None:
            markers.update({marker_key(k, name): name for k in foreign_keys(checked.page)})
        if checked.references is None:
            report.references_known = False
        else:
            referenced.update(checked.references)
        checks = []
        if hash_it:
            report.problems.extend(checked.problems)
            if root is not None and name not in listed:
                report.problems.append(
                    Problem(
                        "unlisted",
                        page_key(name, "json"),
                        name,
                        "the root page does not list this project, but its page is served",
                    )
                )
            page = checked.page
            if page is not None:
                for key, sha256, what in page_file_keys(page):
                    checks.append(check_file(name, key, sha256, what))
                if wants is not None:
                    tracks_url = None if base is None else f"{base}{name}/"
                    for sentence in wants.disagreements(page, tracks_url):
                        report.problems.append(
                            Problem("unwanted", page_key(name, "json"), name, sentence)
                        )
        await asyncio.gather(*checks)
        if hash_it:
            report.projects += 1
        async with lock:
            done.add(name)

    async def checkpointer(stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5.0)
            async with lock:
                # Everything up to the first unfinished name (in sorted order) is done.
                through = None
                for name in names:
                    if name not in done:
                        break
                    through = name
            if through is not None and not stop.is_set():
                await storage.write_bytes(
                    CHECKPOINT, msgspec.json.encode(_Checkpoint(through, report.problems))
                )

    stop = asyncio.Event()
    ticker = asyncio.create_task(checkpointer(stop))
    try:
        batch = max(workers * 4, 16)
        for start in range(0, len(names), batch):
            await asyncio.gather(*(check_project(n) for n in names[start : start + batch]))
    finally:
        stop.set()
        await ticker

    async for key in storage.iter_keys(f"{WEB}/packages"):
        if key in referenced:
            continue
        if key in held or key.removesuffix(".metadata").removesuffix(".provenance") in held:
            report.held += 1
        else:
            report.problems.append(Problem("orphan", key, None, "no page refers to this file"))
    present = {key async for key in storage.iter_keys(REFS)}
    for key in sorted(markers.keys() - present):
        report.problems.append(
            Problem(
                "unrecorded-ref",
                key,
                markers[key],
                "the page lists a file named for another project without the marker that keeps "
                "that project's sync from removing it",
            )
        )
    if report.references_known:
        for key in sorted(present - markers.keys()):
            report.problems.append(
                Problem("stale-ref", key, None, "no page makes the reference this marker records")
            )
    for directory in await empty_directories(storage):
        report.problems.append(
            Problem("empty-dir", directory, None, "an empty directory (served as 200 or 403)")
        )
    await storage.delete(CHECKPOINT)
    report.seconds = time.monotonic() - started
    return report
