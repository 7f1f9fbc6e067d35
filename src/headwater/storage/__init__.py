"""Storage: where trees, caches and uploads keep their bytes (file system now; S3 later)."""

from headwater.storage.base import (
    InvalidKey,
    NotFound,
    Stat,
    Storage,
    StorageError,
    Writer,
    check_key,
)
from headwater.storage.filesystem import FileStorage
from headwater.storage.memory import MemoryStorage

__all__ = [
    "FileStorage",
    "InvalidKey",
    "MemoryStorage",
    "NotFound",
    "Stat",
    "Storage",
    "StorageError",
    "Writer",
    "check_key",
]
