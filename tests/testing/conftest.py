"""Fixtures: a running test upstream (background thread) and an aiohttp client helper."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"


class Response:
    """What the client saw."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


async def afetch(
    url: str, *, method: str = "GET", headers: dict[str, str] | None = None, data: Any = None
) -> Response:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, url, headers=headers, data=data, allow_redirects=False, auto_decompress=False
        ) as resp,
    ):
        return Response(resp.status, resp.headers, await resp.read())


def fetch(url: str, **kwargs: Any) -> Response:
    """One request with aiohttp (no redirects followed)."""
    return asyncio.run(afetch(url, **kwargs))


@pytest.fixture
def corpus() -> Corpus:
    return Corpus.generate(200, 3, 3, seed=11)


@pytest.fixture
def upstream(corpus: Corpus) -> Iterator[Upstream]:
    with Upstream(corpus).running() as up:
        yield up


@pytest.fixture
def name(corpus: Corpus) -> str:
    return corpus.project_list().projects[150].normalized
