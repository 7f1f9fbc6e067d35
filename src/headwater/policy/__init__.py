"""Policy: the pure decision of which files a project is served from, and why.

Pure like :mod:`headwater.simple`: no I/O and no event loop (the import-layer contract in
``pyproject.toml`` enforces this). The merge function and routes arrive with the multi-source index
work (issue 5); the package exists now so the purity contract guards it from its first line.
"""

__all__: list[str] = []
