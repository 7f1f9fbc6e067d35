"""Hypothesis strategies that build valid :mod:`headwater.simple.model` values.

Shared by the JSON and HTML round-trip tests. Values are what a renderer must carry through
unchanged; text fields include hostile characters (quotes, angle brackets, ampersands, non-ASCII)
so escaping is exercised.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from headwater.simple.model import (
    File,
    Namespace,
    ProjectList,
    ProjectListEntry,
    ProjectPage,
    ProjectStatus,
)
from headwater.simple.names import NormalizedName, normalize_name

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

names = st.builds(
    lambda first, middle, last: first + middle + last if middle or last else first,
    st.sampled_from(_ALNUM),
    st.text(alphabet=_ALNUM + "._-", max_size=20),
    st.sampled_from(_ALNUM),
)
normalized_names: st.SearchStrategy[NormalizedName] = names.map(normalize_name)

# Free text a publisher or operator controls: reasons, requires-python. Excludes only what no
# spec allows in HTML at all (NUL, other C0 controls and surrogates can't be carried by HTML).
hostile_text = st.text(
    alphabet=st.characters(
        exclude_categories=("Cs", "Cc"),
        include_characters="<>&\"' =",
    ),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s and s != "")

hex_digest = st.binary(min_size=32, max_size=32).map(bytes.hex)
versions = st.builds(
    lambda a, b, c: f"{a}.{b}.{c}",
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 300),
)
upload_times = st.datetimes(
    min_value=datetime(2005, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
https_urls = st.builds(
    lambda host, path: f"https://{host}.example/{path}",
    st.text(alphabet="abcdefghij", min_size=1, max_size=8),
    st.text(alphabet="abcdefghij0123456789/-_", max_size=20),
)


@st.composite
def files(draw: st.DrawFn, name: NormalizedName | None = None, version: str | None = None) -> File:
    """A file of a wheel or sdist for ``name``/``version``, with any combination of optional fields."""
    project = name or draw(normalized_names)
    ver = version or draw(versions)
    stem = project.replace("-", "_")
    filename = draw(
        st.sampled_from(
            [
                f"{stem}-{ver}-py3-none-any.whl",
                f"{stem}-{ver}.tar.gz",
                f"{stem}-{ver}-cp312-cp312-manylinux_2_28_x86_64.whl",
            ]
        )
    )
    yanked = draw(st.booleans())
    return File(
        filename=filename,
        url=f"https://files.example/packages/{draw(hex_digest)[:6]}/{filename}",
        hashes=draw(st.one_of(st.just({}), st.builds(lambda h: {"sha256": h}, hex_digest))),
        requires_python=draw(
            st.none() | st.sampled_from([">=3.8", "<4,>=3.9", "!=3.0.*,>=2.7", ">3 , <3.14"])
        ),
        yanked=yanked,
        yanked_reason=draw(hostile_text) if yanked and draw(st.booleans()) else None,
        core_metadata=draw(
            st.none() | st.booleans() | st.builds(lambda h: {"sha256": h}, hex_digest)
        ),
        gpg_sig=draw(st.none() | st.booleans()),
        size=draw(st.integers(0, 2**40)),
        upload_time=draw(st.none() | upload_times),
        provenance=draw(st.none() | https_urls),
    )


@st.composite
def project_pages(draw: st.DrawFn, max_files: int = 8) -> ProjectPage:
    """A project page whose files all belong to listed versions (spec: every file's version listed)."""
    name = draw(normalized_names)
    vers = draw(st.lists(versions, max_size=4, unique=True))
    page_files: list[File] = []
    for v in vers:
        page_files.extend(draw(st.lists(files(name, v), max_size=max(1, max_files // 4))))
    # Filenames are unique on a page.
    seen: set[str] = set()
    unique = [f for f in page_files if not (f.filename in seen or seen.add(f.filename))]
    extra_versions = draw(st.lists(versions, max_size=2))  # versions without files MAY be listed
    status = draw(st.sampled_from(list(ProjectStatus)))
    return ProjectPage(
        name=name,
        files=tuple(unique),
        versions=tuple(sorted(set(vers) | set(extra_versions))),
        status=status,
        status_reason=draw(st.none() | hostile_text),
        tracks=tuple(draw(st.lists(https_urls, max_size=2, unique=True))),
        alternate_locations=tuple(draw(st.lists(https_urls, max_size=2, unique=True))),
        namespaces=draw(
            st.none()
            | st.lists(
                st.builds(Namespace, name=normalized_names, owned=st.booleans()), max_size=2
            ).map(tuple)
        ),
        last_serial=draw(st.none() | st.integers(0, 2**40)),
    )


project_lists = st.builds(
    lambda entries, serial: ProjectList(projects=tuple(entries), last_serial=serial),
    st.lists(
        st.builds(ProjectListEntry, name=names, last_serial=st.none() | st.integers(0, 2**40)),
        max_size=20,
        unique_by=lambda e: normalize_name(e.name),
    ),
    st.none() | st.integers(0, 2**40),
)
