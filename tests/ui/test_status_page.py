"""/ui/status in a real browser, on a real `headwater serve` with a mirror synced by `headwater
mirror`, a proxy, and an HTTPS peer mirror that answers with hostile text; and the tree's own
history carrying hostile project names and errors. Everything renders as text: no script runs,
no CSP violation, axe-core clean, and the charts have their accessible names."""

from __future__ import annotations

import asyncio
import http.server
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
from selenium.webdriver.common.by import By

from headwater.cli.main import main
from headwater.server.status.document import Document, rfc3339
from headwater.storage import FileStorage
from headwater.sync.history import Run, record_run
from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.browser import Browser, launch
from tests.server.live import serve
from tests.tls import self_signed

XSS = '<script>window.__pwned="status"</script><img src=x onerror="window.__pwned=\'img\'">'


@contextmanager
def https_peer(directory: Path, body: bytes) -> Iterator[str]:
    """An HTTPS server on loopback answering ``body`` at /mirrors.json; its base URL."""
    cert, key = self_signed(directory)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/mirrors.json"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            payload = body if found else b""
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_status_page_in_the_browser(tmp_path: Path, browser: Browser) -> None:
    corpus = Corpus.generate(3, releases=1, files=1, seed=41)
    tree = tmp_path / "tree"
    peer_doc = msgspec.json.encode(
        {
            "schema": "headwater.mirrors",
            "version": 1,
            "mirrors": [
                {"name": XSS, "url": "https://x/", "state": "fresh", "reason": XSS,
                 "last_complete": rfc3339(time.time() - 60)},
            ],
        }
    )  # fmt: skip
    with Upstream(corpus).running() as up, https_peer(tmp_path, peer_doc) as peer:
        for _ in range(3):
            assert (
                main(["mirror", "--upstream", up.simple_url, "--target", str(tree), "--quiet"]) == 0
            )
        # A run whose failures name hostile projects (a tree copied from elsewhere says anything).
        hostile = Run(
            started=time.time(),
            seconds=2.5,
            serial=None,
            failed=1,
            failures={XSS: XSS},
        )
        asyncio.run(record_run(FileStorage(tree), up.simple_url, hostile))
        config = tmp_path / "headwater.toml"
        config.write_text(
            f'[serve]\ndata_dir = "{tmp_path / "data"}"\n'
            f'[mirror.pypi]\nupstream = "{up.simple_url}"\ntarget = "{tree}"\n'
            f'[proxy.cache]\nurl = "{up.simple_url}"\n'
            f'[status]\ncheck_interval = 10\npeers = ["{peer}"]\n'
        )
        env = {"SSL_CERT_FILE": str(tmp_path / "cert.pem")}
        with serve(["--config", str(config)], tmp_path, env=env) as live:
            deadline = time.monotonic() + 20
            while True:
                with urllib.request.urlopen(live.url + "/mirrors.json", timeout=5) as answer:
                    document = msgspec.json.decode(answer.read(), type=Document)
                if document.peers[0].checked and document.mirrors[0].upstream_checked:
                    break
                assert time.monotonic() < deadline, document
                time.sleep(0.3)
            assert document.peers[0].state == "fresh", document.peers[0]
            browser.open(live.url + "/ui/status")
            assert browser.title == "Mirror status · headwater"
            text = browser.driver.find_element(By.TAG_NAME, "main").text
            assert XSS in text  # shown as the text it is
            charts = browser.driver.find_elements(By.CSS_SELECTOR, "svg.chart[role=img]")
            assert len(charts) == 2
            titles = [
                browser.run("return arguments[0].querySelector('title').textContent;", c)
                for c in charts
            ]
            assert titles[0] == "How long each sync of pypi took"
            assert browser.driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
            bar = browser.driver.find_element(By.CSS_SELECTOR, "svg.chart rect.bar")
            assert bar.value_of_css_property("fill") not in ("", "none", "rgb(0, 0, 0)")
            proxy_row = browser.driver.find_element(By.CSS_SELECTOR, "#proxies ~ div tbody tr")
            assert "cache" in proxy_row.text
            assert browser.pwned() is None
            assert browser.csp_violations() == []
            assert browser.axe() == []
            browser.screenshot("status")
            # The home page: the mirror's and the proxy's upstream reachable, the mirror's
            # freshness; the charts and the home page clean in the dark scheme too.
            browser.open(live.url + "/")
            rows = {
                row.find_element(By.TAG_NAME, "th").text.split()[0]: row.text
                for row in browser.driver.find_elements(By.CSS_SELECTOR, "main tbody tr")
            }
            assert "upstream reachable" in rows["pypi"] and "freshness:" in rows["pypi"], rows
            # The mirror's totals: its files and bytes, measured by the scheduled check after
            # each run (they were "unknown": no walk of a tree on a page view).
            files = [f for f in (tree / "web" / "packages").rglob("*") if f.is_file()]
            assert files
            assert document.mirrors[0].tree_files == len(files), document.mirrors[0]
            assert document.mirrors[0].tree_bytes == sum(f.stat().st_size for f in files)
            row = browser.driver.find_element(
                By.XPATH, "//main//tbody/tr[th[starts-with(., 'pypi')]]"
            )
            cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
            assert cells[3] == f"{len(files):,}" and cells[4] != "unknown", cells
            assert "upstream reachable" in rows["cache"], rows
            assert browser.axe() == []
            with launch(dark=True) as dark:
                for path in ("/ui/status", "/"):
                    dark.open(live.url + path)
                    assert dark.axe() == [], path
                    assert dark.pwned() is None and dark.csp_violations() == [], path
                dark.screenshot("status-dark")
