"""One URL to install from and upload to: a composed index whose ``upload`` names a hosted source.

The real ``headwater serve`` with a composed default index ``main`` (a hosted source and a
directory): every URL its start-up banner prints is then used as printed, by real twine and pip,
and must work (before, the first-start hint said ``/legacy/``, which answered 404).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from headwater.config.settings import (
    DirectorySettings,
    HostedSettings,
    IndexSettings,
    ServePlan,
    ServeSettings,
)
from tests.clients import installed_version, pip_install
from tests.server.hosting import dists, request, twine
from tests.server.live import serve

CONFIG = """\
[serve]
default_index = "main"

[hosted.private]

[directory.folder]
path = "folder"

[index.main]
sources = ["private", "folder"]
upload = "private"
"""


def test_the_printed_urls_work_with_twine_and_pip(tmp_path: Path) -> None:
    (tmp_path / "headwater.toml").write_text(CONFIG)
    (tmp_path / "folder").mkdir()
    data = tmp_path / "data"
    with serve(["--data-dir", str(data)], tmp_path) as live:
        banner = live.output()
        token = (data / "admin-token").read_text().strip()
        first_start = re.search(r"twine upload --repository-url (\S+) -u __token__", banner)
        index_line = re.search(
            r"index\s+main\s+(\S+)\s+from private, folder\s+upload: (\S+)", banner
        )
        install = re.search(r"  pip install --index-url (\S+) PROJECT", banner)
        assert first_start and index_line and install, banner
        assert first_start.group(1) == live.url + "/legacy/"
        assert index_line.group(1) == live.url + "/main/simple/"
        assert index_line.group(2) == live.url + "/main/legacy/"
        assert "(into private)" in banner
        # Every printed upload URL takes an upload; the hosted source holds what they stored.
        for version, url in (("1.0", first_start.group(1)), ("2.0", index_line.group(2))):
            files = dists(tmp_path / "dist" / version, "One-Url", version)
            done = twine(url, token, files)
            assert done.returncode == 0, done.stdout + done.stderr
        hosted = request(live.url + "/private/simple/one-url/", headers={"Accept": "text/html"})
        assert hosted.status == 200 and "one_url-2.0" in hosted.text
        # ... and the printed install URL installs the newest through the composed index.
        python = pip_install(install.group(1), "one-url", tmp_path / "pip")
        assert installed_version(python, "one_url") == "2.0"
        python = pip_install(index_line.group(1), "one-url==1.0", tmp_path / "pip1")
        assert installed_version(python, "one_url") == "1.0"
        # An index without upload still answers 404 to an upload, naming why.
        refused = request(live.url + "/folder/legacy/", method="POST", body=b"")
        assert refused.status == 404


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        ("folder", "it is not one (its hosted sources: private)"),
        ("elsewhere", "it is not one (its hosted sources: private)"),
    ],
)
def test_upload_must_name_a_hosted_source_of_the_index(upload: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ServePlan(
            settings=ServeSettings(),
            hosted={"private": HostedSettings(), "elsewhere": HostedSettings()},
            directories={"folder": DirectorySettings(path="/x").path},
            indexes={"main": IndexSettings(sources=["private", "folder"], upload=upload)},
        )


def test_upload_on_an_index_without_a_hosted_source_says_how_to_fix() -> None:
    with pytest.raises(ValueError, match=re.escape("it has none: add a [hosted.NAME]")):
        ServePlan(
            settings=ServeSettings(),
            directories={"folder": "/x"},
            indexes={"main": IndexSettings(sources=["folder"], upload="folder")},
        )
