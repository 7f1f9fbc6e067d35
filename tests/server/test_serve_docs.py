"""docs/serve.md cannot drift from the server: every option, every TOML example, every metric and
every management route the code has is in it."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route

from headwater.config import parse_config
from headwater.config.settings import HostedSettings, ServeSettings
from headwater.server.api import api_routes
from headwater.server.auth import Authenticator
from headwater.server.metrics import Snapshot, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "serve.md"


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| `")]


def test_every_serve_and_hosted_option_is_in_a_table() -> None:
    rows = _table_rows(DOC.read_text())
    for struct in (ServeSettings, HostedSettings):
        for name in struct.__struct_fields__:
            assert any(f"`{name}`" in row.split("|")[1] for row in rows), (
                f"docs/serve.md has no table row for the {struct.__name__} option {name!r}"
            )


def test_toml_examples_are_accepted() -> None:
    examples = re.findall(r"```toml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert examples
    for example in examples:
        parse_config(example, source="docs/serve.md")


def test_every_metric_is_documented() -> None:
    snapshot = Snapshot(
        requests={"main|page|200": 1},
        latency_buckets={"page": [1] + [0] * 12},
        latency_sum={"page": 0.001},
        bytes_sent={"main|page": 10},
        uploads={"main|created": 1},
        errors={"page": 1},
        proxy={"pypi|page_requests": 1},
    )
    names = set(re.findall(r"^# TYPE (\S+) ", render(snapshot), flags=re.MULTILINE))
    assert len(names) == 6
    text = DOC.read_text()
    for name in names:
        assert f"| `{name}` |" in text, f"docs/serve.md does not document the metric {name}"


def test_every_management_route_is_documented() -> None:
    text = DOC.read_text()
    # The routes only; nothing here is called, so no database is needed.
    routes = api_routes(None, {}, Authenticator(None))  # type: ignore[arg-type]
    for route in routes:
        assert isinstance(route, Route)
        url = re.sub(r"\{(\w+)\}", r"<\1>", route.path)
        methods = (route.methods or set()) - {"HEAD"}
        assert methods
        for method in methods:
            pattern = rf"`{method}[^`]*{re.escape(url)}`|{method}[^|]*`{re.escape(url)}`"
            assert re.search(pattern, text), f"docs/serve.md does not document {method} {url}"


def test_every_authorization_action_is_in_who_may_do_what() -> None:
    from headwater.server.authz import ACTIONS
    from headwater.server.routes import ROUTES

    text = DOC.read_text()
    section = text.split("### Who may do what", 1)[1].split("\n## ", 1)[0]
    for action in ACTIONS:
        assert f"| `{action}` |" in section, f"docs/serve.md: no row for the action {action!r}"
    assert {route.action for route in ROUTES} <= set(ACTIONS)
