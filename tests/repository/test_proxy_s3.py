"""A caching proxy whose cache is an S3 bucket (a real SeaweedFS): pages and files are cached in
the bucket, concurrent cold requests make one download, a second proxy process sharing the
bucket serves from it without asking the upstream, and ``max_size`` evicts on S3 too."""

from __future__ import annotations

import asyncio
import hashlib

from headwater.repository.proxy import ProxySource
from headwater.storage.s3 import S3Storage
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.repository.test_proxy import FAST, file_requests, model, packages_path, read
from tests.seaweed import SeaweedServer, s3_location


def _proxy(url: str, storage: S3Storage, **options: object) -> ProxySource:
    return ProxySource("pypi", url, storage, retry=FAST, timeout=5.0, **options)  # type: ignore[arg-type]


def test_cache_in_a_bucket_is_shared_and_downloads_once(
    seaweed: SeaweedServer, s3_bucket: str
) -> None:
    corpus = Corpus.generate(2, releases=1, files=1, seed=21)
    name = corpus.project_list().projects[0].normalized

    async def t() -> None:
        one = S3Storage(s3_location(seaweed, s3_bucket, "proxy/pypi/"))
        two = S3Storage(s3_location(seaweed, s3_bucket, "proxy/pypi/"))
        async with Upstream(corpus) as up:
            first = _proxy(up.simple_url, one)
            second = _proxy(up.simple_url, two)
            try:
                file = (await model(first, name)).files[0]
                up.add_fault("delay", "/packages/*", delay=0.2)

                async def fetch() -> bytes:
                    ref = await first.file(packages_path(file))
                    assert ref is not None
                    return await read(ref)

                bodies = await asyncio.gather(*(fetch() for _ in range(10)))
                assert {hashlib.sha256(b).hexdigest() for b in bodies} == {file.hashes["sha256"]}
                assert file_requests(up) == 1
                key = "web/packages/" + packages_path(file)
                assert await one.read_bytes(key) == bodies[0]  # in the bucket, whole
                # Another process on the same bucket: the file comes from the cache.
                page = await model(second, name)
                ref = await second.file(packages_path(page.files[0]))
                assert ref is not None and ref.stream is None
                assert await read(ref) == bodies[0]
                assert file_requests(up) == 1
            finally:
                await first.aclose()
                await second.aclose()
                await one.aclose()
                await two.aclose()

    asyncio.run(t())


def test_max_size_evicts_on_s3(seaweed: SeaweedServer, s3_bucket: str) -> None:
    corpus = Corpus.generate(6, releases=1, files=1, seed=22)

    async def t() -> None:
        storage = S3Storage(s3_location(seaweed, s3_bucket, "capped/"))
        async with Upstream(corpus) as up:
            sizes = []
            for entry in corpus.project_list().projects:
                page = corpus.project_page(entry.normalized, up.url)
                assert page is not None
                sizes.append(page.files[0].size or 0)
            cap = sum(sizes) // 2
            proxy = _proxy(up.simple_url, storage, max_size=cap)
            try:
                for entry in corpus.project_list().projects:
                    file = (await model(proxy, entry.normalized)).files[0]
                    ref = await proxy.file(packages_path(file))
                    assert ref is not None
                    await read(ref)

                async def cached_bytes() -> int:
                    total = 0
                    async for key in storage.iter_keys("web/packages"):
                        st = await storage.stat(key)
                        total += st.size if st is not None else 0
                    return total

                # Eviction runs in the download's task, after the reader got its last byte.
                deadline = asyncio.get_running_loop().time() + 20
                while (total := await cached_bytes()) > cap:
                    assert asyncio.get_running_loop().time() < deadline, (total, cap)
                    await asyncio.sleep(0.2)
                assert total > 0
            finally:
                await proxy.aclose()
                await storage.aclose()

    asyncio.run(t())
