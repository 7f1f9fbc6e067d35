"""Files listed by several projects (a non-PyPI upstream may do it: one key, two pages) are
reference-counted by every page that lists them. A property test drives random sequences of
upstream states through the mirror, with syncs killed at random storage operations in between:
at every moment no page points at a missing or wrong file, and after each completed sync the tree
is exactly what the upstream lists and verify finds nothing (no orphan, no unrecorded or stale
reference, no empty directory)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.simple.names import NormalizedName
from headwater.simple.negotiation import JSON_V1
from headwater.storage import FileStorage
from headwater.sync.engine import Mirror
from headwater.sync.references import Change, References, file_keys
from headwater.sync.state import MirrorState
from headwater.sync.tree import Tree, prune_empty_directories
from headwater.sync.verify import verify_tree
from tests.aioserve import aiohttp_serving
from tests.sync.test_crash import assert_consistent

FAST = RetryPolicy(attempts=2, backoff=0.001, max_backoff=0.002)
PROJECTS = ("alpha", "beta", "gamma")
# Named for alpha (owned by it), for beta, for a project the upstream does not have, and a name
# no parser accepts (owned by nobody).
FILES = ("alpha-1.0.tar.gz", "beta-1.0.tar.gz", "zeta-1.0.tar.gz", "odd.exe")
BODIES = {f: f"body of {f}".encode() * 50 for f in FILES}
SHA = {f: hashlib.sha256(b).hexdigest() for f, b in BODIES.items()}

# One upstream state: project -> the files its page lists (a project absent is not listed).
State = dict[str, tuple[str, ...]]


class Killed(BaseException):
    """The process died here (like SIGKILL: nothing after it runs)."""


def killed(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(killed(e) for e in exc.exceptions)
    return isinstance(exc, Killed)


class DyingStorage(FileStorage):
    """A file storage whose process dies at the Nth write or delete."""

    def __init__(self, root: Path, die_at: int | None) -> None:
        super().__init__(root, durability="none")
        self.left = die_at
        self.died_in_batch: tuple[int, int] | None = None  # (keys removed, keys asked)

    def _tick(self) -> None:
        if self.left is not None:
            self.left -= 1
            if self.left < 0:
                raise Killed

    async def write_bytes(self, key: str, data: bytes) -> None:
        self._tick()
        await super().write_bytes(key, data)

    async def write_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        self._tick()
        await super().write_many(items)

    async def delete(self, key: str) -> bool:
        self._tick()
        return await super().delete(key)

    async def delete_many(self, keys: Sequence[str]) -> list[bool]:
        """Dies part way through a batch, as a process would: the keys before the fatal one are
        gone (one batch on the storage thread), the rest are not."""
        for count in range(len(keys)):
            try:
                self._tick()
            except Killed:
                await super().delete_many(keys[:count])
                self.died_in_batch = (count, len(keys))
                raise
        return await super().delete_many(keys)


async def serve(state: dict[str, State], broken: set[str] | None = None, slow: float = 0.0) -> Any:
    """The upstream: ``state["now"]`` is what it lists; files in ``broken`` fail their hash
    (after ``slow`` seconds each)."""
    broken = broken if broken is not None else set()

    async def root(request: web.Request) -> web.Response:
        body = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in state["now"]]}
        return web.Response(body=json.dumps(body).encode(), content_type=JSON_V1)

    async def project(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in state["now"]:
            return web.Response(status=404)
        files = [
            {
                "filename": f,
                "url": f"/files/{f}",
                "hashes": {"sha256": SHA[f]},
                "size": len(BODIES[f]),
            }
            for f in state["now"][name]
        ]
        page = {"meta": {"api-version": "1.1"}, "name": name, "files": files, "versions": ["1.0"]}
        return web.Response(body=json.dumps(page).encode(), content_type=JSON_V1)

    async def files(request: web.Request) -> web.Response:
        name = request.match_info["f"]
        body = BODIES[name]
        if name in broken:
            await asyncio.sleep(slow)
            return web.Response(body=body[::-1])
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/simple/", root)
    app.router.add_get("/simple/{name}/", project)
    app.router.add_get("/files/{f}", files)
    return aiohttp_serving(app)


def listed(root: Path) -> State:
    out: State = {}
    for page in (root / "web/simple").glob("*/index.v1_json"):
        data = json.loads(page.read_text())
        out[data["name"]] = tuple(sorted(f["filename"] for f in data["files"]))
    return out


states = st.dictionaries(
    st.sampled_from(PROJECTS),
    st.lists(st.sampled_from(FILES), unique=True, max_size=3).map(lambda fs: tuple(sorted(fs))),
)
steps = st.lists(
    st.tuples(
        states,
        st.none() | st.integers(0, 25),  # the storage operation the run dies at
        st.frozensets(st.sampled_from(FILES), max_size=1),  # files that fail their hash check
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_shared_files_survive_any_sequence_of_syncs_kills_and_failures(
    sequence: list[tuple[State, int | None, frozenset[str]]],
) -> None:
    async def scenario() -> None:
        upstream: dict[str, State] = {"now": {}}
        broken: set[str] = set()
        async with await serve(upstream, broken) as url, client_session() as session:
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                expected: State = {}

                async def sync(die_at: int | None) -> set[str] | None:
                    """The projects that failed; None if the run was killed."""
                    storage = DyingStorage(root, die_at)
                    try:
                        summary = await Mirror(
                            HttpRepository(url, session, retry=FAST), storage, workers=2
                        ).run()
                    except BaseException as exc:
                        if killed(exc):
                            return None
                        raise
                    # Only a project that had to download a broken file fails (one whose file
                    # is already in the tree reuses it).
                    assert set(summary.failed) <= failing, summary.failed
                    return set(summary.failed)

                for wanted, die_at, bad in sequence:
                    upstream["now"] = wanted
                    broken.clear()
                    broken.update(bad)
                    failing = {n for n, files in wanted.items() if bad & set(files)}
                    failed = await sync(die_at)
                    assert_consistent(root)  # at every moment, killed or not
                    event("a run was killed" if failed is None else "no kill")
                    if failed is None:
                        failed = await sync(None)  # the next run resumes and finishes
                        assert failed is not None
                        assert_consistent(root)
                    event("a project failed" if failed else "no failure")
                    # A project that failed keeps the page it had (or has none yet).
                    expected = {
                        n: tuple(sorted(f)) if n not in failed else expected[n]
                        for n, f in wanted.items()
                        if n not in failed or n in expected
                    }
                    assert listed(root) == expected
                    state = MirrorState(FileStorage(root), url)
                    await state.load()
                    report = await verify_tree(FileStorage(root), held=state.held_keys())
                    assert report.ok, (
                        report.problems
                    )  # files a failure fetched are held, not orphans

    asyncio.run(scenario())


def test_a_file_two_projects_list_outlives_either(tmp_path: Path) -> None:
    """The finding: deleting one of two projects that list one file took the file from the
    other's page."""

    async def scenario() -> None:
        upstream: dict[str, State] = {"now": {}}
        async with await serve(upstream) as url, client_session() as session:

            async def sync() -> None:
                repo = HttpRepository(url, session, retry=FAST)
                assert (await Mirror(repo, FileStorage(tmp_path)).run()).ok

            shared = ("zeta-1.0.tar.gz",)
            for owner_file in ("alpha-1.0.tar.gz", "zeta-1.0.tar.gz"):
                upstream["now"] = {"alpha": (owner_file, *shared), "beta": shared}
                await sync()
                upstream["now"] = {"beta": shared}  # alpha deleted upstream
                await sync()
                assert_consistent(tmp_path)
                upstream["now"] = {"alpha": shared}  # beta deleted, alpha back
                await sync()
                assert_consistent(tmp_path)
                assert listed(tmp_path) == {"alpha": shared}
                assert (await verify_tree(FileStorage(tmp_path))).ok

    asyncio.run(scenario())


def test_verify_finds_a_shared_file_without_its_marker(tmp_path: Path) -> None:
    """A tree written before markers existed (or damaged): verify names the missing marker, since
    without it the owner's next sync could take the file from the other page."""

    async def scenario() -> None:
        upstream: dict[str, State] = {"now": {"alpha": ("alpha-1.0.tar.gz", "beta-1.0.tar.gz")}}
        async with await serve(upstream) as url, client_session() as session:
            repo = HttpRepository(url, session, retry=FAST)
            assert (await Mirror(repo, FileStorage(tmp_path)).run()).ok
        assert (await verify_tree(FileStorage(tmp_path))).ok
        for marker in (tmp_path / "state/refs").rglob("alpha"):
            marker.unlink()
        report = await verify_tree(FileStorage(tmp_path))
        assert [(p.kind, p.project) for p in report.problems] == [("unrecorded-ref", "alpha")]
        assert "beta-1.0.tar.gz/alpha" in report.problems[0].key

    asyncio.run(scenario())


def test_a_file_pinned_by_a_project_that_then_fails_is_not_leaked(tmp_path: Path) -> None:
    """beta drops a file while gamma, new, is fetching it; gamma fails on it. The release kept the
    file for gamma; at the end of the run no page lists it and nobody holds it, so it goes."""

    async def scenario() -> None:
        upstream: dict[str, State] = {"now": {"beta": ("beta-1.0.tar.gz", "odd.exe")}}
        broken: set[str] = set()
        async with await serve(upstream, broken, slow=0.3) as url, client_session() as session:

            async def sync() -> Any:
                repo = HttpRepository(url, session, retry=FAST)
                return await Mirror(repo, FileStorage(tmp_path), workers=4).run()

            assert (await sync()).ok
            broken.add("odd.exe")
            upstream["now"] = {"beta": ("beta-1.0.tar.gz",), "gamma": ("odd.exe",)}
            summary = await sync()
            assert list(summary.failed) == ["gamma"]
            assert_consistent(tmp_path)
            assert listed(tmp_path) == {"beta": ("beta-1.0.tar.gz",)}
            report = await verify_tree(FileStorage(tmp_path))
            assert report.ok, report.problems  # odd.exe is neither listed nor held: removed

    asyncio.run(scenario())


def test_a_run_killed_inside_a_batched_release_leaves_every_page_whole(tmp_path: Path) -> None:
    """A project drops all its files at once (one batched removal of the files, their
    .metadata and .provenance, then its markers), and the run dies at every point of it in
    turn: no page ever points at a missing file, and the next run leaves a tree verify passes."""

    async def scenario() -> None:
        before: State = {
            "alpha": ("alpha-1.0.tar.gz", "odd.exe", "zeta-1.0.tar.gz"),
            "beta": ("beta-1.0.tar.gz", "zeta-1.0.tar.gz"),
        }
        after: State = {"alpha": (), "beta": ("beta-1.0.tar.gz", "zeta-1.0.tar.gz")}
        upstream: dict[str, State] = {"now": before}
        inside = set()
        async with await serve(upstream) as url, client_session() as session:
            for die_at in range(40):
                root = tmp_path / str(die_at)
                upstream["now"] = before
                repo = HttpRepository(url, session, retry=FAST)
                assert (await Mirror(repo, FileStorage(root)).run()).ok
                upstream["now"] = after
                dying = DyingStorage(root, die_at)
                try:
                    await Mirror(repo, dying).run()
                except BaseException as exc:
                    if not killed(exc):
                        raise
                if dying.died_in_batch is not None:
                    inside.add(dying.died_in_batch)
                assert_consistent(root)
                assert (await Mirror(repo, FileStorage(root)).run()).ok
                assert_consistent(root)
                assert listed(root) == after
                report = await verify_tree(FileStorage(root))
                assert report.ok, (die_at, report.problems)
        # alpha's batch: its own sdist (file, .metadata, .provenance) and the two foreign files
        # (zeta's stays for beta): the run died after each prefix of it.
        assert {done for done, asked in inside if asked == 6} == set(range(6)), inside

    asyncio.run(scenario())


def test_two_projects_dropping_a_shared_file_in_one_batch_remove_it(tmp_path: Path) -> None:
    """alpha and beta both list zeta's sdist (a marker each); both pages drop it and are released
    in one batch. Each must not keep the file for the other's marker, which is stale once the
    other's page is written: the file and both markers go, and verify finds no orphan."""

    async def scenario() -> None:
        shared = "zeta-1.0.tar.gz"
        upstream: dict[str, State] = {
            "now": {"alpha": ("alpha-1.0.tar.gz", shared), "beta": ("beta-1.0.tar.gz", shared)}
        }
        async with await serve(upstream) as url, client_session() as session:
            repo = HttpRepository(url, session, retry=FAST)
            assert (await Mirror(repo, FileStorage(tmp_path)).run()).ok
        storage = FileStorage(tmp_path)
        tree = Tree(storage)
        changes: list[Change] = []
        for name in ("alpha", "beta"):
            old = await tree.read_project(NormalizedName(name))
            assert old is not None
            new = msgspec.structs.replace(
                old, files=tuple(f for f in old.files if f.filename != shared)
            )
            await tree.write_project(new)
            changes.append((NormalizedName(name), file_keys(old), file_keys(new)))
        assert await References(tree).release_many(changes) == 1
        assert not list((tmp_path / "web/packages").rglob(shared))
        assert not list((tmp_path / "state/refs").rglob("alpha"))
        assert not list((tmp_path / "state/refs").rglob("beta"))
        await prune_empty_directories(storage, tree.removed)
        report = await verify_tree(storage)
        assert report.ok, report.problems

    asyncio.run(scenario())
