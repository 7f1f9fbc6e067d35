"""The memory budget of pages being fetched, measured in a separate process: a hostile upstream
sends six huge pages at once, and the worker's resident memory must stay within the budget (plus
what the process needs anyway) while they arrive, and come back down after."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from pathlib import Path

from tests.repository.rawupstream import chunked, worker_figures

MIB = 1 << 20
PAGES = 6
PAGE_MIB = 120
BUDGET_MIB = 384

# The worker: a proxy with a 384 MiB page budget asks for six pages at once, and reports its
# resident memory before, at its peak, and after (VmRSS / VmHWM from /proc).
WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from headwater.repository.proxy import ProxySource
    from headwater.repository.http import RetryPolicy
    from headwater.storage import FileStorage
    from headwater.simple.names import normalize_name

    def rss(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
        raise SystemExit("no " + field)

    async def main(url, root, budget, pages):
        options = dict(retry=RetryPolicy(attempts=1), timeout=30.0, max_page_size=256 << 20)
        if budget:
            from headwater.repository._proxy_upstream import MemoryBudget
            options["page_budget"] = MemoryBudget(budget << 20)
        proxy = ProxySource("pub", url, FileStorage(root), **options)
        before = rss("VmRSS")
        results = await asyncio.gather(
            *(proxy.page(normalize_name(f"p{i}"), "json") for i in range(pages)),
            return_exceptions=True,
        )
        await proxy.aclose()
        outcome = ["served" if not isinstance(r, Exception) else type(r).__name__ for r in results]
        del results
        print(json.dumps({"before": before, "peak": rss("VmHWM"), "after": rss("VmRSS"),
                          "outcome": outcome}))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    """
)


def measure(root: Path, budget_mib: int, pythonpath: str | None = None) -> dict[str, object]:
    """Run the worker against a hostile upstream of six huge pages; its figures (MiB)."""

    def script(path: str) -> Iterable[tuple[bytes, float]]:
        name = path.strip("/").split("/")[-1]
        head = b'{"meta": {"api-version": "1.1"}, "name": "%s", "files": [], "pad": "' % (
            name.encode()
        )
        block = b"x" * MIB
        parts = [(head, 0.0)] + [(block, 0.0)] * PAGE_MIB + [(b'"}', 0.0)]
        return chunked(parts, content_type="application/vnd.pypi.simple.v1+json")

    return worker_figures(
        WORKER, script, str(root), str(budget_mib), str(PAGES), pythonpath=pythonpath, timeout=300
    )


def test_six_huge_pages_at_once_stay_within_the_memory_budget(tmp_path: Path) -> None:
    figures = measure(tmp_path, BUDGET_MIB)
    print("page memory budget figures (MiB):", figures)
    before = int(str(figures["before"]))
    peak = int(str(figures["peak"]))
    after = int(str(figures["after"]))
    # Six pages of 120 MiB would need over 1.4 GiB held whole (2 GiB with their joined copies).
    # Within the budget, plus 25 % for what the accounting cannot see (allocator slack, the
    # parser's working memory).
    assert peak - before <= BUDGET_MIB * 1.25, figures
    # Some pages were refused for the budget (the proxy answers those 503, or stale).
    assert "SourceUnavailable" in list(figures["outcome"])  # type: ignore[call-overload]
    # What the pages held is given back (a refused page keeps nothing).
    assert after - before <= 64, figures
