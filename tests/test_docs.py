"""The docs cannot drift from the code: every config option is documented, and every TOML example
in the docs is accepted by the real config loader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from headwater.config import MirrorConfig, parse_config

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_mirror_option_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    for field in MirrorConfig.__struct_fields__:
        assert f"| `{field}` |" in text, f"docs/configuration.md does not document {field}"


def test_every_status_option_is_documented() -> None:
    from headwater.config.status import StatusSettings

    text = (DOCS / "configuration.md").read_text()
    for field in StatusSettings.__struct_fields__:
        assert f"| `{field}` |" in text, f"docs/configuration.md does not document {field}"


@pytest.mark.parametrize("doc", ["configuration.md", "mirror.md"])
def test_toml_examples_are_accepted(doc: str) -> None:
    examples = re.findall(r"```toml\n(.*?)```", (DOCS / doc).read_text(), flags=re.DOTALL)
    for example in examples:
        assert parse_config(example, source=doc).mirror


def test_every_egress_option_is_documented_for_mirrors_and_proxies() -> None:
    from headwater.config.egress import EgressSettings
    from headwater.config.settings import ProxySettings

    text = (DOCS / "configuration.md").read_text()
    for field in EgressSettings.__struct_fields__:
        assert f"| `{field}` |" in text, f"docs/configuration.md does not document {field}"
        assert field in ProxySettings.__struct_fields__  # the same options in [proxy.NAME]


def test_proxy_doc_examples_are_accepted() -> None:
    examples = re.findall(r"```toml\n(.*?)```", (DOCS / "proxy.md").read_text(), flags=re.DOTALL)
    assert len(examples) >= 2
    for example in examples:
        parse_config(example, source="proxy.md")


def test_example_config_is_the_documented_one() -> None:
    example = (DOCS.parent / "examples/headwater.toml").read_text()
    config = parse_config(example)
    assert 'upstream = "https://pypi.org/simple/"' in (DOCS / "configuration.md").read_text()
    assert config.mirror["pypi"].filters.latest == 2


def test_user_documents_name_no_issue_numbers() -> None:
    """Issue numbers belong in commit messages and closing notes: a user reading the README, the
    docs or the example configuration cannot look them up."""
    import re

    root = DOCS.parent
    documents = [root / "README.md", *DOCS.glob("*.md"), *(root / "examples").iterdir()]
    assert len(documents) > 10
    pattern = re.compile(r"\b(issue|item) \d+", re.IGNORECASE)
    found = [
        f"{path.name}: {line.strip()}"
        for path in documents
        if path.is_file()
        for line in path.read_text().splitlines()
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)
