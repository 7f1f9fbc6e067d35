"""Peer mirrors: other domains' mirrors whose freshness this server checks and shows (the
explicit HTTPS mirror list PEP 449 asked for once DNS discovery was gone), and the look at an
upstream's current serial that gives a mirror's lag.

A peer is read through headwater's upstream client and fetch boundary (public addresses only,
unless allowed), within a deadline and a size cap: first ``<peer>/mirrors.json`` (another
headwater), else ``<peer>/last-modified`` (bandersnatch's and headwater's trees, PEP 381's
freshness file). Whatever it answers, the check returns a :class:`PeerEntry` (a peer that is
down, slow or hostile is shown as such, never an error): its numbers are checked against the
schema's bounds and judged by :func:`judge_peer_mirror` with this server's thresholds; its words
are kept (cut and escaped when rendered) but never decide.
"""

from __future__ import annotations

from datetime import UTC, datetime

from headwater.errors import printable
from headwater.repository._client import BodyTooLarge, ClientError, Deadline, HttpClient
from headwater.repository.boundary import FetchBoundary
from headwater.repository.errors import UpstreamError
from headwater.repository.http import SERIAL_HEADER, USER_AGENT
from headwater.server.status.document import (
    TEXT,
    URL,
    MirrorEntry,
    PeerEntry,
    PeerMirror,
    decode_peer_document,
    parse_rfc3339,
    rfc3339,
)
from headwater.server.status.freshness import State, Thresholds, UpstreamCheck, worst

__all__ = [
    "MAX_DOCUMENT",
    "SKEW",
    "check_peer",
    "check_upstream_serial",
    "judge_peer_mirror",
    "parse_serial",
]

#: Largest /mirrors.json read from a peer.
MAX_DOCUMENT = 1 << 20
#: Clock skew allowed to a peer's times; a sync further in the future than this is not believed.
SKEW = 300.0
_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "gzip"}
_STATES: frozenset[str] = frozenset(
    {"fresh", "behind", "stale", "failing", "unknown", "offline", "unreachable"}
)


def _cut(text: str, limit: int = TEXT) -> str:
    return printable(" ".join(text.split()), limit - 3)


def parse_serial(value: str | None) -> int | None:
    """A serial from a header: 1-19 ASCII digits up to 2**63-1, else None (a header of 5,000
    digits must not cost an int conversion, nor a negative number mean anything)."""
    if value is None:
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    serial = int(value)
    return serial if serial <= 2**63 - 1 else None


def judge_peer_mirror(
    reported: MirrorEntry | PeerMirror,
    now: float,
    thresholds: Thresholds,
    upstream_serials: dict[str, int] | None = None,
) -> PeerMirror:
    """A mirror a peer reported, judged by this server: by the age of its last complete sync,
    and by its serial against this server's own check of the same upstream when it has one.
    The peer's own ``state`` can only make the verdict worse (a peer may say it is failing; it
    cannot make itself fresh)."""
    name = _cut(reported.name, 200)
    keep = {
        "name": name,
        "url": reported.url,
        "upstream": reported.upstream,
        "serial": reported.serial,
        "last_complete": reported.last_complete,
    }
    known = (
        (upstream_serials or {}).get(reported.upstream.rstrip("/")) if reported.upstream else None
    )
    lag_serials = (
        max(0, known - reported.serial)
        if known is not None and reported.serial is not None
        else reported.lag_serials
    )
    when = parse_rfc3339(reported.last_complete)
    state: State
    if known is not None and reported.serial is not None and reported.serial >= known:
        # It has what this server saw upstream: current, whatever its clock says.
        state, reason, lag = "fresh", f"has the upstream's serial {known}", 0.0
    elif when is None:
        state, reason, lag = "unknown", "reports no complete sync", None
    elif when > now + SKEW:
        state, reason, lag = "unknown", "reports a sync in the future (a wrong clock?)", None
    else:
        lag = max(0.0, now - when)
        if lag < thresholds.behind_after:
            state, reason = "fresh", f"last complete sync {int(lag // 60)} min ago"
        elif lag < thresholds.stale_after:
            state, reason = "behind", f"last complete sync {int(lag // 3600)} h ago"
        else:
            state, reason = "stale", f"last complete sync {int(lag // 86400)} days ago"
    claimed = reported.state if reported.state in _STATES else "unknown"
    if claimed in ("failing", "stale", "behind") and worst([state, claimed]) == claimed:
        state = claimed
        reason = f"{reason}; the peer says: {_cut(reported.reason, 300) or claimed}"
    return PeerMirror(
        **keep,  # type: ignore[arg-type]
        state=state,
        reason=reason,
        lag_serials=lag_serials,
        lag_seconds=lag,
    )


def _judge_last_modified(text: str, now: float, thresholds: Thresholds) -> PeerMirror | None:
    """bandersnatch's ``web/last-modified`` (``%Y%m%dT%H:%M:%S``, UTC) as one peer mirror."""
    try:
        moment = datetime.strptime(text.strip(), "%Y%m%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    reported = PeerMirror(name="tree", last_complete=rfc3339(moment.timestamp()))
    return judge_peer_mirror(reported, now, thresholds)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BodyTooLarge):
        return f"answered more than {MAX_DOCUMENT} bytes"
    if isinstance(exc, (ClientError, UpstreamError)):
        return _cut(str(exc) or type(exc).__name__, 300)
    return f"unexpected {type(exc).__name__}"


async def _get(
    client: HttpClient, url: str, boundary: FetchBoundary, seconds: float, limit: int
) -> tuple[int, bytes, dict[str, str]]:
    response = await client.get(url, _HEADERS, boundary=boundary, deadline=Deadline(seconds))
    async with response:
        if response.status != 200:
            return response.status, b"", response.headers
        return 200, await response.read(limit=limit), response.headers


async def check_peer(
    client: HttpClient,
    url: str,
    now: float,
    thresholds: Thresholds,
    *,
    deadline: float = 10.0,
    boundary: FetchBoundary | None = None,
    upstream_serials: dict[str, int] | None = None,
) -> PeerEntry:
    """Look at the peer at ``url`` (its base URL, ending in ``/``) once; never raises for
    anything the peer does."""
    base = url if url.endswith("/") else url + "/"
    checked = rfc3339(now)
    try:
        fence = boundary or FetchBoundary.for_upstream(base, where="[status] peers")
    except ValueError as exc:
        return PeerEntry(
            url=base[:URL], state="unreachable", reason=_cut(str(exc)), checked=checked
        )
    try:
        status, body, _ = await _get(client, base + "mirrors.json", fence, deadline, MAX_DOCUMENT)
    except Exception as exc:  # a peer can fail in any way; it is shown, never raised
        return PeerEntry(
            url=base,
            state="unreachable",
            reason=f"{base}mirrors.json: {_describe(exc)}",
            checked=checked,
        )
    problem = f"{base}mirrors.json answered HTTP {status}"
    if status == 200:
        try:
            document = decode_peer_document(body)
        except ValueError as exc:
            problem = f"{base}mirrors.json: {_cut(str(exc), 300)}"
        else:
            mirrors = [
                judge_peer_mirror(m, now, thresholds, upstream_serials) for m in document.mirrors
            ]
            if not mirrors:
                return PeerEntry(
                    url=base,
                    state="unknown",
                    reason="its mirrors.json lists no mirror",
                    checked=checked,
                    via="mirrors.json",
                )
            state = worst([m.state for m in mirrors])
            fresh = sum(m.state == "fresh" for m in mirrors)
            return PeerEntry(
                url=base,
                state=state,
                reason=f"{fresh} of {len(mirrors)} mirror(s) fresh",
                checked=checked,
                via="mirrors.json",
                mirrors=mirrors,
            )
    try:
        status, body, _ = await _get(client, base + "last-modified", fence, deadline, 200)
    except Exception as exc:
        return PeerEntry(
            url=base,
            state="unreachable",
            reason=f"{problem}; {base}last-modified: {_describe(exc)}",
            checked=checked,
        )
    judged = (
        _judge_last_modified(body.decode("ascii", "replace"), now, thresholds)
        if status == 200
        else None
    )
    if judged is None:
        return PeerEntry(
            url=base,
            state="unknown",
            reason=f"{problem}, and {base}last-modified "
            + (f"answered HTTP {status}" if status != 200 else "is not a time"),
            checked=checked,
        )
    return PeerEntry(
        url=base,
        state=judged.state,
        reason=judged.reason,
        checked=checked,
        via="last-modified",
        mirrors=[judged],
    )


async def check_upstream_serial(
    client: HttpClient,
    url: str,
    now: float,
    *,
    deadline: float = 10.0,
    boundary: FetchBoundary | None = None,
) -> UpstreamCheck:
    """The upstream index at ``url`` and its current serial, from the ``X-PyPI-Last-Serial``
    header of its project list; the body is not read (PyPI's is tens of megabytes). Never
    raises: a failure is the check's ``error``."""
    try:
        fence = boundary or FetchBoundary.for_upstream(url)
        response = await client.get(
            url,
            {"User-Agent": USER_AGENT, "Accept": "application/vnd.pypi.simple.v1+json"},
            boundary=fence,
            deadline=Deadline(deadline),
        )
    except Exception as exc:
        return UpstreamCheck(checked=now, error=_describe(exc))
    try:
        status = response.status
        serial = parse_serial(response.headers.get(SERIAL_HEADER.lower()))
    finally:
        response.close()  # the headers are all it takes; the connection is dropped
    if status != 200:
        return UpstreamCheck(checked=now, error=f"{url} answered HTTP {status}")
    return UpstreamCheck(serial=serial, checked=now)
