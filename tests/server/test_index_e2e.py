"""The policy scenarios (tests/data/policy/*.toml) end to end: real servers, real pip and uv.

Each scenario becomes two real ``headwater serve`` processes on loopback:

- an *upstream* headwater with one hosted index per remote source of the scenario (proxy or
  mirror), filled with real wheels and sdists built for the scenario's filenames, their upload
  times, ``tracks`` and ``alternate-locations`` (URLs rewritten from the scenario's to loopback);
- the headwater under test, with the scenario's hosted sources (same filling; deleted projects
  deleted, namespaces granted), directory sources as folders, every remote source as a
  ``[proxy.NAME]`` of its upstream index (a source the scenario marks ``down`` is a proxy of a
  port nobody listens on), and ``[index.NAME]`` with the scenario's policy, routes and cooldowns.

Every expectation is then checked over HTTP on the composed index (files served, the sources named
in ``X-Headwater-Sources``, refusals with their status and message), and the two famous attacks
through real pip and uv: torchtriton installs the private build, Birsan's claimed names fail with
what to do in the installer's own output.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headwater.db import Database, NewFile
from headwater.policy import normalize_url
from headwater.simple.filenames import parse_filename
from headwater.simple.names import normalize_name
from headwater.storage.layout import file_key
from headwater.testing import wheels
from headwater.testing.policy_scenarios import (
    Scenario,
    ScenarioFile,
    ScenarioSource,
    load_scenario,
)
from tests.clients import clean_env, make_venv
from tests.nginx import free_port
from tests.server.live import Live, serve

SCENARIOS = sorted((Path(__file__).resolve().parents[1] / "data" / "policy").glob("*.toml"))
_JSON = "application/vnd.pypi.simple.v1+json"


@dataclass
class Realized:
    scenario: Scenario
    index_url: str  # the composed index: http://127.0.0.1:P/<index>/simple/
    sha256: dict[str, str] = field(default_factory=dict)  # scenario sha256 -> real sha256


def _remote(source: ScenarioSource) -> bool:
    return source.down or source.kind in ("proxy", "mirror")


def _build(filename: str, display: str, scenario_sha256: str) -> bytes:
    """A real distribution for ``filename``; two scenario files with the same name and different
    hashes get different bytes (the summary carries the scenario's hash)."""
    parsed = parse_filename(filename)
    version = str(parsed.version)
    metadata = wheels.core_metadata(display, version, summary=f"scenario {scenario_sha256[:16]}")
    if parsed.kind == "sdist":
        return wheels.build_sdist(parsed.name, display, version, metadata=metadata)
    tag = "-".join(filename.removesuffix(".whl").split("-")[-3:])
    return wheels.build_wheel(parsed.name, display, version, tag=tag, metadata=metadata)


def _fill(
    db: Database,
    data: Path,
    source: ScenarioSource,
    *,
    shift: datetime,
    now: datetime,
    urls: dict[str, str],
    realized: Realized,
) -> None:
    """Put the source's projects in hosted index ``source.name`` of ``db``, its files in the
    hosted storage below the data directory ``data``."""
    root = data / "hosted" / source.name

    def rewrite(url: str) -> str:
        # Compared as PEP 708 compares them (scheme and host case, trailing slash).
        key = normalize_url(url)
        for old, new in urls.items():
            prefix = normalize_url(old)
            if key.startswith(prefix):
                return new + key[len(prefix) :]
        return url

    for project in source.projects:
        files = project.files
        if not files and (project.deleted or project.status.value != "active"):
            # A deleted or quarantined project exists(ed): give it a file to hide or delete.
            version = "0.1"
            filename = wheels.wheel_filename(project.normalized, version)
            files = (ScenarioFile(filename=filename, sha256="0" * 64, upload_time=None),)
        for file in files:
            body = _build(file.filename, project.name, file.sha256)
            sha = hashlib.sha256(body).hexdigest()
            realized.sha256[file.sha256] = sha
            key = file_key(sha, file.filename)
            target = root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            when = file.upload_time + (shift - now) if file.upload_time else shift
            db.add_file(
                source.name,
                project.normalized,
                NewFile(
                    filename=file.filename,
                    version=str(parse_filename(file.filename).version),
                    sha256=sha,
                    size=len(body),
                    upload_time=when,
                    storage_key=key,
                    display_name=project.name,
                ),
            )
        if not files:
            continue
        if project.tracks:
            db.set_tracks(source.name, project.normalized, [rewrite(u) for u in project.tracks])
        if project.alternate_locations:
            db.set_alternate_locations(
                source.name, project.normalized, [rewrite(u) for u in project.alternate_locations]
            )
        if project.status.value != "active":
            db.set_status(source.name, project.normalized, project.status.value)
        if project.deleted:
            db.delete_project(source.name, project.normalized)


def _database(data: Path) -> Database:
    data.mkdir(parents=True, exist_ok=True)
    db = Database.connect(f"sqlite:///{data / 'headwater.sqlite3'}")
    db.upgrade()
    return db


def _toml(value: object) -> str:
    return json.dumps(value)  # JSON strings, lists and numbers are TOML too


def _serve(
    work: Path, name: str, config: str, data: Path, port: int
) -> AbstractContextManager[Live]:
    """``headwater serve`` on ``port`` with ``config`` (written to ``work/name``) and ``data``."""
    (work / name).write_text(config)
    return serve(["--config", str(work / name), "--data-dir", str(data)], work, port=port)


@contextmanager
def realize(scenario: Scenario, work: Path) -> Iterator[Realized]:
    now = datetime.now(UTC)
    main_port = free_port()
    main_base = f"http://127.0.0.1:{main_port}"
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    remote = [s for s in scenario.sources if _remote(s) and not s.down]
    upstream_port = free_port()
    upstream_base = f"http://127.0.0.1:{upstream_port}"
    urls: dict[str, str] = {}
    for source in scenario.sources:
        if not source.url:
            continue
        if source.down:
            urls[source.url] = f"{dead}/{source.name}/simple/"
        elif _remote(source):
            urls[source.url] = f"{upstream_base}/{source.name}/simple/"
        else:
            urls[source.url] = f"{main_base}/{source.name}/simple/"
    realized = Realized(scenario, f"{main_base}/{scenario.index}/simple/")

    def fill(db: Database, data: Path, source: ScenarioSource) -> None:
        _fill(db, data, source, shift=now, now=scenario.now, urls=urls, realized=realized)

    with ExitStack() as stack:
        if remote:
            up_data = work / "upstream-data"
            db = _database(up_data)
            for source in remote:
                fill(db, up_data, source)
            db.close()
            config = "".join(f"[hosted.{s.name}]\n" for s in remote)
            stack.enter_context(_serve(work, "upstream.toml", config, up_data, upstream_port))
        data = work / "data"
        db = _database(data)
        lines = [f'[serve]\nbase_url = "{main_base}"\n']
        for source in scenario.sources:
            if source.down:
                lines.append(f'[proxy.{source.name}]\nurl = "{dead}/{source.name}/simple/"\n')
                lines.append("timeout = 2\n")
            elif _remote(source):
                up = f"{upstream_base}/{source.name}/simple/"
                lines.append(f'[proxy.{source.name}]\nurl = "{up}"\nttl = 0\n')
            elif source.kind == "hosted":
                lines.append(f"[hosted.{source.name}]\n")
                fill(db, data, source)
                if source.namespaces:
                    db.create_user(f"{source.name}-owner")
                    for namespace in source.namespaces:
                        db.grant_namespace(source.name, namespace, f"{source.name}-owner")
            else:  # directory
                folder = work / f"dir-{source.name}"
                folder.mkdir()
                for project in source.projects:
                    for file in project.files:
                        body = _build(file.filename, project.name, file.sha256)
                        realized.sha256[file.sha256] = hashlib.sha256(body).hexdigest()
                        (folder / file.filename).write_bytes(body)
                lines.append(f'[directory.{source.name}]\npath = "{folder}"\n')
        db.close()
        table = scenario.index_table()
        lines.append(f"[index.{scenario.index}]\n")
        lines.append(f"sources = {_toml(table['sources'])}\n")
        lines.append(f"policy = {_toml(table['policy'])}\n")
        if "cooldown" in table:
            inner = ", ".join(f'"{k}" = {v}' for k, v in table["cooldown"].items())
            lines.append(f"cooldown = {{ {inner} }}\n")
        for route in table["routes"]:
            lines.append(f"[[index.{scenario.index}.routes]]\n")
            lines.extend(f"{key} = {_toml(value)}\n" for key, value in route.items())
        stack.enter_context(_serve(work, "headwater.toml", "".join(lines), data, main_port))
        yield realized


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def get(url: str, *, agent: str = "headwater-tests") -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"Accept": _JSON, "User-Agent": agent})
    try:
        with opener.open(request, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def _page_url(realized: Realized, spelled: str) -> str:
    return f"{realized.index_url}{normalize_name(spelled)}/"


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_through_a_real_server(path: Path, tmp_path: Path) -> None:
    scenario = load_scenario(path.read_text(), name=path.name)
    with realize(scenario, tmp_path) as realized:
        for expect in scenario.expect:
            url = _page_url(realized, expect.project)
            status, headers, body = get(url)
            what = f"{path.name}: {expect.project}"
            if expect.outcome == "served":
                assert status == 200, f"{what}: {status} {body[:500]!r}"
                page = json.loads(body)
                served = sorted(f["filename"] for f in page["files"])
                if expect.filenames is not None:
                    assert served == sorted(expect.filenames), what
                if expect.sources:
                    assert headers["x-headwater-sources"].split(",") == list(expect.sources), what
                served_hashes = {f["hashes"]["sha256"] for f in page["files"]}
                for pinned in expect.hashes:  # a hash-pinned requirement still finds its file
                    assert realized.sha256[pinned] in served_hashes, what
                for file in page["files"][:2]:  # the files themselves come through too
                    file_url = urllib.parse.urljoin(url, file["url"])
                    file_status, _, data = get(file_url)
                    assert file_status == 200, f"{what}: {file_url}"
                    assert hashlib.sha256(data).hexdigest() == file["hashes"]["sha256"]
            elif expect.outcome == "not-found":
                assert status == 404, f"{what}: {status} {body[:500]!r}"
            else:
                assert status == 302, f"{what}: {status} {body[:500]!r}"
                location = urllib.parse.urljoin(url, headers["location"])
                final, final_headers, text = get(location)
                assert final == (503 if expect.refusal == "unavailable" else 409), what
                assert final_headers["x-headwater-refused"] == expect.refusal, what
                message = text.decode()
                assert normalize_name(expect.project) in message, message
                for source in expect.sources:
                    assert source in message, f"{what}: {source} not named in {message}"
                assert "To resolve:" in message
                # pip gets the same refusal as a 200 it warns about (see server/refusals.py)
                pip_status, pip_headers, _ = get(url, agent="pip/26.3 {}")
                assert pip_status == 200
                assert "headwater-refused=" in pip_headers["content-type"]


def _scenario(name: str) -> Scenario:
    path = next(p for p in SCENARIOS if p.stem == name)
    return load_scenario(path.read_text(), name=path.name)


def _pip_download(index: str, requirement: str, home: Path) -> subprocess.CompletedProcess[str]:
    python = make_venv(home / "venv")
    return subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "download",
            "--isolated",
            "--no-deps",
            "--disable-pip-version-check",
            "--retries",
            "0",
            "-d",
            str(home / "got"),
            "--index-url",
            index,
            requirement,
        ],
        capture_output=True,
        text=True,
        env=clean_env(home),
        timeout=180,
        check=False,
    )


def _uv_compile(
    uv: Path, index: str, requirement: str, home: Path
) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "in.txt").write_text(requirement + "\n")
    return subprocess.run(
        [
            str(uv),
            "pip",
            "compile",
            "--no-config",
            "--no-cache",
            "--python-version",
            "3.11",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--index-url",
            index,
            str(home / "in.txt"),
        ],
        capture_output=True,
        text=True,
        env=clean_env(home),
        timeout=180,
        check=False,
    )


def test_torchtriton_with_pip_and_uv(tmp_path: Path, uv: Path) -> None:
    """The private nightly build is what both installers get, though PyPI has 3.0.0."""
    with realize(_scenario("torchtriton"), tmp_path / "servers") as realized:
        pip = _pip_download(realized.index_url, "torchtriton", tmp_path / "pip")
        assert pip.returncode == 0, pip.stdout + pip.stderr
        got = [p.name for p in (tmp_path / "pip" / "got").iterdir()]
        assert got == ["torchtriton-2.0.0+0d7e753227-cp311-cp311-linux_x86_64.whl"], got
        compiled = _uv_compile(uv, realized.index_url, "torchtriton", tmp_path / "uv")
        assert compiled.returncode == 0, compiled.stderr
        assert "torchtriton==2.0.0+0d7e753227" in compiled.stdout, compiled.stdout


def test_birsan_refusals_reach_pip_and_uv_users(tmp_path: Path, uv: Path) -> None:
    """A deleted private project is not replaced by PyPI's 9999 copy, and the installers print
    the project, the sources and what to change."""
    with realize(_scenario("birsan"), tmp_path / "servers") as realized:
        pip = _pip_download(realized.index_url, "billing-client", tmp_path / "pip")
        assert pip.returncode != 0
        said = pip.stdout + pip.stderr
        assert "headwater-refused" in said, said
        for word in ("billing-client", "internal", "pypi", "To resolve", "headwater.toml"):
            assert word in said, f"{word!r} not in pip's output:\n{said}"
        compiled = _uv_compile(uv, realized.index_url, "billing-client", tmp_path / "uv")
        assert compiled.returncode != 0
        said = compiled.stdout + compiled.stderr
        assert "409" in said, said
        for word in ("billing-client", "internal", "pypi", "headwater.toml"):
            assert word in said, f"{word!r} not in uv's output:\n{said}"
