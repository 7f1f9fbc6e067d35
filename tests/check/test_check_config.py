"""``headwater check --config``: a headwater configuration's indexes, checked in process.

Every policy scenario file (tests/data/policy) is realized as for the server's end-to-end test
(an upstream headwater for the remote sources, hosted indexes filled with real distributions,
directories, proxies; tests/server/test_index_e2e.py ``realize``), then the real CLI checks the
scenario's projects against the configuration it wrote, and must say what the server does:
served from the same sources, refused with the same kind, missing where the server answers 404.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from headwater.simple.names import normalize_name
from headwater.testing.policy_scenarios import Scenario, load_scenario
from tests.check.conftest import clean_env, run_check
from tests.server.test_index_e2e import SCENARIOS, realize


def _public(work: Path) -> str:
    """The URL the scenario's config gives its public proxy (a source named pypi), else a dead
    one (then names served only from one's own sources are reported unavailable)."""
    config = tomllib.loads((work / "headwater.toml").read_text())
    if "pypi" in config.get("proxy", {}):
        url: str = config["proxy"]["pypi"]["url"]
        return url
    return "http://127.0.0.1:9/simple/"


def _scenario(stem: str) -> Scenario:
    path = next(p for p in SCENARIOS if p.stem == stem)
    return load_scenario(path.read_text(), name=path.name)


def _run(work: Path, requirements: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``headwater check`` of ``requirements`` against the realized scenario's configuration."""
    (work / "requirements.txt").write_text(requirements)
    return run_check(
        [
            "--config",
            str(work / "headwater.toml"),
            "--data-dir",
            str(work / "data"),
            "--public",
            _public(work),
            "--timeout",
            "5",
            *extra,
        ],
        env=clean_env(work),
        cwd=work,
    )


def _check(work: Path, projects: list[str]) -> tuple[int, dict[str, Any]]:
    result = _run(work, "".join(f"{p}\n" for p in projects), "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, data


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_check_config_says_what_the_server_does(path: Path, tmp_path: Path) -> None:
    scenario: Scenario = load_scenario(path.read_text(), name=path.name)
    with realize(scenario, tmp_path):
        status, data = _check(tmp_path, [e.project for e in scenario.expect])
    assert data["client"] == "headwater"
    # Spellings of one name (Foo_Bar, foo.bar) are one finding, as they are one project.
    findings = {(r["index"], r["project"]): r for r in data["requirements"]}
    for expect in scenario.expect:
        what = f"{path.name}: {expect.project}"
        finding = findings[(scenario.index, normalize_name(expect.project))]
        cooling = set(scenario.index_table().get("cooldown", {}))
        if expect.outcome == "served" and expect.filenames == () and cooling & set(expect.sources):
            # Served empty by a cooldown: pip and uv find no version.
            assert finding["risk"] == "cooldown", f"{what}: {finding}"
            assert "hidden by the cooldown" in finding["message"], what
        elif expect.outcome == "served":
            assert finding["risk"] in ("ok", "guarded", "unclaimed", "unavailable"), what
            served = [s["index"] for s in finding["served_by"]]
            if expect.sources:
                assert served == list(expect.sources), f"{what}: {finding}"
            if finding["risk"] == "unavailable":  # only the public index may fail here
                assert [u["index"] for u in finding["unavailable"]] == ["public"], what
        elif expect.outcome == "not-found":
            assert finding["risk"] == "missing", f"{what}: {finding}"
        else:
            want = "unavailable" if expect.refusal == "unavailable" else "refused"
            assert finding["risk"] == want, f"{what}: {finding}"
            for source in expect.sources:
                assert source in finding["message"], f"{what}: {source} not named"
            assert finding["advice"], what
    risky = any(
        r["risk"] in ("refused", "unavailable", "missing", "unclaimed", "cooldown")
        for r in findings.values()
    )
    assert status == (1 if risky else 0)


def test_birsan_guarded_and_refused_in_the_text_report(tmp_path: Path) -> None:
    with realize(_scenario("birsan"), tmp_path):
        result = _run(tmp_path, "Foo_Bar\nbilling-client\n")
    out = result.stdout
    assert result.returncode == 1, result.stderr
    assert "Indexes of the configuration, and their sources" in out
    # A hosted index is not "local" (PEP 708: only a directory is).
    [internal] = [line for line in out.splitlines() if "from [hosted.internal]" in line]
    assert "local" not in internal, internal
    # Foo_Bar is on the public index too (version 9999): served from internal only.
    assert "guarded  main: Foo_Bar" in out
    assert "'pypi' has it too and is not served" in out
    # billing-client was deleted from internal; pypi has it: the index refuses, and says how to
    # resolve it, as pip and uv users see it.
    assert "refused  main: billing-client" in out
    assert "what to do:" in out


def test_config_mode_refuses_client_index_options(tmp_path: Path) -> None:
    (tmp_path / "headwater.toml").write_text('[proxy.pypi]\nurl = "http://127.0.0.1:9/simple/"\n')
    (tmp_path / "requirements.txt").write_text("requests\n")
    env = clean_env(tmp_path)
    mixed = run_check(
        ["--config", "headwater.toml", "--index-url", "http://127.0.0.1:9/simple/"],
        env=env,
        cwd=tmp_path,
    )
    assert mixed.returncode == 2
    assert "--index-url and --config cannot be combined" in mixed.stderr
    lonely = run_check(["--index", "main"], env=env, cwd=tmp_path)
    assert lonely.returncode == 2
    assert "--index is about a headwater configuration: give --config too" in lonely.stderr
    no_index = run_check(["--config", "headwater.toml"], env=env, cwd=tmp_path)
    assert no_index.returncode == 2
    assert "defines no [index.NAME]" in no_index.stderr


def test_config_mode_names_a_wrong_index_and_a_missing_database(tmp_path: Path) -> None:
    (tmp_path / "headwater.toml").write_text(
        '[serve]\ndata_dir = "data"\n'
        "[hosted.internal]\n"
        '[proxy.pypi]\nurl = "http://127.0.0.1:9/simple/"\n'
        '[index.main]\nsources = ["internal", "pypi"]\n'
    )
    (tmp_path / "requirements.txt").write_text("requests\n")
    env = clean_env(tmp_path)
    wrong = run_check(["--config", "headwater.toml", "--index", "internal"], env=env, cwd=tmp_path)
    assert wrong.returncode == 2
    assert "--index 'internal': a hosted, not an [index.NAME]" in wrong.stderr
    assert "indexes: main" in wrong.stderr
    missing = run_check(["--config", "headwater.toml"], env=env, cwd=tmp_path)
    assert missing.returncode == 2
    assert "database" in missing.stderr and "does not exist" in missing.stderr
    assert not (tmp_path / "data" / "headwater.sqlite3").exists()  # the check created nothing
    # An old or foreign database is named, not used.
    (tmp_path / "data").mkdir()
    sqlite3.connect(tmp_path / "data" / "headwater.sqlite3").close()
    foreign = run_check(["--config", "headwater.toml"], env=env, cwd=tmp_path)
    assert foreign.returncode == 2
    assert "cannot read the hosted indexes' database" in foreign.stderr


def test_index_options_in_the_files_are_reported_not_used(tmp_path: Path) -> None:
    scenario = _scenario("torchtriton")
    with realize(scenario, tmp_path):
        result = _run(
            tmp_path,
            "--extra-index-url http://127.0.0.1:9/elsewhere/\ntorchtriton\n",
            "--format",
            "json",
        )
    data = json.loads(result.stdout)
    assert any("index option ignored" in w for w in data["warnings"]), data["warnings"]
    [finding] = data["requirements"]
    assert finding["index"] == scenario.index
    assert "127.0.0.1:9/elsewhere" not in json.dumps(data["indexes"])


@pytest.mark.parametrize("stem", ["piwheels", "birsan"])
def test_only_a_directory_is_a_local_source(stem: str, tmp_path: Path) -> None:
    """PEP 708 calls only a directory of files local; hosted, proxy and mirror sources are
    repositories served over HTTP."""
    scenario = _scenario(stem)
    with realize(scenario, tmp_path):
        _, data = _check(tmp_path, [scenario.expect[0].project])
    kinds = {s.name: s.kind for s in scenario.sources}
    for index in data["indexes"]:
        if index["name"] in kinds:
            want = "local" if kinds[index["name"]] == "directory" else "remote"
            assert index["kind"] == want, index


def test_the_cooldown_is_said_and_hidden_versions_are_not_counted(tmp_path: Path) -> None:
    scenario = _scenario("cooldown")
    with realize(scenario, tmp_path):
        status, data = _check(tmp_path, ["requests", "brand-new"])
        _, newest = _check(tmp_path, ["requests>=2.32.3"])
    assert status == 1
    found = {r["project"]: r for r in data["requirements"]}
    # 2.32.3 is inside the 7-day cooldown: clients see 2.32.2 only, and can install it.
    requests = found["requests"]
    assert [(s["index"], s["highest"]) for s in requests["served_by"]] == [("pypi", "2.32.2")]
    assert "2 file(s) hidden by the cooldown" in requests["message"]
    assert requests["risk"] == "ok"
    # Every file of brand-new is hidden: pip and uv find no version.
    assert found["brand-new"]["risk"] == "cooldown"
    assert "the first until " in found["brand-new"]["message"] and found["brand-new"]["advice"]
    # Only 2.32.3 would do, and it is hidden.
    [wanted] = newest["requirements"]
    assert wanted["risk"] == "cooldown", wanted
