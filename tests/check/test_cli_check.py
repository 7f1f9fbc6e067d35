"""``headwater check`` as a subprocess: exit codes, the JSON schema, plain text, index discovery
from the environment and uv.toml, pyproject and pylock inputs. The environment carries no pip or
uv configuration from this machine (tests.check.conftest.clean_env)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec

from headwater.check import Client, IndexSpec, Report, Risk, render_text, write_table
from headwater.check.findings import Failure, Finding, Serving
from tests.check.conftest import World, clean_env, run_check


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _by_project(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["project"]: r for r in data["requirements"]}


def test_json_report_schema_origins_and_exit_status(world: World, tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text(
        f"--index-url {world.private.simple_url}\n"
        f"--extra-index-url {world.public.simple_url}\n"
        "torchtriton\nFoo_Bar\nrequests>=2\n-e ./src/app#egg=app\n"
    )
    result = run_check(
        ["requirements.txt", "--format", "json", "--public", world.public.simple_url],
        env=clean_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    data = _json(result)
    assert data["schema"] == "headwater-check/1"
    assert data["client"] == "pip"
    assert data["exit_status"] == 1
    assert data["public"] == world.public.simple_url
    assert [
        (i["url"], i["origin"], i["kind"], i["public"], i["used"]) for i in data["indexes"]
    ] == [
        (world.private.simple_url, "requirements.txt:1", "remote", False, True),
        (world.public.simple_url, "requirements.txt:2", "remote", True, True),
    ]
    assert set(data["indexes"][0]) == {
        "name", "url", "origin", "kind", "public", "used", "explicit"
    }  # fmt: skip
    found = _by_project(data)
    assert set(found) == {"torchtriton", "foo-bar", "requests", "app"}
    assert found["torchtriton"]["risk"] == "confusion"
    assert found["torchtriton"]["risks"] == ["confusion", "shadowed"]
    assert found["foo-bar"]["risk"] == "unclaimed"
    assert found["foo-bar"]["name"] == "Foo_Bar"
    assert found["foo-bar"]["required_by"] == ["requirements.txt:4"]
    # Only the public index has it, and pip takes it from there; the private index does not
    # serve it: whether it was meant to be private (deleted there, in a namespace) cannot be seen.
    assert found["requests"]["risk"] == "exposed"
    assert found["requests"]["installs"] == {
        "client": "pip",
        "indexes": [data["indexes"][1]["name"]],
        "version": "2.32.3",
        "why": "pip takes the highest version of all indexes",
    }
    assert found["requests"]["served_by"][0] | {"index": "x"} == {
        "index": "x",
        "versions": 2,
        "highest": "2.32.3",
    }
    assert found["app"]["risk"] == "direct"
    for entry in data["requirements"]:
        assert set(entry) == {
            "name", "project", "required_by", "risk", "risks", "message", "advice",
            "served_by", "unavailable", "pinned_to", "decision", "index", "installs",
            "publishers",
        }  # fmt: skip
        assert entry["index"] is None
        assert bool(entry["advice"]) == (entry["risk"] in {"confusion", "unclaimed", "exposed"})
    assert data["summary"] == {
        "projects": 4,
        "risks": 3,
        "by_risk": {"confusion": 1, "direct": 1, "exposed": 1, "unclaimed": 1},
    }


def test_no_risk_exits_zero_and_prints_plain_text_when_not_a_terminal(
    world: World, tmp_path: Path
) -> None:
    (tmp_path / "requirements.txt").write_text("requests\n")
    result = run_check(
        ["--index-url", world.public.simple_url, "--public", world.public.simple_url],
        env=clean_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Indexes (as pip would use them):"
    assert f"{world.public.simple_url}  from --index-url [public]" in lines[1]
    assert any(line.startswith("ok  requests  ") for line in lines)
    assert lines[-1] == "1 projects checked, 0 at risk"
    assert "\x1b[" not in result.stdout  # no colour codes in a log


def test_indexes_from_pip_environment_variables(world: World, tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("extra-only\n")
    env = clean_env(
        tmp_path,
        PIP_INDEX_URL=world.public.simple_url,
        PIP_EXTRA_INDEX_URL=world.extra.simple_url,
    )
    result = run_check(
        ["r.txt", "--format", "json", "--public", world.public.simple_url], env=env, cwd=tmp_path
    )
    data = _json(result)
    assert [(i["url"], i["origin"]) for i in data["indexes"]] == [
        (world.public.simple_url, "PIP_INDEX_URL"),
        (world.extra.simple_url, "PIP_EXTRA_INDEX_URL"),
    ]
    assert _by_project(data)["extra-only"]["risk"] == "unclaimed"
    # --from none: pip's variables are ignored (only the default index is left).
    result = run_check(
        ["r.txt", "--from", "none", "--format", "json", "--public", world.public.simple_url],
        env=env,
        cwd=tmp_path,
    )
    data = _json(result)
    assert [i["origin"] for i in data["indexes"]] == ["the default index (no --index-url given)"]
    assert _by_project(data)["extra-only"]["risk"] == "missing"


def test_indexes_from_a_uv_config_file_and_uv_order(world: World, tmp_path: Path) -> None:
    uv_toml = tmp_path / "ci-uv.toml"
    uv_toml.write_text(
        f'[[index]]\nname = "private"\nurl = "{world.private.simple_url}"\n\n'
        f'[[index]]\nname = "pypi"\nurl = "{world.public.simple_url}"\ndefault = true\n'
    )
    (tmp_path / "r.txt").write_text("torchtriton\n")
    env = clean_env(tmp_path, UV_CONFIG_FILE=str(uv_toml))
    del env["UV_NO_CONFIG"]
    result = run_check(
        ["r.txt", "--from", "uv", "--format", "json", "--public", world.public.simple_url],
        env=env,
        cwd=tmp_path,
    )
    data = _json(result)
    assert data["client"] == "uv"
    assert [(i["name"], i["origin"]) for i in data["indexes"]] == [
        ("private", f"{uv_toml}:3 (uv.toml index[0])"),
        ("pypi", f"{uv_toml}:7 (uv.toml index[1])"),
    ]
    finding = _by_project(data)["torchtriton"]
    # uv asks 'private' first and takes its 2.0.0: confusion, but not shadowed.
    assert finding["risks"] == ["confusion"]
    assert "uv would install 2.0.0 from 'private' (uv takes the first index" in finding["message"]
    assert finding["installs"]["indexes"] == ["private"]


def test_pyproject_with_uv_sources_pins_is_checked_as_uv(world: World, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "app"\ndependencies = ["torchtriton", "requests"]\n'
        "[tool.uv]\n"
        f'[[tool.uv.index]]\nname = "private"\nurl = "{world.private.simple_url}"\n'
        "explicit = true\n"
        f'[[tool.uv.index]]\nname = "pypi"\nurl = "{world.public.simple_url}"\ndefault = true\n'
        '[tool.uv.sources]\ntorchtriton = { index = "private" }\n'
    )
    result = run_check(
        ["--format", "json", "--public", world.public.simple_url],
        env=clean_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = _json(result)
    assert data["client"] == "uv"  # --from auto: a pyproject.toml with [tool.uv]
    found = _by_project(data)
    assert found["torchtriton"]["pinned_to"] == ["private"]
    assert found["torchtriton"]["risk"] == "ok"
    assert found["requests"]["risk"] == "ok"


def test_pylock_entries_are_checked_against_their_locked_index(
    world: World, tmp_path: Path
) -> None:
    digest = world.sha256(world.private, "torchtriton")
    (tmp_path / "pylock.toml").write_text(
        'lock-version = "1.0"\ncreated-by = "test"\n'
        f'[[packages]]\nname = "torchtriton"\nversion = "2.0.0"\nindex = "{world.private.simple_url}"\n'
        f'wheels = [{{ name = "torchtriton-2.0.0-py3-none-any.whl", hashes = {{ sha256 = "{digest}" }} }}]\n'
        f'[[packages]]\nname = "requests"\nversion = "2.32.3"\nindex = "{world.public.simple_url}"\n'
    )
    result = run_check(
        ["pylock.toml", "--format", "json", "--public", world.public.simple_url],
        env=clean_env(tmp_path),
        cwd=tmp_path,
    )
    data = _json(result)
    locked = [i for i in data["indexes"] if i["explicit"]]
    assert [(i["url"], i["origin"]) for i in locked] == [
        (world.private.simple_url, "pylock.toml:4 (packages[0] torchtriton)")
    ]
    found = _by_project(data)
    assert found["torchtriton"]["risk"] == "protected"
    assert found["requests"]["risk"] == "ok"
    assert result.returncode == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unavailable_index_fails_the_check(world: World, tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("requests\n")
    down = f"http://127.0.0.1:{_closed_port()}/simple/"
    result = run_check(
        ["r.txt", "--index-url", down, "--extra-index-url", world.public.simple_url,
         "--public", world.public.simple_url, "--format", "json", "--timeout", "5"],
        env=clean_env(tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    finding = _by_project(_json(result))["requests"]
    assert finding["risk"] == "unavailable"
    assert finding["unavailable"][0]["error"].startswith(down)


def test_bad_input_and_no_index_exit_two_with_a_clear_message(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    (tmp_path / "bad.txt").write_text("ok-name\nthis is not valid\n")
    result = run_check(["bad.txt"], env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "bad.txt:2: 'this is not valid' is not a requirement" in result.stderr
    result = run_check(["missing.txt"], env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "requirements file missing.txt does not exist; check the path" in result.stderr
    (tmp_path / "offline.txt").write_text("--no-index\nrequests\n")
    result = run_check(["offline.txt", "--from", "none"], env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "no index to check against" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_check([], env=env, cwd=empty)
    assert result.returncode == 2
    assert "no requirements given" in result.stderr
    result = run_check(["--timeout", "0", "bad.txt"], env=env, cwd=tmp_path)
    assert result.returncode == 2 and "--timeout must be a positive number" in result.stderr


def test_building_the_parser_does_not_import_the_check() -> None:
    code = (
        "import sys, headwater.cli.main as m; m.build_parser(); "
        "print(sorted(k for k in sys.modules if k.startswith('headwater.check')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _report() -> Report:
    finding = Finding(
        project="torchtriton",
        names=("torchtriton",),
        required_by=("r.txt:1",),
        risk=Risk.CONFUSION,
        risks=(Risk.CONFUSION, Risk.SHADOWED),
        message="served by 'private' and 'public' [tool.uv.sources]",
        advice="pin it",
        served_by=(Serving(index="private", versions=1, highest="2.0.0"),),
    )
    spec = IndexSpec(
        name="private", url="https://u:pw@private.example/simple/", origin="--index-url"
    )
    return Report(
        client=Client.PIP, public="https://pypi.org/simple/", indexes=(spec,), findings=(finding,)
    )


def test_the_rich_table_shows_markup_like_text_verbatim_and_masks_passwords() -> None:
    stream = io.StringIO()
    write_table(_report(), stream, color=False)
    shown = stream.getvalue()
    assert "[tool.uv.sources]" in shown  # text, not rich markup
    assert "https://u:***@private.example/simple/" in shown and ":pw@" not in shown
    assert "confusion shadowed" in shown
    assert "1 projects checked, 1 at risk (1 confusion)" in shown
    text = render_text(_report())
    assert "what to do: pin it" in text and ":pw@" not in text


def test_the_title_says_whose_rules_were_followed() -> None:
    titles = {}
    for client in Client:
        report = msgspec.structs.replace(_report(), client=client)
        text = render_text(report)
        stream = io.StringIO()
        write_table(report, stream, color=False)
        titles[client] = text.splitlines()[0]
        words = titles[client].removesuffix(":").split()
        assert words == stream.getvalue().split()[: len(words)]  # the table's title (wrapped)
        assert "as none" not in text and "as headwater" not in text, text
    assert titles[Client.PIP] == "Indexes (as pip would use them):"
    assert titles[Client.UV] == "Indexes (as uv would use them):"
    assert "command line and the files only" in titles[Client.NONE]
    assert titles[Client.HEADWATER] == "Indexes of the configuration, and their sources:"


def test_the_text_report_tells_a_refusal_from_a_failure() -> None:
    finding = msgspec.structs.replace(
        _report().findings[0],
        unavailable=(
            Failure(index="main", error="refused (HTTP 409 claimed): index 'main': held"),
            Failure(index="other", error="http://x/: connection failed"),
        ),
    )
    report = msgspec.structs.replace(_report(), findings=(finding,))
    assert "main (refused), other (failed)" in render_text(report)
