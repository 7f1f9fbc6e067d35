"""File sizes drawn from real projects, for test upstreams and benchmarks.

A samples file is JSON ``{"source": ..., "projects": {name: [size, ...]}}`` (``bench/
pypi_file_sizes.json`` holds the PEP 700 sizes of every file of 12 widely used PyPI projects).
:func:`size_sampler` turns it into the ``sizes`` function :class:`~headwater.testing.corpus.Corpus`
pads generated files with: each file name draws a project, then one of its files, always the same
for the same name; every size is scaled down so that ``total_files`` files are expected to need no
more than ``max_bytes``.
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Callable
from pathlib import Path

__all__ = ["size_sampler"]


def size_sampler(
    samples_file: Path, total_files: int, max_bytes: float
) -> tuple[Callable[[str], int], float, float]:
    """The size function (by file name, deterministic), the scale applied and the expected total
    bytes before scaling.

    Raises:
        ValueError: the file is not a samples file, or holds no sizes.
    """
    try:
        data = json.loads(samples_file.read_text())
        samples: list[list[int]] = [
            [int(size) for size in sizes] for sizes in data["projects"].values() if sizes
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"{samples_file} is not a file-size samples file "
            f'({{"projects": {{name: [sizes]}}}}): {exc}'
        ) from None
    if not samples:
        raise ValueError(f"{samples_file} holds no file sizes")
    mean = statistics.fmean(statistics.fmean(sizes) for sizes in samples)
    expected = mean * total_files
    scale = min(1.0, max_bytes / expected) if expected > 0 else 1.0

    def size_of(filename: str) -> int:
        rng = random.Random(filename)  # noqa: S311 (test data, not secrets)
        return int(rng.choice(rng.choice(samples)) * scale)

    return size_of, scale, expected
