"""A handler that raises inside the test upstream answers 500 naming the error, never a silent
400 that reads as the client's fault (a corpus subclass whose ``project_page`` lacked a new keyword
made every page 400, and a check test saw "HTTP 400 Bad Request" instead of the TypeError)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from headwater.simple.model import ProjectPage
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream


class _Outdated(Corpus):
    def project_page(self, name: str, base_url: str) -> ProjectPage | None:  # type: ignore[override]
        return super().project_page(name, base_url)


def test_a_failing_handler_answers_500_with_the_error() -> None:
    corpus = _Outdated(releases=1, files=1)
    corpus.add_release("demo", "1.0")
    with Upstream(corpus).running() as upstream:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(upstream.simple_url + "demo/", timeout=10)
        with caught.value:  # the error holds the connection: close it (no ResourceWarning)
            assert caught.value.code == 500
            assert b"TypeError" in caught.value.read()
