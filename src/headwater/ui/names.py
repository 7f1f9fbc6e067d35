"""A compact, fast index of an index's project names, for search.

:class:`NameIndex` answers a query over PyPI-sized lists (700,000 names) in milliseconds while
holding two bytes per character of the names: the normalized names are grouped by length, and
each group is one string of sorted fixed-width records (``"\\n" + "\\n".join(names) + "\\n"``),
kept twice: as they are, and spelt backwards. A prefix is then a binary search in each group; a
suffix is a prefix of the backwards names; a substring is one C-speed ``str.find`` scan over the
groups, shortest names first. Python work is bounded by the number of results asked for, never by
the number of names. Why not trigram postings: they cost ~4 bytes per name-character for each
posting plus the arrays (ten times the names themselves) and a minute of Python to build for
PyPI; counting postings of a common trigram is slower than scanning the strings
(docs/web-interface.md has the measurements).

Ranking, best first (``Hit.kind``):

========== ======================================================================================
exact      the query is the name (after normalization)
prefix     the name starts with the query; shorter names first, then alphabetical. Only the
           first :data:`PREFIX_BEFORE_TYPOS` come before the typos; the rest follow them
similar    the whole name is one edit away from the query: the typo tolerance. Two neighbours
           swapped first (``reqeusts``), then a character replaced (``numpi``), then one left
           out or added (``numpyy``); alphabetical within each
substring  the name contains the query elsewhere; shorter names first, then alphabetical
========== ======================================================================================

Why the prefixes are cut: a query that is a typo of a short name is often also the prefix of
many longer names (``numpyy`` starts ``numpyyaml``, ``numpyyaml-io``, ...). Ranking every prefix
first put the name the person meant after them all, beyond the ten suggestions; now it is at
most fourth.

Queries are normalized like names (PEP 503: lower case, runs of ``-_.`` and spaces become one
``-``); characters that no name can hold are dropped. Typos are looked for only when the query
has at least :data:`MIN_SIMILAR` characters (shorter queries are one edit away from too much).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Literal

__all__ = ["MIN_SIMILAR", "PREFIX_BEFORE_TYPOS", "Hit", "NameIndex", "normalize_query"]

MIN_SIMILAR = 4
#: How many prefix names (besides the exact name) come before the typos.
PREFIX_BEFORE_TYPOS = 3
Kind = Literal["exact", "prefix", "similar", "substring"]
_SEPARATORS = re.compile(r"[-_.\s]+")
_NOT_NAME = re.compile(r"[^a-z0-9-]")


@dataclass(frozen=True, slots=True)
class Hit:
    name: str
    kind: Kind


def normalize_query(text: str) -> str:
    """``text`` as a normalized name would be: compatibility forms and accents folded to ASCII
    (``Ｒéquests`` is ``requests``: names are ASCII), lower case, separators folded to ``-``,
    other characters dropped, at most 200 characters."""
    ascii_text = unicodedata.normalize("NFKD", text[:400]).encode("ascii", "ignore").decode()
    folded = _SEPARATORS.sub("-", ascii_text.lower())
    return _NOT_NAME.sub("", folded).strip("-")[:200]


class NameIndex:
    """Normalized project names, searchable (see the module docstring). Immutable once built."""

    __slots__ = ("_all", "_blocks", "_buckets", "_count", "_lengths", "_reversed", "_starts")

    def __init__(self, names: Iterable[str]) -> None:
        by_length: dict[int, list[str]] = {}
        for name in names:
            if name and "\n" not in name:
                by_length.setdefault(len(name), []).append(name)
        self._lengths = sorted(by_length)
        self._count = 0
        #: length -> the sorted names of that length, as fixed-width records.
        self._buckets: dict[int, str] = {}
        #: length -> the same names spelt backwards, sorted (a suffix is then a prefix).
        self._reversed: dict[int, str] = {}
        # One length at a time, dropping its list as it goes: the names are held as separate
        # objects only once, never also as one set of all of them.
        for length in self._lengths:
            group = sorted(set(by_length.pop(length)))
            self._count += len(group)
            self._buckets[length] = _records(group)
            self._reversed[length] = _records(sorted(name[::-1] for name in group))
        # Every bucket one after the other, shortest names first: one scan finds substrings in
        # ranking order. _starts[i] is where the bucket of _lengths[i] begins in it.
        self._all = "".join(self._buckets[length] for length in self._lengths)
        self._starts: list[int] = []
        at = 0
        for length in self._lengths:
            self._starts.append(at)
            at += len(self._buckets[length])
        self._blocks = _block_masks(self._all)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not name or "\n" in name:
            return False
        length = len(name)
        bucket = self._buckets.get(length)
        if bucket is None:
            return False
        first = _first_at_or_after(bucket, length, name)
        start = 1 + (first or 0) * (length + 1)
        return first is not None and bucket[start : start + length] == name

    def nbytes(self) -> int:
        """About what the index holds: its characters (one byte each: normalized names are
        ASCII; the names are kept three times: by length, all in one string for the substring
        scan, and backwards) and its block masks."""
        masks = sum(mask.bit_length() // 8 + 28 for mask in self._blocks.values())
        held = [*self._buckets.values(), *self._reversed.values(), self._all]
        return sum(len(text) for text in held) + masks

    def __iter__(self) -> Iterator[str]:
        for length in self._lengths:
            bucket = self._buckets[length]
            for start in range(1, len(bucket), length + 1):
                yield bucket[start : start + length]

    def search(self, query: str, *, limit: int = 50) -> list[Hit]:
        """The best ``limit`` names for ``query`` (already normalized), best first."""
        if not query or limit <= 0:
            return []
        hits: list[Hit] = []
        seen: set[str] = set()

        def add(names: Iterable[str], kind: Kind) -> bool:
            for name in names:
                if name not in seen:
                    seen.add(name)
                    hits.append(Hit(name, "exact" if name == query else kind))
                    if len(hits) >= limit:
                        return True
            return False

        prefixed = self._prefixed(query, limit)
        if len(query) >= MIN_SIMILAR:
            # The exact name (always the first prefix name, being the shortest) and the first
            # PREFIX_BEFORE_TYPOS other prefix names, then the typos, then the other prefixes.
            first = 1 + PREFIX_BEFORE_TYPOS if query in self else PREFIX_BEFORE_TYPOS
            if add(islice(prefixed, first), "prefix"):
                return hits
            if add(self._similar(query), "similar"):
                return hits
        if add(prefixed, "prefix"):
            return hits
        add(self._containing(query), "substring")
        return hits

    # -- the scans ----------------------------------------------------------------------------

    def _prefixed(self, query: str, limit: int) -> Iterator[str]:
        """Names starting with ``query``, shortest first (the exact name, if any, comes first)."""
        for length in self._lengths:
            if length >= len(query):
                bucket = self._buckets[length]
                yield from _names(_run(bucket, length, query, limit), length)

    def _containing(self, query: str) -> Iterator[str]:
        """Names containing ``query`` (anywhere), shortest first, alphabetical per length.

        Only the blocks of :data:`BLOCK` characters that hold every triple of neighbouring
        characters of the query (every pair, for two characters) are scanned
        (:func:`_block_masks`): a query no name contains costs a few integer ANDs instead of a
        scan of every name.
        """
        text = self._all
        starts = self._starts
        candidates = _candidates(self._blocks, query, len(text))
        last = -1  # the start of the last record yielded (a record may span two blocks)
        while candidates:
            # One scan per run of neighbouring candidate blocks (the Python work is per run,
            # the C scan per character).
            first = (candidates & -candidates).bit_length() - 1
            rest = candidates >> first
            run = (~rest & (rest + 1)).bit_length() - 1  # how many ones from the lowest up
            candidates &= ~(((1 << run) - 1) << first)
            begin = first * BLOCK
            end = min(len(text), (first + run) * BLOCK + len(query) - 1)
            at = text.find(query, begin, end)
            while at != -1:
                which = bisect_right(starts, at) - 1
                length = self._lengths[which]
                width = length + 1
                offset = at - starts[which]
                start = starts[which] + offset - (offset - 1) % width  # the record's start
                if start > last:
                    last = start
                    yield text[start : start + length]
                at = text.find(query, start + width, end)

    def _similar(self, query: str) -> Iterator[str]:
        """Names one edit from ``query``: swapped neighbours, then a replaced character, then
        one left out or added; alphabetical within each (:func:`_edit`).

        Any one edit leaves the query's first half as the name's prefix, or the part after the
        middle character as its suffix; both are ranges of sorted records (the suffix among the
        reversed names), so only those few names are compared, never the whole list.
        """
        n = len(query)
        half = n // 2
        head, tail = query[:half], query[half + 1 :][::-1]
        found: dict[str, int] = {}
        for length in (n - 1, n, n + 1):
            bucket = self._buckets.get(length)
            if bucket is None:
                continue
            for name in _names(_run(bucket, length, head, _MAX_CANDIDATES), length):
                if (edit := _edit(query, name)) is not None:
                    found[name] = edit
            backwards = self._reversed[length]
            for reversed_name in _names(_run(backwards, length, tail, _MAX_CANDIDATES), length):
                name = reversed_name[::-1]
                if (edit := _edit(query, name)) is not None:
                    found[name] = edit
        # A name that starts with the query (one character added at its end) is a prefix name.
        typos = [name for name in found if not name.startswith(query)]
        yield from sorted(typos, key=lambda name: (found[name], name))


#: The substring scan's unit: the characters of all the names are cut into blocks this long,
#: and each pair and triple of neighbouring characters remembers (one bit per block) where it
#: occurs (700,000 names: 6,200 blocks, ~7,000 pairs and triples, 5 MB of masks).
BLOCK = 2048


def _block_masks(text: str) -> dict[str, int]:
    """For every pair and triple of neighbouring characters in ``text``, the blocks holding it
    (bit b set: block b, characters [b * BLOCK, (b + 1) * BLOCK + 2), so one across the edge
    counts)."""
    count = (len(text) + BLOCK - 1) // BLOCK
    maps: dict[str, bytearray] = {}
    for block in range(count):
        part = text[block * BLOCK : (block + 1) * BLOCK + 2]
        byte, bit = block >> 3, 1 << (block & 7)
        pairs = list(map(str.__add__, part, part[1:]))
        for pair in {*pairs, *map(str.__add__, pairs, part[2:])}:
            found = maps.get(pair)
            if found is None:
                maps[pair] = found = bytearray((count + 7) // 8)
            found[byte] |= bit
    return {pair: int.from_bytes(found, "little") for pair, found in maps.items()}


def _candidates(blocks: dict[str, int], query: str, size: int) -> int:
    """The blocks in which a match of ``query`` may start (a bit per block).

    A match starting in block b has its gram at offset i starting i characters later: in block
    b + i // BLOCK up to block b + (BLOCK - 1 + i) // BLOCK (a match may cross block edges, and
    its later grams are then recorded only in the later blocks). So each gram's blocks are
    shifted back by those amounts before they are combined: requiring every gram in the match's
    own block lost the matches that cross an edge (a property test found it with small blocks).
    """
    everything = (1 << ((size + BLOCK - 1) // BLOCK)) - 1
    mask = everything
    # Triples are far more selective than pairs (digits make every pair common); a query of two
    # characters has only its pair.
    gram = 3 if len(query) >= 3 else 2
    for i in range(len(query) - gram + 1):
        found = blocks.get(query[i : i + gram], 0)
        starts = 0
        for shift in range(i // BLOCK, (BLOCK - 1 + i) // BLOCK + 1):
            starts |= found >> shift
        mask &= starts
        if not mask:
            break
    return mask


#: At most this many names sharing a half with the query are compared with it, per length and
#: half (a bound on the work of one search whatever the names are).
_MAX_CANDIDATES = 5000


def _records(names: list[str]) -> str:
    return "\n" + "\n".join(names) + "\n"


def _first_at_or_after(bucket: str, length: int, key: str) -> int | None:
    """The index of the first record >= ``key`` (binary search), None when there is none."""
    width = length + 1
    low, high = 0, (len(bucket) - 1) // width
    while low < high:
        middle = (low + high) // 2
        start = 1 + middle * width
        if bucket[start : start + length] < key:
            low = middle + 1
        else:
            high = middle
    return low if low < (len(bucket) - 1) // width else None


def _run(bucket: str, length: int, prefix: str, limit: int) -> str:
    """The records of ``bucket`` starting with ``prefix`` (at most ``limit``), as a record string
    (``"\nname\nname\n"``); ``"\n"`` when there are none."""
    first = _first_at_or_after(bucket, length, prefix)
    if first is None:
        return "\n"
    width = length + 1
    start = 1 + first * width
    end = start
    stop = min(len(bucket), start + limit * width)
    needle = "\n" + prefix
    if not bucket.startswith(prefix, start):
        return "\n"
    # The run ends at the first record without the prefix (records are sorted).
    end = start + width
    while end < stop and bucket.startswith(needle, end - 1):
        end += width
    return bucket[start - 1 : end]


def _names(records: str, length: int) -> Iterator[str]:
    for start in range(1, len(records) - 1, length + 1):
        yield records[start : start + length]


#: What :func:`_edit` answers: how likely a typo of each kind is, most likely first.
SWAPPED, REPLACED, LEFT_OUT_OR_ADDED = 0, 1, 2


def _edit(query: str, name: str) -> int | None:
    """How ``name`` is ``query`` with exactly one edit (optimal string alignment distance 1):
    :data:`SWAPPED` (two neighbours), :data:`REPLACED` (one character), or
    :data:`LEFT_OUT_OR_ADDED`; None when it is not one edit away."""
    n, m = len(query), len(name)
    if abs(n - m) > 1 or query == name:
        return None
    i = 0
    while i < min(n, m) and query[i] == name[i]:
        i += 1
    if n == m:
        if (
            i + 1 < n
            and query[i] == name[i + 1]
            and query[i + 1] == name[i]
            and query[i + 2 :] == name[i + 2 :]
        ):
            return SWAPPED
        return REPLACED if query[i + 1 :] == name[i + 1 :] else None
    if n > m:
        return LEFT_OUT_OR_ADDED if query[i + 1 :] == name[i:] else None
    return LEFT_OUT_OR_ADDED if query[i:] == name[i + 1 :] else None
