"""The test upstream's control API: ``/_upstream/...``, JSON in and out.

Another process (a benchmark, ``headwater test-upstream``'s user, a test in another thread)
drives a running :class:`~headwater.testing.upstream.Upstream` through it: read and reset the
per-path request counters, read the state, flip the switches (serials, JSON, ``.metadata``),
mutate the corpus, and add, list and remove faults (:mod:`headwater.testing.faults`). Bad input
is a 400 naming the problem; an unknown action a 404. See docs/test-upstream.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from headwater.errors import InvalidInput
from headwater.testing._http1 import Reply, Request, raw_reply
from headwater.testing.corpus import CorpusError
from headwater.testing.faults import Fault

if TYPE_CHECKING:
    from headwater.testing.upstream import Upstream

__all__ = ["CONTROL", "control"]

#: Where the control API lives on the test upstream.
CONTROL = "/_upstream/"


def control(upstream: Upstream, request: Request) -> Reply:
    """The control API's answer to ``request`` (its path starts with :data:`CONTROL`)."""
    try:
        status, payload = _action(upstream, request)
    except (CorpusError, InvalidInput, msgspec.DecodeError, TypeError, KeyError) as exc:
        status, payload = 400, {"error": str(exc)}
    body = msgspec.json.encode(payload)
    return raw_reply(request, status, [("Content-Type", "application/json")], body)


def _action(upstream: Upstream, request: Request) -> tuple[int, Any]:
    action = request.path[len(CONTROL) :].strip("/")
    method = request.method
    data: dict[str, Any] = msgspec.json.decode(request.body) if request.body else {}
    faults = upstream.faults
    if action == "stats" and method == "GET":
        stats = upstream.stats
        return 200, {"total": sum(stats.values()), "paths": stats}
    if action == "stats/reset" and method == "POST":
        upstream.reset_stats()
        return 200, {"total": 0, "paths": {}}
    if action == "state" and method == "GET":
        return 200, {"serial": upstream.corpus.serial, "url": upstream.url, **_switches(upstream)}
    if action == "config" and method == "POST":
        upstream.configure(
            **{k: bool(data[k]) for k in ("serials", "json", "metadata") if k in data}
        )
        return 200, _switches(upstream)
    if action == "mutate" and method == "POST":
        return 200, {"serial": _mutate(upstream, data)}
    if action == "faults":
        if method == "GET":
            return 200, {"faults": [msgspec.to_builtins(f) for f in faults.faults]}
        if method == "POST":
            return 200, msgspec.to_builtins(faults.add(Fault.from_dict(data)))
        if method == "DELETE":
            faults.clear()
            return 200, {"faults": []}
    if action.startswith("faults/") and method == "DELETE":
        removed = faults.remove(int(action.removeprefix("faults/")))
        return (200 if removed else 404), {"removed": removed}
    return 404, {"error": f"no control action {method} {request.path}"}


def _switches(upstream: Upstream) -> dict[str, bool]:
    return {"serials": upstream.serials, "json": upstream.json, "metadata": upstream.metadata}


def _mutate(upstream: Upstream, data: dict[str, Any]) -> int:
    corpus = upstream.corpus
    op = data.pop("op", None)
    operations: dict[str, Callable[..., int]] = {
        "add_release": corpus.add_release,
        "add_file": corpus.add_file,
        "yank": corpus.yank,
        "unyank": corpus.unyank,
        "delete_file": corpus.delete_file,
        "delete_project": corpus.delete_project,
        "set_status": corpus.set_status,
    }
    if op not in operations:
        raise CorpusError(f"unknown mutation {op!r}; use one of {', '.join(operations)}")
    if "body" in data:  # add_file bodies travel as latin-1 text in JSON
        data["body"] = str(data["body"]).encode("latin-1")
    name = data.pop("project")
    return operations[op](name, **data)
