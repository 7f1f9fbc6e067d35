"""Errors of ``headwater check``.

::

    HeadwaterError
    ├── InvalidInput
    │   └── InvalidRequirements     a requirements, pyproject or pylock file (or a pip/uv config
    │                               file) is malformed; the message names the file and line
    └── CheckError                  the check cannot run (no index to check against, a bad option)

Both make ``headwater check`` exit with status 2: the check did not run, so nothing is known to be
safe. A failing *index* is not an error here: it is the ``unavailable`` finding of the project it
failed for (exit status 1).
"""

from __future__ import annotations

from headwater.errors import HeadwaterError, InvalidInput

__all__ = ["CheckError", "InvalidRequirements"]


class InvalidRequirements(InvalidInput):
    """A requirements, pyproject.toml, pylock.toml or pip/uv configuration file is malformed."""


class CheckError(HeadwaterError):
    """The check cannot run: no index to check against, or options that contradict each other."""
