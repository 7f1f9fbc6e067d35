"""ByteBudgetLRU: the budget holds whatever is put in, least recently used dropped first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from headwater.server.lru import ByteBudgetLRU


def test_least_recently_used_goes_first() -> None:
    cache: ByteBudgetLRU[str, str] = ByteBudgetLRU(10)
    cache.put("a", "A", 4)
    cache.put("b", "B", 4)
    assert cache.get("a") == "A"  # a is now the most recent
    cache.put("c", "C", 4)
    assert cache.get("b") is None and cache.get("a") == "A" and cache.get("c") == "C"
    cache.put("huge", "H", 11)  # larger than the whole budget: not kept
    assert cache.get("huge") is None and len(cache) == 2


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 40)), max_size=200))
def test_the_budget_always_holds(puts: list[tuple[int, int]]) -> None:
    cache: ByteBudgetLRU[int, int] = ByteBudgetLRU(100)
    for key, size in puts:
        cache.put(key, key, size)
        assert cache.size <= 100
        assert cache.size == sum(s for _, s in cache._items.values())
        if size <= 100:
            assert cache.get(key) == key
