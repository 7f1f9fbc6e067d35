"""Prometheus metrics for ``/metrics``: requests, latencies, bytes, uploads, errors, and what
each proxy served from its cache (:class:`~headwater.repository._proxy_stats.ProxyStats`).

Each server process counts in plain dictionaries (a request costs a few dictionary updates) and
writes a snapshot of its counters to ``<run_dir>/metrics/<pid>.json`` about once a second. A scrape
adds every process's latest snapshot together, so ``/metrics`` reports the whole server whichever
worker answers it. Snapshots of exited workers are kept until the server starts again, so counters
never go backwards during a run.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from pathlib import Path

import msgspec

from headwater.repository._proxy_stats import ProxyStats
from headwater.storage.filesystem import private_directory

__all__ = ["BUCKETS", "Metrics", "Snapshot", "collect", "render"]

#: Latency histogram bucket upper bounds, seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Snapshot(msgspec.Struct):
    """One process's counters. Keys join label values with ``|``."""

    requests: dict[str, int] = msgspec.field(default_factory=dict)  # index|kind|status
    latency_buckets: dict[str, list[int]] = msgspec.field(default_factory=dict)  # kind
    latency_sum: dict[str, float] = msgspec.field(default_factory=dict)  # kind
    bytes_sent: dict[str, int] = msgspec.field(default_factory=dict)  # index|kind
    uploads: dict[str, int] = msgspec.field(default_factory=dict)  # index|result
    errors: dict[str, int] = msgspec.field(default_factory=dict)  # kind
    proxy: dict[str, int] = msgspec.field(default_factory=dict)  # source|counter


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Snapshot)


class Metrics:
    """The counters of this process."""

    def __init__(self, directory: Path | None = None) -> None:
        self.data = Snapshot()
        self.directory = directory
        self._proxies: dict[str, ProxyStats] = {}

    def track_proxy(self, name: str, stats: ProxyStats) -> None:
        """Report the counters of the proxy ``name`` (read at each flush and scrape)."""
        self._proxies[name] = stats

    def _read_proxies(self) -> None:
        proxy = self.data.proxy
        for name, stats in self._proxies.items():
            for counter, value in stats.items():
                proxy[f"{name}|{counter}"] = value

    def observe(self, index: str, kind: str, status: int, seconds: float, sent: int) -> None:
        """Count one finished request. ``kind``: page, file, held, upload, api, health, other."""
        data = self.data
        key = f"{index}|{kind}|{status}"
        data.requests[key] = data.requests.get(key, 0) + 1
        buckets = data.latency_buckets.get(kind)
        if buckets is None:
            buckets = data.latency_buckets[kind] = [0] * (len(BUCKETS) + 1)
        buckets[bisect_left(BUCKETS, seconds)] += 1
        data.latency_sum[kind] = data.latency_sum.get(kind, 0.0) + seconds
        if sent:
            key = f"{index}|{kind}"
            data.bytes_sent[key] = data.bytes_sent.get(key, 0) + sent
        if status >= 500:
            data.errors[kind] = data.errors.get(kind, 0) + 1

    def upload(self, index: str, result: str) -> None:
        """Count one upload by result: created, identical, refused."""
        key = f"{index}|{result}"
        self.data.uploads[key] = self.data.uploads.get(key, 0) + 1

    def flush(self) -> None:
        """Write this process's snapshot (atomically) where scrapes find it."""
        if self.directory is None:
            return
        self._read_proxies()
        private_directory(self.directory)  # run-time state is the server user's alone
        target = self.directory / f"{os.getpid()}.json"
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(_ENCODER.encode(self.data))
        tmp.replace(target)


def collect(metrics: Metrics) -> Snapshot:
    """This process's live counters plus every other process's latest snapshot."""
    total = Snapshot()
    metrics._read_proxies()
    snapshots = [metrics.data]
    if metrics.directory is not None and metrics.directory.is_dir():
        mine = f"{os.getpid()}.json"
        for path in metrics.directory.glob("*.json"):
            if path.name == mine:
                continue
            try:
                snapshots.append(_DECODER.decode(path.read_bytes()))
            except (OSError, msgspec.DecodeError):
                continue  # a file being replaced, or left by a crash mid-write: skip it
    for snap in snapshots:
        for name in ("requests", "bytes_sent", "uploads", "errors", "proxy"):
            into: dict[str, int] = getattr(total, name)
            for key, value in getattr(snap, name).items():
                into[key] = into.get(key, 0) + value
        for key, total_seconds in snap.latency_sum.items():
            total.latency_sum[key] = total.latency_sum.get(key, 0.0) + total_seconds
        for key, buckets in snap.latency_buckets.items():
            have = total.latency_buckets.setdefault(key, [0] * (len(BUCKETS) + 1))
            for i, count in enumerate(buckets):
                have[i] += count
    return total


def _labels(names: tuple[str, ...], key: str) -> str:
    values = key.split("|")
    return ",".join(f'{n}="{v}"' for n, v in zip(names, values, strict=True))


#: The ``index`` label a private index's series are counted under on a public ``/metrics``.
PRIVATE_LABEL = "(private)"


def fold_private(snap: Snapshot, private: frozenset[str]) -> Snapshot:
    """``snap`` with every private index's series added together under :data:`PRIVATE_LABEL`.

    ``/metrics`` answers anyone: per-index counters would tell an outsider a private index's
    uploads, refusals and traffic (and which names are private). The sums keep the totals right.
    """
    if not private:
        return snap

    def fold(values: dict[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, value in values.items():
            index, sep, rest = key.partition("|")
            name = PRIVATE_LABEL if index in private else index
            folded = f"{name}{sep}{rest}"
            out[folded] = out.get(folded, 0) + value
        return out

    return msgspec.structs.replace(
        snap,
        requests=fold(snap.requests),
        bytes_sent=fold(snap.bytes_sent),
        uploads=fold(snap.uploads),
    )


def render(snap: Snapshot) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    out: list[str] = []

    def counter(name: str, doc: str, labels: tuple[str, ...], values: dict[str, int]) -> None:
        out.append(f"# HELP {name} {doc}")
        out.append(f"# TYPE {name} counter")
        for key in sorted(values):
            out.append(f"{name}{{{_labels(labels, key)}}} {values[key]}")

    counter(
        "headwater_requests_total",
        "HTTP requests answered.",
        ("index", "kind", "status"),
        snap.requests,
    )
    counter(
        "headwater_response_bytes_total",
        "Response body bytes sent.",
        ("index", "kind"),
        snap.bytes_sent,
    )
    counter("headwater_uploads_total", "Uploads by result.", ("index", "result"), snap.uploads)
    counter("headwater_errors_total", "Responses with a 5xx status.", ("kind",), snap.errors)
    counter(
        "headwater_proxy_events_total",
        "What each proxy served: page_requests, page_fetches (sent upstream), stale_served, "
        "file_requests, file_fetches (cold), unavailable.",
        ("source", "event"),
        snap.proxy,
    )
    name = "headwater_request_duration_seconds"
    out.append(f"# HELP {name} Time from request to the end of the response.")
    out.append(f"# TYPE {name} histogram")
    for kind in sorted(snap.latency_buckets):
        running = 0
        buckets = snap.latency_buckets[kind]
        for bound, count in zip((*BUCKETS, float("inf")), buckets, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{kind="{kind}",le="{le}"}} {running}')
        out.append(f'{name}_sum{{kind="{kind}"}} {snap.latency_sum.get(kind, 0.0)}')
        out.append(f'{name}_count{{kind="{kind}"}} {running}')
    return "\n".join(out) + "\n"
