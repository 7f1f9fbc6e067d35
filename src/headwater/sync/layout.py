"""Moved to :mod:`headwater.storage.layout` (the server reads trees too, and sits below sync);
this name stays while the sync modules are switched over."""

from headwater.storage.layout import *  # noqa: F403
from headwater.storage.layout import __all__ as __all__
