"""The Simple Repository API, pure: model, names, filenames, JSON and HTML, negotiation.

Both sides of headwater speak this package: the mirror and proxy parse upstream pages with it, the
server renders pages with it. Nothing here does I/O or touches an event loop (enforced by the
import-layer contract in ``pyproject.toml``): parsers take ``bytes`` and a content type, renderers
return ``bytes``.
"""

from headwater.simple.filenames import (
    DistributionFilename,
    InvalidFilename,
    check_safe_filename,
    parse_filename,
)
from headwater.simple.model import (
    HTML_API_VERSION,
    JSON_API_VERSION,
    File,
    InvalidPage,
    Namespace,
    ProjectList,
    ProjectListEntry,
    ProjectPage,
    ProjectStatus,
    RejectedEntry,
    UnsupportedAPIVersion,
)
from headwater.simple.names import InvalidName, NormalizedName, is_valid_name, normalize_name
from headwater.simple.negotiation import NotAcceptable, select_content_type

__all__ = [
    "HTML_API_VERSION",
    "JSON_API_VERSION",
    "DistributionFilename",
    "File",
    "InvalidFilename",
    "InvalidName",
    "InvalidPage",
    "Namespace",
    "NormalizedName",
    "NotAcceptable",
    "ProjectList",
    "ProjectListEntry",
    "ProjectPage",
    "ProjectStatus",
    "RejectedEntry",
    "UnsupportedAPIVersion",
    "check_safe_filename",
    "is_valid_name",
    "normalize_name",
    "parse_filename",
    "select_content_type",
]
