"""The composition root: builds sources and indexes from the configuration.

Used by :mod:`headwater.server` (the app serves what is built here) and :mod:`headwater.check`
(the audit asks the same objects), so it sits below both and imports neither.
"""

from headwater.assembly.sources import (
    Sources,
    base_url,
    build_sources,
    database_url,
    hosted_storage,
    index_rules,
    proxy_storage,
    run_dir,
)

__all__ = [
    "Sources",
    "base_url",
    "build_sources",
    "database_url",
    "hosted_storage",
    "index_rules",
    "proxy_storage",
    "run_dir",
]
