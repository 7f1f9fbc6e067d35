"""Real, installable projects with a dependency graph, for closure mirrors' tests and benchmark.

:func:`add_graph` adds a small world of projects to a :class:`~headwater.testing.corpus.Corpus`
whose wheels carry ``Requires-Dist`` (also served as PEP 658 ``.metadata``), so real pip and uv
resolve them. It has what the offline proof needs: a chain of depth 5 (``app`` -> ``web`` ->
``core`` -> ``base`` -> ``leaf``), extras (``app[fast]``, ``cli[color]``), markers that differ by
platform and Python (``winhelper`` only on Windows, ``tzshim`` only before 3.12, ``speedups``
only on x86_64), platform wheels (``core`` for manylinux x86_64/aarch64, musllinux, macOS arm64
and Windows; ``winhelper`` only for Windows), a pre-release, a yanked release and an sdist-only
project. :func:`add_wide_graph` adds ``count`` root projects over shared libraries, for the
benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence

from headwater.simple.names import normalize_name
from headwater.testing import wheels
from headwater.testing.corpus import Corpus

__all__ = ["GRAPH_ROOTS", "NATIVE_PLATFORMS", "add_graph", "add_project", "add_wide_graph"]

#: The platforms ``core`` has wheels for (stable ABI, so one wheel per platform and release).
NATIVE_PLATFORMS = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "manylinux_2_28_aarch64",
    "musllinux_1_2_x86_64",
    "macosx_11_0_arm64",
    "win_amd64",
)
#: Requirements that use every feature of :func:`add_graph`'s world.
GRAPH_ROOTS = ("app[fast]>=1.0", "cli[color]")


def add_project(
    corpus: Corpus,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    extras: Sequence[str] = (),
    tags: Sequence[str] = (wheels.PURE_TAG,),
    sdist: bool = False,
    requires_python: str | None = None,
) -> None:
    """Add release ``version`` of ``name`` with one wheel per tag (and an sdist when asked), all
    declaring ``requires`` (``Requires-Dist``) and ``extras`` (``Provides-Extra``)."""
    key = normalize_name(name)
    metadata = wheels.core_metadata(
        name,
        version,
        requires_python=requires_python,
        requires_dist=requires,
        provides_extra=extras,
    )
    if corpus.get(key) is None or version not in corpus.get(key).releases:  # type: ignore[union-attr]
        corpus.add_release(name, version, files=0)
    for tag in tags:
        corpus.add_file(
            name,
            version,
            filename=wheels.wheel_filename(key, version, tag),
            body=wheels.build_wheel(key, name, version, tag=tag, metadata=metadata),
            metadata=metadata,
            requires_python=requires_python,
        )
    if sdist:
        corpus.add_file(
            name,
            version,
            filename=wheels.sdist_filename(key, version),
            body=wheels.build_sdist(key, name, version, metadata=metadata),
            requires_python=requires_python,
        )


def add_graph(corpus: Corpus) -> None:
    """The offline proof's world (see the module docstring)."""
    native = [f"cp39-abi3-{p}" for p in NATIVE_PLATFORMS]
    add_project(corpus, "leaf", "1.0")
    add_project(corpus, "leaf", "2.0", sdist=True)
    add_project(corpus, "base", "1.0", requires=["leaf>=1.0"])
    add_project(corpus, "base", "1.1", requires=["leaf>=2.0"], sdist=True)
    add_project(corpus, "core", "1.0", requires=["base>=1.0"], tags=native)
    add_project(corpus, "core", "1.2", requires=["base>=1.1"], tags=native, sdist=True)
    add_project(corpus, "tzshim", "1.0")
    add_project(corpus, "web", "2.0", requires=["core>=1.0", 'tzshim; python_version < "3.12"'])
    add_project(corpus, "web", "2.1", requires=["core>=1.2", 'tzshim; python_version < "3.12"'])
    add_project(corpus, "web", "3.0b1", requires=["core>=1.2"])  # a pre-release: not taken
    add_project(corpus, "winhelper", "1.0", tags=["cp39-abi3-win_amd64"])
    add_project(corpus, "speedups", "1.0", requires=["core"])
    add_project(corpus, "colorshim", "1.0")
    add_project(corpus, "richtext", "1.0")
    add_project(
        corpus,
        "cli",
        "1.0",
        requires=[
            'colorshim; sys_platform == "win32" and extra == "color"',
            'richtext; extra == "color"',
        ],
        extras=["color"],
    )
    add_project(
        corpus,
        "app",
        "1.0",
        requires=[
            "web>=2.0",
            "cli",
            'winhelper; sys_platform == "win32"',
            'speedups; platform_machine == "x86_64" and extra == "fast"',
        ],
        extras=["fast"],
    )
    add_project(
        corpus,
        "app",
        "1.1",
        requires=[
            "web>=2.1",
            "cli[color]",
            'winhelper; sys_platform == "win32"',
            'speedups; platform_machine == "x86_64" and extra == "fast"',
        ],
        extras=["fast"],
    )
    add_project(corpus, "app", "0.9", requires=["web>=2.0"])
    corpus.yank("app", "0.9", "broken")
    add_project(corpus, "srconly", "1.0", sdist=True, tags=())


def add_wide_graph(corpus: Corpus, count: int = 200, *, libraries: int = 40) -> list[str]:
    """``count`` root projects ``proj-NNN`` (two releases each) over ``libraries`` shared
    libraries (each on the :func:`add_graph` chain ``core`` -> ``base`` -> ``leaf``), plus one
    Windows-only dependency; returns the roots' requirement strings."""
    add_graph(corpus)
    for i in range(libraries):
        add_project(corpus, f"lib-{i:03d}", "1.0", requires=["core>=1.0"])
        add_project(corpus, f"lib-{i:03d}", "1.1", requires=["core>=1.2", "leaf"])
    roots: list[str] = []
    for i in range(count):
        name = f"proj-{i:03d}"
        deps = [f"lib-{i % libraries:03d}", f"lib-{(i * 7 + 3) % libraries:03d}>=1.0"]
        add_project(corpus, name, "1.0", requires=deps)
        add_project(corpus, name, "2.0", requires=[*deps, 'winhelper; sys_platform == "win32"'])
        roots.append(f"{name}>=1.0")
    return roots
