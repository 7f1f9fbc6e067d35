"""The verdict's promise, as properties over every combination of what the indexes say: the check
never says ``ok`` (or another verdict that is not a risk) when the client it follows would take a
public release that a private index it asks does not serve, or would install nothing; and every
claim "pip/uv would install V" in a message is the installer model's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.check.assess import assess
from headwater.check.findings import RISKS, Risk, Wanted
from headwater.check.installers import predict
from headwater.check.model import Client, IndexSpec
from headwater.check.sources import Lookup, Refusal
from headwater.policy.held import hold_files
from headwater.simple.model import File, ProjectPage
from headwater.simple.names import normalize_name

P = normalize_name("foo-bar")
NOW = datetime(2026, 3, 1, tzinfo=UTC)
URL = "https://x.example/simple/foo-bar/"


def _page(versions: list[str], tracks: tuple[str, ...] = ()) -> ProjectPage:
    files = tuple(
        File(
            filename=f"foo_bar-{v}-py3-none-any.whl",
            url=f"https://files.example/{v}/foo_bar-{v}-py3-none-any.whl",
            hashes={"sha256": f"{abs(hash(v)):064x}"[:64]},
        )
        for v in versions
    )
    return ProjectPage(name=P, files=files, tracks=tracks)


_VERSIONS = st.lists(st.sampled_from(["1.0", "2.0", "3.0"]), min_size=1, max_size=2, unique=True)
_SAID = st.one_of(
    st.builds(lambda v: ("found", v), _VERSIONS),
    st.just(("found", [])),  # a page a cooldown emptied
    st.just(("absent", None)),
    st.just(("unavailable", None)),
    st.just(("refused", None)),
)


def _lookup(said: tuple[str, list[str] | None], hidden: bool, url: str) -> Lookup:
    """Each index at its own URL and without tracks: no two of them agree by PEP 708."""
    state, versions = said
    if state == "found":
        assert versions is not None
        return Lookup(
            state="found",
            url=url,
            page=_page(versions),
            hidden="cooldown; files=1" if hidden and not versions else None,
        )
    if state == "refused":
        refusal = Refusal(kind="claimed", status=409, message="held", fix="publish it")
        return Lookup(state="refused", url=url, refusal=refusal, error="HTTP 409")
    return Lookup(state=state, url=url, error="down" if state == "unavailable" else None)  # type: ignore[arg-type]


@st.composite
def _worlds(draw: st.DrawFn) -> tuple[Client, list[tuple[IndexSpec, Lookup]], str]:
    client = draw(st.sampled_from([Client.PIP, Client.UV, Client.NONE]))
    n = draw(st.integers(min_value=1, max_value=3))
    public_at = draw(st.integers(min_value=0, max_value=n - 1))
    observed = []
    for i in range(n):
        spec = IndexSpec(
            name=f"i{i}", url=f"https://i{i}.example/simple/", origin="t", public=i == public_at
        )
        said = _lookup(draw(_SAID), draw(st.booleans()), f"{spec.url}foo-bar/")
        observed.append((spec, said))
    specifier = draw(st.sampled_from(["", ">=2", "<2"]))
    return client, observed, specifier


@settings(max_examples=1000, deadline=None)
@given(_worlds())
def test_never_ok_when_a_public_release_passes_a_private_index_or_nothing_installs(
    world: tuple[Client, list[tuple[IndexSpec, Lookup]], str],
) -> None:
    client, observed, specifier = world
    wanted = Wanted(project=P, names=(P,), origins=("r:1",), specifier=specifier)
    finding = assess(wanted, observed, client=client, now=NOW)
    install = predict(client, observed, specifier)
    assert finding.installs == install
    by_name = {spec.name: (spec, lookup) for spec, lookup in observed}
    if install.fails:
        assert finding.risk in RISKS, finding
    else:
        public = [name for name in install.indexes if by_name[name][0].public]
        private_asked = [spec for spec, _ in observed if not spec.public]
        serves_it = [
            spec
            for spec, lookup in observed
            if not spec.public
            and lookup.page is not None
            and any(f"-{install.version}-" in f.filename for f in lookup.page.files)
        ]
        if public and private_asked and not serves_it:
            flagged = {Risk.EXPOSED, Risk.SHADOWED, Risk.CONFUSION, Risk.UNAVAILABLE}
            assert flagged & set(finding.risks), finding
            assert finding.risk in RISKS
    for name in ("pip", "uv"):
        marker = f"{name} would install "
        if marker in finding.message:
            claimed = finding.message.split(marker, 1)[1].split(" ", 1)[0]
            assert claimed == (install.version or "nothing"), finding.message
            assert name == install.client


def test_agreement_covers_the_same_release_not_a_newer_public_one() -> None:
    """PEP 708 tracks make the public copy the project meant (ok), but a public release the
    private index does not serve (hidden by its cooldown, or not copied yet) is shadowed."""
    public = IndexSpec(name="pypi", url="https://pypi.example/simple/", origin="t", public=True)
    private = IndexSpec(name="corp", url="https://corp.example/simple/", origin="t")
    tracks = ("https://pypi.example/simple/foo-bar/",)
    wanted = Wanted(project=P, names=(P,), origins=("r:1",))
    for private_versions, want in ((["1.0", "2.0"], Risk.OK), (["1.0"], Risk.SHADOWED)):
        observed = [
            (private, Lookup(state="found", url=URL, page=_page(private_versions, tracks))),
            (public, Lookup(state="found", url=tracks[0], page=_page(["1.0", "2.0"]))),
        ]
        finding = assess(wanted, observed, client=Client.PIP, now=NOW)
        assert finding.risk is want, finding


class _Hold:
    filename = "foo_bar-2.0-py3-none-any.whl"
    message = "held: foo-bar 2.0 was published by GitLab x/y, but earlier by GitHub a/b"
    fix = "headwater provenance accept m foo-bar 2.0"


@pytest.mark.parametrize("client", [Client.PIP, Client.UV])
@pytest.mark.parametrize(
    ("specifier", "held"), [("==2.0", True), (">=2", True), ("", False), ("<2", False)]
)
def test_a_held_release_the_requirement_needs_is_named_with_its_refusal(
    client: Client, specifier: str, held: bool
) -> None:
    # A mirror of the public index (its guard holds 2.0).
    spec = IndexSpec(name="m", url="https://m.example/simple/", origin="t", public=True)
    page = hold_files(_page(["1.0", "2.0"]), [_Hold()])
    lookup = Lookup(state="found", url=f"{spec.url}foo-bar/", page=page)
    wanted = Wanted(project=P, names=(P,), origins=("r:1",), specifier=specifier)
    finding = assess(wanted, [(spec, lookup)], client=client, now=NOW)
    if held:
        assert Risk.MISSING in finding.risks, finding
        assert _Hold.message in finding.message and _Hold.fix in finding.message, finding
        assert "accept the held release" in finding.advice
    else:
        assert "held:" not in finding.message, finding
        assert finding.installs is not None and finding.installs.version == "1.0"
