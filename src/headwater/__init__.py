"""headwater: a Python package index that mirrors, hosts, proxies, and refuses dependency confusion."""

__version__ = "0.1.0"

__all__ = ["__version__"]
