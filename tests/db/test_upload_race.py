"""accept_upload after the authorization decision: the project a user was allowed to create as
new may be created by someone else before the file is recorded (two first uploads at once)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from headwater.db import Database
from headwater.repository.uploads import Accepted, Candidate, UploadRefused, accept_upload
from headwater.simple.names import normalize_name
from headwater.storage.layout import file_key
from headwater.storage.memory import MemoryStorage


def _candidate(tmp_path: Path, user: str, filename: str, body: bytes) -> Candidate:
    path = tmp_path / f"{user}-{filename}"
    path.write_bytes(body)
    return Candidate(
        index="main",
        project=normalize_name("race"),
        display_name="race",
        version=filename.split("-")[1].removesuffix(".tar.gz"),
        filename=filename,
        path=path,
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        user=user,
    )


def test_the_second_first_upload_of_a_name_is_refused_and_leaves_nothing(
    db: Database, tmp_path: Path
) -> None:
    db.create_user("alice")
    db.create_user("bob")
    storage = MemoryStorage()
    # Both were allowed as first uploads of a new name; alice's is recorded first.
    alice = _candidate(tmp_path, "alice", "race-1.0.tar.gz", b"alice's")
    assert asyncio.run(accept_upload(db, storage, alice)) is Accepted.CREATED
    for filename, body in (("race-2.0.tar.gz", b"bob's"), ("race-1.0.tar.gz", b"alice's")):
        bob = _candidate(tmp_path, "bob", filename, body)
        with pytest.raises(UploadRefused, match="not an owner") as refused:
            asyncio.run(accept_upload(db, storage, bob))
        assert refused.value.status == 403
    record = db.project("main", "race")
    assert record is not None and [f.filename for f in record.files] == ["race-1.0.tar.gz"]
    assert set(storage.objects) == {file_key(alice.sha256, alice.filename)}
    assert db.owners("main", "race") == ["alice"]
