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
from pathlib import Path

import pytest

from headwater.cli.main import build_parser
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


def _variants(leaf: Leaf) -> Iterator[tuple[Leaf, list[str]]]:
    """``leaf``, once per choice of a positional with choices (``project show``, ``project yank``)."""
    choice = next((a for a in leaf.arguments if a.option is None and a.choices), None)
    if choice is None:
        yield leaf, []
        return
    assert choice.choices is not None
    rest = tuple(a for a in leaf.arguments if a is not choice)
    for word in choice.choices:
        yield Leaf((*leaf.words, word), rest), [word]


def _baseline(argument: Argument) -> tuple[list[str], dict[str, bytes]]:
    text, files = BASELINE[kind(argument)]
    return ([argument.option, text] if argument.option else [text]), files


def _wanted(argument: Argument) -> bool:
    """Whether a harmless value is given when this argument is not the one walked: what a
    command needs, and every upstream URL (a default one would reach the real PyPI)."""
    return argument.required or kind(argument) == "url"


def cases(leaf: Leaf) -> Iterator[Case]:
    for variant, prefix in _variants(leaf):
        walked = [a for a in variant.arguments if not a.choices]
        for target in walked:
            for value in VALUES[kind(target)]:
                argv = [*variant.words, *prefix]
                files: dict[str, bytes] = {}
                for argument in variant.arguments:
                    if argument is target:
                        argv += [argument.option, value.text] if argument.option else [value.text]
                        files.update(value.files)
                    elif _wanted(argument) and not argument.choices:
                        more, made = _baseline(argument)
                        argv += more
                        files = {**made, **files}
                if variant.words[:1] in LISTEN and target.dest not in ("listen", "port"):
                    argv += LISTEN[variant.words[:1]]
                yield Case(
                    variant, argv, files, f"{target.label}={value.label}", value, target.option
                )
        base = [*variant.words, *prefix]
        for argument in variant.arguments:
            if _wanted(argument) and not argument.choices:
                base += _baseline(argument)[0]
        files = {}
        for argument in variant.arguments:
            if _wanted(argument) and not argument.choices:
                files.update(_baseline(argument)[1])
        if any(a.dest == "config" for a in variant.arguments):
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
        if value is not None and value.must_fail:
            return f"exit 0 for a value that must fail; stdout {outcome.out[-300:]!r}"
        return None
    err = outcome.err
    if outcome.status == 1 and outcome.out.strip():
        return None  # the job ran and reported what failed (exit 1: "something failed")
    if not err.strip():
        return f"exit {outcome.status} without a message"
    names = [*(value.names if value else ())]
    if value is not None and _printable(value.text):
        names += [value.text, value.text[:60]]
    if value is not None and value.text == NOT_UTF8:
        names += ["bad-\\udcff", "bad-\\xff", "bad-", "bad-\ufffd", "UTF-8", "utf-8"]
    if value is not None and len(value.text) >= 200:
        names += [value.text[:30], "long", "characters"]
    if case.option:
        names += [case.option]
    # The command may stop at another of its inputs first (a harmless value is harmless to the
    # walk, not always to the command: an empty tree to adopt); naming that input is also right.
    names += [t for t in case.argv[len(case.leaf.words) :] if len(t) >= 3 and t.isprintable()]
    if not any(n and n in err for n in names):
        return f"exit {outcome.status}; the message names none of {names[:6]!r}:\n{err[-600:]}"
    return None


LEAVES = sorted(leaves(build_parser()), key=lambda leaf: leaf.name)


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


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda leaf: leaf.name.replace(" ", "-"))
def test_bad_input_to_every_command(leaf: Leaf, tmp_path: Path) -> None:
    failures: list[str] = []
    count = 0
    for n, case in enumerate(cases(leaf)):
        cwd = tmp_path / f"c{n}"
        cwd.mkdir()
        make_files(cwd, case.files)
        timeout = 6.0 if case.leaf.words[:1] in {w[:1] for w in SERVES} else 30.0
        outcome = run(case.argv, cwd, stdin=case.stdin, env=case.env, timeout=timeout)
        count += 1
        wrong = problem(case, outcome)
        if wrong is not None:
            failures.append(f"headwater {case.leaf.name} {case.what}: {wrong}")
        shutil.rmtree(cwd, ignore_errors=True)
    print(f"{leaf.name}: {count} runs")
    assert count > 0
    assert not failures, "\n\n".join(failures) + f"\n({len(failures)} of {count})"
