"""A token signed in to the administration pages cannot create a token that outlives it: a
token that expires tomorrow must not leave behind one that never does (or expires later)."""

from __future__ import annotations

import re
import urllib.request
from datetime import UTC, datetime

import pytest

from headwater.db import Database
from tests.server.hosting import cli
from tests.ui.conftest import Site
from tests.ui.test_admin import _post


def _tokens(site: Site, user: str) -> list[datetime | None]:
    db = Database.connect(f"sqlite:///{site.data / 'headwater.sqlite3'}")
    try:
        return [token.expires for token in db.tokens(user)]
    finally:
        db.close()


@pytest.mark.parametrize(("days", "created"), [("", False), ("3", False), ("1", True)])
def test_an_expiring_token_cannot_create_a_longer_lived_one(
    site: Site, days: str, created: bool
) -> None:
    user = f"lifetime{days or 'never'}"
    holder = cli(
        "token", "create", "--data-dir", str(site.data), "--user", user,
        "--scope", "upload", "--expires-days", "2",
    ).stdout.strip()  # fmt: skip
    cookie = {"Cookie": f"headwater_session={holder}"}
    with urllib.request.urlopen(
        urllib.request.Request(f"{site.url}/ui/admin", headers=cookie), timeout=10
    ) as answer:
        page = answer.read().decode()
    right = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert right is not None
    status, body = _post(
        f"{site.url}/ui/admin/tokens",
        f"scope=upload&days={days}&description=x&csrf={right.group(1)}",
        {**cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )
    expiries = _tokens(site, user)
    if created:
        assert status == 200 and len(expiries) == 2, (status, body)
        assert all(e is not None and e > datetime.now(UTC) for e in expiries)
    else:
        assert status == 400 and "cannot outlive" in body, (status, body)
        assert len(expiries) == 1  # nothing created
