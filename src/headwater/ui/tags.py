"""A wheel's compatibility tags (PEP 425) in words: which Pythons and which platforms.

``cp311-cp311-manylinux_2_17_x86_64`` becomes "CPython 3.11 · Linux x86-64 (glibc 2.17+)";
``py3-none-any`` becomes "Python 3 · any platform". A wheel with several tags (compressed tag
sets) lists each distinct part once. What this module does not recognise is shown as the tag
itself, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from packaging.tags import Tag

__all__ = ["describe_tags"]

_INTERPRETERS = {
    "py": "Python",
    "cp": "CPython",
    "pp": "PyPy",
    "ip": "IronPython",
    "jy": "Jython",
    "gp": "GraalPy",
}
_ARCHES = {
    "x86_64": "x86-64",
    "amd64": "x86-64",
    "i686": "x86",
    "win32": "x86",
    "aarch64": "ARM64",
    "arm64": "ARM64",
    "armv7l": "ARMv7",
    "ppc64le": "POWER (little-endian)",
    "s390x": "IBM Z",
    "riscv64": "RISC-V 64",
    "universal2": "Intel and Apple silicon",
    "intel": "Intel",
}
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)")
_LEGACY_MANYLINUX = {"manylinux1": "2.5", "manylinux2010": "2.12", "manylinux2014": "2.17"}
_MUSL = re.compile(r"musllinux_(\d+)_(\d+)_(\w+)")
_MACOS = re.compile(r"macosx_(\d+)_(\d+)_(\w+)")


_GRAALPY = re.compile(r"graalpy(\d)(\d+)")
_IOS = re.compile(r"ios_(\d+)_(\d+)_(\w+?)_(iphoneos|iphonesimulator)")
_ANDROID = re.compile(r"android_(\d+)_(\w+)")
_EMSCRIPTEN = re.compile(r"emscripten_(\d+)_(\d+)_(\d+)_wasm32")
_PYODIDE = re.compile(r"pyodide_(\d+)_(\d+)_wasm32")
_ANDROID_ARCHES = {"arm64_v8a": "ARM64", "armeabi_v7a": "ARMv7", "x86_64": "x86-64", "x86": "x86"}


def _python(interpreter: str, abi: str = "") -> str:
    graalpy = _GRAALPY.fullmatch(interpreter)  # GraalPy's own tag (graalpy311), not "gp"
    prefix, digits = (
        ("gp", "".join(graalpy.groups())) if graalpy else (interpreter[:2], interpreter[2:])
    )
    name = _INTERPRETERS.get(prefix)
    if name is None or not digits.isdigit():
        return interpreter
    version = digits if len(digits) == 1 else f"{digits[0]}.{digits[1:]}"
    # A free-threaded build's ABI ends in "t" (cp313t, PEP 703): its wheels do not load in the
    # default build of the same version, so it is said.
    threads = " (free-threaded)" if prefix == "cp" and abi == f"cp{digits}t" else ""
    return f"{name} {version}{threads}"


def _platform(platform: str) -> str:
    if platform == "any":
        return "any platform"
    found = _MANYLINUX.fullmatch(platform)
    if found:
        major, minor, arch = found.groups()
        return f"Linux {_ARCHES.get(arch, arch)} (glibc {major}.{minor}+)"
    for legacy, glibc in _LEGACY_MANYLINUX.items():
        if platform.startswith(legacy + "_"):
            arch = platform[len(legacy) + 1 :]
            return f"Linux {_ARCHES.get(arch, arch)} (glibc {glibc}+)"
    found = _MUSL.fullmatch(platform)
    if found:
        major, minor, arch = found.groups()
        return f"Linux {_ARCHES.get(arch, arch)} (musl {major}.{minor}+)"
    found = _MACOS.fullmatch(platform)
    if found:
        major, minor, arch = found.groups()
        return f"macOS {major}.{minor}+ {_ARCHES.get(arch, arch)}"
    if platform.startswith("win"):
        arch = platform.removeprefix("win_") if platform != "win32" else "win32"
        return f"Windows {_ARCHES.get(arch, arch)}"
    if platform.startswith("linux_"):
        arch = platform.removeprefix("linux_")
        return f"Linux {_ARCHES.get(arch, arch)} (not portable)"
    found = _IOS.fullmatch(platform)  # PEP 730
    if found:
        major, minor, arch, sdk = found.groups()
        where = "device" if sdk == "iphoneos" else "simulator"
        return f"iOS {major}.{minor}+ {_ARCHES.get(arch, arch)} ({where})"
    found = _ANDROID.fullmatch(platform)  # PEP 738
    if found:
        api, arch = found.groups()
        return f"Android API {api}+ {_ANDROID_ARCHES.get(arch, arch)}"
    found = _EMSCRIPTEN.fullmatch(platform)
    if found:
        return f"WebAssembly (Emscripten {'.'.join(found.groups())})"
    found = _PYODIDE.fullmatch(platform)  # PEP 783
    if found:
        return f"WebAssembly (Pyodide {'.'.join(found.groups())})"
    return platform


def describe_tags(tags: Iterable[Tag]) -> str:
    """The Pythons and platforms of ``tags`` in words (see the module docstring)."""
    pythons: list[str] = []
    platforms: list[str] = []
    abi3 = False
    for tag in sorted(tags, key=str):
        pythons.append(_python(tag.interpreter, tag.abi))
        platforms.append(_platform(tag.platform))
        abi3 = abi3 or tag.abi == "abi3"
    python = ", ".join(dict.fromkeys(pythons))
    if abi3:
        python += " and later (stable ABI)"
    return f"{python} · {', '.join(dict.fromkeys(platforms))}" if pythons else "unknown"
