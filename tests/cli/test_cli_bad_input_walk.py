"""Bad input on every command: never a traceback, and a refusal names what was wrong.

The walk (tests/cli/badinput.py) takes every command of ``headwater``'s parser (a choice among
actions, as in ``headwater project show|yank|unyank``, counts as a command of its own) and every
argument that takes a value, and gives that argument each hostile value of its kind: configuration
files that are missing, a directory, unreadable, malformed, not UTF-8, with unknown keys or sections,
wrong types, a malformed ``s3://`` location, an unreachable database; files that are directories,
unreadable or garbage; output paths that cannot be written; database URLs that cannot be reached or
parsed; upstream URLs that are unreachable or malformed; numbers out of range; names with path
traversal, control characters, non-UTF-8 bytes or 5,000 characters. The other arguments hold
harmless values. Besides the arguments: a malformed ``./headwater.toml`` and ``$HEADWATER_CONFIG``
for every command that reads a configuration, and empty or non-UTF-8 standard input where a command
reads it.

Every run must end without a traceback and within its time; a value marked ``must_fail`` must
give a non-zero status; a non-zero status must come with a message that names the input (the value,
the file, or the option).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import pytest

from headwater.cli.main import COMMANDS, build_parser
from headwater.errors import printable
from tests.cli.badinput import (
    BASELINE,
    KIND_BY_DEST,
    NOT_UTF8,
    VALUES,
    Argument,
    Leaf,
    Outcome,
    Value,
    kind,
    leaves,
    make_files,
    run,
)

#: Commands that serve until stopped: given harmless values they start, and the walk stops them
#: after a few seconds (that they were still running is no failure unless the value must fail).
SERVES = {("serve",), ("test-upstream",)}
#: Where a server listens during the walk: a free port on loopback.
LISTEN = {("serve",): ["--listen", "127.0.0.1:0"], ("test-upstream",): ["--port", "0"]}


#: Where a value marked must_fail may succeed, and why: (command, what was walked) -> reason.
#: ``*`` as the command: every command.
MAY_SUCCEED: dict[tuple[str, str], str] = {
    ("*", "--data-dir=missing"): "a new data directory is made on first use (docs/serve.md)",
    ("*", "--to-data-dir=missing"): "the destination of a move is made",
    ("nginx-config", "--root=missing"): "the config may be written before the first sync (warns)",
    ("nginx-config", "--root=unwritable"): "a root that does not exist yet, as above",
    ("check", "--find-links=*"): "pip warns about a missing find-links directory and goes on",
    ("check", "./headwater.toml=*"): "check reads a configuration only when given --config",
    ("check", "$HEADWATER_CONFIG=*"): "check reads a configuration only when given --config",
}


def _may_succeed(case: Case) -> bool:
    kind_of = case.what.split("=", 1)[0] + "=*"
    return any(
        (command, what) in MAY_SUCCEED
        for command in ("*", case.leaf.name, case.leaf.words[0])
        for what in (case.what, kind_of)
    )


@dataclass
class Case:
    leaf: Leaf
    argv: list[str]
    files: dict[str, bytes]
    what: str  # "--config=malformed"
    value: Value | None
    option: str | None
    stdin: bytes = b""
    env: dict[str, str] = field(default_factory=dict)


def _variants(leaf: Leaf) -> Iterator[Leaf]:
    """``leaf``, once per choice of a positional with choices (``project show``, ``project yank``)."""
    choice = next((a for a in leaf.arguments if a.option is None and a.choices), None)
    if choice is None:
        yield leaf
        return
    assert choice.choices is not None
    rest = tuple(a for a in leaf.arguments if a is not choice)
    for word in choice.choices:
        yield Leaf((*leaf.words, word), rest)


def _baseline(argument: Argument) -> tuple[list[str], dict[str, bytes]]:
    text, files = BASELINE[kind(argument)]
    return ([argument.option, text] if argument.option else [text]), files


#: Options a command needs in practice though argparse does not require them (one of several).
NEEDED = {("move", "to_data_dir")}
#: Standard input of every run of a command: ``user password`` reads the new password there.
LEAF_STDIN = {("user", "password"): b"correct horse battery staple walk\n"}
#: Files every run of a command starts with: the configuration ``provenance`` reads.
LEAF_FILES = {
    "provenance": {"headwater.toml": b'[proxy.demo]\nurl = "http://127.0.0.1:1/simple/"\n'},
}


def _wanted(argument: Argument, leaf: Leaf | None = None) -> bool:
    """Whether a harmless value is given when this argument is not the one walked: what a
    command needs, and every upstream URL (a default one would reach the real PyPI)."""
    needed = leaf is not None and (leaf.words[0], argument.dest) in NEEDED
    return argument.required or kind(argument) == "url" or needed


def _module(words: tuple[str, ...]) -> str:
    return COMMANDS.get(words[0], words[0])


def _full_walks() -> set[tuple[str, str]]:
    """(variant, dest) pairs walked with every value of their kind: the first command of each
    CLI module (headwater.cli.main.COMMANDS) that has the option. The other commands of that
    module share the option's code (``_common`` in cli/admin.py, say) and get a rotating sample,
    so every value still meets every module and every option meets some values on every
    command, in a few minutes instead of ten."""
    full: dict[tuple[str, str], str] = {}
    for leaf in LEAVES:
        for variant in _variants(leaf):
            for argument in variant.arguments:
                full.setdefault((_module(variant.words), argument.dest), variant.name)
    return {(name, dest) for (_, dest), name in full.items()}


#: Values per option on a command that is not the first of its module to have it; on the second
#: and later choices of a command's action (``project yank`` after ``project show``), one.
SAMPLE = 2


def _values(variant: Leaf, target: Argument, first_choice: bool) -> tuple[Value, ...]:
    values = VALUES[kind(target)]
    if (variant.name, target.dest) in FULL:
        return values
    sample = SAMPLE if first_choice else 1
    start = sum(map(ord, variant.name + target.dest))
    return tuple(values[(start + n) % len(values)] for n in range(min(sample, len(values))))


def cases(leaf: Leaf) -> Iterator[Case]:
    for n, variant in enumerate(_variants(leaf)):
        walked = [a for a in variant.arguments if not a.choices]
        for target in walked:
            for value in _values(variant, target, n == 0):
                argv = list(variant.words)
                files: dict[str, bytes] = {}
                for argument in variant.arguments:
                    if argument is target:
                        argv += [argument.option, value.text] if argument.option else [value.text]
                        files.update(value.files)
                    elif _wanted(argument, variant) and not argument.choices:
                        more, made = _baseline(argument)
                        argv += more
                        files = {**made, **files}
                if variant.words[:1] in LISTEN and target.dest not in ("listen", "port"):
                    argv += LISTEN[variant.words[:1]]
                files = {**LEAF_FILES.get(variant.words[0], {}), **files}
                yield Case(
                    variant,
                    argv,
                    files,
                    f"{target.label}={value.label}",
                    value,
                    target.option,
                    stdin=LEAF_STDIN.get(variant.words, b""),
                )
        base = list(variant.words)
        for argument in variant.arguments:
            if _wanted(argument, variant) and not argument.choices:
                base += _baseline(argument)[0]
        files = {}
        for argument in variant.arguments:
            if _wanted(argument, variant) and not argument.choices:
                files.update(_baseline(argument)[1])
        if (variant.name, "config") in FULL:
            # No --config: ./headwater.toml, then $HEADWATER_CONFIG.
            bad = b"[serve\nworkers = "
            yield Case(
                variant,
                base,
                {**files, "headwater.toml": bad},
                "./headwater.toml=malformed",
                Value("implicit", "", must_fail=True, names=("headwater.toml",)),
                None,
            )
            yield Case(
                variant,
                base,
                {**files, "env.toml": bad},
                "$HEADWATER_CONFIG=malformed",
                Value("env", "", must_fail=True, names=("env.toml",)),
                None,
                env={"HEADWATER_CONFIG": "env.toml"},
            )
            yield Case(
                variant,
                base,
                files,
                "$HEADWATER_CONFIG=missing",
                Value("env-missing", "", must_fail=True, names=("gone.toml",)),
                None,
                env={"HEADWATER_CONFIG": "gone.toml"},
            )
        if variant.words == ("user", "password"):
            for label, stdin in (("empty", b""), ("not-utf8", b"\xff\xfe\n"), ("nul", b"a\x00b\n")):
                yield Case(
                    variant,
                    [*variant.words, "--data-dir", "data", "demo"],
                    {},
                    f"stdin={label}",
                    Value(label, "", must_fail=True, names=("password", "standard input")),
                    None,
                    stdin=stdin,
                )


def _printable(text: str) -> bool:
    return bool(text) and text.isprintable() and text == text.strip() and len(text) < 200


def problem(case: Case, outcome: Outcome) -> str | None:
    """What is wrong with ``outcome`` (None: nothing)."""
    both = outcome.out + outcome.err
    if "Traceback (most recent call last)" in both:
        return f"a traceback:\n{outcome.err[-1500:]}"
    value = case.value
    if outcome.status is None:
        if case.leaf.words[:1] in {w[:1] for w in SERVES} and not (value and value.must_fail):
            return None  # it started serving: the value was accepted
        return f"still running after {outcome.seconds:.0f} s"
    if outcome.status == 0:
        if value is not None and value.must_fail and not _may_succeed(case):
            return f"exit 0 for a value that must fail; stdout {outcome.out[-300:]!r}"
        return None
    err = outcome.err
    if outcome.status == 1 and outcome.out.strip():
        return None  # the job ran and reported what failed (exit 1: "something failed")
    if not err.strip():
        return f"exit {outcome.status} without a message"
    names = [*(value.names if value else ())]
    if value is not None and _printable(value.text):
        names += [value.text, value.text[:60], str(PurePath(value.text))]
    if value is not None and value.text:
        # As messages show it: escaped by printable() or by repr(), at least its start.
        names += [printable(value.text, 60).removesuffix("..."), printable(value.text)[:8]]
        names.append(repr(value.text)[1:-1][:40])
    dest = case.what.split("=", 1)[0].lstrip("-").replace("-", " ").replace("_", " ")
    if len(dest) >= 6:
        names.append(dest)  # "invalid description: ..." names the field
    if value is not None and value.text == NOT_UTF8:
        names += ["bad-\\udcff", "bad-\\xff", "bad-", "bad-\ufffd", "UTF-8", "utf-8"]
    if value is not None and len(value.text) >= 200:
        names += [value.text[:30], "long", "characters"]
    if value is not None and not value.text:
        names += ["''", '""', "'.'", " . ", "file .", "is empty"]  # an empty name, shown quoted
    if case.option:
        names += [case.option]
    # "give --id ID": the command stopped at an input it lacks, and names that one.
    names += [a.option for a in case.leaf.arguments if a.option]
    # The command may stop at another of its inputs first (a harmless value is harmless to the
    # walk, not always to the command: an empty tree to adopt); naming that input is also right.
    names += [t for t in case.argv[len(case.leaf.words) :] if len(t) >= 3 and t.isprintable()]
    names.append("headwater-data")  # the data directory when none is given
    if not any(n and n in err for n in names):
        return f"exit {outcome.status}; the message names none of {names[:6]!r}:\n{err[-600:]}"
    return None


LEAVES = sorted(leaves(build_parser()), key=lambda leaf: leaf.name)
FULL = _full_walks()


def test_the_walk_finds_every_command() -> None:
    names = {leaf.name for leaf in LEAVES}
    for expected in ("mirror", "move", "backup create", "restore", "bundle create", "gc", "check"):
        assert expected in names, sorted(names)
    assert len(LEAVES) >= 30


def test_every_option_has_a_kind_decided() -> None:
    """A new option is walked with the values of its kind; its kind is chosen here, not guessed."""
    unknown = {
        (leaf.name, a.dest)
        for leaf in LEAVES
        for a in leaf.arguments
        if not a.choices and a.dest not in KIND_BY_DEST
    }
    assert not unknown, f"give these a kind in tests/cli/badinput.py KIND_BY_DEST: {unknown}"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with an up-to-date database, copied into each run's working directory as
    its default ``headwater-data``: commands get past opening it to their own inputs (and no run
    spends its time creating the schema)."""
    from headwater.db import Database

    folder = tmp_path_factory.mktemp("template") / "headwater-data"
    folder.mkdir(mode=0o700)
    db = Database.connect(f"sqlite:///{folder / 'headwater.sqlite3'}")
    try:
        db.upgrade()
    finally:
        db.close()
    return folder


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda leaf: leaf.name.replace(" ", "-"))
def test_bad_input_to_every_command(leaf: Leaf, tmp_path: Path, data_dir: Path) -> None:
    failures: list[str] = []
    count = 0
    for n, case in enumerate(cases(leaf)):
        cwd = tmp_path / f"c{n}"
        cwd.mkdir()
        shutil.copytree(data_dir, cwd / "headwater-data")
        make_files(cwd, case.files)
        timeout = 3.0 if case.leaf.words[:1] in {w[:1] for w in SERVES} else 30.0
        outcome = run(case.argv, cwd, stdin=case.stdin, env=case.env, timeout=timeout)
        count += 1
        wrong = problem(case, outcome)
        if wrong is not None:
            failures.append(f"headwater {case.leaf.name} {case.what}: {wrong}")
        shutil.rmtree(cwd, ignore_errors=True)
    print(f"{leaf.name}: {count} runs")
    assert count > 0
    assert not failures, "\n\n".join(failures) + f"\n({len(failures)} of {count})"
