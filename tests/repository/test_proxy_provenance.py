"""PEP 740 provenance and the publisher guard in a caching proxy, against the real test upstream
over https serving real Sigstore-signed attestations (tests/data/provenance) and tampered copies.

Each proxy here is one "server"; two proxies over one storage stand for two servers sharing a
cache (a directory or a bucket): nothing either keeps in memory is needed for the other."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

from headwater.config import ConfigError, parse_config
from headwater.policy.held import held_reason
from headwater.provenance import TrustRoot, provenance_for_upload
from headwater.repository._egress import build_egress
from headwater.repository.base import SourceUnavailable
from headwater.repository.http import RetryPolicy
from headwater.repository.proxy import ProxySource
from headwater.repository.publishers import CacheLedger, rules_for
from headwater.simple.json import parse_project_page_json
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import NormalizedName
from headwater.storage import FileStorage
from headwater.storage.layout import file_url_from_project_page, provenance_key
from headwater.storage.s3 import S3Storage
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.aioserve import aiohttp_serving
from tests.provenance.assets import GITHUB_SDIST, GITLAB_SDIST, attestation, sha256, tampered
from tests.seaweed import SeaweedServer, s3_location
from tests.tls import self_signed

FAST = RetryPolicy(attempts=2, backoff=0.001, max_backoff=0.002)
PUBLIC = "https://pkgs.example/pypi"
GITHUB = NormalizedName("pypi-attestations")
GITLAB = NormalizedName("gitlab-oidc-project")
GITHUB_WHO = "GitHub trailofbits/pypi-attestations, workflow release.yml"
GITLAB_WHO = "GitLab facutuesca/gitlab-oidc-project, workflow .gitlab-ci.yml"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def gitlab_document() -> bytes:
    """The GitLab sdist's provenance document, as an index that verified its upload serves it."""
    field = json.dumps([attestation(GITLAB_SDIST)])
    return provenance_for_upload(
        field, GITLAB_SDIST.name, sha256(GITLAB_SDIST), TrustRoot()
    ).document


def corpus_of(directory: Path, documents: Mapping[Path, bytes | None]) -> Corpus:
    """A corpus of the real sdists in ``documents`` with those provenance documents (None: the
    file has none)."""
    directory.mkdir()
    for dist, document in documents.items():
        shutil.copyfile(dist, directory / dist.name)
        if document is not None:
            (directory / (dist.name + ".provenance")).write_bytes(document)
    return Corpus.from_directory(directory)


def pypis_document() -> bytes:
    return GITHUB_SDIST.with_name(GITHUB_SDIST.name + ".provenance").read_bytes()


@asynccontextmanager
async def upstream(corpus: Corpus, cert: tuple[Path, Path]) -> AsyncIterator[Upstream]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    async with Upstream(corpus, ssl=context) as up:
        yield up


def proxy_of(up: Upstream, root: Path, cert: tuple[Path, Path], **options: Any) -> ProxySource:
    egress = build_egress(up.simple_url, where="[proxy.pypi]", ca_bundle=str(cert[0]), environ={})
    options.setdefault("retry", FAST)
    options.setdefault("public_url", PUBLIC)
    return ProxySource("pypi", up.simple_url, FileStorage(root), egress=egress, timeout=5.0,
                       **options)  # fmt: skip


def continuity() -> Any:
    return rules_for(True, [], {})


async def page_of(proxy: ProxySource, name: NormalizedName) -> ProjectPage:
    page = await proxy.page(name, "json")
    assert page is not None
    return parse_project_page_json(page.body)


def served(page: ProjectPage) -> list[File]:
    """The files a page offers for download (a held release is either left off the page or
    listed yanked at a URL that refuses; neither is served)."""
    return [f for f in page.files if f.url.startswith("../../packages/") and not f.yanked]


def packages_path(sha: str, filename: str) -> str:
    return file_url_from_project_page(sha, filename).removeprefix("../../packages/")


def provenance_requests(up: Upstream) -> int:
    return sum(up.requests(p) for p in up.stats if p.endswith(".provenance"))


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_verified_provenance_is_kept_listed_under_local_urls_and_fetched_once(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    documents = {GITHUB_SDIST: pypis_document(), GITLAB_SDIST: gitlab_document()}
    corpus = corpus_of(tmp_path / "corpus", documents)

    async def t() -> None:
        async with upstream(corpus, cert) as up:
            first = proxy_of(up, tmp_path / "cache", cert)
            try:
                for name, dist in ((GITHUB, GITHUB_SDIST), (GITLAB, GITLAB_SDIST)):
                    page = await page_of(first, name)
                    [file] = page.files
                    version = file.filename.split("-")[1].removesuffix(".tar.gz")
                    # A local URL: the integrity route of this proxy, under its public URL.
                    assert file.provenance == (
                        f"{PUBLIC}/integrity/{name}/{version}/{dist.name}/provenance"
                    )
                    # The document is kept beside the file, byte for byte, and served there.
                    key = provenance_key(sha256(dist), dist.name)
                    assert (tmp_path / "cache" / key).read_bytes() == documents[dist]
                    ref = await first.file(packages_path(sha256(dist), dist.name) + ".provenance")
                    assert ref is not None
                    # The verified publisher is recorded per file.
                    records = json.loads(
                        (tmp_path / f"cache/state/pages/{name}/provenance.json").read_bytes()
                    )
                    assert records[dist.name]["sha256"] == sha256(dist)
                    assert records[dist.name]["refused"] is None
                    [publisher] = records[dist.name]["publishers"]
                    assert publisher["repository"] in (
                        "trailofbits/pypi-attestations",
                        "facutuesca/gitlab-oidc-project",
                    )
                    # The file itself downloads (checked against its sha256).
                    assert await first.file(packages_path(sha256(dist), dist.name)) is not None
                # The HTML page lists it too.
                html = await first.page(GITHUB, "html")
                assert html is not None and b"data-provenance=" in html.body
            finally:
                await first.aclose()
            assert provenance_requests(up) == 2
            # Another server sharing the storage: the records are there; nothing is fetched.
            second = proxy_of(up, tmp_path / "cache", cert)
            try:
                page = await page_of(second, GITHUB)
                assert page.files[0].provenance is not None
            finally:
                await second.aclose()
            assert provenance_requests(up) == 2
            # Without an https public URL, pages list no provenance (PEP 740: a secure origin);
            # the document is still kept and served.
            plain = proxy_of(up, tmp_path / "plain", cert, public_url="http://pkgs.example/p")
            try:
                page = await page_of(plain, GITHUB)
                assert page.files[0].provenance is None
                assert (
                    tmp_path / "plain" / provenance_key(sha256(GITHUB_SDIST), GITHUB_SDIST.name)
                ).exists()
            finally:
                await plain.aclose()

    run(t)


def _other_identity() -> bytes:
    # A real attestation under a bundle naming someone else (a document lying about who
    # published the file).
    document = json.loads(pypis_document())
    document["attestation_bundles"][0]["publisher"] = {
        "kind": "GitHub",
        "repository": "pypa/pip",
        "workflow": "release.yml",
    }
    return json.dumps(document).encode()


def _with(how: str) -> bytes:
    document = json.loads(pypis_document())
    document["attestation_bundles"][0]["attestations"] = [tampered(GITHUB_SDIST, how)]
    return json.dumps(document).encode()


TAMPERED: dict[str, Callable[[], bytes]] = {
    "wrong file digest": lambda: _with("statement digest changed"),
    "another identity": _other_identity,
    "truncated log entry": lambda: _with("log entry body truncated"),
    "changed signature": lambda: _with("signature changed"),
    "not json": lambda: b"{not json",
}


@pytest.mark.parametrize("how", list(TAMPERED))
def test_tampered_provenance_is_refused_logged_and_its_file_not_served(
    tmp_path: Path, cert: tuple[Path, Path], how: str, caplog: pytest.LogCaptureFixture
) -> None:
    corpus = corpus_of(tmp_path / "corpus", {GITHUB_SDIST: TAMPERED[how]()})

    async def t() -> None:
        async with upstream(corpus, cert) as up:
            proxy = proxy_of(up, tmp_path / "cache", cert)
            try:
                with caplog.at_level(logging.WARNING, logger="headwater.proxy"):
                    page = await page_of(proxy, GITHUB)
                # Left off the page, and not downloadable at its URL either.
                assert page.files == ()
                assert (
                    await proxy.file(packages_path(sha256(GITHUB_SDIST), GITHUB_SDIST.name)) is None
                )
                assert up.requests(f"/packages/{GITHUB_SDIST.name}") == 0
            finally:
                await proxy.aclose()
        logged = caplog.text
        assert "pypi_attestations-0.0.19.tar.gz does not verify" in logged, logged
        assert not (
            tmp_path / "cache" / provenance_key(sha256(GITHUB_SDIST), GITHUB_SDIST.name)
        ).exists()
        records = json.loads(
            (tmp_path / f"cache/state/pages/{GITHUB}/provenance.json").read_bytes()
        )
        assert records[GITHUB_SDIST.name]["refused"]

    run(t)


def test_a_document_that_cannot_be_fetched_is_tried_again_at_the_next_revalidation(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    corpus = corpus_of(tmp_path / "corpus", {GITHUB_SDIST: pypis_document()})
    clock = Clock()

    async def t() -> None:
        async with upstream(corpus, cert) as up:
            # The document fails (a 404, then 503s past the retry); the page itself is fine.
            up.add_fault("status", "*.provenance", status=404, times=1)
            proxy = proxy_of(up, tmp_path / "cache", cert, ttl=60, clock=clock)
            try:
                assert (await page_of(proxy, GITHUB)).files == ()
                up.add_fault("status", "*.provenance", status=503, times=2)
                clock.now += 61
                assert (await page_of(proxy, GITHUB)).files == ()
                clock.now += 61
                [file] = (await page_of(proxy, GITHUB)).files
                assert file.provenance is not None
            finally:
                await proxy.aclose()

    run(t)


def test_continuity_holds_an_unattested_release_until_accepted_on_any_server(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    corpus = corpus_of(tmp_path / "corpus", {GITHUB_SDIST: pypis_document()})
    corpus.add_release(GITHUB, "0.0.20", files=1)
    upstream_page = corpus.project_page(GITHUB, "https://x/")
    assert upstream_page is not None
    [new] = [f for f in upstream_page.files if "0.0.20" in f.filename]
    clock = Clock()

    def versions(page: ProjectPage) -> list[str]:
        return sorted(f.filename.split("-")[1].split(".tar")[0] for f in served(page))

    async def t() -> None:
        async with upstream(corpus, cert) as up:
            one = proxy_of(up, tmp_path / "cache", cert, ttl=60, clock=clock,
                           publisher_rules=continuity())  # fmt: skip
            two = proxy_of(up, tmp_path / "cache", cert, ttl=60, clock=clock,
                           publisher_rules=continuity())  # fmt: skip
            try:
                assert versions(await page_of(one, GITHUB)) == ["0.0.19"]
                # Held: not on the page, not downloadable by its URL.
                path = packages_path(new.hashes["sha256"], new.filename)
                assert await one.file(path) is None
                held = await one.guard.ledger.held()
                [record] = held[GITHUB]
                assert (record.version, record.reason) == ("0.0.20", "unattested")
                assert GITHUB_WHO in record.message
                assert "headwater provenance accept pypi pypi-attestations 0.0.20" in record.fix
                assert versions(await page_of(two, GITHUB)) == ["0.0.19"]
                # The operator accepts it through another server's storage view.
                assert (
                    await CacheLedger(FileStorage(tmp_path / "cache")).accept(GITHUB, "0.0.20")
                    == "0.0.20"
                )
                clock.now += 61  # both revalidate (304 from the upstream) and judge again
                assert versions(await page_of(one, GITHUB)) == ["0.0.19", "0.0.20"]
                assert versions(await page_of(two, GITHUB)) == ["0.0.19", "0.0.20"]
                assert await one.file(path) is not None
                assert await one.guard.ledger.held() == {}
                assert await one.guard.ledger.accepted() == {GITHUB: ["0.0.20"]}
            finally:
                await one.aclose()
                await two.aclose()

    run(t)


def test_another_identity_than_the_trusted_publisher_is_held_naming_both(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    corpus = corpus_of(tmp_path / "corpus", {GITLAB_SDIST: gitlab_document()})
    rules = rules_for(False, [], {"gitlab-oidc-project": ["github:facutuesca/gitlab-oidc-project"]})

    async def t() -> None:
        async with upstream(corpus, cert) as up:
            proxy = proxy_of(up, tmp_path / "cache", cert, publisher_rules=rules)
            try:
                assert served(await page_of(proxy, GITLAB)) == []
                [record] = (await proxy.guard.ledger.held())[GITLAB]
                assert record.reason == "unexpected-publisher"
                assert GITLAB_WHO in record.message
                assert "GitHub facutuesca/gitlab-oidc-project" in record.message
            finally:
                await proxy.aclose()

    run(t)


def test_no_guard_and_no_provenance_costs_nothing_and_changes_nothing(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    corpus = corpus_of(tmp_path / "corpus", {GITHUB_SDIST: None})
    corpus.add_release(GITHUB, "0.0.20", files=1)

    async def t() -> None:
        async with upstream(corpus, cert) as up:
            proxy = proxy_of(up, tmp_path / "cache", cert, publisher_rules=continuity())
            try:
                page = await page_of(proxy, GITHUB)
                assert len(page.files) == 2 and all(f.provenance is None for f in page.files)
                assert await proxy.guard.ledger.held() == {}
            finally:
                await proxy.aclose()
            assert provenance_requests(up) == 0
            assert not (tmp_path / f"cache/state/pages/{GITHUB}/provenance.json").exists()

    run(t)


def test_proxy_guard_settings_mirror_the_mirrors() -> None:
    def proxy(extra: str) -> Any:
        config = parse_config(
            f'[proxy.p]\nurl = "{{}}"\n{extra}'.replace("{}", "https://pypi.org/simple/")
        )
        return config.proxy["p"]

    assert proxy("").continuity and proxy("").guarded
    assert not proxy("publisher_continuity = false\n").guarded
    other = parse_config('[proxy.p]\nurl = "https://example.org/simple/"\n').proxy["p"]
    assert not other.continuity
    with pytest.raises(ConfigError, match="not-a-spec"):
        proxy('trusted_publishers = { "x" = ["not-a-spec"] }\n')
    with pytest.raises(ConfigError, match="is not a project name"):
        proxy('require_provenance = ["bad name!"]\n')
    assert msgspec.to_builtins(proxy('require_provenance = ["*"]\n').require_provenance) == ["*"]


def test_two_servers_on_one_bucket_share_records_holds_and_acceptances(
    tmp_path: Path, cert: tuple[Path, Path], seaweed: SeaweedServer, s3_bucket: str
) -> None:
    # The proxy cache in a real S3 bucket (SeaweedFS), two servers on it: the provenance is
    # fetched once, the hold is seen by both, and an acceptance written through either is read by
    # both at their next revalidation (nothing on one machine is needed).
    corpus = corpus_of(tmp_path / "corpus", {GITHUB_SDIST: pypis_document()})
    corpus.add_release(GITHUB, "0.0.20", files=1)
    clock = Clock()

    async def t() -> None:
        stores = [S3Storage(s3_location(seaweed, s3_bucket, "proxy/pypi/")) for _ in range(3)]
        async with upstream(corpus, cert) as up:
            egress = build_egress(
                up.simple_url, where="[proxy.pypi]", ca_bundle=str(cert[0]), environ={}
            )
            one, two = (
                ProxySource(
                    "pypi",
                    up.simple_url,
                    storage,
                    egress=egress,
                    timeout=5.0,
                    retry=FAST,
                    ttl=60,
                    clock=clock,
                    public_url=PUBLIC,
                    publisher_rules=continuity(),
                )
                for storage in stores[:2]
            )
            try:
                for proxy in (one, two):
                    listed = (await page_of(proxy, GITHUB)).files
                    [file] = [f for f in listed if held_reason(f) is None]
                    assert file.provenance is not None and "0.0.19" in file.filename
                    [held] = [f for f in listed if held_reason(f) is not None]
                    assert "0.0.20" in held.filename and held.yanked  # listed as held
                assert provenance_requests(up) == 1
                assert list(await one.guard.ledger.held()) == [GITHUB]
                assert list(await CacheLedger(stores[2]).held()) == [GITHUB]
                await two.guard.ledger.accept(GITHUB, "0.0.20")
                await CacheLedger(stores[2]).accept(GITHUB, "0.0.20")  # twice: nothing lost
                clock.now += 61
                for proxy in (one, two):
                    assert len((await page_of(proxy, GITHUB)).files) == 2
                assert await CacheLedger(stores[2]).held() == {}
                assert await CacheLedger(stores[2]).accepted() == {GITHUB: ["0.0.20"]}
            finally:
                await one.aclose()
                await two.aclose()
                for storage in stores:
                    await storage.aclose()

    run(t)


def test_a_file_cached_before_its_release_was_held_is_no_longer_served(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    # The guard turned on for a cache that already holds the release's file (cached while no
    # rule held it): the cached copy must not be served at its URL either.
    corpus = corpus_of(tmp_path / "corpus", {GITHUB_SDIST: pypis_document()})
    corpus.add_release(GITHUB, "0.0.20", files=1)

    async def t() -> None:
        async with upstream(corpus, cert) as up:
            before = proxy_of(up, tmp_path / "cache", cert)
            try:
                page = await page_of(before, GITHUB)
                [new] = [f for f in page.files if "0.0.20" in f.filename]
                path = new.url.removeprefix("../../packages/")
                ref = await before.file(path)
                assert ref is not None
                if ref.stream is not None:
                    async for _ in ref.stream:
                        pass
                    await ref.stream.aclose()
                assert (tmp_path / "cache/web/packages" / path).exists()
            finally:
                await before.aclose()
            guarded = proxy_of(up, tmp_path / "cache", cert, publisher_rules=continuity())
            try:
                assert [f.filename for f in served(await page_of(guarded, GITHUB))] == [
                    GITHUB_SDIST.name
                ]
                assert await guarded.file(path) is None
                assert not (tmp_path / "cache/web/packages" / path).exists()
            finally:
                await guarded.aclose()

    run(t)


def test_a_file_cached_before_its_provenance_was_refused_is_no_longer_served(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    corpus = corpus_of(tmp_path / "corpus", {GITHUB_SDIST: TAMPERED["wrong file digest"]()})
    dist = corpus.file(GITHUB_SDIST.name)
    assert dist is not None
    document, dist.provenance = dist.provenance, None  # listed without provenance at first
    clock = Clock()
    path = packages_path(sha256(GITHUB_SDIST), GITHUB_SDIST.name)

    async def t() -> None:
        async with upstream(corpus, cert) as up:
            proxy = proxy_of(up, tmp_path / "cache", cert, ttl=60, clock=clock)
            try:
                assert len((await page_of(proxy, GITHUB)).files) == 1
                ref = await proxy.file(path)
                assert ref is not None
                if ref.stream is not None:
                    async for _ in ref.stream:
                        pass
                    await ref.stream.aclose()
                assert (tmp_path / "cache/web/packages" / path).exists()
                dist.provenance = document  # now listed, and it does not verify
                corpus.add_release(GITHUB, "0.0.21", files=1)  # a new page (and ETag)
                clock.now += 61
                names = [f.filename for f in (await page_of(proxy, GITHUB)).files]
                assert names == ["pypi_attestations-0.0.21-py3-none-any.whl"]
                assert not (tmp_path / "cache/web/packages" / path).exists()
                # (The file's bytes this process read in the last second are re-checked with the
                # storage after a second, as after any eviction.)
                await asyncio.sleep(1.1)
                assert await proxy.file(path) is None
            finally:
                await proxy.aclose()

    run(t)


def test_an_unreadable_trust_root_refuses_the_page_naming_the_file(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    corpus = corpus_of(tmp_path / "corpus", {GITHUB_SDIST: pypis_document()})
    missing = tmp_path / "no-such-root.json"

    async def t() -> None:
        async with upstream(corpus, cert) as up:
            proxy = proxy_of(up, tmp_path / "cache", cert, trusted_root=str(missing))
            try:
                with pytest.raises(SourceUnavailable) as info:
                    await proxy.page(GITHUB, "json")
                message = str(info.value)
                assert str(missing) in message and "trusted_root" in message, message
            finally:
                await proxy.aclose()

    run(t)


def test_a_provenance_url_outside_the_fetch_boundary_is_never_fetched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A hostile upstream lists provenance at an address the proxy must not reach (the cloud's
    # metadata service): refused before any connection, logged, the file left off the page.
    body = GITHUB_SDIST.read_bytes()
    page = {
        "meta": {"api-version": "1.3"},
        "name": GITHUB,
        "files": [
            {
                "filename": GITHUB_SDIST.name,
                "url": f"/files/{GITHUB_SDIST.name}",
                "hashes": {"sha256": sha256(GITHUB_SDIST)},
                "size": len(body),
                "provenance": "https://169.254.169.254/latest/meta-data/",
            }
        ],
    }

    async def project(request: web.Request) -> web.Response:
        return web.Response(
            body=json.dumps(page).encode(), content_type="application/vnd.pypi.simple.v1+json"
        )

    async def t() -> None:
        app = web.Application()
        app.router.add_get(f"/simple/{GITHUB}/", project)
        async with aiohttp_serving(app) as url:
            proxy = ProxySource("pypi", url, FileStorage(tmp_path / "cache"), retry=FAST,
                                timeout=5.0, public_url=PUBLIC)  # fmt: skip
            try:
                with caplog.at_level(logging.WARNING, logger="headwater.proxy"):
                    assert (await page_of(proxy, GITHUB)).files == ()
            finally:
                await proxy.aclose()
        assert "cannot fetch the provenance of pypi_attestations-0.0.19.tar.gz" in caplog.text
        assert "169.254.169.254" in caplog.text

    run(t)
