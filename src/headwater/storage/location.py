"""Where a source keeps its bytes, as configured: a directory, or ``s3://bucket/prefix``.

A storage *URL* is what the configuration names (``[mirror.NAME] target``, ``[hosted.NAME]
storage``, ``[proxy.NAME] storage``): a file-system path, or ``s3://BUCKET[/PREFIX]`` with the
non-secret options of :class:`S3Options` in its query
(``s3://pkgs/pypi?endpoint=http://127.0.0.1:8333&region=eu-west-1&addressing_style=path``).
The same options may be given as keys of the source's ``s3`` table; a key given both ways must
agree. Secrets never go in a URL (URLs end up in logs and banners); credentials come from the
standard AWS chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
``AWS_PROFILE`` and ``~/.aws/credentials``/``config``), from ``credentials_file``, or, only with
``allow_plaintext_secrets = true``, from keys in the TOML table.

Nothing here does I/O: parsing and checking only, so the config layer can call it freely.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import sys
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import msgspec

from headwater.errors import InvalidInput

__all__ = [
    "InvalidStorageURL",
    "S3Location",
    "S3Options",
    "addressing",
    "is_s3_url",
    "parse_s3_url",
    "request_endpoint",
]

# S3's bucket naming rules (3-63 lowercase letters, digits, dots and hyphens, starting and ending
# with a letter or digit); dots are allowed but break virtual-host TLS, which is the operator's call.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_PREFIX_BAD = re.compile(r"[\x00-\x1f\x7f\\]")
_SECRET_FIELDS = ("access_key_id", "secret_access_key", "session_token")


class InvalidStorageURL(InvalidInput):
    """A storage URL or its S3 options are malformed or unsafe."""


def is_s3_url(value: str) -> bool:
    """Whether ``value`` names an S3 location (``s3://...``) rather than a directory."""
    return value[:5].lower() == "s3://"


class S3Options(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The options of an S3 location: keys of a source's ``s3`` table, or the URL's query.

    ``repr()`` never shows the secret keys (configurations are printed in errors and logs).
    """

    #: The S3 API's base URL (``https://s3.eu-west-1.amazonaws.com``, ``http://127.0.0.1:8333``);
    #: None: AWS's own endpoint for ``region``.
    endpoint: str | None = None
    #: The bucket's region; None: the AWS chain's default (``AWS_DEFAULT_REGION``, the profile),
    #: else ``us-east-1``.
    region: str | None = None
    #: ``path`` (``endpoint/bucket/key``: most self-hosted servers), ``virtual``
    #: (``bucket.endpoint/key``: AWS's preference), or ``auto`` (path-style for an IP address or
    #: ``localhost`` endpoint and for a bucket name with a dot, virtual-hosted otherwise).
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    #: A profile of ``~/.aws/credentials`` / ``~/.aws/config`` (default: ``AWS_PROFILE``).
    profile: str | None = None
    #: A credentials file in the AWS INI format to read instead of ``~/.aws/credentials``.
    credentials_file: str | None = None
    #: Explicit credentials in the TOML: refused unless ``allow_plaintext_secrets`` is true.
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    allow_plaintext_secrets: bool = False
    #: Seconds to connect, and to wait for the next bytes of an answer.
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    #: Attempts per request (exponential backoff with jitter between them).
    max_attempts: int = 4
    #: Size of each part of a multipart upload (and the largest single PUT), in bytes.
    part_size: int = 8 << 20
    #: Connections kept open to the endpoint, and the most requests one ``write_many`` sends at once.
    max_connections: int = 64
    #: Trust the sha256 stored in an object's metadata at write time instead of reading the
    #: object again (``verify`` never does: it always reads the bytes).
    trust_stored_sha256: bool = False
    #: How ``headwater serve`` sends distribution files kept here: ``stream`` (through
    #: headwater, with Range) or ``redirect-presigned`` (a 307 to a short-lived presigned GET URL
    #: of the object, handed out only after the request was authorized).
    files: Literal["stream", "redirect-presigned"] = "stream"
    #: Redirect file requests (307) to ``<files_base_url>/<key>`` instead: a CDN or a public
    #: bucket endpoint that serves this storage's prefix. Never for a private index.
    files_base_url: str | None = None
    #: Seconds a presigned URL stays valid (``files = "redirect-presigned"``).
    presign_expires: int = 300

    def __repr__(self) -> str:
        shown = {
            name: ("***" if name in _SECRET_FIELDS else getattr(self, name))
            for name in self.__struct_fields__
            if getattr(self, name) is not None or name not in _SECRET_FIELDS
        }
        return "S3Options(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    __str__ = __repr__

    def __post_init__(self) -> None:
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidStorageURL(
                    f"S3 endpoint {self.endpoint[:200]!r} must be an http(s) URL with a host"
                )
            if parts.username or parts.password:
                raise InvalidStorageURL(
                    "the S3 endpoint must not carry credentials (user:password@); use the AWS "
                    "credential chain or credentials_file"
                )
            if self.addressing_style == "virtual" and _is_ip(parts.hostname):
                raise InvalidStorageURL(
                    f"addressing_style = 'virtual' puts the bucket in the endpoint's host name, "
                    f"and {parts.hostname} is an IP address: use addressing_style = 'path', or "
                    "an endpoint with a host name"
                )
        given = [name for name in _SECRET_FIELDS if getattr(self, name)]
        if given and not self.allow_plaintext_secrets:
            raise InvalidStorageURL(
                f"{', '.join(given)} in the configuration file would keep a secret in clear: "
                "use the AWS environment variables, a profile (profile = ...) or "
                "credentials_file instead, or set allow_plaintext_secrets = true to insist"
            )
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise InvalidStorageURL("access_key_id and secret_access_key go together")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise InvalidStorageURL("connect_timeout and read_timeout must be positive")
        if not 1 <= self.max_attempts <= 20:
            raise InvalidStorageURL("max_attempts must be between 1 and 20")
        # S3: every part but the last is at least 5 MiB; at most 10,000 parts (so 8 MiB parts
        # allow objects up to 78 GiB); a single PUT is at most 5 GiB.
        if not 5 << 20 <= self.part_size <= 5 << 30:
            raise InvalidStorageURL("part_size must be between 5 MiB and 5 GiB (S3's limits)")
        if not 1 <= self.max_connections <= 1024:
            raise InvalidStorageURL("max_connections must be between 1 and 1024")
        if self.files_base_url is not None:
            base = urlsplit(self.files_base_url)
            if base.scheme not in ("http", "https") or not base.hostname:
                raise InvalidStorageURL(
                    f"files_base_url {self.files_base_url[:200]!r} must be an http(s) URL"
                )
            if (
                base.username
                or base.password
                or base.query
                or base.fragment
                or not self.files_base_url.isascii()
                or any(c.isspace() or not c.isprintable() for c in self.files_base_url)
            ):
                raise InvalidStorageURL(
                    "files_base_url must be a plain ASCII base URL: no credentials, query, "
                    "fragment, spaces or control characters"
                )
            if self.files != "stream":
                raise InvalidStorageURL(
                    "files_base_url and files = 'redirect-presigned' are two ways to redirect "
                    "file requests: choose one"
                )
        # SigV4 presigned URLs live at most 7 days; a capability should live minutes.
        if not 1 <= self.presign_expires <= 7 * 24 * 3600:
            raise InvalidStorageURL("presign_expires must be between 1 s and 7 days")

    def redirects(self) -> bool:
        """Whether file requests are answered with a redirect rather than the bytes."""
        return self.files != "stream" or self.files_base_url is not None

    def plaintext_secrets(self) -> bool:
        """Whether the options carry credentials written in the configuration file."""
        return bool(self.access_key_id)


class S3Location(msgspec.Struct, frozen=True, kw_only=True):
    """A bucket, a key prefix in it (empty or ending in ``/``) and how to reach it."""

    bucket: str
    prefix: str = ""
    options: S3Options = msgspec.field(default_factory=S3Options)

    def url(self) -> str:
        """``s3://bucket/prefix`` (no query, no secret): how messages name the location."""
        return f"s3://{self.bucket}/{quote(self.prefix, safe='/')}".rstrip("/")

    def __repr__(self) -> str:
        return f"S3Location({self.url()!r}, {self.options!r})"

    __str__ = url


# The query keys a URL may carry: every option that is not a secret.
_QUERY_KEYS = {
    name
    for name in S3Options.__struct_fields__
    if name not in (*_SECRET_FIELDS, "allow_plaintext_secrets")
}


#: The modules the S3 storage imports (headwater's ``s3`` extra): obstore for requests,
#: aiobotocore for multipart uploads.
S3_CLIENT_MODULES = ("obstore", "aiobotocore")


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (looked up, not imported: obstore takes a while)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def parse_s3_url(url: str, options: S3Options | None = None) -> S3Location:
    """Parse ``s3://bucket[/prefix][?option=value&...]`` merged with the ``options`` table.

    Raises:
        InvalidStorageURL: naming the URL (never a secret) and what is wrong with it.
    """
    shown = url.split("?", 1)[0][:200]
    if not is_s3_url(url):
        raise InvalidStorageURL(f"storage URL {shown!r} is not s3://BUCKET[/PREFIX]")
    missing = [m for m in S3_CLIENT_MODULES if not _installed(m)]
    if missing:
        raise InvalidStorageURL(
            f"storage URL {shown!r}: a bucket needs the S3 client, and {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed: install headwater with its "
            "s3 extra, pip install 'headwater[s3]'"
        )
    parts = urlsplit(url)
    if parts.username or parts.password or "@" in parts.netloc:
        raise InvalidStorageURL(
            f"storage URL {parts.hostname or '?'!r}: credentials never go in a URL; use the AWS "
            "credential chain, a profile or credentials_file"
        )
    bucket = parts.netloc
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise InvalidStorageURL(
            f"storage URL {shown!r}: {bucket[:80]!r} is not a valid bucket name (3-63 lowercase "
            "letters, digits, '.' and '-', starting and ending with a letter or digit)"
        )
    prefix = unquote(parts.path).strip("/")  # a URL's path is percent-encoded
    if prefix:
        if _PREFIX_BAD.search(prefix) or any(p in ("", ".", "..") for p in prefix.split("/")):
            raise InvalidStorageURL(
                f"storage URL {shown!r}: the prefix must be a relative path without empty, '.' "
                "or '..' components or control characters"
            )
        prefix += "/"
    if parts.fragment:
        raise InvalidStorageURL(f"storage URL {shown!r}: a fragment (#...) means nothing here")
    base = msgspec.to_builtins(options) if options is not None else {}
    in_query: set[str] = set()
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        name = key.replace("-", "_")
        if name not in _QUERY_KEYS:
            raise InvalidStorageURL(
                f"storage URL {shown!r}: unknown or secret option {key[:40]!r} in the query "
                f"(allowed: {', '.join(sorted(_QUERY_KEYS))}; secrets only in the s3 table)"
            )
        if name in in_query:
            raise InvalidStorageURL(
                f"storage URL {shown!r}: {name} is given twice in the URL's query; give it once"
            )
        in_query.add(name)
        if not value.strip():
            raise InvalidStorageURL(
                f"storage URL {shown!r}: {name} is empty in the URL's query; give a value or "
                "leave the option out for its default"
            )
        if name in base and str(base[name]).lower() != value.lower():
            raise InvalidStorageURL(
                f"storage URL {shown!r}: {name} is given in the URL ({value[:80]!r}) and in the "
                f"s3 table ({str(base[name])[:80]!r}); give it once"
            )
        base[name] = value
    try:
        merged = msgspec.convert(base, S3Options, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidStorageURL(f"storage URL {shown!r}: {str(exc).replace('`$.', '`')}") from exc
    return S3Location(bucket=bucket, prefix=prefix, options=merged)


def addressing(options: S3Options, bucket: str) -> Literal["path", "virtual"]:
    """How requests name the bucket, deciding ``addressing_style = "auto"``:

    ====================================================  ===========
    case (first that holds)                               style
    ====================================================  ===========
    ``addressing_style`` is ``path`` or ``virtual``       as given
    the bucket's name has a dot                           ``path``
    no endpoint (AWS's own)                               ``virtual``
    the endpoint's host is ``localhost`` or an IP address ``path``
    any other endpoint                                    ``virtual``
    ====================================================  ===========

    Every client of a storage (obstore's requests and presigned URLs, the multipart client)
    asks this one function, so they never disagree about where an object is.
    """
    if options.addressing_style != "auto":
        return options.addressing_style
    if "." in bucket:
        return "path"
    host = urlsplit(options.endpoint).hostname if options.endpoint else None
    if host is None:
        return "virtual"
    return "path" if host == "localhost" or _is_ip(host) else "virtual"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def request_endpoint(options: S3Options, bucket: str) -> str | None:
    """The base URL requests go to, or None for AWS's own endpoint of the region.

    Path style: the endpoint as configured (``http://s3.internal:9000``; requests name
    ``/BUCKET/KEY``). Virtual-hosted: the bucket is the first label of the endpoint's host
    (``https://BUCKET.s3.eu-west-1.amazonaws.com``; requests name ``/KEY``), which is the form the
    request client takes: given the bare endpoint it would send ``/KEY`` to the endpoint's host
    and lose the bucket.
    """
    if not options.endpoint:
        return None
    endpoint = options.endpoint.rstrip("/")
    if addressing(options, bucket) == "path":
        return endpoint
    parts = urlsplit(endpoint)
    return parts._replace(netloc=f"{bucket}.{parts.netloc}").geturl()
