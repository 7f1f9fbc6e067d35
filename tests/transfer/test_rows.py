"""Rows as portable JSON: properties of the encoding and the fingerprint, and the schema coverage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.db import schema
from headwater.transfer import rows as rowlib

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_aware = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=10,
)


@st.composite
def token_rows(draw: st.DrawFn) -> dict[str, object]:
    return {
        "id": draw(st.text("0123456789abcdef", min_size=32, max_size=32)),
        "user": draw(_text),
        "secret_sha256": "a" * 64,
        "scopes": draw(st.lists(_text, max_size=3)),
        "indexes": draw(st.none() | st.lists(_text, max_size=3)),
        "projects": draw(st.none() | st.lists(_text, max_size=3)),
        "description": draw(_text),
        "created": draw(_aware),
        "expires": draw(st.none() | _aware),
        "revoked": draw(st.none() | _aware),
    }


@given(token_rows())
def test_encoding_round_trips_every_value(row: dict[str, object]) -> None:
    encoded = rowlib.encode_row(schema.tokens, row)
    assert rowlib.decode_row("tokens", encoded) == row  # aware datetimes compare by instant
    again = rowlib.encode_row(schema.tokens, rowlib.decode_row("tokens", encoded))
    assert rowlib.canonical(again) == rowlib.canonical(encoded)


@given(st.lists(token_rows(), max_size=8, unique_by=lambda r: r["id"]), st.randoms())
def test_a_fingerprint_ignores_order_and_sees_every_change(
    rows: list[dict[str, object]], rnd
) -> None:  # type: ignore[no-untyped-def]
    encoded = [rowlib.encode_row(schema.tokens, row) for row in rows]
    shuffled = list(encoded)
    rnd.shuffle(shuffled)
    assert rowlib.fingerprint_rows(shuffled) == rowlib.fingerprint_rows(encoded)
    if encoded:
        changed = [dict(encoded[0], description=str(encoded[0]["description"]) + "!"), *encoded[1:]]
        assert rowlib.fingerprint_rows(changed) != rowlib.fingerprint_rows(encoded)
        assert rowlib.fingerprint_rows(encoded[1:]) != rowlib.fingerprint_rows(encoded)


@given(_json)
def test_json_columns_round_trip(value: object) -> None:
    row = {
        "id": 1, "index": "main", "name": "a", "display_name": "A", "status": "active",
        "status_reason": "", "alternate_locations": value, "tracks": [],
        "last_serial": 1, "created": datetime(2026, 1, 1, tzinfo=UTC),
    }  # fmt: skip
    assert rowlib.decode_row("projects", rowlib.encode_row(schema.projects, row)) == row


@pytest.mark.parametrize(
    ("table", "row", "message"),
    [
        ("nope", {}, "unknown table"),
        ("users", {"name": "a", "created": "2026-01-01T00:00:00+00:00", "x": 1}, "unknown column"),
        ("users", {"name": "a"}, "has no 'created'"),
        ("users", {"name": "a", "created": "yesterday"}, "not an ISO time"),
        ("users", {"name": "a", "created": 5}, "expected a time"),
        ("journal", {"serial": "1"}, "expected an integer"),
        ("journal", {"serial": True}, "expected an integer"),
        (
            "namespaces",
            {"index": "m", "name": "a", "owner": "u", "open": "yes"},
            "expected true/false",
        ),
    ],
)
def test_bad_rows_are_refused_by_name(table: str, row: dict[str, object], message: str) -> None:
    with pytest.raises(rowlib.RowError, match=message):
        rowlib.decode_row(table, row)


def test_every_table_of_the_schema_travels() -> None:
    """The tables a move or backup copies are exactly the schema's, parents first."""
    names = [table.name for table in rowlib.tables()]
    assert set(names) == set(schema.metadata.tables)
    for position, table in enumerate(rowlib.tables()):
        for key in table.foreign_keys:
            assert names.index(key.column.table.name) < position
