"""Read pip requirements files the way pip reads them, for ``headwater check``.

What pip's requirements-file format allows, and what is done with it:

- line continuations (``\\`` at the end), comments (``#`` at the start or after whitespace) and
  ``${VAR}`` environment variables (upper case, digits, ``_``; left alone when unset), as pip does;
- ``-r``/``--requirement`` and ``-c``/``--constraint`` files, read relative to the including
  file; every name in a constraints file is checked too (a constraint names a package the install
  may pull in), and marked as a constraint;
- requirements with extras, specifiers and environment markers: the marker is kept for the report
  but every name is checked, whatever the environment;
- ``--hash`` after a requirement (pip-compile's ``--generate-hashes``): kept, so a hash-pinned
  requirement can be reported as protected;
- ``-e``, ``name @ URL``, bare URLs and paths: not from an index, reported as such;
- ``--index-url``/``-i``, ``--extra-index-url``, ``--no-index``, ``--find-links``/``-f``: index
  directives, applied later in file order as pip applies them (``--index-url`` replaces every
  index named before it); a relative ``--find-links`` is taken relative to the file when it
  exists there, as pip does;
- pip's other file options (``--pre``, ``--only-binary``, ``--trusted-host`` ...) are accepted and
  ignored; an option pip does not allow in a file is an error naming the file and line.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import msgspec
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PackagingRequirement

from headwater.check.errors import InvalidRequirements
from headwater.check.model import IndexDirective, Requirement, RequirementSet
from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.names import NormalizedName, normalize_or_none

__all__ = ["parse_hash", "read_requirements_txt", "requirement_from_string"]

# pip: "${VAR}" with upper-case letters, digits and underscores is replaced from the environment.
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
# pip: a comment starts at "#" at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")
_HASH_ALGORITHMS = frozenset({"sha256", "sha384", "sha512"})
_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz")

# Options pip accepts in a requirements file, by canonical name; value: takes an argument.
_FILE_OPTIONS: dict[str, bool] = {
    "--requirement": True,
    "--constraint": True,
    "--editable": True,
    "--index-url": True,
    "--extra-index-url": True,
    "--no-index": False,
    "--find-links": True,
    "--no-binary": True,
    "--only-binary": True,
    "--prefer-binary": False,
    "--require-hashes": False,
    "--pre": False,
    "--trusted-host": True,
    "--use-feature": True,
    # Options that follow a requirement on its line.
    "--hash": True,
    "--config-settings": True,
    "--global-option": True,
}
_SHORT = {
    "-r": "--requirement",
    "-c": "--constraint",
    "-e": "--editable",
    "-i": "--index-url",
    "-f": "--find-links",
    "-C": "--config-settings",
}
_PER_REQUIREMENT = frozenset({"--hash", "--config-settings", "--global-option"})


def parse_hash(value: str, *, where: str) -> str:
    """Validate a ``--hash`` value (``algorithm:hexdigest``); return it with the algorithm lower case.

    Raises:
        InvalidRequirements: the value is not ``sha256|sha384|sha512:<hex>``.
    """
    algorithm, colon, digest = value.partition(":")
    algorithm = algorithm.lower()
    if not colon or algorithm not in _HASH_ALGORITHMS or not _is_hex(digest):
        raise InvalidRequirements(
            f"{where}: --hash={value!r} is not a hash pip accepts; write "
            "--hash=sha256:<hex digest> (sha384 and sha512 work too)"
        )
    return f"{algorithm}:{digest.lower()}"


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def requirement_from_string(text: str, *, origin: str, constraint: bool = False) -> Requirement:
    """A PEP 508 requirement string (or a bare URL or path) as a :class:`Requirement`.

    Raises:
        InvalidRequirements: ``text`` is neither a PEP 508 requirement nor a URL or path; the
            message names ``origin``.
    """
    try:
        parsed = PackagingRequirement(text)
    except InvalidRequirement as exc:
        if _looks_like_location(text):
            return _direct(text, origin=origin, why="a URL or path", constraint=constraint)
        raise InvalidRequirements(
            f"{origin}: {text!r} is not a requirement: {exc}. Write a PEP 508 requirement "
            "such as 'name>=1.0', or a URL or path to a distribution."
        ) from exc
    project = normalize_or_none(parsed.name)
    if project is None:  # packaging accepted it, so this cannot happen; keep the type honest
        raise InvalidRequirements(f"{origin}: {parsed.name!r} is not a valid project name")
    return Requirement(
        name=parsed.name,
        project=project,
        origin=origin,
        specifier=str(parsed.specifier),
        marker=str(parsed.marker) if parsed.marker is not None else None,
        direct=f"a direct URL ({parsed.url})" if parsed.url else None,
        constraint=constraint,
    )


def _looks_like_location(text: str) -> bool:
    stripped = text.strip()
    return (
        "://" in stripped
        or stripped.startswith(("git+", "hg+", "svn+", "bzr+", ".", "/", "~", "file:"))
        or os.sep in stripped
        or "/" in stripped
        or stripped.lower().endswith(_ARCHIVE_SUFFIXES)
    )


def _direct(text: str, *, origin: str, why: str, constraint: bool = False) -> Requirement:
    """A requirement that does not come from an index; its name is guessed from ``#egg=`` or a
    distribution filename, when there is one."""
    project: NormalizedName | None = None
    _, _, fragment = text.partition("#")
    for part in fragment.split("&"):
        key, _, value = part.partition("=")
        if key == "egg" and value:
            project = normalize_or_none(value.split("[", 1)[0])
    if project is None:
        basename = text.rstrip("/").rsplit("/", 1)[-1].split("#", 1)[0].split("?", 1)[0]
        try:
            project = parse_filename(basename).name
        except InvalidFilename:
            project = None
    return Requirement(
        name=project or text,
        project=project,
        origin=origin,
        direct=f"{why} ({text})",
        constraint=constraint,
    )


def _logical_lines(text: str, environ: Mapping[str, str]) -> Iterator[tuple[int, str]]:
    """(first line number, line) for each logical line: continuations joined, comments gone,
    environment variables expanded."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        # pip joins continuation lines before it strips comments; a comment line inside a
        # continuation ends it (pip: "a comment line ends a line continuation").
        if raw.endswith("\\") and not _COMMENT.fullmatch(raw.strip()):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        line = _COMMENT.sub("", "".join(pending)).strip()
        pending = []
        if line:
            yield start, _ENV_VAR.sub(lambda m: environ.get(m.group(1), m.group(0)), line)
    if pending:
        line = _COMMENT.sub("", "".join(pending)).strip()
        if line:
            yield start, _ENV_VAR.sub(lambda m: environ.get(m.group(1), m.group(0)), line)


def _split_options(line: str) -> tuple[str, str]:
    """pip's split of a line into the requirement and its options: options start at the first
    space-separated token that begins with ``-``."""
    tokens = line.split(" ")
    for i, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(tokens[:i]).strip(), " ".join(tokens[i:])
    return line, ""


def _parse_options(text: str, *, where: str) -> list[tuple[str, str]]:
    """The (canonical option, value) pairs of an options string; value "" for flags."""
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise InvalidRequirements(f"{where}: cannot split the options {text!r}: {exc}") from exc
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, value = token.partition("=") if token.startswith("--") else (token, "", "")
        if not token.startswith("--") and token[:2] in _SHORT:
            name, value = _SHORT[token[:2]], token[2:]
            eq = "=" if value else ""
        if name not in _FILE_OPTIONS:
            raise InvalidRequirements(
                f"{where}: {token!r} is not an option pip allows in a requirements file; remove "
                "it, or pass it to pip on the command line"
            )
        if _FILE_OPTIONS[name]:
            if not eq:
                i += 1
                if i >= len(tokens):
                    raise InvalidRequirements(f"{where}: {name} needs a value")
                value = tokens[i]
        elif eq:
            raise InvalidRequirements(f"{where}: {name} takes no value (got {value!r})")
        out.append((name, value))
        i += 1
    return out


class _Reader:
    """One run over a requirements file and every file it includes."""

    def __init__(
        self, environ: Mapping[str, str], display: Callable[[Path], str] | None = None
    ) -> None:
        self.environ = environ
        self.requirements: list[Requirement] = []
        self.directives: list[IndexDirective] = []
        self._seen: set[Path] = set()
        self._display = display or str

    def read(self, path: Path, *, constraint: bool, included_from: str | None) -> None:
        resolved = path.resolve()
        if resolved in self._seen:  # a file included twice (or a cycle): read once
            return
        self._seen.add(resolved)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            where = f" (included from {included_from})" if included_from else ""
            raise InvalidRequirements(
                f"requirements file {self._display(path)} does not exist{where}; check the path"
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRequirements(
                f"cannot read requirements file {self._display(path)}: {exc}"
            ) from exc
        for number, line in _logical_lines(text, self.environ):
            self._line(path, number, line, constraint)

    def _line(self, path: Path, number: int, line: str, constraint: bool) -> None:
        where = f"{self._display(path)}:{number}"
        args, options_text = _split_options(line)
        options = _parse_options(options_text, where=where) if options_text else []
        hashes: list[str] = []
        for name, value in options:
            if name == "--hash":
                hashes.append(parse_hash(value, where=where))
            elif name in _PER_REQUIREMENT:
                continue
            elif args:
                raise InvalidRequirements(
                    f"{where}: {name} cannot follow a requirement on its line; put it on a line "
                    "of its own"
                )
            else:
                self._option(path, where, name, value, constraint)
        if not args:
            if hashes:
                raise InvalidRequirements(f"{where}: --hash must follow a requirement")
            return
        requirement = requirement_from_string(args, origin=where, constraint=constraint)
        if hashes:
            requirement = _with_hashes(requirement, hashes)
        self.requirements.append(requirement)

    def _option(self, path: Path, where: str, name: str, value: str, constraint: bool) -> None:
        here = path.parent
        if name in ("--requirement", "--constraint"):
            if "://" in value:
                raise InvalidRequirements(
                    f"{where}: {name} {value}: requirements files from URLs are not read; "
                    "download it and name the local copy"
                )
            nested = Path(value).expanduser()
            if not nested.is_absolute():
                nested = here / nested
            self.read(nested, constraint=constraint or name == "--constraint", included_from=where)
        elif name == "--editable":
            self.requirements.append(
                _direct(value, origin=where, why="editable (-e)", constraint=constraint)
            )
        elif name == "--index-url":
            self.directives.append(IndexDirective(action="index-url", value=value, origin=where))
        elif name == "--extra-index-url":
            self.directives.append(
                IndexDirective(action="extra-index-url", value=value, origin=where)
            )
        elif name == "--no-index":
            self.directives.append(IndexDirective(action="no-index", value="", origin=where))
        elif name == "--find-links":
            if "://" not in value:
                # pip: a relative find-links path is relative to the requirements file when it
                # exists there.
                beside = here / value
                if beside.exists():
                    value = str(beside)
            self.directives.append(IndexDirective(action="find-links", value=value, origin=where))
        # --pre, --only-binary, --trusted-host ...: accepted, and irrelevant to which index
        # serves a name.


def _with_hashes(requirement: Requirement, hashes: list[str]) -> Requirement:
    return msgspec.structs.replace(requirement, hashes=tuple(hashes))


def read_requirements_txt(
    path: Path | str,
    *,
    environ: Mapping[str, str] | None = None,
    constraint: bool = False,
) -> RequirementSet:
    """Read a pip requirements file and every file it includes.

    ``environ`` supplies ``${VAR}`` values (default: the process environment).

    Raises:
        InvalidRequirements: a file is missing or unreadable, a line is not a requirement, or an
            option is one pip does not allow there; the message names the file and line.
    """
    reader = _Reader(os.environ if environ is None else environ)
    reader.read(Path(path), constraint=constraint, included_from=None)
    return RequirementSet(
        requirements=tuple(reader.requirements), directives=tuple(reader.directives)
    )
