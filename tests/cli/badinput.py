"""The bad-input walk of every command (tests/cli/test_cli_bad_input_walk.py): the command tree,
the hostile values by kind of argument, and a runner that runs one command line in a forked child.

The tree is walked from ``headwater.cli.main.build_parser()``, so a command or an option added later
is walked without editing this file. Each value-taking argument has a *kind* (a configuration file,
a file to read, a file to write, a directory, a database URL, an upstream URL, a number, a name or
free text), chosen by its destination name; an argument no rule knows is walked as free text, and
``KIND_BY_DEST`` is checked against the tree (a new option gets a kind by a decision, not by
accident).

Commands run in a forked child of the test process (the parser and the library are imported once;
a child costs milliseconds where a new interpreter costs a second) with their own working directory,
standard streams and environment, and are killed if they outlive a timeout.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# -- the command tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Argument:
    dest: str
    option: str | None  # "--config", or None for a positional
    required: bool
    choices: tuple[str, ...] | None
    many: bool  # nargs "+" or "*"
    optional_positional: bool  # nargs "?"

    @property
    def label(self) -> str:
        return self.option or self.dest


@dataclass(frozen=True)
class Leaf:
    """One runnable command: its words (``["token", "create"]``) and its value-taking arguments."""

    words: tuple[str, ...]
    arguments: tuple[Argument, ...]

    @property
    def name(self) -> str:
        return " ".join(self.words)


def leaves(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every command of ``parser``'s tree that runs (no subcommands of its own)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if subs:
        for action in subs:
            for word, child in action.choices.items():
                yield from leaves(child, (*words, word))
        return
    found: list[Argument] = []
    for action in parser._actions:
        if action.nargs == 0 or isinstance(action, argparse._HelpAction):
            continue  # flags take no value
        option = max(action.option_strings, key=len) if action.option_strings else None
        found.append(
            Argument(
                dest=action.dest,
                option=option,
                required=bool(action.required) or option is None,
                choices=tuple(action.choices) if action.choices else None,
                many=action.nargs in ("+", "*"),
                optional_positional=option is None and action.nargs in ("?", "*"),
            )
        )
    yield Leaf(words, tuple(found))


# -- kinds of argument and their values -----------------------------------------------------------

#: The kind of each argument, by its destination name.
KIND_BY_DEST: dict[str, str] = {
    "config": "config",
    "to_config": "config",
    "data_dir": "dir",
    "to_data_dir": "dir",
    "target": "dir",
    "root": "dir",
    "files": "dir",
    "from_dir": "dir",
    "find_links": "dir",
    "provenance": "dir",
    "database": "database",
    "to_database": "database",
    "private_key": "file",
    "public_key": "file",
    "against": "file",
    "trusted_root": "file",
    "tls_certificate": "file",
    "tls_key": "file",
    "file_sizes": "file",
    "inputs": "file",
    "volumes": "file",
    "backup": "file",
    "output": "output",
    "upstream": "url",
    "index_url": "url",
    "extra_index_url": "url",
    "public": "url",
    "base_url": "url",
    "oidc_issuer": "url",
    "workers": "number",
    "expires_days": "number",
    "limit": "number",
    "since": "number",
    "grace": "number",
    "pending_for": "number",
    "timeout": "number",
    "projects": "number",
    "releases": "number",
    "seed": "number",
    "max_gb": "number",
    "bandwidth": "number",
    "port": "number",
    "id": "number",
    "repository_id": "name",
    "repository_owner_id": "name",
    "project_id": "name",
    "name": "name",
    "project": "name",
    "index": "name",
    "config_indexes": "name",
    "default_index": "name",
    "user": "name",
    "owner": "name",
    "namespace": "name",
    "source": "name",
    "version": "name",
    "value": "name",
    "file": "name",  # headwater project ... --file FILENAME
    "github": "text",
    "gitlab": "text",
    "claim": "text",
    "workflow": "text",
    "environment": "text",
    "ref": "text",
    "issuer": "text",
    "description": "text",
    "reason": "text",
    "server_name": "text",
    "prefix": "text",
    "listen": "text",
    "host": "text",
    "tree": "text",
    "volume_size": "text",
}

#: Commands that sit on a dry or read-only default when given good values; in the walk a baseline
#: value is always one that cannot reach the network or a real machine-wide path.
UNREACHABLE_URL = "http://127.0.0.1:1/simple/"
DEAD_POSTGRES = "postgresql://nobody:secret@127.0.0.1:1/headwater"

# A non-UTF-8 argument as Python receives it from the OS (bytes 0xff 0xfe, surrogate-escaped).
NOT_UTF8 = b"bad-\xff\xfe".decode(errors="surrogateescape")


@dataclass(frozen=True)
class Value:
    """One hostile value. ``text`` is the argument; ``files`` are made in the working directory
    first (name -> bytes; a name ending in ``/`` is a directory); ``must_fail``: the command may
    not succeed with it; ``names``: any of these in the error names the input (besides the value
    itself and the option)."""

    label: str
    text: str
    files: dict[str, bytes] = field(default_factory=dict)
    must_fail: bool = False
    names: tuple[str, ...] = ()


def _toml(label: str, body: bytes, names: tuple[str, ...] = ()) -> Value:
    return Value(label, "hw.toml", {"hw.toml": body}, must_fail=True, names=("hw.toml", *names))


_PATH_COMMON = (
    Value("missing", "no/such/thing", must_fail=True, names=("no/such/thing",)),
    Value("empty-string", ""),
    Value("not-utf8", NOT_UTF8),
    Value("s3-no-bucket", "s3://"),
    Value("s3-bad-bucket", "s3://Bad Bucket!/x"),
)

VALUES: dict[str, tuple[Value, ...]] = {
    "config": (
        *_PATH_COMMON,
        Value("directory", "adir", {"adir/": b""}, must_fail=True, names=("adir",)),
        Value("unreadable", "/proc/self/mem", must_fail=True),
        _toml("malformed", b"[mirror.x\nupstream = "),
        _toml("not-utf8", b'[hosted.a]\nread = "\xff\xfe"\n'),
        _toml("binary", bytes(range(256)) * 4),
        _toml("unknown-key", b"[serve]\nlisten_on = 1\n", ("listen_on",)),
        _toml("unknown-section", b"[mirrors.x]\n", ("mirrors",)),
        _toml("wrong-type", b'[serve]\nworkers = "many"\n', ("workers",)),
        _toml("wrong-type-table", b"serve = 3\n", ("serve",)),
        _toml("bad-s3-target", b'[mirror.m]\nupstream = "https://x/simple/"\ntarget = "s3://"\n'),
        _toml("bad-s3-data", b'[serve]\ndata_dir = "s3://Bad Bucket!/x"\n'),
        _toml(
            "dead-database",
            b'[serve]\ndatabase = "' + DEAD_POSTGRES.encode() + b'"\n',
            ("127.0.0.1:1", "127.0.0.1"),
        ),
        _toml("bad-database", b'[serve]\ndatabase = "mysql://x"\n', ("mysql",)),
        _toml("hostile-name", b'[hosted."../../etc"]\n', ("../../etc",)),
        _toml("bad-upstream", b'[proxy.p]\nurl = "ftp://x"\n', ("ftp://x",)),
        _toml("bad-index-source", b'[index.i]\nsources = ["nope"]\n', ("nope",)),
        _toml("deep", b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n"),
    ),
    "file": (
        *_PATH_COMMON,
        Value("directory", "adir", {"adir/": b""}, must_fail=True, names=("adir",)),
        Value("unreadable", "/proc/self/mem", must_fail=True),
        Value("empty", "empty", {"empty": b""}, names=("empty",)),
        Value("garbage", "garbage", {"garbage": bytes(range(256)) * 64}, names=("garbage",)),
        Value("hostile-name", "../../../etc/passwd\x1b[31m", must_fail=True),
    ),
    "output": (
        Value("directory", "adir", {"adir/": b""}, names=("adir",)),
        Value("no-parent", "/proc/no/such/x", must_fail=True, names=("/proc/no/such",)),
        Value("empty-string", "", must_fail=True),
        Value("not-utf8", NOT_UTF8),
        Value("s3-no-bucket", "s3://", must_fail=True),
        Value("s3-bad-bucket", "s3://Bad Bucket!/x", must_fail=True),
    ),
    "dir": (
        *_PATH_COMMON,
        Value("a-file", "afile", {"afile": b"x"}, must_fail=True, names=("afile",)),
        Value("under-a-file", "afile/sub", {"afile": b"x"}, must_fail=True, names=("afile",)),
        Value("unwritable", "/proc/headwater", must_fail=True, names=("/proc/headwater",)),
        Value(
            "s3-unreachable",
            "s3://bucket/prefix",
            must_fail=True,
            names=("s3://bucket", "'bucket'"),
        ),
    ),
    "database": (
        Value("unreachable", DEAD_POSTGRES, must_fail=True, names=("127.0.0.1:1",)),
        Value("no-host", "postgresql://", must_fail=True),
        Value("other-scheme", "mysql://x/y", must_fail=True),
        Value("not-a-url", "just words", must_fail=True),
        Value("empty-string", "", must_fail=True),
        Value("sqlite-in-proc", "sqlite:////proc/headwater/x.db", must_fail=True, names=("/proc",)),
        Value("sqlite-a-directory", "sqlite:///adir", {"adir/": b""}, must_fail=True),
        Value("sqlite-garbage", "sqlite:///g.db", {"g.db": b"not a database" * 100}, True),
        Value("not-utf8", NOT_UTF8, must_fail=True),
    ),
    "url": (
        Value("unreachable", UNREACHABLE_URL, names=("127.0.0.1:1",)),
        Value("ftp", "ftp://x/simple/"),
        Value("bad-ipv6", "http://[::1/simple/"),
        Value("not-a-url", "just words"),
        Value("empty-string", ""),
        Value("no-host", "http:///simple/"),
        Value("bad-port", "http://127.0.0.1:99999/simple/"),
        Value("file", "file:///etc/passwd"),
        Value("not-utf8", NOT_UTF8),
        Value("control", "http://x/\r\nX-Injected: 1"),
    ),
    "number": (
        Value("negative", "-1"),
        Value("zero", "0"),
        Value("huge", "9" * 40),
        Value("nan", "nan"),
        Value("inf", "inf"),
        Value("word", "many"),
    ),
    "name": (
        Value("traversal", "../../etc/passwd"),
        Value("empty-string", ""),
        Value("long", "x" * 5000),
        Value("control", "a\x1b[31mb\r\n"),
        Value("not-utf8", NOT_UTF8),
        Value("dash", "-"),
        Value("unicode", "名前"),
        Value("spaces", "a b"),
    ),
    "text": (
        Value("empty-string", ""),
        Value("long", "x" * 5000),
        Value("control", "a\x1b[31mb\r\n"),
        Value("not-utf8", NOT_UTF8),
        Value("traversal", "../../etc/passwd"),
    ),
}

#: A harmless value for each kind, for the arguments a command needs besides the one walked.
BASELINE: dict[str, tuple[str, dict[str, bytes]]] = {
    "config": ("hw.toml", {"hw.toml": b""}),
    # A comment: a requirements file with nothing to check, a key file that is no key.
    "file": ("input", {"input": b"# nothing here\n"}),
    "output": ("out", {}),
    "dir": ("tree", {"tree/": b""}),
    "database": ("sqlite:///db/headwater.sqlite3", {"db/": b""}),
    "url": (UNREACHABLE_URL, {}),
    "number": ("1", {}),
    "name": ("demo", {}),
    "text": ("x", {}),
}


def kind(argument: Argument) -> str:
    return KIND_BY_DEST.get(argument.dest, "text")


# -- running one command line ---------------------------------------------------------------------


@dataclass
class Outcome:
    status: int | None  # None: killed after the timeout
    out: str
    err: str
    seconds: float


#: What every child's environment holds: no real credentials, no proxy, no metadata service, and a
#: proxy that refuses every connection for libraries that honour one.
CHILD_ENV = {
    "AWS_ACCESS_KEY_ID": "walk",
    "AWS_SECRET_ACCESS_KEY": "walk",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
    "HTTP_PROXY": "http://127.0.0.1:1",
    "HTTPS_PROXY": "http://127.0.0.1:1",
    "ALL_PROXY": "http://127.0.0.1:1",
    "NO_PROXY": "",
    "PIP_CONFIG_FILE": "/dev/null",
    "UV_NO_CONFIG": "1",
    "NO_COLOR": "1",
    "COLUMNS": "120",
}


def warm() -> None:
    """Import every module of headwater once, before the children fork (each child would import
    what its command needs again otherwise: most of a second per run on a loaded machine)."""
    import importlib
    import pkgutil

    import headwater

    if getattr(warm, "done", False):
        return
    for module in pkgutil.walk_packages(headwater.__path__, "headwater."):
        if module.name.endswith("__main__") or ".migrations" in module.name:
            continue  # run as scripts, not imported
        importlib.import_module(module.name)
    warm.done = True  # type: ignore[attr-defined]


def run(
    argv: list[str],
    cwd: Path,
    *,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Outcome:
    """Run ``headwater argv`` in a forked child, as the console script would (``sys.exit(main())``:
    an exception that escapes is printed as a traceback by the interpreter's hook)."""
    from headwater.cli.main import main

    warm()
    streams = {name: tempfile.TemporaryFile(dir=cwd) for name in ("in", "out", "err")}  # noqa: SIM115
    streams["in"].write(stdin)
    streams["in"].seek(0)
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 70
        try:
            os.setpgid(0, 0)
            os.chdir(cwd)
            for fd, name in ((0, "in"), (1, "out"), (2, "err")):
                os.dup2(streams[name].fileno(), fd)
            sys.stdin = open(0, encoding="utf-8", errors="strict", closefd=False)  # noqa: SIM115
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
            root = logging.getLogger()
            for handler in list(root.handlers):  # pytest's capture: a log goes to stderr here
                root.removeHandler(handler)
            root.setLevel(logging.WARNING)
            isolate = ("HEADWATER_", "AWS_", "PIP_", "UV_")  # this machine's installer config
            for key in [k for k in os.environ if k.startswith(isolate)]:
                del os.environ[key]
            os.environ.update({**CHILD_ENV, **(env or {})})
            try:
                code = main(argv)
            except SystemExit as exc:
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
                    code = 1
                else:
                    code = int(exc.code or 0)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    status: int | None = None
    deadline = start + timeout
    while True:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        select.select([], [], [], 0.01)
    texts = []
    for name in ("out", "err"):
        streams[name].seek(0)
        texts.append(streams[name].read().decode(errors="backslashreplace"))
    for stream in streams.values():
        stream.close()
    return Outcome(status, texts[0], texts[1], time.monotonic() - start)


def make_files(cwd: Path, files: dict[str, bytes]) -> None:
    for name, body in files.items():
        path = cwd / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
