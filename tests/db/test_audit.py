"""The administration audit log: stored bounded and escaped, read newest first, shown by
`headwater audit`."""

from __future__ import annotations

import msgspec

from headwater.db import Database
from headwater.db.audit import admin_actions, record_admin_action


def test_entries_are_bounded_escaped_and_newest_first(db: Database) -> None:
    hostile = "evil\n2026-01-01 admin: granted everything\x1b[31m" + "x" * 5000
    for i in range(5):
        record_admin_action(
            db.engine,
            actor="alice",
            action="yank",
            detail=f"{i} {hostile}",
            origin="192.0.2.1",
            index="main" if i % 2 else "other",
            project=hostile,
        )
    entries = admin_actions(db.engine, limit=3)
    assert [e.detail.split()[0] for e in entries] == ["4", "3", "2"]
    for e in entries:
        assert "\n" not in e.detail and "\x1b" not in e.detail and len(e.detail) <= 1000
        assert e.project is not None and "\n" not in e.project and len(e.project) <= 200
        assert e.origin == "192.0.2.1" and e.via == "ui" and e.time.tzinfo is not None
    assert {e.index for e in admin_actions(db.engine, index="main")} == {"main"}
    assert len(admin_actions(db.engine, index="main")) == 2
    assert msgspec.json.encode(entries)  # what `headwater audit --json` prints
