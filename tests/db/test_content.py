"""Projects, files, serials, yanks, deletions and project settings, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from headwater.db import (
    AddResult,
    Database,
    InvalidArgument,
    NotFound,
)
from headwater.simple.model import ProjectStatus
from headwater.simple.names import InvalidName
from tests.db.factories import new_file, sha

WHEEL = "acme_tools-1.0-py3-none-any.whl"
SDIST = "acme_tools-1.0.tar.gz"


def test_add_file_creates_project_and_records_every_field(db: Database, alice: str) -> None:
    new = new_file(
        blake2_256=sha("b"),
        requires_python=">=3.9,<4",
        metadata_sha256=sha("c"),
        display_name="Acme.Tools",
    )
    assert db.add_file("main", "Acme.Tools", new, uploader=alice) is AddResult.CREATED
    record = db.project("main", "acme-tools")
    assert record is not None
    assert record.name == "acme-tools"
    assert record.display_name == "Acme.Tools"
    assert record.status is ProjectStatus.ACTIVE
    assert (record.status_reason, record.alternate_locations, record.tracks) == ("", (), ())
    (f,) = record.files
    assert (f.filename, f.version, f.sha256, f.blake2_256) == (WHEEL, "1.0", sha("a"), sha("b"))
    assert (f.requires_python, f.metadata_sha256, f.storage_key) == (
        ">=3.9,<4",
        sha("c"),
        new.storage_key,
    )
    assert (f.yanked, f.uploader) == (False, alice)
    assert record.last_serial == db.last_serial("main") == 2  # "create", then "add file"
    assert db.owners("main", "acme-tools") == [alice]


def test_item_37_38_size_and_upload_time_round_trip_in_utc(db: Database) -> None:
    # PEP 700: size in bytes (bigger than 2**31 must survive), upload-time in UTC.
    taken = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    db.add_file("main", "big", new_file("big-1.0.tar.gz", size=5 * 2**30, upload_time=taken))
    record = db.project("main", "big")
    assert record is not None
    (f,) = record.files
    assert f.size == 5 * 2**30
    assert f.upload_time == taken
    assert f.upload_time.tzinfo is UTC
    assert f.upload_time.hour == 5


@pytest.mark.parametrize("spelling", ["acme-tools", "Acme_Tools", "ACME.tools", "acme__-tools"])
def test_item_1_any_spelling_finds_the_normalized_project(db: Database, spelling: str) -> None:
    db.add_file("main", "acme-tools", new_file())
    record = db.project("main", spelling)
    assert record is not None
    assert record.name == "acme-tools"
    assert db.project_serial("main", spelling) == 2


@pytest.mark.parametrize(
    "hostile",
    [
        "",
        "-acme",
        "acme-",
        "acme tools",
        "acme/../etc",
        "acme\n",
        "acme\x00",
        "ácme",
        "a" * 201,
        "acme'; DROP TABLE projects; --",
        "%",
    ],
)
def test_item_6_hostile_project_names_are_refused(db: Database, hostile: str) -> None:
    with pytest.raises(InvalidName):
        db.add_file("main", hostile, new_file())
    with pytest.raises(InvalidName):
        db.project("main", hostile)
    assert db.projects("main") == []
    assert db.last_serial("main") == 0


@pytest.mark.parametrize("index", ["", "a/b", "main\n", "x" * 101, "../main", "-main"])
def test_hostile_index_names_are_refused(db: Database, index: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid index name"):
        db.add_file(index, "acme", new_file())


def test_u9_identical_reupload_is_a_no_op(db: Database) -> None:
    assert db.add_file("main", "acme-tools", new_file()) is AddResult.CREATED
    serial = db.last_serial("main")
    assert db.add_file("main", "acme-tools", new_file()) is AddResult.IDENTICAL
    assert db.last_serial("main") == serial


def test_u9_same_filename_other_content_conflicts(db: Database) -> None:
    db.add_file("main", "acme-tools", new_file(digest="a"))
    assert db.add_file("main", "acme-tools", new_file(digest="b")) is AddResult.CONFLICT
    record = db.project("main", "acme-tools")
    assert record is not None
    assert [f.sha256 for f in record.files] == [sha("a")]


def test_filename_is_unique_per_index_not_per_database(db: Database) -> None:
    db.add_file("main", "acme-tools", new_file(digest="a"))
    # The same filename in another project of the same index is a conflict...
    assert db.add_file("main", "other", new_file(digest="a")) is AddResult.CONFLICT
    # ...but another index is another namespace of filenames.
    assert db.add_file("staging", "acme-tools", new_file(digest="b")) is AddResult.CREATED


def test_u9_previously_deleted_filename_is_never_reused(db: Database) -> None:
    db.add_file("main", "acme-tools", new_file())
    db.delete_file("main", "acme-tools", WHEEL)
    assert db.add_file("main", "acme-tools", new_file()) is AddResult.PREVIOUSLY_DELETED
    db.delete_project("main", "acme-tools")
    assert db.add_file("main", "acme-tools", new_file(digest="d")) is AddResult.PREVIOUSLY_DELETED
    assert db.add_file("main", "acme-tools", new_file(SDIST)) is AddResult.CREATED


@pytest.mark.parametrize(
    ("status", "result"),
    [
        (ProjectStatus.ARCHIVED, AddResult.ARCHIVED),
        (ProjectStatus.QUARANTINED, AddResult.QUARANTINED),
    ],
)
def test_item_41_archived_and_quarantined_projects_refuse_uploads(
    db: Database, status: ProjectStatus, result: AddResult
) -> None:
    db.add_file("main", "acme-tools", new_file())
    db.set_status("main", "acme-tools", status, "moved")
    serial = db.last_serial("main")
    assert db.add_file("main", "acme-tools", new_file(SDIST)) is result
    assert db.last_serial("main") == serial
    db.set_status("main", "acme-tools", ProjectStatus.DEPRECATED)
    assert db.add_file("main", "acme-tools", new_file(SDIST)) is AddResult.CREATED


def test_add_file_checks_its_arguments(db: Database) -> None:
    with pytest.raises(InvalidArgument, match="sha256"):
        db.add_file("main", "acme", new_file(sha256="A" * 64))
    with pytest.raises(InvalidArgument, match="negative"):
        db.add_file("main", "acme", new_file(size=-1))
    with pytest.raises(InvalidArgument, match="aware"):
        db.add_file("main", "acme", new_file(upload_time=datetime(2026, 1, 1)))
    with pytest.raises(InvalidArgument, match="filename"):
        db.add_file("main", "acme", new_file("../etc/passwd"))
    with pytest.raises(NotFound, match="no user 'mallory'"):
        db.add_file("main", "acme", new_file(), uploader="mallory")
    assert db.projects("main") == []


def test_display_name_must_match_the_project(db: Database) -> None:
    db.add_file("main", "acme-tools", new_file(display_name="Something-Else"))
    record = db.project("main", "acme-tools")
    assert record is not None
    assert record.display_name == "acme-tools"


def test_projects_lists_every_project_with_serial_and_status(db: Database) -> None:
    db.add_file("main", "zeta", new_file("zeta-1.0.tar.gz", digest="1"))
    db.add_file("main", "Alpha", new_file("alpha-1.0.tar.gz", digest="2", display_name="Alpha"))
    db.add_file("other", "beta", new_file("beta-1.0.tar.gz", digest="3"))
    db.set_status("main", "zeta", "quarantined")
    summaries = db.projects("main")
    assert [(s.name, s.display_name, s.status) for s in summaries] == [
        ("alpha", "Alpha", ProjectStatus.ACTIVE),
        ("zeta", "zeta", ProjectStatus.QUARANTINED),
    ]
    assert [s.last_serial for s in summaries] == [4, 7]
    assert db.project("main", "beta") is None


def test_item_57_serials_grow_across_indexes_and_journal_every_change(db: Database) -> None:
    assert db.last_serial("main") == 0
    db.add_file("main", "acme", new_file("acme-1.0.tar.gz"))  # 1 create, 2 add
    db.add_file("other", "acme", new_file("acme-1.0.tar.gz", digest="b"))  # 3, 4
    db.yank("main", "acme", version="1.0", reason="broken")  # 5
    db.unyank("main", "acme", version="1.0")  # 6
    db.set_status("main", "acme", "deprecated", "use acme2")  # 7
    db.set_alternate_locations("main", "acme", ["https://example.org/simple/acme/"])  # 8
    db.set_tracks("main", "acme", ["https://pypi.org/simple/acme/"])  # 9
    db.delete_file("main", "acme", "acme-1.0.tar.gz")  # 10
    db.delete_project("main", "acme")  # 11
    assert db.last_serial("main") == 11
    assert db.last_serial("other") == 4
    changes = db.changes_since("main", 0)
    assert [(c.serial, c.action) for c in changes] == [
        (1, "create"),
        (2, "add file"),
        (5, "yank"),
        (6, "unyank"),
        (7, "status"),
        (8, "alternate-locations"),
        (9, "tracks"),
        (10, "delete file"),
        (11, "delete project"),
    ]
    assert all(c.project == "acme" and c.index == "main" for c in changes)
    assert changes[1].filename == "acme-1.0.tar.gz"
    assert changes[2].version == "1.0"
    assert [c.serial for c in db.changes_since("main", 7, limit=2)] == [8, 9]
    assert db.project_serial("main", "acme") == 11  # also after deletion
    assert db.project_serial("main", "never") is None


def test_no_op_changes_take_no_serial(db: Database) -> None:
    db.add_file("main", "acme", new_file("acme-1.0.tar.gz"))
    serial = db.last_serial("main")
    assert db.set_status("main", "acme", "active") is None
    assert db.set_tracks("main", "acme", []) is None
    assert db.unyank("main", "acme", version="1.0") == []
    assert db.last_serial("main") == serial
    assert db.set_status("main", "acme", "archived") == serial + 1


def test_item_36_yank_and_unyank_a_file_or_a_release(db: Database) -> None:
    db.add_file("main", "acme-tools", new_file(WHEEL, digest="a"))
    db.add_file("main", "acme-tools", new_file(SDIST, digest="b"))
    db.add_file("main", "acme-tools", new_file("acme_tools-2.0.tar.gz", version="2.0", digest="c"))
    assert db.yank("main", "acme-tools", filename=SDIST) == [SDIST]
    assert db.yank("main", "acme-tools", version="1.0", reason="CVE-2026-1") == [WHEEL, SDIST]

    def yanked() -> dict[str, bool | str]:
        record = db.project("main", "acme-tools")
        assert record is not None
        return {f.filename: f.yanked for f in record.files}

    assert yanked() == {
        WHEEL: "CVE-2026-1",
        SDIST: "CVE-2026-1",
        "acme_tools-2.0.tar.gz": False,
    }
    # A yank without a reason is still a yank (empty reason), not False.
    db.yank("main", "acme-tools", version="2.0")
    assert yanked()["acme_tools-2.0.tar.gz"] == ""
    assert db.unyank("main", "acme-tools", version="1.0") == [WHEEL, SDIST]
    assert yanked()[WHEEL] is False


def test_yank_needs_a_target_that_exists(db: Database) -> None:
    db.add_file("main", "acme-tools", new_file())
    with pytest.raises(InvalidArgument):
        db.yank("main", "acme-tools")
    with pytest.raises(NotFound, match=r"release '9\.9'"):
        db.yank("main", "acme-tools", version="9.9")
    with pytest.raises(NotFound, match="no project 'nope'"):
        db.yank("main", "nope", version="1.0")


def test_delete_file_release_and_project_return_unreferenced_keys(db: Database) -> None:
    wheel, sdist = new_file(WHEEL, digest="a"), new_file(SDIST, digest="b")
    two = new_file("acme_tools-2.0.tar.gz", version="2.0", digest="c")
    three = new_file("acme_tools-3.0.tar.gz", version="3.0", digest="d")
    for f in (wheel, sdist, two, three):
        db.add_file("main", "acme-tools", f)
    assert db.delete_file("main", "acme-tools", WHEEL) == [wheel.storage_key]
    assert db.delete_release("main", "acme-tools", "2.0") == [two.storage_key]
    with pytest.raises(NotFound):
        db.delete_file("main", "acme-tools", WHEEL)
    keys = db.delete_project("main", "acme-tools")
    assert sorted(keys) == sorted([sdist.storage_key, three.storage_key])
    assert db.project("main", "acme-tools") is None
    assert db.owners("main", "acme-tools") == []
    with pytest.raises(NotFound):
        db.delete_project("main", "acme-tools")


def test_a_key_still_referenced_is_not_returned(db: Database) -> None:
    # Two files sharing one storage key (a caller's choice): deleting one must keep the blob.
    shared = "aa/aa/shared/blob"
    db.add_file("main", "one", new_file("one-1.0.tar.gz", storage_key=shared))
    db.add_file("main", "two", new_file("two-1.0.tar.gz", storage_key=shared))
    assert db.delete_project("main", "one") == []
    assert db.delete_project("main", "two") == [shared]


def test_items_40_41_status_and_reason(db: Database) -> None:
    db.add_file("main", "acme", new_file("acme-1.0.tar.gz"))
    for marker in ProjectStatus:
        db.set_status("main", "acme", marker, f"because {marker}")
        record = db.project("main", "acme")
        assert record is not None
        assert (record.status, record.status_reason) == (marker, f"because {marker}")
    with pytest.raises(InvalidArgument, match="invalid project status 'retired'"):
        db.set_status("main", "acme", "retired")
    with pytest.raises(NotFound):
        db.set_status("main", "nope", "archived")


def test_pep_708_alternate_locations_and_tracks(db: Database) -> None:
    db.add_file("main", "acme", new_file("acme-1.0.tar.gz"))
    urls = ["https://a.example/simple/acme/", "https://b.example/simple/acme/"]
    db.set_alternate_locations("main", "acme", [*urls, urls[0]])
    db.set_tracks("main", "acme", ["https://pypi.org/simple/acme/"])
    record = db.project("main", "acme")
    assert record is not None
    assert record.alternate_locations == tuple(urls)
    assert record.tracks == ("https://pypi.org/simple/acme/",)
    for bad in (["https://x.example/a b"], ["https://x\n"], [""], "https://one-string/"):
        with pytest.raises(InvalidArgument):
            db.set_tracks("main", "acme", bad)
    # PEP 708: both name other indexes' project pages, so only absolute http(s) URLs with a host.
    for url in (
        "x",
        "/relative/acme/",
        "//no-scheme.example/acme/",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "ftp://files.example/acme/",
        "https:///no-host/",
        "https://bad-port.example:99999/acme/",
    ):
        for change in (db.set_tracks, db.set_alternate_locations):
            with pytest.raises(InvalidArgument, match="absolute http"):
                change("main", "acme", [url])
    record = db.project("main", "acme")
    assert record is not None and record.tracks == ("https://pypi.org/simple/acme/",)
    db.set_alternate_locations("main", "acme", [])
    record = db.project("main", "acme")
    assert record is not None
    assert record.alternate_locations == ()


def test_text_no_database_can_store_alike_is_refused(db: Database) -> None:
    # PostgreSQL text cannot hold NUL; SQLite can: refuse it on both, before anything is written.
    with pytest.raises(InvalidArgument, match="version"):
        db.add_file("main", "acme", new_file("acme-1.0.tar.gz", version="1.0\x00"))
    db.add_file("main", "acme", new_file("acme-1.0.tar.gz"))
    with pytest.raises(InvalidArgument, match="yank reason"):
        db.yank("main", "acme", version="1.0", reason="bad\x00")
    with pytest.raises(InvalidArgument, match="status reason"):
        db.set_status("main", "acme", "archived", "x" * 10_001)
    record = db.project("main", "acme")
    assert record is not None
    assert (record.status, record.files[0].yanked) == (ProjectStatus.ACTIVE, False)


def test_quarantined_files_lists_exactly_the_files_of_quarantined_projects(db: Database) -> None:
    db.add_file("main", "good", new_file("good-1.0-py3-none-any.whl", digest="a"))
    db.add_file("main", "bad", new_file("bad-1.0-py3-none-any.whl", digest="b"))
    db.add_file("main", "bad", new_file("bad-1.1-py3-none-any.whl", version="1.1", digest="c"))
    db.add_file("other", "bad", new_file("bad-1.0-py3-none-any.whl", digest="d"))
    assert db.quarantined_files("main") == []
    db.set_status("main", "bad", "quarantined")
    assert sorted(db.quarantined_files("main")) == [
        (sha("b"), "bad-1.0-py3-none-any.whl"),
        (sha("c"), "bad-1.1-py3-none-any.whl"),
    ]
    assert db.quarantined_files("other") == []  # per index
    db.set_status("main", "bad", "archived")
    assert db.quarantined_files("main") == []
