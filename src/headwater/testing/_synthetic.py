"""The synthetic half of a :class:`~headwater.testing.corpus.Corpus`: names, tags and times.

A synthetic project is a number: :func:`synthetic_display` turns ``(index, seed)`` into a name
(words from a fixed list, joined by a separator and cased as PyPI's names are) and
:func:`synthetic_index` turns the normalized name back into the number without a 700,000-entry
dictionary. The tags a release's files get (:data:`FILE_KINDS`), the Requires-Python values drawn
from, the upload times (:data:`EPOCH`, :data:`MUTATION_EPOCH`) and generated filenames live here
too, so one seed always gives the same corpus.
"""

from __future__ import annotations

from datetime import UTC, datetime

from headwater.simple.names import NormalizedName
from headwater.testing import wheels

__all__ = [
    "EPOCH",
    "FILE_KINDS",
    "MUTATION_EPOCH",
    "REQUIRES_PYTHON",
    "SDIST",
    "generated_filename",
    "synthetic_display",
    "synthetic_index",
    "synthetic_words",
]

# Upload times start here; synthetic project i's files are i minutes later, release j j days later.
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
# Files added by mutations are uploaded at serial minutes after this (after every synthetic file).
MUTATION_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
# The tags a release's files get, in order: the pure wheel first (so pip can always install a
# generated project), then the sdist, then platform wheels a real project would ship.
SDIST = "sdist"
PLATFORM_TAGS = tuple(
    f"cp3{minor}-cp3{minor}-{platform}"
    for minor in (12, 11, 13, 10, 9, 14)
    for platform in (
        "manylinux_2_17_x86_64.manylinux2014_x86_64",
        "manylinux_2_17_aarch64.manylinux2014_aarch64",
        "win_amd64",
        "macosx_11_0_arm64",
    )
)
FILE_KINDS = (wheels.PURE_TAG, SDIST, *PLATFORM_TAGS)
REQUIRES_PYTHON = (None, ">=3.8", ">=3.9", "<4,>=3.7", ">=3.10")
# Words for synthetic names: lowercase letters only and unique, so a normalized synthetic name
# ("word-word-word") can be mapped back to its index without a 700,000-entry dictionary.
_WORD_TEXT = """
    alpha amber anvil apex arrow aspen atlas aurora badger beacon birch blaze bloom bolt breeze
    brook cactus canyon cedar cipher cinder citrus cloud clover cobalt comet coral cosmos crane
    crest crystal dahlia delta dune echo ember falcon fern fjord flare flint forge fox frost
    galaxy garnet geyser glacier glyph granite grove harbor hawk hazel helix heron horizon ion
    iris ivy jade jasper juniper kernel kestrel lagoon lantern lark lava ledger lemon lichen lotus
    lumen lynx magnet maple marble meadow mesa meteor mint moss nebula nectar nimbus oak oasis
    onyx orbit orchid otter pebble pepper pixel plasma prism pulsar quartz quill raven reef ridge
    river robin saffron sage sequoia shale signal slate solar sparrow spruce stellar summit tango
    thistle thunder tidal topaz tundra vector velvet vertex willow yarrow zenith zephyr
"""
_WORDS = tuple(_WORD_TEXT.split())
_WORD_INDEX = {word: i for i, word in enumerate(_WORDS)}
_SEPARATORS = ("-", "_", ".", "-", "_")


def synthetic_words(index: int) -> list[int]:
    # A bijection from index to word tuples: all 1-word names, then 2-word, then 3-word...
    base = len(_WORDS)
    length, block = 1, base
    while index >= block:
        index -= block
        length += 1
        block *= base
    digits = []
    for _ in range(length):
        index, digit = divmod(index, base)
        digits.append(digit)
    return digits[::-1]


def synthetic_index(name: str, seed: int) -> int | None:
    parts = name.split("-")
    base = len(_WORDS)
    offset, block = 0, 1
    for _ in range(1, len(parts)):
        block *= base
        offset += block
    value = 0
    for part in parts:
        digit = _WORD_INDEX.get(part)
        if digit is None:
            return None
        value = value * base + (digit - seed) % base
    return offset + value


def synthetic_display(index: int, seed: int) -> str:
    """The display name of synthetic project ``index`` for ``seed``."""
    words = [_WORDS[(d + seed) % len(_WORDS)] for d in synthetic_words(index)]
    # A cheap integer hash picks separator and case, so names look like PyPI's mix.
    h = (index * 2654435761 + seed * 40503 + 12345) & 0xFFFFFFFF
    sep = _SEPARATORS[h % len(_SEPARATORS)]
    style = (h >> 8) % 6
    if style == 1:
        words = [w.capitalize() for w in words]
    elif style == 2:
        words = [words[0].capitalize(), *words[1:]]
    elif style == 3 and len(words) > 1:
        words = [words[0].upper(), *words[1:]]
    return sep.join(words)


def generated_filename(name: NormalizedName, version: str, kind: str) -> str:
    if kind == SDIST:
        return wheels.sdist_filename(name, version)
    return wheels.wheel_filename(name, version, kind)
