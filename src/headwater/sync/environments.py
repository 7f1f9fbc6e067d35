"""Target environments of a closure mirror: what a (Python, platform, implementation) can install.

A closure mirror serves machines it does not run on, so neither the tags nor the markers can come
from :mod:`sys`: both are computed from the environment's description, the way an installer
computes them with ``--platform``/``--python-version`` (pip) or ``--python-platform`` (uv).

==================  ============================================================================
``Environment``     one target: ``python`` ("3.12"), ``platform`` (a wheel platform tag or a
                    target such as ``manylinux_2_28_x86_64``), ``implementation`` (cp or pp)
``tags``            every wheel tag the target installs, most preferred first
                    (:mod:`packaging.tags` generates them for the expanded platform list)
``markers``         the PEP 508 marker environment (``sys_platform``, ``platform_machine``, ...)
``label``           ``cp312-manylinux_2_28_x86_64``: how reports and docs name it
==================  ============================================================================

A target platform stands for every platform an installer on it accepts: ``manylinux_2_28_x86_64``
also installs ``manylinux_2_17`` (``manylinux2014``) down to ``manylinux_2_5`` (``manylinux1``)
wheels (PEP 600: glibc is backward compatible), ``musllinux_1_2`` installs ``musllinux_1_0`` and
``_1_1`` (PEP 656), and ``macosx_14_0_arm64`` installs every older arm64 and ``universal2`` wheel
(:func:`packaging.tags.mac_platforms`). Pure: no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

import msgspec
from packaging.tags import Tag, compatible_tags, cpython_tags, generic_tags, mac_platforms

from headwater.errors import InvalidInput

__all__ = ["SERIES", "Environment", "InvalidEnvironment", "expand_platform", "parse_environments"]


class InvalidEnvironment(InvalidInput):
    """An ``environments`` entry is malformed; the message names it and shows a valid one."""


_PYTHON = re.compile(r"(3)\.(\d{1,2})(?:\.(\d{1,3}))?\Z")
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_([a-z0-9_]+)\Z")
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_MUSLLINUX = re.compile(r"musllinux_(\d+)_(\d+)_([a-z0-9_]+)\Z")
_MACOS = re.compile(r"macosx_(\d+)_(\d+)_([a-z0-9_]+)\Z")
_LINUX = re.compile(r"linux_([a-z0-9_]+)\Z")
_WINDOWS = {"win_amd64": "AMD64", "win32": "x86", "win_arm64": "ARM64"}
_IMPLEMENTATIONS = {"cp": ("cpython", "CPython"), "pp": ("pypy", "PyPy")}
#: In an environment's marker values: its ``python`` named a series (``"3.12"``), so
#: ``python_full_version`` stands for every 3.12.z (``sync/candidates.py`` ``marker_true``).
SERIES = "headwater_python_series"
_EXAMPLE = '{ python = "3.12", platform = "manylinux_2_28_x86_64" }'


def expand_platform(platform: str) -> list[str]:
    """Every wheel platform tag an installer on ``platform`` accepts, most preferred first.

    Raises:
        InvalidEnvironment: ``platform`` is not a platform tag or target headwater knows.
    """
    for old, (major, minor) in _LEGACY_MANYLINUX.items():
        if platform.startswith(old + "_"):
            platform = f"manylinux_{major}_{minor}_{platform[len(old) + 1 :]}"
            break
    if match := _MANYLINUX.match(platform):
        major, top, arch = int(match[1]), int(match[2]), match[3]
        # PEP 600: a system with glibc 2.Y runs wheels for every 2.y <= Y; the oldest glibc any
        # wheel targets is 2.5 on x86, 2.17 on the architectures manylinux2014 introduced.
        floor = 5 if arch in ("x86_64", "i686") else 17
        out: list[str] = []
        for minor in range(top, floor - 1, -1):
            out.append(f"manylinux_{major}_{minor}_{arch}")
            for old, version in _LEGACY_MANYLINUX.items():
                if version == (major, minor):
                    out.append(f"{old}_{arch}")  # PEP 600: the legacy aliases stay valid
        return out
    if match := _MUSLLINUX.match(platform):
        major, top, arch = int(match[1]), int(match[2]), match[3]
        return [f"musllinux_{major}_{minor}_{arch}" for minor in range(top, -1, -1)]
    if match := _MACOS.match(platform):
        version = (int(match[1]), int(match[2]))
        return list(mac_platforms(version, match[3]))
    if platform in _WINDOWS or _LINUX.match(platform):
        return [platform]
    raise InvalidEnvironment(
        f"environments: platform {platform!r} is not a target headwater knows; use a wheel "
        "platform tag such as manylinux_2_28_x86_64, musllinux_1_2_aarch64, macosx_14_0_arm64, "
        "win_amd64, win32, win_arm64 or linux_x86_64"
    )


def _machine(platform: str) -> tuple[str, str, str, str]:
    """``(sys_platform, os_name, platform_system, platform_machine)`` for a platform tag."""
    if platform in _WINDOWS:
        return "win32", "nt", "Windows", _WINDOWS[platform]
    if match := _MACOS.match(platform):
        arch = match[3]
        return "darwin", "posix", "Darwin", "arm64" if arch == "arm64" else "x86_64"
    arch = ""
    for pattern in (_MANYLINUX, _MUSLLINUX, _LINUX):
        if match := pattern.match(platform):
            arch = match[match.lastindex or 1]
    for old in _LEGACY_MANYLINUX:
        if platform.startswith(old + "_"):
            arch = platform[len(old) + 1 :]
    return "linux", "posix", "Linux", arch


class Environment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One target of a closure mirror: ``{ python = "3.12", platform = "win_amd64" }``.

    Raises:
        InvalidEnvironment: the Python version, platform or implementation is not understood.
    """

    #: ``"3.12"`` (or ``"3.12.4"`` when markers compare full versions).
    python: str
    #: A wheel platform tag or target: ``manylinux_2_28_x86_64``, ``win_amd64``, ...
    platform: str
    #: ``"cp"`` (CPython) or ``"pp"`` (PyPy).
    implementation: str = "cp"

    def __post_init__(self) -> None:
        if not _PYTHON.match(self.python):
            raise InvalidEnvironment(
                f"environments: python = {self.python!r} is not a Python 3 version such as "
                f'"3.12" (quote it: TOML reads 3.10 as 3.1); e.g. {_EXAMPLE}'
            )
        if self.implementation not in _IMPLEMENTATIONS:
            raise InvalidEnvironment(
                f"environments: implementation = {self.implementation!r}: use 'cp' (CPython) "
                "or 'pp' (PyPy)"
            )
        expand_platform(self.platform)

    @property
    def version(self) -> tuple[int, int]:
        """``(3, 12)``."""
        match = _PYTHON.match(self.python)
        assert match is not None  # checked in __post_init__
        return int(match[1]), int(match[2])

    @property
    def label(self) -> str:
        """``cp312-manylinux_2_28_x86_64``: the name reports and the dry run use."""
        major, minor = self.version
        return f"{self.implementation}{major}{minor}-{self.platform}"

    @property
    def tags(self) -> frozenset[Tag]:
        """Every wheel tag this environment installs."""
        return _tags(self.implementation, self.version, self.platform)

    @property
    def markers(self) -> Mapping[str, str]:
        """The PEP 508 marker environment (without ``extra``, which the caller adds)."""
        return _markers(self.implementation, self.python, self.platform)


@functools.cache
def _tags(implementation: str, version: tuple[int, int], platform: str) -> frozenset[Tag]:
    platforms = expand_platform(platform)
    major, minor = version
    out: list[Tag] = []
    if implementation == "cp":
        out.extend(cpython_tags(version, platforms=platforms))
    else:
        # PyPy 7.3's ABI tag, the one every current PyPy wheel carries (pp310-pypy310_pp73).
        interpreter = f"pp{major}{minor}"
        out.extend(generic_tags(interpreter, [f"pypy{major}{minor}_pp73", "none"], platforms))
    out.extend(compatible_tags(version, f"{implementation}{major}{minor}", platforms))
    return frozenset(out)


@functools.cache
def _markers(implementation: str, python: str, platform: str) -> Mapping[str, str]:
    sys_platform, os_name, system, machine = _machine(platform)
    name, display = _IMPLEMENTATIONS[implementation]
    parts = python.split(".")
    full = python if len(parts) == 3 else f"{python}.0"
    return {
        "implementation_name": name,
        "implementation_version": full,
        "os_name": os_name,
        "platform_machine": machine,
        "platform_python_implementation": display,
        "platform_release": "",
        "platform_system": system,
        "platform_version": "",
        "python_full_version": full,
        "python_version": ".".join(parts[:2]),
        "sys_platform": sys_platform,
        # "3.12" is every 3.12.z: markers on python_full_version are decided for all of them
        # (sync/candidates.py marker_true; the key is no PEP 508 name, so no marker reads it).
        SERIES: "1" if len(parts) == 2 else "0",
    }


def parse_environments(tables: Sequence[Mapping[str, object]]) -> tuple[Environment, ...]:
    """Environments from TOML tables.

    Raises:
        InvalidEnvironment: an entry is not a table of the known keys, or a value is invalid.
    """
    out: list[Environment] = []
    for i, table in enumerate(tables):
        try:
            out.append(msgspec.convert(table, Environment))
        except msgspec.ValidationError as exc:
            # A check of Environment's own already names the key and gives the example.
            message = str(exc).removeprefix("environments: ")
            if _EXAMPLE not in message:
                message = f"{message}; e.g. {_EXAMPLE}"
            raise InvalidEnvironment(f"environments[{i}]: {message}") from exc
    return tuple(out)
