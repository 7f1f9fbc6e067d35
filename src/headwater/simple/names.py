"""Project names: validation and normalization.

Spec: https://packaging.python.org/en/latest/specifications/name-normalization/
"""

from __future__ import annotations

import re
from typing import NewType

from headwater.errors import InvalidInput

__all__ = [
    "InvalidName",
    "NormalizedName",
    "is_normalized",
    "is_valid_name",
    "normalize_name",
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
