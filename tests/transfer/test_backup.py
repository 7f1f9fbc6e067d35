"""``headwater backup create|verify`` and ``headwater restore``, on real engines, and every way a
backup can be damaged."""

from __future__ import annotations

import asyncio
import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import msgspec
import pytest

from headwater.assembly.plan import plan_from_flags
from headwater.transfer.archive import TarReader, TarWriter
from headwater.transfer.backup import ROOT, BackupError, Header, restore_backup, verify_backup
from tests.server.hosting import api
from tests.server.live import serve
from tests.transfer.conftest import Installation, fingerprints, headwater, pip_download


@pytest.fixture(scope="module")
def full_backup(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("backup") / "full.tar"
    made = headwater(
        "backup", "create", "--config", str(installation.config),
        "--data-dir", str(installation.data_dir), "--objects", str(out),
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    assert not out.with_name("full.tar.partial").exists()
    return out


@pytest.fixture(scope="module")
def lean_backup(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("backup") / "lean.tar"
    made = headwater(
        "backup", "create", "--config", str(installation.config),
        "--data-dir", str(installation.data_dir), str(out),
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    return out


def test_a_backup_is_a_tar_that_sha256sum_checks(full_backup: Path, tmp_path: Path) -> None:
    with tarfile.open(full_backup) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path, filter="data")
    assert names[0] == f"{ROOT}/header.json" and names[-1] == f"{ROOT}/SHA256SUMS"
    assert any(name.startswith(f"{ROOT}/objects/") for name in names)
    listing = (tmp_path / ROOT / "SHA256SUMS").read_text().splitlines()
    assert len(listing) == len(names) - 1
    for line in listing:
        digest, name = line.split("  ")
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest


def test_full_backup_restores_into_postgresql_and_serves(
    installation: Installation, full_backup: Path, pg_url: str, tmp_path: Path
) -> None:
    checked = headwater("backup", "verify", str(full_backup))
    assert checked.returncode == 0, checked.stdout
    target = tmp_path / "restored"
    restored = headwater(
        "restore", "--config", str(installation.config), "--data-dir", str(target),
        "--database", pg_url, str(full_backup),
    )  # fmt: skip
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert fingerprints(pg_url) == fingerprints(installation.database)
    args = ["--config", str(installation.config), "--data-dir", str(target), "--database", pg_url]
    with serve(args, tmp_path) as live:
        page = api(live.url + "/secret/simple/inner-secret/", "GET", installation.token)
        assert page.status == 200  # the admin token was restored with its user
        got = pip_download(live.url + "/main/simple/", "acme-tools==1.1", tmp_path / "pip")
        assert len(got) == 1 and got[0] in installation.files


def test_lean_backup_restores_the_database_over_the_stores_it_lists(
    installation: Installation, lean_backup: Path, pg_url: str, tmp_path: Path
) -> None:
    # The database is lost; the stores (a bucket, the data directory) are not.
    stores = tmp_path / "stores"
    shutil.copytree(
        installation.data_dir, stores, ignore=shutil.ignore_patterns("headwater.sqlite3*")
    )
    common = ["--config", str(installation.config), "--data-dir", str(stores)]
    verified = headwater("backup", "verify", *common, str(lean_backup))
    assert verified.returncode == 0, verified.stdout
    restored = headwater("restore", *common, "--database", pg_url, str(lean_backup))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert fingerprints(pg_url) == fingerprints(installation.database)


def test_restore_refuses_when_a_listed_object_is_gone(
    installation: Installation, lean_backup: Path, tmp_path: Path
) -> None:
    stores = tmp_path / "stores"
    shutil.copytree(
        installation.data_dir, stores, ignore=shutil.ignore_patterns("headwater.sqlite3*")
    )
    lost = sorted((stores / "hosted" / "secret").rglob("*.whl"))[0]
    lost.unlink()
    common = ["--config", str(installation.config), "--data-dir", str(stores)]
    verified = headwater("backup", "verify", *common, str(lean_backup))
    assert verified.returncode == 1
    assert "hosted/secret" in verified.stdout and lost.name in verified.stdout
    restored = headwater("restore", *common, str(lean_backup))
    assert restored.returncode == 2
    assert "nothing was changed" in restored.stderr
    assert (
        not (stores / "headwater.sqlite3").exists()
        or fingerprints(f"sqlite:///{stores / 'headwater.sqlite3'}")["files"].rows == 0
    )


def test_restore_refuses_a_database_with_rows_unless_replace(
    installation: Installation, full_backup: Path, tmp_path: Path
) -> None:
    target = tmp_path / "data"
    shutil.copytree(installation.data_dir, target)
    common = ["--config", str(installation.config), "--data-dir", str(target)]
    refused = headwater("restore", *common, str(full_backup))
    assert refused.returncode == 2 and "not empty" in refused.stderr
    replaced = headwater("restore", *common, "--replace", str(full_backup))
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert fingerprints(f"sqlite:///{target / 'headwater.sqlite3'}") == fingerprints(
        installation.database
    )


def _members(path: Path) -> list[tuple[str, int, int]]:
    """(name, offset of data, size) of every member."""
    with tarfile.open(path) as tar:
        return [(m.name.removeprefix(f"{ROOT}/"), m.offset_data, m.size) for m in tar.getmembers()]


def _kinds(path: Path) -> dict[str, tuple[int, int]]:
    """One member of each kind: header, a table, an object, the manifest, the sums."""
    found: dict[str, tuple[int, int]] = {}
    for name, offset, size in _members(path):
        kind = name.split("/")[0] if "/" in name else name
        if size and kind not in found:
            found[kind] = (offset, size)
    return found


def test_one_flipped_byte_in_any_member_is_refused_and_changes_nothing(
    installation: Installation, full_backup: Path, tmp_path: Path
) -> None:
    """Every member of the archive, one at a time (the header, each table, each object, the
    manifest, SHA256SUMS): verify reports it, restore refuses it and writes nothing."""
    members = [(name, offset, size) for name, offset, size in _members(full_backup) if size]
    kinds = {name.split("/")[0] for name, _, _ in members}
    assert kinds == {"header.json", "tables", "objects", "objects.jsonl", "SHA256SUMS"}
    original = full_backup.read_bytes()
    for name, offset, size in members:
        damaged = tmp_path / "damaged.tar"
        data = bytearray(original)
        data[offset + size // 2] ^= 0x01
        damaged.write_bytes(bytes(data))
        report = asyncio.run(verify_backup(damaged))
        assert not report.ok, name
        target = tmp_path / f"data-{name.replace('/', '-')}"
        plan = plan_from_flags(str(installation.config), overrides={"data_dir": str(target)})
        with pytest.raises(BackupError, match=r"nothing was changed|damaged"):
            asyncio.run(restore_backup(damaged, plan))
        assert not (target / "headwater.sqlite3").exists(), name
        assert not list(target.rglob("*.whl")), name
    verified = headwater("backup", "verify", str(damaged))  # the command line says it too
    assert verified.returncode in (1, 2) and "problems" in verified.stdout + verified.stderr


def test_a_truncated_backup_is_refused(full_backup: Path, tmp_path: Path) -> None:
    data = full_backup.read_bytes()
    short = tmp_path / "short.tar"
    for cut in [1, 511, 512, 1000, 4096, len(data) // 2, len(data) - 1024, len(data) - 1]:
        short.write_bytes(data[:cut])
        report = asyncio.run(verify_backup(short))
        assert not report.ok, cut
        assert any("truncated" in p or "not finished" in p for p in report.problems), cut


@pytest.mark.parametrize("tool", ["gzip", "xz", "bzip2", "zstd", "lz4"])
def test_a_compressed_backup_is_named_as_such_with_the_command_that_undoes_it(
    full_backup: Path, tmp_path: Path, tool: str
) -> None:
    """The page says a backup may be compressed with anything that reads a pipe; given back
    compressed, verify and restore say which compression and how to undo it (it was "a damaged
    tar header"), and restore changes nothing."""
    import bz2
    import gzip
    import lzma

    from headwater.transfer.archive import COMPRESSIONS

    data = full_backup.read_bytes()
    compress = {
        "gzip": gzip.compress,
        "xz": lzma.compress,
        "bzip2": bz2.compress,
        # No compressor for these two in the standard library: their magic bytes then a body.
        "zstd": lambda d: b"\x28\xb5\x2f\xfd" + d,
        "lz4": lambda d: b"\x04\x22\x4d\x18" + d,
    }[tool]
    packed = tmp_path / f"backup.tar.{tool}"
    packed.write_bytes(compress(data))
    report = asyncio.run(verify_backup(packed))
    assert not report.ok
    (undo,) = [u for _, name, u in COMPRESSIONS if name == tool]
    expected = (
        f"{packed} is {tool}-compressed, and a backup is read as a plain tar: decompress it "
        f"first ({undo.replace('FILE', str(packed))})"
    )
    assert any(expected in p for p in report.problems), report.problems
    restored = headwater("restore", "--data-dir", str(tmp_path / "new"), str(packed))
    assert restored.returncode == 2 and expected in restored.stderr, restored.stderr
    assert "Traceback" not in restored.stderr
    assert not (tmp_path / "new" / "headwater.sqlite3").exists()


def _rewrite(source: Path, out: Path, change_header: object) -> None:
    """Copy a backup, changing its header, with sums recomputed (a well-formed archive)."""
    with source.open("rb") as handle, out.open("wb") as dest:
        writer = TarWriter(dest, root=ROOT, mtime=0)
        for member in TarReader(handle, root=ROOT, where=str(source)):
            if member.name == "SHA256SUMS":
                member.read(1 << 20)
                continue
            data = member.read(1 << 30)
            if member.name == "header.json":
                header = msgspec.json.decode(data, type=Header)
                data = msgspec.json.encode(change_header(header))  # type: ignore[operator]
            writer.add_bytes(member.name, data)
        writer.close()


def test_a_backup_from_a_newer_headwater_is_refused(
    installation: Installation, full_backup: Path, tmp_path: Path
) -> None:
    newer = tmp_path / "newer.tar"
    _rewrite(full_backup, newer, lambda h: msgspec.structs.replace(h, revision="9999"))
    assert headwater("backup", "verify", str(newer)).returncode == 0
    restored = headwater(
        "restore",
        "--config",
        str(installation.config),
        "--data-dir",
        str(tmp_path / "d"),
        str(newer),
    )
    assert restored.returncode == 2
    assert "newer headwater" in restored.stderr


def test_a_backup_whose_rows_do_not_match_its_header_is_refused(
    full_backup: Path, tmp_path: Path
) -> None:
    def drop_a_row(header: Header) -> Header:
        tables = dict(header.tables)
        files = tables["files"]
        tables["files"] = msgspec.structs.replace(files, rows=files.rows + 1)
        return msgspec.structs.replace(header, tables=tables)

    lying = tmp_path / "lying.tar"
    _rewrite(full_backup, lying, drop_a_row)
    verified = headwater("backup", "verify", str(lying))
    assert verified.returncode == 1 and "table files" in verified.stdout


def test_backup_writes_nothing_when_it_fails(tmp_path: Path) -> None:
    config = tmp_path / "headwater.toml"
    config.write_text("[hosted.main]\n")
    out = tmp_path / "b.tar"
    # A database that does not exist yet is not at this headwater's revision.
    made = headwater(
        "backup", "create", "--config", str(config), "--database",
        f"sqlite:///{tmp_path / 'empty.sqlite3'}", str(out),
    )  # fmt: skip
    assert made.returncode == 2 and "revision" in made.stderr
    assert not out.exists() and not out.with_name("b.tar.partial").exists()


def test_archive_reader_refuses_foreign_tars(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as tar:
        info = tarfile.TarInfo("../../etc/passwd")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    verified = headwater("backup", "verify", str(foreign))
    assert verified.returncode == 1 and "not a headwater backup" in verified.stdout
