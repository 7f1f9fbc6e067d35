"""Path parameters, checked before any handler uses them.

Every route that takes a project, namespace, filename, version or user name from its URL reads it
through one of these functions, so no handler hands an unchecked string to a parser, the
database, a page or a log line. A value that fails raises :class:`BadParameter`: no resource can
have that name, so the route answers 404, with a message that shows the value (``repr``, cut
short: control characters stay visible and a 20,000-character segment stays one line) and says
what a valid one looks like.
"""

from __future__ import annotations

import re

from headwater.errors import InvalidInput
from headwater.simple.filenames import InvalidFilename, check_safe_filename
from headwater.simple.names import MAX_NAME_LENGTH, NormalizedName, is_valid_name, normalize_name

__all__ = ["BadParameter", "filename", "namespace", "project", "shown", "user", "version"]

# The database's alphabet for user names (db/_checks.py): 1-100 characters, alnum at both ends.
_USER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?\Z", re.ASCII)
# PEP 440 versions (and the legacy ones a filename may carry) are short printable ASCII.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,127}\Z", re.ASCII)


class BadParameter(InvalidInput):
    """A path parameter no resource can have (the route answers 404 with this message)."""

    status = 404


def shown(value: str, limit: int = 80) -> str:
    """``value`` as a message shows it: ``repr``, at most about ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def project(raw: str) -> NormalizedName:
    """A project name from a URL, normalized (PEP 503)."""
    if not is_valid_name(raw):
        raise BadParameter(
            f"{shown(raw)} is not a valid project name: 1-{MAX_NAME_LENGTH} ASCII letters, "
            "digits, '.', '_' or '-', starting and ending with a letter or digit"
        )
    return normalize_name(raw)


def namespace(raw: str) -> NormalizedName:
    """A PEP 752 namespace from a URL: a project-name prefix, normalized alike."""
    if not is_valid_name(raw):
        raise BadParameter(
            f"{shown(raw)} is not a valid namespace: namespaces are spelled like project names "
            f"(1-{MAX_NAME_LENGTH} ASCII letters, digits, '.', '_' or '-', alnum at both ends)"
        )
    return normalize_name(raw)


def filename(raw: str) -> str:
    """A distribution filename from a URL: one safe path component."""
    try:
        return check_safe_filename(raw)
    except InvalidFilename as exc:
        raise BadParameter(str(exc)) from exc


def version(raw: str) -> str:
    """A release's version from a URL."""
    if _VERSION.match(raw) is None:
        raise BadParameter(
            f"{shown(raw)} is not a version: at most 128 ASCII letters, digits and '.+!_-', as "
            "in the file names of the release"
        )
    return raw


def user(raw: str) -> str:
    """A user name from a URL."""
    if _USER.match(raw) is None:
        raise BadParameter(
            f"{shown(raw)} is not a user name: 1-100 ASCII letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return raw
