"""The options of ``[mirror.NAME]`` and ``[proxy.NAME]`` that say how to reach the upstream.

Forward proxy, upstream credentials, CA bundle and client certificate: the same option names in
both tables (docs/configuration.md, "Reaching the upstream"). What is stored here are *names*:
proxy URL, environment variables and file paths, never a password or token read from them (a
password is in the configuration only if the operator writes it into the ``proxy`` URL). The
secrets are read by :meth:`EgressSettings.egress` when the source starts, in the process that
uses them; a serve plan handed to worker processes carries these names, not the secrets.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from headwater.repository._egress import (
    Egress,
    InvalidEgress,
    build_egress,
    check_egress_options,
    without_password,
)

__all__ = ["EgressSettings"]


class EgressSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Proxy, credential and TLS options, shared by ``[mirror.NAME]`` and ``[proxy.NAME]``."""

    #: Forward proxy: ``http://[USER[:PASSWORD]@]HOST:PORT``; ``"none"``: always direct; unset:
    #: the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``).
    proxy: str | None = None
    #: The proxy's password from this environment variable or file (user name in ``proxy``).
    proxy_password_env: str | None = None
    proxy_password_file: str | None = None
    #: PEM file of the CAs trusted for https upstreams, instead of the system's.
    ca_bundle: str | None = None
    #: PEM client certificate for mutual TLS, and its key (if not in the same file).
    client_certificate: str | None = None
    client_key: str | None = None
    #: Basic credentials for the upstream: a user name and its password's variable or file.
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    #: A bearer token for the upstream, from this environment variable or file.
    token_env: str | None = None
    token_file: str | None = None
    #: Basic credentials from netrc: ``true`` ($NETRC, else ~/.netrc) or a file's path.
    netrc: bool | str = False

    def __post_init__(self) -> None:
        try:
            check_egress_options(
                "",
                proxy=self.proxy,
                proxy_password_env=self.proxy_password_env,
                proxy_password_file=self.proxy_password_file,
                client_certificate=self.client_certificate,
                client_key=self.client_key,
                username=self.username,
                password_env=self.password_env,
                password_file=self.password_file,
                token_env=self.token_env,
                token_file=self.token_file,
                netrc=self.netrc,
            )
        except InvalidEgress as exc:
            # msgspec turns a ValueError here into "... - at `$`"; drop the empty "where: ".
            raise ValueError(str(exc).removeprefix(": ")) from None

    def __repr__(self) -> str:
        # The proxy URL may hold a password; nothing else here is secret.
        shown = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name == "proxy" and isinstance(value, str):
                value = without_password(value)
            shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def egress(self, upstream: str, *, where: str) -> Egress:
        """Read the secrets and certificates and return how to reach ``upstream``.

        Raises:
            InvalidEgress: a variable is unset, a file unreadable, a certificate unusable
                (the message names ``where`` and the option, never a secret).
        """
        return build_egress(
            upstream,
            where=where,
            proxy=self.proxy,
            proxy_password_env=self.proxy_password_env,
            proxy_password_file=self.proxy_password_file,
            ca_bundle=self.ca_bundle,
            client_certificate=self.client_certificate,
            client_key=self.client_key,
            username=self.username,
            password_env=self.password_env,
            password_file=self.password_file,
            token_env=self.token_env,
            token_file=self.token_file,
            netrc=self.netrc,
        )

    def resolve_paths(self, base: str) -> None:
        """Make the file options absolute against ``base`` (the config file's directory)."""
        for key in (
            "proxy_password_file",
            "ca_bundle",
            "client_certificate",
            "client_key",
            "password_file",
            "token_file",
        ):
            value = getattr(self, key)
            if value is not None and not Path(value).is_absolute():
                setattr(self, key, str((Path(base) / value).resolve()))
        if isinstance(self.netrc, str) and not Path(self.netrc).is_absolute():
            self.netrc = str((Path(base) / self.netrc).resolve())
