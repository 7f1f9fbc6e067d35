"""Fixtures for the server tests: a mirrored tree built once per module."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from headwater.repository.http import HttpRepository, RetryPolicy, client_session
from headwater.storage import FileStorage
from headwater.sync.engine import Mirror
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream


def build_tree(root: Path, corpus: Corpus) -> None:
    """Mirror ``corpus`` (through the test upstream) into a tree at ``root``."""

    async def go() -> None:
        async with Upstream(corpus) as up, client_session(connections=8) as session:
            repo = HttpRepository(
                up.simple_url, session, retry=RetryPolicy(attempts=2, backoff=0.01)
            )
            summary = await Mirror(repo, FileStorage(root), workers=4).run()
            assert summary.ok, summary.failed

    asyncio.run(go())


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus.generate(4, releases=2, files=2, seed=404)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, corpus: Corpus) -> Path:
    root = tmp_path_factory.mktemp("served-tree")
    build_tree(root, corpus)
    return root
