"""Every row of a headwater database, as portable JSON, and back.

A move between engines (SQLite ↔ PostgreSQL) and a backup both need the rows of every table in a
form that does not depend on the engine: ``pg_dump`` output does not load into SQLite, and a SQLite
file does not load into PostgreSQL. So rows travel as JSON objects, one per line, with values
encoded by column type (:func:`encode_row`); loading decodes them the same way (:func:`decode_row`).

The tables are those of :data:`headwater.db.schema.metadata` at the newest migration, in
foreign-key order (:func:`tables`): a table added by a future migration travels without any change
here, and a test checks that every table of the schema is covered.

Primary keys travel as they are, so journal serials, file ids and token ids stay the same;
PostgreSQL's sequences are then moved past the largest key (:func:`reset_sequences`). SQLite's
``AUTOINCREMENT`` counter follows explicit keys by itself.

A table's **fingerprint** is its row count and an order-free digest of its rows (the sum, modulo
2**256, of each row's SHA-256 over its canonical JSON): both engines order strings differently, so an
ordered digest would need every row sorted in memory; a sum can be computed while streaming.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from headwater.db.schema import UTCDateTime, metadata
from headwater.errors import HeadwaterError

__all__ = [
    "Fingerprint",
    "RowError",
    "Summer",
    "canonical",
    "count_rows",
    "decode_row",
    "delete_all",
    "encode_row",
    "fingerprint_rows",
    "fingerprints",
    "insert_rows",
    "iter_rows",
    "reset_sequences",
    "tables",
]

#: Rows fetched and inserted per round trip.
BATCH = 1000
_MOD = 1 << 256


class RowError(HeadwaterError):
    """A row cannot be encoded or decoded (an unknown table, a column of the wrong type)."""


class Fingerprint(msgspec.Struct, frozen=True):
    """A table's row count and the order-free digest of its rows (hex)."""

    rows: int
    digest: str


def tables() -> list[sa.Table]:
    """The schema's tables, parents before children (the order rows must be inserted in)."""
    return list(metadata.sorted_tables)


def _table(name: str) -> sa.Table:
    try:
        return metadata.tables[name]
    except KeyError:
        known = ", ".join(sorted(metadata.tables))
        raise RowError(
            f"unknown table {name[:100]!r}: this headwater's tables are {known}; the data comes "
            "from another version of headwater — use that version, or a newer one"
        ) from None


def _encode_value(column: sa.Column[Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, UTCDateTime) or isinstance(value, datetime):
        if value.tzinfo is None:  # SQLite through a raw read: naive UTC
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, bytes | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    return value


def _decode_value(column: sa.Column[Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, UTCDateTime | sa.DateTime):
        if not isinstance(value, str):
            raise RowError(
                f"column {column.table.name}.{column.name}: expected a time, got {value!r}"
            )
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise RowError(
                f"column {column.table.name}.{column.name}: {value[:60]!r} is not an ISO time"
            ) from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(column.type, sa.LargeBinary):
        if not isinstance(value, dict) or "base64" not in value:
            raise RowError(f"column {column.table.name}.{column.name}: expected base64 bytes")
        return base64.b64decode(value["base64"])
    if isinstance(column.type, sa.Boolean) and not isinstance(value, bool):
        raise RowError(
            f"column {column.table.name}.{column.name}: expected true/false, got {value!r}"
        )
    if isinstance(column.type, sa.Integer) and (
        isinstance(value, bool) or not isinstance(value, int)
    ):
        raise RowError(
            f"column {column.table.name}.{column.name}: expected an integer, got {value!r}"
        )
    return value


def encode_row(table: sa.Table, row: Mapping[Any, Any]) -> dict[str, Any]:
    """``row`` (a database row of ``table``) as JSON-safe values, one key per column."""
    return {column.name: _encode_value(column, row[column.name]) for column in table.columns}


def decode_row(table_name: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The database values of an encoded row of ``table_name``.

    Raises:
        RowError: unknown table or column, a missing column, or a value of the wrong type.
    """
    table = _table(table_name)
    unknown = set(row) - set(table.columns.keys())
    if unknown:
        raise RowError(
            f"table {table_name}: unknown column(s) {', '.join(sorted(unknown))[:200]}: the data "
            "comes from a newer headwater"
        )
    values: dict[str, Any] = {}
    for column in table.columns:
        if column.name not in row:
            if column.nullable or column.server_default is not None:
                continue
            raise RowError(f"table {table_name}: a row has no {column.name!r}")
        values[column.name] = _decode_value(column, row[column.name])
    return values


def canonical(encoded: Mapping[str, Any]) -> bytes:
    """The canonical bytes of an encoded row: sorted keys, no spaces, UTF-8."""
    return msgspec.json.encode(dict(sorted(encoded.items())))


def iter_rows(conn: Connection, table: sa.Table) -> Iterator[dict[str, Any]]:
    """Every row of ``table`` encoded, streamed in batches (bounded memory)."""
    result = conn.execution_options(yield_per=BATCH).execute(sa.select(table))
    for row in result.mappings():
        yield encode_row(table, row)


class Summer:
    """Accumulates a fingerprint row by row."""

    def __init__(self) -> None:
        self.rows = 0
        self.total = 0

    def add(self, encoded: Mapping[str, Any]) -> None:
        self.rows += 1
        self.total = (
            self.total + int.from_bytes(hashlib.sha256(canonical(encoded)).digest())
        ) % _MOD

    def tee(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Pass ``rows`` through, adding each."""
        for row in rows:
            self.add(row)
            yield row

    def result(self) -> Fingerprint:
        return Fingerprint(rows=self.rows, digest=f"{self.total:064x}")


def fingerprint_rows(rows: Iterable[Mapping[str, Any]]) -> Fingerprint:
    """The fingerprint of encoded rows (in any order)."""
    summer = Summer()
    for row in rows:
        summer.add(row)
    return summer.result()


def fingerprints(conn: Connection) -> dict[str, Fingerprint]:
    """Every table's fingerprint, read on ``conn`` (use one snapshot for a consistent answer)."""
    return {table.name: fingerprint_rows(iter_rows(conn, table)) for table in tables()}


def count_rows(conn: Connection) -> dict[str, int]:
    """Every table's row count."""
    return {
        table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        for table in tables()
    }


def insert_rows(conn: Connection, table_name: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert encoded ``rows`` into ``table_name`` in batches; return how many.

    Raises:
        RowError: a row does not decode (nothing of the failing batch is inserted; the caller's
            transaction rolls back the rest).
    """
    table = _table(table_name)
    batch: list[dict[str, Any]] = []
    count = 0
    for row in rows:
        batch.append(decode_row(table_name, row))
        if len(batch) >= BATCH:
            conn.execute(sa.insert(table), batch)
            count += len(batch)
            batch = []
    if batch:
        conn.execute(sa.insert(table), batch)
        count += len(batch)
    return count


def reset_sequences(conn: Connection) -> None:
    """Move PostgreSQL's sequences past the largest key of every table with an integer
    autoincrementing key (explicit keys do not advance them); nothing to do on SQLite."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables():
        column = table.autoincrement_column
        if column is None:
            continue
        largest = conn.execute(sa.select(sa.func.max(column))).scalar_one()
        conn.execute(
            sa.select(
                sa.func.setval(
                    sa.func.pg_get_serial_sequence(f'"{table.name}"', column.name),
                    (largest or 0) + 1,
                    False,
                )
            )
        )


def delete_all(conn: Connection) -> None:
    """Remove every row of every table, children first (for an explicit ``--replace``)."""
    for table in reversed(tables()):
        conn.execute(sa.delete(table))
