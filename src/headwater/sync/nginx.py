"""An nginx configuration that serves a headwater static tree with PEP 691 negotiation.

Pure: :class:`NginxConfig` in, text out (:func:`render_nginx_config`); nothing here touches the
filesystem. The output is two parts for nginx's ``http`` context (e.g. a file in
``/etc/nginx/conf.d/``): ``map`` blocks that choose a page's representation from ``Accept`` and
``?format=``, and a ``server`` block that serves ``<root>/web`` (see :mod:`headwater.storage.layout`).

How negotiation works without perl or lua (items 43-53 of ``standards.md``): the maps find, for each
media range headwater understands (``v1+json``/``latest+json``, ``v1+html``/``latest+html``,
``text/html``, ``application/*``, ``text/*``, ``*/*``), the first valid occurrence in Accept and its
q-value; turn each served type's best match into a fixed-width key ``qqqq`` + specificity +
preference; and compare the three keys digit by digit with a back-referencing regex. This is the
algorithm of :func:`headwater.simple.negotiation.select_content_type`; the differences (q-values past
three decimals, exotic float spellings, an empty ``?format=``) are listed in ``docs/nginx.md``.

Non-normalized project URLs are normalized by an internal loop of ``rewrite`` passes (each lowercases
the first occurrence of every letter and collapses separator runs) and answered with a 301.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from headwater.errors import InvalidInput
from headwater.simple.negotiation import HTML_V1, JSON_V1, TEXT_HTML

__all__ = [
    "FILE_CACHE_CONTROL",
    "MAX_NORMALIZE_PASSES",
    "PAGE_CACHE_CONTROL",
    "InvalidNginxConfig",
    "NginxConfig",
    "render_negotiation_maps",
    "render_nginx_config",
    "render_server_block",
]

#: Like PyPI (item 62): pages may change, so caches keep them 10 minutes.
PAGE_CACHE_CONTROL: Final = "max-age=600, public"
#: Like PyPI (item 62): files are addressed by their sha256, so they never change.
FILE_CACHE_CONTROL: Final = "max-age=365000000, immutable, public"
#: Internal rewrite passes the name normalizer may take; nginx allows 10 URI changes per request
#: and the entry into the normalizer and the final redirect use two of them.
MAX_NORMALIZE_PASSES: Final = 8
#: Separator runs collapsed per pass (each pass also lowercases one occurrence of every letter).
_SEPARATOR_RULES_PER_PASS: Final = 4
_NORMALIZER: Final = "/_headwater/normalize/"

# A valid project name (name-format spec, item 6) and a normalized one (item 1).
_NAME_RE: Final = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_NORMALIZED_RE: Final = r"[a-z0-9]+(?:-[a-z0-9]+)*"

# Characters allowed in a URL prefix: unreserved URL characters and "/".
_PREFIX: Final = re.compile(r"^/(?:[A-Za-z0-9._~-]+/)*\Z")
_LISTEN: Final = re.compile(
    r"^(?:\d{1,5}|[A-Za-z0-9.-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}|unix:/[^\s;{}\"'$\\]+)\Z"
)
_SERVER_NAME: Final = re.compile(r"^[A-Za-z0-9*_.-]+\Z")
# nginx would read "$" as a variable and the others would end or break the quoted string.
_UNSAFE_PATH: Final = re.compile(r"[\"\\$\x00-\x1f\x7f]")


class InvalidNginxConfig(InvalidInput):
    """An option given to the nginx config generator would produce a broken or unsafe config."""


@dataclass(frozen=True, kw_only=True)
class NginxConfig:
    """What the server block serves and how it listens.

    ``root`` is the absolute path of the tree root (the directory that holds ``web/``).
    ``listen`` are nginx ``listen`` addresses (``80``, ``127.0.0.1:8080``, ``[::1]:8080``,
    ``unix:/path``); empty means 80, or 443 with TLS. ``prefix`` is the URL path the tree is served
    under (``/`` serves ``/simple/``; ``/pypi/`` serves ``/pypi/simple/``). With
    ``tls_certificate`` and ``tls_key`` every listen gets ``ssl http2``. ``include_maps`` False leaves
    out the ``map`` blocks, for a second server in the same nginx (they are the same for every
    server and nginx refuses to define a variable twice).

    Raises:
        InvalidNginxConfig: an option is malformed, or would break out of its nginx directive.
    """

    root: str
    listen: tuple[str, ...] = ()
    server_name: tuple[str, ...] = ("_",)
    prefix: str = "/"
    tls_certificate: str | None = None
    tls_key: str | None = None
    include_maps: bool = True

    def __post_init__(self) -> None:
        _check_path("--root", self.root)
        if self.root != "/" and self.root.endswith("/"):
            object.__setattr__(self, "root", self.root.rstrip("/"))
        if not _PREFIX.match(self.prefix) or "/../" in self.prefix or "/./" in self.prefix:
            raise InvalidNginxConfig(
                f"--prefix {self.prefix[:100]!r} is not a URL path prefix: it must start and end "
                "with '/' and hold only letters, digits, '.', '_', '~', '-' and '/' (e.g. /pypi/)"
            )
        for listen in self.listen:
            if not _LISTEN.match(listen):
                raise InvalidNginxConfig(
                    f"--listen {listen[:100]!r} is not an nginx listen address; use a port (80), "
                    "host:port (127.0.0.1:8080), [ipv6]:port or unix:/path"
                )
        if not self.server_name:
            raise InvalidNginxConfig("--server-name needs at least one name (or '_' for any)")
        for name in self.server_name:
            if not _SERVER_NAME.match(name):
                raise InvalidNginxConfig(
                    f"--server-name {name[:100]!r} is not a host name nginx can match; use names "
                    "like index.example.org, *.example.org or _"
                )
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise InvalidNginxConfig(
                "TLS needs both --tls-certificate and --tls-key; give both, or neither for HTTP"
            )
        for option, path in (
            ("--tls-certificate", self.tls_certificate),
            ("--tls-key", self.tls_key),
        ):
            if path is not None:
                _check_path(option, path)

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS."""
        return self.tls_certificate is not None


def _check_path(option: str, path: str) -> None:
    if not path.startswith("/"):
        raise InvalidNginxConfig(
            f"{option} {path[:100]!r} is not an absolute path; nginx resolves relative paths "
            "against its own prefix, so give the full path"
        )
    if _UNSAFE_PATH.search(path):
        raise InvalidNginxConfig(
            f"{option} {path[:100]!r} contains '\"', '\\', '$' or a control character, which "
            "nginx would misread; move the tree (or file) to a plainer path"
        )


def _quote(value: str) -> str:
    # Values were checked for '"', '\\' and '$', so double quotes are enough.
    return f'"{value}"'


# ----------------------------------------------------------------------------- negotiation maps

# q-values as RFC 9110 writes them (plus ".5", which Python's float() also reads).
_QVALUE: Final = r"0(?:\.\d*)?|1(?:\.0*)?|\.\d+"
# Parameters before q are skipped, as select_content_type does; a bare "q" parameter has no value
# and makes the range invalid there, so it must not be skipped as "another parameter".
_RANGE_TAIL: Final = (
    r"\s*(?:;(?!\s*q\s*(?:[=;,]|$))[^;,]*)*"
    rf"(?:;\s*q\s*=\s*({_QVALUE})\s*(?:;[^,]*)?)?(?:,|$)"
)
# Media ranges headwater understands: name -> regex (matched case-insensitively). PEP 691: the
# "latest" meta-version answers with the concrete v1 type (item 44).
_RANGES: Final = {
    "json": r"application/vnd\.pypi\.simple\.(?:v1|latest)\+json",
    "html": r"application/vnd\.pypi\.simple\.(?:v1|latest)\+html",
    "text": r"text/html",
    "application": r"application/\*",
    "textany": r"text/\*",
    "any": r"\*/\*",
}
# Served type -> (exact range, type/* range, preference among exact and type/* matches,
# preference among */* matches). Item 49: JSON first, text/html the last resort; but a client that
# only says */* (curl, browsers, old tools) gets text/html, as from PyPI and select_content_type.
_TYPES: Final = {
    "json": ("json", "application", 3, 1),
    "html": ("html", "application", 2, 2),
    "text": ("text", "textany", 1, 3),
}
# Representation -> the page file's extension (layout.PAGE_FILES) and its Content-Type.
_EXTENSIONS: Final = {"json": "v1_json", "html": "v1_html", "text": "html"}
_CONTENT_TYPES: Final = {"v1_json": JSON_V1, "v1_html": HTML_V1, "html": TEXT_HTML}
_NOT_ACCEPTABLE: Final = (
    f"406 Not Acceptable: this index serves {JSON_V1}, {HTML_V1} and {TEXT_HTML}; "
    "ask for one of them in Accept (or ?format=)\\n"
)


def _greater(skip: int, group: int) -> str:
    """A lookahead: the fixed-width digit field here is greater than the one ``skip`` fields on.

    Lexicographic order of equal-width digit strings: a common prefix (captured, then matched again
    with a back-reference), then a larger digit.
    """
    between = r"\d*:" * skip
    alternatives = "|".join(f"{d}\\d*:{between}\\{group}[0-{d - 1}]" for d in range(1, 10))
    return f"(?=(\\d*)(?:{alternatives}))"


def render_negotiation_maps() -> str:
    """The ``map`` blocks (nginx ``http`` context) that set ``$headwater_format``.

    ``$headwater_format`` is the extension of the page file to serve (``v1_json``, ``v1_html`` or
    ``html``), or empty when nothing acceptable can be served (406).
    """
    out: list[str] = [
        "# PEP 691 content negotiation for headwater static trees (generated by headwater",
        "# nginx-config). The same for every headwater server: include these maps once per nginx.",
        "",
        "# PEP 691: a request without Accept is treated as */*.",
        "map $http_accept $headwater_accept {",
        '    ""         "*/*";',
        '    "~^\\s+$"  "*/*";',
        "    default   $http_accept;",
        "}",
        "",
        '# The first valid occurrence of each media range, and its q: "" absent, "=" no q, "=0.5".',
    ]
    for name, media in _RANGES.items():
        out += [
            f"map $headwater_accept $headwater_raw_{name} {{",
            f'    "~*(?:^|,)\\s*{media}{_RANGE_TAIL}"  "=$1";',
            '    default  "";',
            "}",
        ]
    out += [
        "",
        "# Per served type: its most specific match (RFC 9110 12.5.1), as specificity and",
        "# preference digits followed by the raw q.",
    ]
    for served, (exact, partial, preference, wildcard_preference) in _TYPES.items():
        out += [
            f'map "$headwater_raw_{exact}|$headwater_raw_{partial}|$headwater_raw_any" '
            f"$headwater_match_{served} {{",
            f'    "~^(=[^|]*)\\|"       "3{preference}$1";',
            f'    "~^\\|(=[^|]*)\\|"     "2{preference}$1";',
            f'    "~^\\|\\|(=.*)$"        "1{wildcard_preference}$1";',
            '    default  "";',
            "}",
        ]
    out += [
        "",
        "# ... as a six-digit key: q (4 digits, truncated to 3 decimals), specificity, preference;",
        "# 000000 when the type is not acceptable (absent, or q=0). Captures are one digit:",
        "# $30 is capture 3, then a literal 0.",
    ]
    for served in _TYPES:
        out += [
            f"map $headwater_match_{served} $headwater_key_{served} {{",
            '    "~^\\d\\d=(?:0+\\.?0*|0*\\.0+)$"   "000000";',
            '    "~^(\\d\\d)=$"                    "1000$1";',
            '    "~^(\\d\\d)=1"                    "1000$1";',
            '    "~^(\\d\\d)=0*\\.(\\d)(\\d)(\\d)"    "0$2$3$4$1";',
            '    "~^(\\d\\d)=0*\\.(\\d)(\\d)$"       "0$2$30$1";',
            '    "~^(\\d\\d)=0*\\.(\\d)$"          "0$200$1";',
            '    default  "000000";',
            "}",
        ]
    json_ext, html_ext, text_ext = (_EXTENSIONS[t] for t in ("json", "html", "text"))
    out += [
        "",
        "# The largest key wins (keys never tie); none acceptable: 406 (PEP 691's recommendation).",
        'map "$headwater_key_json:$headwater_key_html:$headwater_key_text:$headwater_key_json"',
        "    $headwater_negotiated {",
        '    "~^000000:000000:000000:"  "";',
        f'    "~^{_greater(0, 1)}{_greater(1, 2)}"  {json_ext};',
        f'    "~^\\d+:{_greater(0, 1)}{_greater(1, 2)}"  {html_ext};',
        f"    default  {text_ext};",
        "}",
        "",
        "# ?format=<content type> overrides Accept (PEP 691); the value is not URL-decoded here.",
        "map $arg_format $headwater_format_param {",
        '    ""  "";',
        '    "~*^application(?:/|%2F)vnd\\.pypi\\.simple\\.(?:v1|latest)(?:\\+|%2B)json$"  '
        f"{json_ext};",
        '    "~*^application(?:/|%2F)vnd\\.pypi\\.simple\\.(?:v1|latest)(?:\\+|%2B)html$"  '
        f"{html_ext};",
        f'    "~*^text(?:/|%2F)html$"  {text_ext};',
        "    default  406;",
        "}",
        'map "$headwater_format_param|$headwater_negotiated" $headwater_format {',
        '    "~^406\\|"           "";',
        '    "~^([a-z0-9_]+)\\|"  $1;',
        '    "~^\\|(.*)$"         $1;',
        "}",
    ]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------- server block


def _regex_prefix(prefix: str) -> str:
    # The prefix holds only [A-Za-z0-9._~/-]; of those only "." is special in PCRE.
    return prefix.replace(".", r"\.")


def _normalizer_rules() -> list[str]:
    """Rewrites that take ``/_headwater/normalize/<pass>/<name>`` one pass towards normalized."""
    base = _NORMALIZER
    lines = [
        "        # PEP 503 normalization without perl or lua: lowercase the first occurrence of",
        "        # every letter, collapse separator runs into '-', repeat (PEP 503 normalization).",
    ]
    for upper in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        lines.append(
            f'        rewrite "^({base}\\d/[^/{upper}]*){upper}(.*)$" $1{upper.lower()}$2;'
        )
    lines += [
        f'        rewrite "^({base}\\d/[^/]*?)(?:[-_.]{{2,}}|[_.])(.*)$" $1-$2;'
    ] * _SEPARATOR_RULES_PER_PASS
    return lines


def render_server_block(config: NginxConfig) -> str:
    """The ``server`` block that serves ``config.root``/web under ``config.prefix``."""
    p = config.prefix
    rp = _regex_prefix(p)
    web = config.root.rstrip("/") + "/web" if config.root != "/" else "/web"
    listens = config.listen or (("443",) if config.tls else ("80",))
    suffix = " ssl http2" if config.tls else ""
    cors = '        add_header Access-Control-Allow-Origin "*" always;'
    out = [
        "# Serves a headwater static tree (generated by headwater nginx-config).",
        "server {",
        *(f"    listen {listen}{suffix};" for listen in listens),
        f"    server_name {' '.join(config.server_name)};",
    ]
    if config.tls:
        assert config.tls_certificate is not None and config.tls_key is not None
        out += [
            f"    ssl_certificate {_quote(config.tls_certificate)};",
            f"    ssl_certificate_key {_quote(config.tls_key)};",
            "    ssl_protocols TLSv1.2 TLSv1.3;",
        ]
    out += [
        "",
        "    # Only web/ is served; state/ beside it never is.",
        f"    root {_quote(web)};",
        "    autoindex off;",
        "    server_tokens off;",
        "    sendfile on;",
        "    tcp_nopush on;",
        # Relative Location headers stay right behind TLS-terminating proxies and odd ports.
        "    absolute_redirect off;",
        "",
        "    # Dotfiles (temporary files, .git, ...) are never served.",
        "    location ~ /\\. {",
        "        deny all;",
        "    }",
        "",
        f"    location = {p} {{",
        f"        return 301 {p}simple/;",
        "    }",
        "",
        "    # The slash-less form of a page URL redirects (the Simple API: page URLs end with /).",
        f"    location = {p}simple {{",
        f"        return 301 {p}simple/;",
        "    }",
        "",
        f"    location ^~ {p}simple/ {{",
        "        location ~ /\\. {",
        "            deny all;",
        "        }",
        "",
        "        # The root page and normalized project pages, in the negotiated format.",
        f'        location ~ "^{rp}simple/(?<headwater_page>(?:{_NORMALIZED_RE}/)?)$" {{',
        "            types {",
        *(f"                {ctype} {ext};" for ext, ctype in _CONTENT_TYPES.items()),
        "            }",
        "            default_type text/plain;",
        "            charset utf-8;",
        # text/html always gets the charset; the PEP 691 HTML type needs naming.
        f"            charset_types {HTML_V1};",
        "            # Negotiated: a cache keyed on the URL must key on Accept too (PyPI sends Vary: Accept).",
        "            add_header Vary Accept always;",
        f'            add_header Cache-Control "{PAGE_CACHE_CONTROL}";',
        '            add_header Access-Control-Allow-Origin "*" always;',
        "            gzip on;",
        f"            gzip_types {JSON_V1} {HTML_V1};",
        "            gzip_vary on;",
        "            gzip_proxied any;",
        "            gzip_min_length 256;",
        '            if ($headwater_format = "") {',
        f'                return 406 "{_NOT_ACCEPTABLE}";',
        "            }",
        "            try_files /simple/${headwater_page}index.$headwater_format =404;",
        "        }",
        "",
        "        # Any other valid name, or a page URL without its slash: 301 to the normalized URL",
        "        # (the Simple API allows it; PyPI answers 301 too).",
        f'        location ~ "^{rp}simple/(?<headwater_name>{_NAME_RE})/?$" {{',
        f"            rewrite ^ {_NORMALIZER}1/$headwater_name last;",
        "        }",
        "",
        "        return 404;",
        "    }",
        "",
        f"    location ^~ {_NORMALIZER} {{",
        "        internal;",
        *_normalizer_rules(),
        f'        rewrite "^{_NORMALIZER}\\d/({_NORMALIZED_RE})$" {p}simple/$1/ permanent;',
        *(
            f'        rewrite "^{_NORMALIZER}{n}/(.*)$" {_NORMALIZER}{n + 1}/$1 last;'
            for n in range(1, MAX_NORMALIZE_PASSES)
        ),
        "        # Too irregular to normalize within nginx's limit of internal redirects.",
        "        return 404;",
        "    }",
        "",
        "    # Files and their PEP 658 metadata, addressed by sha256: they never change.",
        f"    location ^~ {p}packages/ {{",
        "        location ~ /\\. {",
        "            deny all;",
        "        }",
        f'        location ~ "^{rp}packages/(?<headwater_file>[0-9a-f]{{2}}/[0-9a-f]{{2}}/'
        '[0-9a-f]{60}/[A-Za-z0-9][^/]*)$" {',
        "            types {",
        "                application/zip whl zip egg;",
        "                application/gzip gz tgz;",
        "                application/x-bzip2 bz2;",
        "                application/pgp-signature asc;",
        # pip and uv read .metadata as bytes whatever the type; text shows it in a browser.
        "                text/plain metadata;",
        "            }",
        "            default_type application/octet-stream;",
        "            charset utf-8;",
        "            charset_types text/plain;",
        f'            add_header Cache-Control "{FILE_CACHE_CONTROL}";',
        cors.replace("        ", "            ", 1),
        "            try_files /packages/$headwater_file =404;",
        "        }",
        "",
        "        return 404;",
        "    }",
        "",
        "    # Files the publisher guard holds (docs/provenance.md): a refusal, never a file. The",
        "    # page lists them yanked with the refusal; their URL carries it in its query, which",
        "    # pip and uv print with this status.",
        f"    location ^~ {p}held/ {{",
        "        types { }",
        "        default_type text/plain;",
        "        charset utf-8;",
        '        add_header Cache-Control "no-store" always;',
        '        add_header X-Headwater-Refused "publisher-held" always;',
        '        return 409 "held by the publisher guard of this mirror: the refusal and its fix '
        'are in this URL (headwater-refused, fix) and in the yank reason on the project page\\n";',
        "    }",
        "",
        "    # bandersnatch's convention: when the tree was last synced.",
        f"    location = {p}last-modified {{",
        "        types { }",
        "        default_type text/plain;",
        "        charset utf-8;",
        f'        add_header Cache-Control "{PAGE_CACHE_CONTROL}";',
        cors,
        "        try_files /last-modified =404;",
        "    }",
        "",
        "    location / {",
        "        return 404;",
        "    }",
        "}",
    ]
    return "\n".join(out) + "\n"


def render_nginx_config(config: NginxConfig) -> str:
    """The whole config: the negotiation maps (unless ``include_maps`` is False) and the server.

    The result belongs in nginx's ``http`` context, e.g. ``/etc/nginx/conf.d/headwater.conf``.
    """
    parts = [render_negotiation_maps()] if config.include_maps else []
    parts.append(render_server_block(config))
    return "\n".join(parts)
