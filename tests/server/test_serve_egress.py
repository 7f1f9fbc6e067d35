"""The real ``headwater serve`` with a ``[proxy.NAME]`` of a private https index behind a forward
proxy: the worker processes get the serve plan with the *names* of the secrets (see
tests/repository/test_egress.py::test_secrets_stay_out_of_reprs_and_the_serve_plan) and read them
from their environment themselves; pages and files arrive through the proxy's tunnel; no secret
reaches the log."""

from __future__ import annotations

import hashlib
import json
import ssl
import urllib.request
from pathlib import Path

from headwater.testing.corpus import Corpus
from headwater.testing.upstream import Upstream
from tests.forward_proxy import forward_proxy
from tests.server.live import serve
from tests.tls import self_signed

TOKEN, PROXY_PASSWORD = "tok-SeRvE-0123", "proxy-SeRvE-pw"
JSON = "application/vnd.pypi.simple.v1+json"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, accept: str = "*/*") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with NO_PROXY.open(request, timeout=30) as answer:
        return answer.status, answer.read()


def test_serve_a_private_index_through_a_forward_proxy(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    corpus = Corpus.generate(2, releases=1, files=1, seed=31)
    with (
        forward_proxy(tmp_path / "proxy", user="svc", password=PROXY_PASSWORD) as proxy,
        Upstream(corpus, ssl=context, authorization={f"Bearer {TOKEN}"}).running() as up,
    ):
        config = tmp_path / "headwater.toml"
        config.write_text(
            f'[serve]\ndata_dir = "{tmp_path / "data"}"\n'
            f'[proxy.private]\nurl = "{up.simple_url}"\n'
            f'proxy = "http://svc@127.0.0.1:{proxy.port}"\n'
            'proxy_password_env = "HW_PROXY_PASSWORD"\n'
            f'ca_bundle = "{cert}"\n'
            'token_env = "HW_UPSTREAM_TOKEN"\n'
        )
        env = {"HW_PROXY_PASSWORD": PROXY_PASSWORD, "HW_UPSTREAM_TOKEN": TOKEN}
        with serve(["--config", str(config)], tmp_path, env=env) as live:
            name = corpus.project_list().projects[0].normalized
            status, body = get(f"{live.url}/private/simple/{name}/", JSON)
            assert status == 200
            file = json.loads(body)["files"][0]
            file_url = urllib.request.urljoin(f"{live.url}/private/simple/{name}/", file["url"])
            status, content = get(file_url)
            assert status == 200
            assert hashlib.sha256(content).hexdigest() == file["hashes"]["sha256"]
            log = live.output()
        assert f"CONNECT 127.0.0.1:{up.port}" in proxy.requests_seen()
        assert TOKEN not in log and PROXY_PASSWORD not in log
        assert not any(path.startswith("401 ") for path in up.stats)
