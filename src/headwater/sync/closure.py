"""The closure: every file any target environment could install for the inputs. Pure.

A closure mirror must serve whatever an installer on each target could pick, not what one
resolution picked today: the next ``pip install`` may backtrack to an older release, or run on
Python 3.11 instead of 3.13. So this is a set computation over all candidates, not a resolution:

* a **demand** is (project, specifier, extras) reached in one environment, remembering the input
  it came from (its **origin**, e.g. ``requirements.txt line 3``);
* every version the specifier admits is a **candidate** (pre-releases as installers take them:
  only when the specifier names one, ``--pre`` was given, or no final release fits; yanked
  releases only when pinned with ``==``/``===``, PEP 592);
* a candidate's **files** in an environment are its wheels whose tags the environment installs
  and whose ``Requires-Python`` admits it; when none fits, its sdist (``sdists = "fallback"``);
* each chosen file's core metadata gives its ``Requires-Dist``, evaluated with the environment's
  markers and each demanded extra, and those become demands in turn, until nothing is new
  (the **fixpoint**). An sdist's build requirements join when ``build_requirements`` is set.

Locked packages (pylock.toml, uv.lock) are not followed: their files are taken as listed, and
each must be on the upstream's page with the same sha256, or the lockfile is refused naming it.

No resolver library is used: resolvelib, pip and uv answer "one consistent set", and
backtracking away from candidates is exactly what a mirror must not do (every candidate it
backtracks over is one a client may still pick). The fixpoint over candidates is a few dozen
lines; what it needs from a resolver is only PEP 440/508 evaluation, which :mod:`packaging`
provides.

The I/O is elsewhere (:mod:`headwater.sync.closure_fetch`): :func:`compute_closure` is called
with the pages and metadata known so far and answers what else it needs; the caller fetches
those (concurrently) and calls again. The answer is complete when nothing is missing.

Vocabulary of problems (:class:`Problem` ``kind``):

======================  ========================================================================
``missing-project``     the upstream has no such project
``no-file``             no version the requirement admits has a file the environment installs
``conflict``            two inputs pin one project to versions no single release satisfies
``hash-mismatch``       a locked file's or ``--hash`` sha256 differs from the upstream's
``missing-file``        a locked file is not on the upstream's page
``bad-metadata``        a chosen file's core metadata could not be read
======================  ========================================================================
"""

from __future__ import annotations

import email.parser
import email.policy
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import msgspec
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from headwater.simple.filenames import InvalidFilename, parse_filename
from headwater.simple.model import ProjectPage
from headwater.simple.names import NormalizedName, normalize_name
from headwater.sync.candidates import Release as _Version
from headwater.sync.candidates import SdistPolicy
from headwater.sync.candidates import choose as _choose
from headwater.sync.candidates import marker as _marker
from headwater.sync.candidates import marker_true as _marker_true
from headwater.sync.candidates import pinned as _pinned
from headwater.sync.candidates import python_admits as _python_admits
from headwater.sync.candidates import releases as _releases
from headwater.sync.candidates import requirement as _requirement
from headwater.sync.environments import Environment
from headwater.sync.lockfiles import Inputs, Locked, constraint_specifiers
from headwater.sync.satisfiable import dead_demands, explain

__all__ = [
    "Closure",
    "CoreMetadata",
    "Memo",
    "MetadataKey",
    "Problem",
    "compute_closure",
    "parse_core_metadata",
]

#: (project, filename): the file whose core metadata is meant.
MetadataKey = tuple[NormalizedName, str]


class CoreMetadata(msgspec.Struct, frozen=True):
    """What the closure reads from a file's core metadata (and an sdist's build-system)."""

    requires_dist: tuple[str, ...] = ()
    requires_python: str | None = None
    #: ``build-system.requires`` of an sdist's pyproject.toml (None: unknown or not an sdist).
    build_requires: tuple[str, ...] | None = None


def parse_core_metadata(data: bytes, build_requires: tuple[str, ...] | None = None) -> CoreMetadata:
    """The ``Requires-Dist`` and ``Requires-Python`` fields of a METADATA/PKG-INFO file."""
    # Core metadata is RFC 822-style headers; the email parser is what the spec points to.
    message = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    requires = tuple(str(v).strip() for v in message.get_all("Requires-Dist") or ())
    python = message.get("Requires-Python")
    return CoreMetadata(requires, str(python).strip() if python else None, build_requires)


class Problem(msgspec.Struct, frozen=True, order=True):
    """Something an environment cannot get: which input asked, for which environment, and why."""

    origin: str
    environment: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.environment}: {self.detail}"


class Closure(msgspec.Struct, frozen=True):
    """The answer. Complete when ``missing_pages`` and ``missing_metadata`` are empty."""

    #: environment label -> project -> filenames that environment could install.
    files: dict[str, dict[NormalizedName, frozenset[str]]]
    problems: tuple[Problem, ...]
    missing_pages: frozenset[NormalizedName] = frozenset()
    missing_metadata: frozenset[MetadataKey] = frozenset()

    @property
    def complete(self) -> bool:
        """Whether nothing more needs fetching."""
        return not self.missing_pages and not self.missing_metadata

    def by_project(self) -> dict[NormalizedName, frozenset[str]]:
        """The union over environments: what the tree holds."""
        out: dict[NormalizedName, set[str]] = {}
        for projects in self.files.values():
            for name, filenames in projects.items():
                out.setdefault(name, set()).update(filenames)
        return {name: frozenset(files) for name, files in sorted(out.items())}


@dataclass
class _Run:
    """Mutable state of one call (the function stays pure: nothing escapes but the answer)."""

    pages: Mapping[NormalizedName, ProjectPage | None]
    metadata: Mapping[MetadataKey, CoreMetadata | None]
    missing_pages: set[NormalizedName] = field(default_factory=set)
    missing_metadata: set[MetadataKey] = field(default_factory=set)
    problems: set[Problem] = field(default_factory=set)
    releases: dict[NormalizedName, dict[Version, _Version]] = field(default_factory=dict)

    def releases_of(self, page: ProjectPage) -> dict[Version, _Version]:
        """The page's files grouped by release (once per page and call)."""
        found = self.releases.get(page.name)
        if found is None:
            found = self.releases[page.name] = _releases(page)
        return found

    def page(self, name: NormalizedName) -> ProjectPage | Literal[False] | None:
        """The page, None when the upstream has no such project, False when not fetched yet."""
        if name not in self.pages:
            self.missing_pages.add(name)
            return False
        return self.pages[name]

    def meta(self, key: MetadataKey) -> CoreMetadata | Literal[False] | None:
        if key not in self.metadata:
            self.missing_metadata.add(key)
            return False
        return self.metadata[key]


def compute_closure(
    inputs: Inputs,
    environments: Iterable[Environment],
    pages: Mapping[NormalizedName, ProjectPage | None],
    metadata: Mapping[MetadataKey, CoreMetadata | None],
    *,
    sdists: SdistPolicy = "fallback",
    build_requirements: bool = False,
    prereleases: bool = False,
    memo: Memo | None = None,
) -> Closure:
    """The closure of ``inputs`` over ``environments``, from the ``pages`` (None: the upstream has
    no such project) and ``metadata`` (None: unreadable) known so far.

    Deterministic and pure; call again with what ``missing_pages``/``missing_metadata`` name
    until the answer is complete. ``prereleases`` admits pre-releases for every demand.
    ``memo`` (an empty dict, kept by the caller between calls while ``pages`` and ``metadata``
    only grow) remembers finished expansions, so each call costs only what is new.
    """
    run = _Run(pages, metadata)
    files: dict[str, dict[NormalizedName, frozenset[str]]] = {}
    for env in environments:
        constraints = constraint_specifiers(inputs, env.markers)
        found: dict[NormalizedName, set[str]] = {}
        options = (sdists, build_requirements, prereleases or inputs.prereleases)
        _follow(run, inputs, env, constraints, found, options, {} if memo is None else memo)
        _take_locked(run, inputs.locked, env, found, sdists)
        files[env.label] = {n: frozenset(f) for n, f in sorted(found.items()) if f}
    _check_locked_hashes(run, inputs.locked)
    return Closure(
        files,
        tuple(sorted(run.problems)),
        frozenset(run.missing_pages),
        frozenset(run.missing_metadata),
    )


class _Dep(msgspec.Struct, frozen=True):
    """A parsed dependency line: what a demand needs, without the origin."""

    name: NormalizedName
    specifier: SpecifierSet
    text: str
    extras: frozenset[str]
    marker: str | None


@functools.lru_cache(maxsize=65536)
def _dep(text: str) -> _Dep | None:
    req = _requirement(text)
    if req is None:
        return None
    return _Dep(
        normalize_name(req.name),
        req.specifier,
        str(req.specifier),
        frozenset(req.extras),
        str(req.marker) if req.marker is not None else None,
    )


@functools.lru_cache(maxsize=262144)
def _applies(marker: str | None, env: tuple[tuple[str, str], ...], extra: str) -> bool:
    return marker is None or _marker_true(_marker(marker), dict(env), extra)


class _Expansion(msgspec.Struct):
    """What one demand contributes in one environment, without its origin (so it can be
    remembered across calls): files, the dependencies each installable file raises (filename,
    dependency), problems, whether every page and metadata file it needed was known, and the
    files an installer would install (its candidates, :mod:`headwater.sync.satisfiable`)."""

    files: dict[NormalizedName, set[str]]
    children: list[tuple[str, _Dep]]
    problems: list[tuple[str, str]]
    complete: bool
    installs: list[str] = msgspec.field(default_factory=list)


#: Problems that leave a demand without any file: it fails (:mod:`headwater.sync.satisfiable`).
_FATAL = frozenset({"missing-project", "no-file", "hash-mismatch"})
_Key = tuple[NormalizedName, str, frozenset[str], frozenset[str]]


#: Expansions remembered across calls of one computation (pages and metadata only grow).
Memo = dict[tuple[object, ...], _Expansion]


def _follow(
    run: _Run,
    inputs: Inputs,
    env: Environment,
    constraints: Mapping[NormalizedName, SpecifierSet],
    found: dict[NormalizedName, set[str]],
    options: tuple[SdistPolicy, bool, bool],
    memo: Memo,
) -> None:
    env_key = tuple(sorted(env.markers.items()))
    queue: list[tuple[_Dep, str, frozenset[str]]] = []
    for root in inputs.roots:
        dep = _dep(root.requirement)
        if dep is not None and _applies(dep.marker, env_key, ""):
            queue.append((dep, root.where, root.hashes))
    _check_conflicts(run, [(d, w) for d, w, _ in queue], env)
    roots = [((d.name, d.text, d.extras, h), origin) for d, origin, h in queue]
    expansions: dict[_Key, _Expansion] = {}
    while queue:
        dep, origin, hashes = queue.pop()
        key = (dep.name, dep.text, dep.extras, hashes)
        if key in expansions:
            continue
        memo_key = (env.label, *key, options)
        expansion = memo.get(memo_key)
        if expansion is None:
            expansion = _expand(run, env, env_key, dep, hashes, constraints, options)
            if expansion.complete:
                memo[memo_key] = expansion
        expansions[key] = expansion
        for name, filenames in expansion.files.items():
            found.setdefault(name, set()).update(filenames)
        for kind, detail in expansion.problems:
            if kind not in _FATAL:  # e.g. unreadable metadata: the mirror may lack files
                run.problems.add(Problem(origin, env.label, kind, detail))
        for _, child in expansion.children:
            queue.append((child, origin, frozenset()))
    _report_unsatisfiable(run, env, roots, expansions)


def _report_unsatisfiable(
    run: _Run, env: Environment, roots: list[tuple[_Key, str]], expansions: dict[_Key, _Expansion]
) -> None:
    """Report, for each input requirement no installer could satisfy here, the failures that
    make it so; a dead end an installer backtracks out of is not a failure of the mirror."""
    failed = {k for k, e in expansions.items() if any(kind in _FATAL for kind, _ in e.problems)}
    candidates: dict[_Key, dict[str, list[_Key]]] = {}
    for key, expansion in expansions.items():
        files: dict[str, list[_Key]] = {name: [] for name in expansion.installs}
        for filename, child in expansion.children:
            files.setdefault(filename, []).append(
                (child.name, child.text, child.extras, frozenset())
            )
        candidates[key] = files
    dead = dead_demands(failed, candidates)
    for key, origin in roots:
        for leaf in explain(key, dead, failed, candidates):
            for kind, detail in expansions[leaf].problems:
                if kind in _FATAL:
                    run.problems.add(Problem(origin, env.label, kind, detail))


def _expand(
    run: _Run,
    env: Environment,
    env_key: tuple[tuple[str, str], ...],
    dep: _Dep,
    hashes: frozenset[str],
    constraints: Mapping[NormalizedName, SpecifierSet],
    options: tuple[SdistPolicy, bool, bool],
) -> _Expansion:
    sdists, build_requirements, pre = options
    out = _Expansion({}, [], [], True)
    page = run.page(dep.name)
    if page is False:
        out.complete = False
        return out
    if page is None:
        out.problems.append(
            (
                "missing-project",
                f"{dep.name} is not on the upstream (asked for as {dep.name}{dep.specifier})",
            )
        )
        return out
    releases = run.releases_of(page)
    specifier = dep.specifier
    if dep.name in constraints:
        specifier = specifier & constraints[dep.name]
    admitted = list(specifier.filter(releases, prereleases=True if pre else None))
    pinned = _pinned(specifier)
    any_file = False
    hash_blocked = False
    extras = ("", *sorted(dep.extras))
    for version in admitted:
        release = releases[version]
        if release.yanked and not pinned:
            continue  # PEP 592: installers skip yanked releases unless pinned with ==
        wheels, chosen_sdists = _choose(release, env, sdists, hashes)
        if hashes and not (wheels or chosen_sdists):
            unhashed = _choose(release, env, sdists, frozenset())
            hash_blocked = hash_blocked or bool(unhashed[0] or unhashed[1])
        if not (wheels or chosen_sdists):
            continue
        any_file = True
        names = out.files.setdefault(dep.name, set())
        names.update(f.filename for f in wheels)
        names.update(f.filename for f in chosen_sdists)
        # Dependencies come from what would be installed: each wheel, or the sdist when no
        # wheel fits (with "always", a release with wheels is installed from a wheel).
        for file in wheels or chosen_sdists:
            out.installs.append(file.filename)
            md = run.meta((dep.name, file.filename))
            if md is False:
                out.complete = False
                continue
            if md is None:
                out.problems.append(
                    (
                        "bad-metadata",
                        f"the core metadata of {file.filename} could not be read; its "
                        "dependencies are not in the mirror",
                    )
                )
                continue
            for text in md.requires_dist:
                child = _dep(text)
                # A line that does not parse is refused by installers too: nothing to mirror.
                if child is not None and any(_applies(child.marker, env_key, e) for e in extras):
                    out.children.append((file.filename, child))
            if build_requirements and file in chosen_sdists and md.build_requires:
                for text in md.build_requires:
                    child = _dep(text)
                    if child is not None and _applies(child.marker, env_key, ""):
                        out.children.append((file.filename, child))
    if not any_file:
        if hash_blocked:
            out.problems.append(
                (
                    "hash-mismatch",
                    f"no file of {dep.name}{specifier} on the upstream has a sha256 the "
                    "--hash options allow; the requirements file does not match the upstream",
                )
            )
        else:
            shown = f"{dep.name}{specifier}" + (
                f"[{','.join(sorted(dep.extras))}]" if dep.extras else ""
            )
            why = (
                "no release matches"
                if not admitted
                else f"no file of {len(admitted)} matching release(s) installs there"
            )
            out.problems.append(("no-file", f"{shown}: {why}"))
    return out


def _check_conflicts(run: _Run, roots: list[tuple[_Dep, str]], env: Environment) -> None:
    """Roots that pin one project to disjoint sets of releases (``a==1`` and ``a==2``)."""
    by_name: dict[NormalizedName, list[tuple[_Dep, str]]] = {}
    for dep, origin in roots:
        by_name.setdefault(dep.name, []).append((dep, origin))
    for name, demands in by_name.items():
        if len(demands) < 2:
            continue
        page = run.page(name)
        if not page:
            continue
        combined = SpecifierSet()
        for dep, _ in demands:
            combined &= dep.specifier
        if not list(combined.filter(run.releases_of(page), prereleases=True)):
            origins = ", ".join(f"{o} ({d.specifier or 'any'})" for d, o in demands)
            run.problems.add(
                Problem(
                    demands[0][1],
                    env.label,
                    "conflict",
                    f"{name}: no release satisfies every input that names it: {origins}",
                )
            )


def _check_locked_hashes(run: _Run, locked: Iterable[Locked]) -> None:
    """Every file a lockfile lists that the upstream also lists must have the lockfile's sha256,
    whether or not any environment takes it: a lockfile that disagrees with the upstream on one
    file is not trusted for the others."""
    for package in locked:
        page = run.page(package.name)
        if not page:
            continue
        upstream = {f.filename: f.hashes.get("sha256", "").lower() for f in page.files}
        for locked_file in package.files:
            theirs = upstream.get(locked_file.filename)
            if theirs is not None and theirs != locked_file.sha256:
                run.problems.add(
                    Problem(
                        package.where,
                        "every environment",
                        "hash-mismatch",
                        f"{locked_file.filename}: the lockfile says sha256 "
                        f"{locked_file.sha256}, the upstream serves {theirs or 'no sha256'}; the "
                        "lockfile does not match the upstream (regenerate it, or check which one "
                        "was tampered with)",
                    )
                )


def _take_locked(
    run: _Run,
    locked: Iterable[Locked],
    env: Environment,
    found: dict[NormalizedName, set[str]],
    sdists: SdistPolicy,
) -> None:
    markers, tags = env.markers, env.tags
    for package in locked:
        marker = _marker(package.marker) if package.marker else None
        if not _marker_true(marker, markers, "") or not _python_admits(
            package.requires_python, env.python
        ):
            continue
        page = run.page(package.name)
        if page is False:
            continue
        if page is None:
            run.problems.add(
                Problem(
                    package.where,
                    env.label,
                    "missing-project",
                    f"{package.name} is not on the upstream",
                )
            )
            continue
        upstream = {f.filename: f for f in page.files}
        wheels = []
        for locked_file in package.files:
            if not locked_file.is_wheel:
                continue
            try:
                parsed = parse_filename(locked_file.filename)
            except InvalidFilename:
                continue
            if parsed.tags & tags:
                wheels.append(locked_file)
        chosen = list(wheels)
        if sdists == "always" or (sdists == "fallback" and not wheels):
            chosen.extend(f for f in package.files if not f.is_wheel)
        if not chosen:
            run.problems.add(
                Problem(
                    package.where,
                    env.label,
                    "no-file",
                    f"{package.name}=={package.version}: the lockfile lists no file that "
                    "installs there",
                )
            )
            continue
        for locked_file in chosen:
            file = upstream.get(locked_file.filename)
            if file is None:
                run.problems.add(
                    Problem(
                        package.where,
                        env.label,
                        "missing-file",
                        f"{locked_file.filename} is not on the upstream's page of {package.name}",
                    )
                )
                continue
            if file.hashes.get("sha256", "").lower() != locked_file.sha256:
                continue  # reported once for every environment by _check_locked_hashes
            found.setdefault(package.name, set()).add(locked_file.filename)
