"""The ``headwater`` console script."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from headwater import __version__
from headwater.cli.main import main

SCRIPT = Path(sys.executable).with_name("headwater")


def test_version_from_the_installed_script() -> None:
    result = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"headwater {__version__}"


def test_help_lists_commands() -> None:
    result = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    assert "usage: headwater" in result.stdout
    for command in ("mirror", "verify", "nginx-config", "test-upstream"):
        assert command in result.stdout


def test_no_command_prints_help_and_fails(capsys: object) -> None:
    assert main([]) == 2


def test_unknown_command_is_a_usage_error() -> None:
    result = subprocess.run(
        [str(SCRIPT), "frobnicate"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_the_parser_does_not_import_the_database_or_the_server() -> None:
    """`headwater mirror` must not pay for SQLAlchemy, Starlette or granian at start-up (the
    mirror benchmark compares its memory with bandersnatch's)."""
    import subprocess
    import sys

    code = (
        "import sys, headwater.cli.main as m; m.build_parser(); "
        "print(sorted(k for k in ('sqlalchemy', 'starlette', 'granian', 'alembic') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_token_scopes_offered_by_the_cli_are_the_databases() -> None:
    from headwater.cli.admin import SCOPES as CLI_SCOPES
    from headwater.db import SCOPES

    assert set(CLI_SCOPES) == set(SCOPES)


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command's parser, depth first, with its full name."""
    found: list[tuple[str, argparse.ArgumentParser]] = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.extend(_subparsers(child))
    return found


def test_no_help_text_shows_restructuredtext_markup() -> None:
    """Help is read in a terminal: docstring markup (``code``, :func:`x`) does not belong in it.
    Walks every command and subcommand, so a new command is checked too."""
    from headwater.cli.main import build_parser

    parsers = _subparsers(build_parser())
    assert len(parsers) > 10  # the walk found the subcommands (token create, project yank, ...)
    for name, parser in parsers:
        text = parser.format_help()
        assert "``" not in text, f"{name} --help shows ``...``:\n{text}"
        assert not re.search(r":(func|class|mod|meth|data|attr):`", text), f"{name}:\n{text}"


def test_every_command_is_in_the_table_that_lets_a_command_import_only_its_module() -> None:
    """main.COMMANDS names the module of each command (``headwater adopt`` imports only
    headwater.cli.adopt): every module of headwater.cli that registers commands, and every command
    it registers, is in it, and nothing else is."""
    import importlib
    import pkgutil

    import headwater.cli
    from headwater.cli.main import COMMANDS

    registered: dict[str, str] = {}
    for info in pkgutil.iter_modules(headwater.cli.__path__):
        module = importlib.import_module(f"headwater.cli.{info.name}")
        if info.name == "main" or not hasattr(module, "register"):
            continue
        parser = argparse.ArgumentParser()
        subparsers = parser.add_subparsers()
        module.register(subparsers)
        registered.update(dict.fromkeys(subparsers.choices, info.name))
    assert registered == COMMANDS


def test_adopt_imports_no_other_commands_module() -> None:
    """``headwater adopt`` pays for its own module only (the adoption benchmark times it whole),
    and the argument types every command shares (a few lines, no imports of their own)."""
    code = (
        "import sys, headwater.cli.main as m; m.build_parser('adopt'); "
        "print(sorted(k for k in sys.modules if k.startswith('headwater.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [
        "['headwater.cli.adopt',",
        "'headwater.cli.arguments',",
        "'headwater.cli.main']",
    ], out.stdout
