"""Project names: validation and normalization.

Spec: https://packaging.python.org/en/latest/specifications/name-normalization/
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NewType, cast

from headwater.errors import InvalidInput

__all__ = [
    "InvalidName",
    "NormalizedName",
    "is_normalized",
    "is_valid_name",
    "normalize_many",
    "normalize_name",
    "normalize_or_none",
    "wheel_escape",
]

#: A project name in normalized form. Only :func:`normalize_name` makes one.
NormalizedName = NewType("NormalizedName", str)

# Name format spec: "A valid name consists only of ASCII letters and numbers, period, underscore and
# hyphen. It must start and end with a letter or number." The anchor is \Z, not $ (fixed Aug 2025):
# "$" also matches before a trailing newline, which would let "foo\n" through.
_VALID = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE | re.ASCII)
# Name normalization spec: "the name should be lowercased with all runs of the characters ., -, or _
# replaced with a single - character."
_SEPARATORS = re.compile(r"[-_.]+")
_NORMALIZED = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\Z")

# Over-long names are refused: PyPI's longest project name is under 100 characters, and a name is a
# path component in every static tree (most file systems cap those at 255 bytes).
MAX_NAME_LENGTH = 200


class InvalidName(InvalidInput):
    """A project name does not match the name-format spec."""


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is a valid project name (ASCII letters, digits, ``._-``; alnum at both ends)."""
    return len(name) <= MAX_NAME_LENGTH and _VALID.match(name) is not None


def normalize_name(name: str) -> NormalizedName:
    """Validate ``name`` and return its normalized form.

    Raises:
        InvalidName: ``name`` is empty, too long, or has characters the name-format spec forbids.
    """
    if not is_valid_name(name):
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise InvalidName(
            f"invalid project name {shown!r}: a name is 1-{MAX_NAME_LENGTH} ASCII letters, digits, "
            "'.', '_' or '-', starting and ending with a letter or digit"
        )
    return NormalizedName(_SEPARATORS.sub("-", name).lower())


def is_normalized(name: str) -> bool:
    """Whether ``name`` is already valid and in normalized form."""
    return len(name) <= MAX_NAME_LENGTH and _NORMALIZED.match(name) is not None


def wheel_escape(name: NormalizedName) -> str:
    """The name as it appears in a wheel or PEP 625 sdist filename (``-`` becomes ``_``)."""
    return name.replace("-", "_")


def normalize_or_none(name: str) -> NormalizedName | None:
    """Validate and normalize ``name`` with string methods only; ``None`` if invalid.

    Same answers as :func:`normalize_name` (a property test checks it) at a fraction of the cost,
    with string methods only.
    """
    if not (0 < len(name) <= MAX_NAME_LENGTH and name.isascii()):
        return None
    lowered = name.lower()
    if lowered.isalnum():
        return NormalizedName(lowered)
    # Name normalization spec: "lowercased with all runs of the characters ., -, or _ replaced
    # with a single - character". Name format spec: "ASCII letters and numbers, period, underscore
    # and hyphen. It must start and end with a letter or number."
    dashed = lowered.replace("_", "-").replace(".", "-")
    if dashed[0] == "-" or dashed[-1] == "-" or not dashed.replace("-", "").isalnum():
        return None
    return NormalizedName(_DASH_RUNS.sub("-", dashed) if "--" in dashed else dashed)


_DASH_RUNS = re.compile(r"-{2,}")


def normalize_many(names: Sequence[str]) -> list[NormalizedName | None]:
    """:func:`normalize_or_none` of every name (``None`` where invalid), done in bulk.

    Works on all names joined by newlines (a character no valid name has), so a 700,000-name list
    costs a few passes in C when every name is valid, and one cheap comprehension otherwise,
    instead of 700,000 Python calls. A property test checks it against :func:`normalize_or_none`.
    """
    if not names:
        return []
    joined = "\n".join(names)
    dashed = joined.lower().replace("_", "-").replace(".", "-")
    parts: list[str | None] = list(dashed.split("\n"))
    if len(parts) != len(names):
        # A name holds a newline (so is invalid), and the parts no longer line up with the names.
        return [normalize_or_none(name) for name in names]
    all_valid = (
        # isascii first: str.lower() maps some non-ASCII letters (KELVIN SIGN) to ASCII ones.
        joined.isascii()
        and max(map(len, names)) <= MAX_NAME_LENGTH
        # Only letters, digits and separators; no name empty or starting or ending with one.
        and dashed.replace("-", "").replace("\n", "").isalnum()
        and dashed[0] not in "-\n"
        and dashed[-1] not in "-\n"
        and "\n-" not in dashed
        and "-\n" not in dashed
        and "\n\n" not in dashed
    )
    if not all_valid:
        parts = [
            part
            if (
                0 < len(name) <= MAX_NAME_LENGTH
                and name.isascii()
                and part[0] != "-"
                and part[-1] != "-"
                and part.replace("-", "").isalnum()
            )
            else None
            for name, part in zip(names, dashed.split("\n"), strict=True)
        ]
    if "--" in dashed:
        # Name normalization spec: "all runs of the characters ., -, or _ replaced with a single -".
        parts = [
            _DASH_RUNS.sub("-", part) if part is not None and "--" in part else part
            for part in parts
        ]
    # Each part is a validated, normalized name (or None): exactly what NormalizedName promises.
    return cast("list[NormalizedName | None]", parts)
