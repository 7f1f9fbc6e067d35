"""Hosted indexes end to end: the real ``headwater serve`` on embedded defaults (SQLite, a data
directory, the hosted index ``main``), real twine uploading, real pip and uv installing, pypi-simple
reading, and the uploads and calls it must refuse."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest
from pypi_simple import PyPISimple, UnexpectedRepoVersionWarning

from headwater.simple.json import parse_project_list_json, parse_project_page_json
from headwater.simple.model import ProjectPage
from tests.clients import installed_version, pip_install, uv_install
from tests.server.hosting import (
    Reply,
    api,
    cli,
    dists,
    post_upload,
    request,
    twine,
    upload_form,
)
from tests.server.live import Live, serve

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


@dataclass
class Hosted:
    live: Live
    data: Path
    admin: str
    work: Path

    @property
    def upload_url(self) -> str:
        return self.live.url + "/main/legacy/"

    def token(self, user: str, *scope: str, project: str | None = None) -> str:
        args = ["token", "create", "--data-dir", str(self.data), "--user", user]
        for each in scope or ("upload",):
            args += ["--scope", each]
        if project:
            args += ["--project", project]
        return cli(*args).stdout.strip()

    def page(self, project: str) -> Reply:
        return request(f"{self.live.url}/main/simple/{project}/", headers=JSON)

    def settled_page(self, project: str, done: Callable[[ProjectPage], bool]) -> ProjectPage:
        """The project's JSON page once ``done`` holds: with two worker processes, the one that
        did not make a change sees it within ``revalidate`` (1 s)."""
        deadline = time.monotonic() + 5
        while True:
            page = parse_project_page_json(self.page(project).body)
            if done(page) or time.monotonic() > deadline:
                return page
            time.sleep(0.1)

    def stored(self) -> list[str]:
        return sorted(p.name for p in (self.data / "hosted").rglob("*") if p.is_file())

    def spool_is_empty(self) -> bool:
        uploads = self.data / "run" / "uploads"
        return not uploads.exists() or not any(uploads.iterdir())


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    work = tmp_path_factory.mktemp("hosted")
    data = work / "headwater-data"
    (work / "headwater.toml").write_text("[hosted.main]\nmax_upload_size = 1000000\n")
    with serve(["--workers", "2", "--data-dir", str(data)], work) as live:
        token = (data / "admin-token").read_text().strip()
        assert oct((data / "admin-token").stat().st_mode & 0o777) == "0o600"
        assert "first start: user 'admin' created" in live.output()
        yield Hosted(live, data, token, work)


@pytest.mark.slow
def test_twine_upload_then_pip_and_uv_install(hosted: Hosted, tmp_path: Path, uv: Path) -> None:
    files = dists(tmp_path / "dist", "Hello_World", "1.0")
    done = twine(hosted.upload_url, hosted.admin, files)
    assert done.returncode == 0, done.stdout + done.stderr
    page = parse_project_page_json(hosted.page("hello-world").body)
    assert sorted(f.filename for f in page.files) == sorted(p.name for p in files)
    for file, path in zip(sorted(page.files, key=lambda f: f.filename), sorted(files), strict=True):
        assert file.hashes["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert file.size == path.stat().st_size  # PEP 700
        assert file.upload_time is not None
    wheel = next(f for f in page.files if f.filename.endswith(".whl"))
    assert isinstance(wheel.core_metadata, dict)  # PEP 658, from the wheel itself
    metadata = request(urljoin(f"{hosted.live.url}/main/simple/hello-world/", wheel.metadata_url))
    assert metadata.status == 200
    assert hashlib.sha256(metadata.body).hexdigest() == wheel.core_metadata["sha256"]
    python = pip_install(hosted.live.url + "/simple/", "hello-world", tmp_path / "pip")
    assert installed_version(python, "hello_world") == "1.0"
    python = uv_install(uv, hosted.live.url + "/main/simple/", "hello-world", tmp_path / "uv")
    assert installed_version(python, "hello_world") == "1.0"


def test_u9_reupload_identical_is_a_no_op_and_skip_existing_works(
    hosted: Hosted, tmp_path: Path, twine6: Path
) -> None:
    files = dists(tmp_path / "a", "reup", "1.0")
    assert twine(hosted.upload_url, hosted.admin, files).returncode == 0
    serial = int(hosted.page("reup").headers["x-pypi-last-serial"])
    again = twine(hosted.upload_url, hosted.admin, files)
    assert again.returncode == 0, again.stdout + again.stderr
    # Same filename, other content: refused with PyPI's words, and --skip-existing skips it.
    other = dists(tmp_path / "b", "reup", "1.0")
    other[0].write_bytes(other[0].read_bytes() + b"\0")  # still a zip: trailing bytes are allowed
    refused = twine(hosted.upload_url, hosted.admin, other[:1])
    assert refused.returncode != 0
    assert "File already exists" in refused.stdout + refused.stderr
    skipped = twine(hosted.upload_url, hosted.admin, other[:1], "--skip-existing", program=twine6)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "Skipping" in skipped.stdout + skipped.stderr
    assert int(hosted.page("reup").headers["x-pypi-last-serial"]) == serial


def test_pep740_attestations_are_refused_with_pypis_text(hosted: Hosted, tmp_path: Path) -> None:
    # PEP 740: the index MUST verify each attestation or reject the upload: real twine
    # --attestations with an attestation that does not verify (hand-made, beside the wheel)
    # gets PyPI's 400 and nothing is stored (real signed ones: test_upload_provenance.py).
    wheel, _ = dists(tmp_path / "dist", "attested", "1.0")
    attestation = wheel.with_name(wheel.name + ".publish.attestation")
    attestation.write_text(
        json.dumps(
            {
                "version": 1,
                "verification_material": {"certificate": "AAAA", "transparency_entries": [{}]},
                "envelope": {"statement": "AAAA", "signature": "AAAA"},
            }
        )
    )
    before = hosted.stored()
    done = twine(hosted.upload_url, hosted.admin, [wheel, attestation], "--attestations")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "400" in output
    assert "Invalid attestations supplied during upload" in output, output
    assert hosted.page("attested").status == 404
    assert hosted.stored() == before and hosted.spool_is_empty()
    # The same file without attestations is accepted.
    assert twine(hosted.upload_url, hosted.admin, [wheel]).returncode == 0


def test_pypi_simple_reads_every_page(hosted: Hosted, tmp_path: Path) -> None:
    assert (
        twine(hosted.upload_url, hosted.admin, dists(tmp_path, "readable", "2.0")).returncode == 0
    )
    with PyPISimple(hosted.live.url + "/main/simple/") as client:
        # Every page of a hosted index is API 1.5 (PEP 752 namespaces), its project list too;
        # pypi-simple knows 1.4 and, as the spec asks of clients, warns about a newer minor
        # version and reads on.
        with pytest.warns(UnexpectedRepoVersionWarning, match=r"\(1\.5\)"):
            index = client.get_index_page()
        assert "readable" in index.projects
        for project in index.projects:
            with pytest.warns(UnexpectedRepoVersionWarning, match=r"\(1\.5\)"):
                page = client.get_project_page(project)
            assert page.packages, project
            for package in page.packages:
                assert package.digests["sha256"]


@pytest.mark.parametrize(
    ("case", "status", "phrase"),
    [
        ("no-credentials", 403, "Invalid or non-existent authentication information"),
        ("bad-token", 403, "Invalid or non-existent authentication information"),
        ("token-for-another-project", 403, "cannot upload to project 'victim'"),
        ("token-for-another-index", 403, "cannot upload to 'main'"),
        ("name-mismatch", 400, "is not the project in the file"),
        ("version-mismatch", 400, "is not the version in the file"),
        ("traversal-filename", 400, "Invalid distribution filename"),
        ("non-normalized-filename", 400, "the filename is not normalized"),
        ("wrong-digest", 400, "does not match a digest calculated"),
        ("missing-digest", 400, "Include at least one message digest"),
        ("corrupt-archive", 400, "corrupt zip archive"),
        ("zip-bomb", 400, "zip bomb"),
        ("oversized", 413, "too large"),
        ("submit-action", 410, "no longer required or supported"),
    ],
)
def test_hostile_uploads_are_refused_and_nothing_is_stored(
    hosted: Hosted, tmp_path: Path, case: str, status: int, phrase: str
) -> None:
    wheel, _ = dists(tmp_path, "victim", "1.0")
    before = hosted.stored()
    token: str | None = hosted.admin
    overrides: dict[str, str | None] = {}
    if case == "no-credentials":
        token = None
    elif case == "bad-token":
        token = "hw_0000000000000000_" + "x" * 43
    elif case == "token-for-another-project":
        token = hosted.token("mallory", project="someone-else")
    elif case == "token-for-another-index":
        token = cli(
            "token", "create", "--data-dir", str(hosted.data), "--user", "mallory",
            "--scope", "upload", "--index", "staging",
        ).stdout.strip()  # fmt: skip
    elif case == "name-mismatch":
        overrides["name"] = "other-project"
    elif case == "version-mismatch":
        overrides["version"] = "9.9"
    elif case == "traversal-filename":
        overrides["filename"] = "../../victim-1.0-py3-none-any.whl"
    elif case == "non-normalized-filename":
        renamed = tmp_path / "Victim-1.0-py3-none-any.whl"
        wheel.rename(renamed)
        wheel = renamed
    elif case == "wrong-digest":
        overrides["sha256_digest"] = "0" * 64
    elif case == "missing-digest":
        overrides["sha256_digest"] = None
    elif case == "corrupt-archive":
        wheel.write_bytes(b"PK\x03\x04 this is not a zip")
        overrides["sha256_digest"] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    elif case == "zip-bomb":
        # A valid wheel with one extra member that expands 1000x to 150 MB.
        with zipfile.ZipFile(wheel, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("victim/padding.bin", b"\0" * 150_000_000)
        overrides["sha256_digest"] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    elif case == "oversized":
        wheel.write_bytes(wheel.read_bytes() + b"\0" * 1_050_000)
        overrides["sha256_digest"] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    elif case == "submit-action":
        overrides[":action"] = "submit"
    reply = post_upload(hosted.upload_url, token, wheel, **overrides)
    assert reply.status == status, reply.text
    assert phrase.lower() in reply.text.lower()
    assert hosted.stored() == before
    assert hosted.spool_is_empty()
    assert hosted.page("victim").status == 404
    assert request(hosted.live.url + "/health").status == 200  # and the server keeps serving


def test_tokens_are_scoped_to_projects_and_owners(hosted: Hosted, tmp_path: Path) -> None:
    alice = hosted.token("alice")
    assert (
        twine(hosted.upload_url, alice, dists(tmp_path / "a", "alices-tool", "1.0")).returncode == 0
    )
    bob = hosted.token("bob")
    wheel = dists(tmp_path / "b", "alices-tool", "1.1")[0]
    reply = post_upload(hosted.upload_url, bob, wheel)
    assert reply.status == 403 and "isn't allowed to upload" in reply.text
    # A token limited to another project cannot upload this one, even for its owner.
    narrow = hosted.token("alice", project="something-else")
    reply = post_upload(hosted.upload_url, narrow, wheel)
    assert reply.status == 403 and "alices-tool" in reply.text
    # Once alice makes bob an owner, he can.
    owner = api(
        f"{hosted.live.url}/api/main/projects/alices-tool/owners/bob",
        "PUT",
        hosted.token("alice", "manage"),
    )
    assert owner.status == 200, owner.text
    assert post_upload(hosted.upload_url, bob, wheel).status == 200
    # PEP 708: an owner says where else the project lives; the page carries it.
    where = ["https://pypi.example.org/simple/alices-tool/"]
    alternates = api(
        f"{hosted.live.url}/api/main/projects/alices-tool/alternate-locations",
        "PUT",
        hosted.token("alice", "manage"),
        {"urls": where},
    )
    assert alternates.status == 200, alternates.text
    page = hosted.settled_page("alices-tool", lambda p: bool(p.alternate_locations))
    assert list(page.alternate_locations) == where


def test_a_non_owner_cannot_reupload_an_identical_file(hosted: Hosted, tmp_path: Path) -> None:
    """Ownership is decided before "the same file is there already: OK" (PyPI's order)."""
    files = dists(tmp_path, "kept-tool", "1.0")
    owner = hosted.token("olivia")
    assert twine(hosted.upload_url, owner, files).returncode == 0
    stranger = hosted.token("sam")
    refused = twine(hosted.upload_url, stranger, files)
    assert refused.returncode != 0 and "403" in refused.stdout + refused.stderr
    reply = post_upload(hosted.upload_url, stranger, files[0])
    assert reply.status == 403 and "isn't allowed to upload to project 'kept-tool'" in reply.text
    # The owner's re-upload of the same bytes stays the no-op twine relies on.
    again = post_upload(hosted.upload_url, owner, files[0])
    assert again.status == 200 and "already uploaded" in again.text


def test_upload_credentials_as_pypi_takes_them(hosted: Hosted, tmp_path: Path) -> None:
    token = hosted.token("uma")
    wheel, sdist = dists(tmp_path, "cred-tool", "1.0")
    # A user name other than __token__ with a token: refused, naming the fix (PyPI refuses too).
    named = twine(hosted.upload_url, token, [wheel], user="uma")
    assert named.returncode != 0 and "403" in named.stdout + named.stderr
    said = " ".join((named.stdout + named.stderr).split())  # rich wraps long lines
    assert "user name must be __token__" in said and "use -u __token__" in said
    # Bearer, as other registries take it, works like Basic __token__.
    body, content_type = upload_form(wheel)
    bearer = request(
        hosted.upload_url,
        method="POST",
        body=body,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"},
    )
    assert bearer.status == 200, bearer.text
    assert twine(hosted.upload_url, token, [sdist]).returncode == 0
    # No credentials: PyPI's 403 and text, no challenge (twine never answers one).
    anonymous = post_upload(hosted.upload_url, None, wheel)
    assert anonymous.status == 403 and "www-authenticate" not in anonymous.headers
    assert "Invalid or non-existent authentication information" in anonymous.text


def test_pep752_namespace_uploads_by_others_get_409(hosted: Hosted, tmp_path: Path) -> None:
    hosted.token("carol")  # creates the user
    cli("namespace", "grant", "main", "acme", "--owner", "carol", "--data-dir", str(hosted.data))
    dave = hosted.token("dave")
    reply = post_upload(hosted.upload_url, dave, dists(tmp_path / "d", "Acme.Foo", "1.0")[0])
    assert reply.status == 409 and "acme" in reply.text
    # PEP 752: the grant covers "acme" and "acme-*", not "acmefoo".
    assert (
        post_upload(hosted.upload_url, dave, dists(tmp_path / "e", "acmefoo", "1.0")[0]).status
        == 200
    )
    carol = hosted.token("carol")
    assert (
        post_upload(hosted.upload_url, carol, dists(tmp_path / "f", "acme-foo", "1.0")[0]).status
        == 200
    )
    # JSON 1.5: project pages say which namespace covers them, and whether its grantee owns them.
    covered = json.loads(hosted.page("acme-foo").body)
    assert covered["meta"]["api-version"] == "1.5"
    assert covered["namespaces"] == [{"name": "acme", "owned": True}]
    outside = json.loads(hosted.page("acmefoo").body)
    assert outside["namespaces"] is None
    listed = json.loads(request(hosted.live.url + "/main/namespaces").body)
    assert listed == [{"name": "acme"}]
    detail = json.loads(request(hosted.live.url + "/main/namespace/acme").body)
    assert detail["owner"] == "carol"


def test_yank_status_and_delete_through_the_api(hosted: Hosted, tmp_path: Path) -> None:
    files = dists(tmp_path, "managed", "1.0")
    assert twine(hosted.upload_url, hosted.admin, files).returncode == 0
    base = f"{hosted.live.url}/api/main/projects/managed"
    erin = hosted.token("erin", "manage")
    assert api(base + "/yank", "POST", erin, {"version": "1.0"}).status == 403  # not an owner
    yanked = api(base + "/yank", "POST", hosted.admin, {"version": "1.0", "reason": "broken build"})
    assert yanked.status == 200, yanked.text
    page = hosted.settled_page("managed", lambda p: all(f.yanked for f in p.files))
    assert all(f.yanked and f.yanked_reason == "broken build" for f in page.files)
    assert (
        api(
            base + "/status", "PUT", hosted.admin, {"status": "quarantined", "reason": "malware?"}
        ).status
        == 200
    )
    page = hosted.settled_page("managed", lambda p: p.status.value == "quarantined")
    assert page.files == () and page.status.value == "quarantined"  # PEP 792
    time.sleep(1.2)  # past the revalidation window, every worker has seen the change
    listing = parse_project_list_json(request(hosted.live.url + "/main/simple/", headers=JSON).body)
    assert "managed" not in {p.normalized for p in listing.projects}  # item 61
    assert api(base + "/status", "PUT", hosted.admin, {"status": "archived"}).status == 200
    reply = post_upload(hosted.upload_url, hosted.admin, dists(tmp_path / "n", "managed", "1.1")[0])
    assert reply.status == 400 and "archived" in reply.text
    assert (
        api(base + "/tracks", "PUT", erin, {"urls": ["https://pypi.org/simple/managed/"]}).status
        == 403
    )
    deleted = api(f"{base}/files/{files[0].name}", "DELETE", hosted.admin)
    assert deleted.status == 200, deleted.text
    assert files[0].name not in hosted.stored()
    reused = post_upload(hosted.upload_url, hosted.admin, files[0])
    assert reused.status == 400  # a deleted filename is never reused


def test_unyank_delete_release_and_project_and_tracks_through_the_api(
    hosted: Hosted, tmp_path: Path
) -> None:
    old = dists(tmp_path / "1", "lifecycle", "1.0")
    new = dists(tmp_path / "2", "lifecycle", "2.0")
    assert twine(hosted.upload_url, hosted.admin, [*old, *new]).returncode == 0
    owner = hosted.token("frank", "manage", project="lifecycle")
    assert api(f"{hosted.live.url}/api/main/projects/lifecycle/owners/frank", "PUT",
               hosted.admin).status == 200  # fmt: skip
    base = f"{hosted.live.url}/api/main/projects/lifecycle"

    def versions(page: ProjectPage) -> set[str]:
        return {f.filename.split("-")[1].removesuffix(".tar.gz") for f in page.files}

    # Yank and unyank by an owner, over HTTP.
    assert api(base + "/yank", "POST", owner, {"version": "1.0", "reason": "bad"}).status == 200
    page = hosted.settled_page("lifecycle", lambda p: any(f.yanked for f in p.files))
    assert {f.filename for f in page.files if f.yanked} == {p.name for p in old}
    unyanked = api(base + "/unyank", "POST", owner, {"version": "1.0"})
    assert unyanked.status == 200, unyanked.text
    page = hosted.settled_page("lifecycle", lambda p: not any(f.yanked for f in p.files))
    assert not any(f.yanked for f in page.files) and versions(page) == {"1.0", "2.0"}
    # PEP 708: tracks is the operator's (admin), not an owner's.
    tracked = ["https://pypi.org/simple/lifecycle/"]
    assert api(base + "/tracks", "PUT", owner, {"urls": tracked}).status == 403
    assert api(base + "/tracks", "PUT", hosted.admin, {"urls": tracked}).status == 200
    page = hosted.settled_page("lifecycle", lambda p: bool(p.tracks))
    assert list(page.tracks) == tracked
    # Deleting a release removes its files and their blobs; the other release stays.
    gone = api(base + "/releases/1.0", "DELETE", owner)
    assert gone.status == 200 and json.loads(gone.body)["result"] == {"deleted": 2}, gone.text
    page = hosted.settled_page("lifecycle", lambda p: versions(p) == {"2.0"})
    assert versions(page) == {"2.0"}
    assert not {p.name for p in old} & set(hosted.stored())
    assert {p.name for p in new} <= set(hosted.stored())
    # Deleting the project removes the rest; its name stays held (no page, no reuse of files).
    dropped = api(base, "DELETE", owner)
    assert dropped.status == 200, dropped.text
    time.sleep(1.2)  # past the revalidation window, every worker has seen the change
    assert [hosted.page("lifecycle").status for _ in range(4)] == [404] * 4
    assert not {p.name for p in new} & set(hosted.stored())
    reused = post_upload(hosted.upload_url, hosted.admin, new[0])
    assert reused.status == 400 and "already been used" in reused.text
    assert new[0].name not in hosted.stored()  # the refused upload's blob is removed again
    assert hosted.spool_is_empty()


def test_an_interrupted_upload_leaves_nothing_behind(hosted: Hosted, tmp_path: Path) -> None:
    wheel, _ = dists(tmp_path, "cut-short", "1.0")
    with zipfile.ZipFile(wheel, "a") as archive:  # big enough to arrive in several pieces
        archive.writestr("cut_short/noise.bin", os.urandom(600_000))
    body, content_type = upload_form(wheel)
    before = hosted.stored()
    host, port = hosted.live.url.removeprefix("http://").split(":")
    auth = base64.b64encode(f"__token__:{hosted.admin}".encode()).decode()
    head = (
        f"POST /main/legacy/ HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Basic {auth}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + body[: len(body) // 2])
        time.sleep(0.5)  # the server has spooled what arrived
    # The client is gone mid-body: the spool file goes, nothing is stored, no page appears.
    deadline = time.monotonic() + 5
    while not hosted.spool_is_empty() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hosted.spool_is_empty()
    assert hosted.stored() == before
    assert hosted.page("cut-short").status == 404
    assert request(hosted.live.url + "/health").status == 200
    # The same file, sent whole, is accepted: nothing of the first attempt is in the way.
    assert post_upload(hosted.upload_url, hosted.admin, wheel).status == 200


def test_metrics_count_uploads(hosted: Hosted) -> None:
    text = request(hosted.live.url + "/metrics").text
    assert 'headwater_uploads_total{index="main",result="created"}' in text
