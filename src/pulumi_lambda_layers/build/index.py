"""Package indexes read here: which ones a lock names (as uv and as pip ask them), PEP 503 pages."""

from __future__ import annotations

import functools
import html
import netrc
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from pulumi_lambda_layers.errors import BuildError
from pulumi_lambda_layers.sources.credentials import redact

PYPI = "https://pypi.org/simple"


def index_urls(options: list[str], env: Mapping[str, str]) -> list[str]:
    """The indexes uv would ask, in its order (extra indexes first, then the default one)."""
    flags = _flags(options)
    if "--no-index" in flags:
        return []
    default = (flags.get("--index-url") or flags.get("-i")
               or [env.get("UV_DEFAULT_INDEX") or env.get("UV_INDEX_URL") or PYPI])[-1]
    extra = [*flags.get("--extra-index-url", []), *env.get("UV_INDEX", "").split(),
             *env.get("UV_EXTRA_INDEX_URL", "").split()]
    return [u.rstrip("/") for u in [*extra, default] if u]


def pip_index_urls(options: list[str]) -> list[str]:
    """The indexes pip asks for the requirements' options alone (no pip configuration): the
    index URL (the last given, else PyPI), then the extra ones; pip merges what they offer."""
    flags = _flags(options)
    if "--no-index" in flags:
        return []
    default = (flags.get("--index-url") or flags.get("-i") or [PYPI])[-1]
    return [u.rstrip("/") for u in [default, *flags.get("--extra-index-url", [])] if u]


def find_links(options: list[str], env: Mapping[str, str]) -> list[str]:
    """The --find-links locations (folders or pages) of the options and of UV_FIND_LINKS."""
    out = [value for flag, value in map(option, options) if flag in ("--find-links", "-f")]
    return [*out, *env.get("UV_FIND_LINKS", "").replace(",", " ").split()]


def option(line: str) -> tuple[str, str]:
    """(flag, value) of a requirements option line: "--index-url URL" or "--index-url=URL"."""
    head, _, rest = line.strip().partition(" ")
    if "=" in head:
        head, _, value = head.partition("=")
        return head, value.strip()
    return head, rest.strip()


def _flags(options: list[str]) -> dict[str, list[str]]:
    flags: dict[str, list[str]] = {}
    for line in options:
        flag, value = option(line)
        flags.setdefault(flag, []).append(value)
    return flags


class Pin(NamedTuple):
    """A requirement line pinned to one version of an index."""

    name: str  # canonical
    version: str
    hashes: frozenset[str]  # the line's sha256 digests (--hash=sha256:...); empty: none
    marker: bool  # it has an environment marker


def pin(line: str) -> Pin | None:
    """The pin of a requirements line (`name==version`, `===` too, with `--hash` options); None
    for any other line (a range, a URL, a line that is not a requirement)."""
    req_text, *hash_parts = line.split(" --hash")
    try:
        req = Requirement(req_text.strip())
    except InvalidRequirement:
        return None
    specs = list(req.specifier)
    if req.url or len(specs) != 1 or specs[0].operator not in ("==", "==="):
        return None
    digests = (h.strip().lstrip("=").strip() for h in hash_parts)
    return Pin(canonicalize_name(req.name), specs[0].version,
               frozenset(d.removeprefix("sha256:") for d in digests if d.startswith("sha256:")),
               req.marker is not None)


def pure_wheel_name(filename: str) -> bool:
    """Whether a wheel's file name says pure Python: every tag `*-none-any`."""
    return all(t.abi == "none" and t.platform == "any" for t in parse_wheel_filename(filename)[3])


class Link(NamedTuple):
    """One file a PEP 503 page lists."""

    filename: str
    url: str  # absolute, without the fragment
    fragment: dict[str, str]  # e.g. {"sha256": ...}
    requires_python: str  # data-requires-python, "" when the page does not say


# PEP 503 pages are lists of anchors; a regular expression reads them some twenty times faster
# than html.parser (PyPI's numpy page, 1.5 MB: 0.014 s against 0.32 s, holding the GIL).
_ANCHOR = re.compile(r"<a\s([^>]*)>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")


def links(page: str, base: str, keep: Callable[[str], bool] | None = None) -> list[Link]:
    """The links of a PEP 503 page (html entities in attributes decoded) whose file names are
    plain names, and pass keep (a big page has thousands: the rest is read only for those)."""
    out = []
    for anchor in _ANCHOR.finditer(page):
        attrs = dict((key.lower(), a or b or c)
                     for key, a, b, c in _ATTRIBUTE.findall(anchor.group(1)))
        href = html.unescape(attrs.get("href", ""))
        filename = urllib.parse.unquote(href.partition("#")[0].partition("?")[0].rsplit("/", 1)[-1])
        if not filename or "/" in filename or "\\" in filename or filename.startswith("."):
            continue  # never a path of its own ("..%2F" would leave the folder it is put in)
        if keep is not None and not keep(filename):
            continue
        url, _, fragment = urllib.parse.urljoin(base, href).partition("#")
        out.append(Link(filename, url, dict(urllib.parse.parse_qsl(fragment)),
                        html.unescape(attrs.get("data-requires-python", ""))))
    return out


def with_credentials(url: str, index: str) -> str:
    """A file URL on the index's host gets the index URL's credentials (uv and pip do the same)."""
    file_parts, index_parts = urllib.parse.urlsplit(url), urllib.parse.urlsplit(index)
    if file_parts.username is None and index_parts.username is not None \
            and file_parts.hostname == index_parts.hostname:
        userinfo = index_parts.netloc.rpartition("@")[0]
        return file_parts._replace(netloc=f"{userinfo}@{file_parts.netloc}").geturl()
    return url


@functools.lru_cache(maxsize=8)
def _context(cafile: str | None, _stamp: int) -> ssl.SSLContext:
    """The system's trust plus the extra CA bundle, as in the build container (prelude.sh): made
    once per bundle, since loading the system's certificates takes ~50 ms and the threads that
    fetch pages would each wait for it (an SSLContext serves many connections at once)."""
    context = ssl.create_default_context()
    if cafile:
        context.load_verify_locations(cafile=cafile)
    return context


def get(url: str, env: Mapping[str, str], ca_bundle: str | None, missing_ok: bool = False,
        stage: str = "sdist download", use_netrc: bool = True) -> bytes | None:
    """The body at url (file:// too), with the URL's credentials, else ~/.netrc's (use_netrc),
    through env's proxy; None for a 404 when missing_ok. BuildError (redacted) otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = Path(urllib.request.url2pathname(parts.path))
        return path.read_bytes() if path.is_file() or not missing_ok else None
    plain = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    request = urllib.request.Request(plain, headers={"Accept": "text/html"})
    user, password = parts.username, parts.password
    if user is None and parts.hostname and use_netrc:
        try:
            found = netrc.netrc(env.get("NETRC") or None).authenticators(parts.hostname)
        except (OSError, netrc.NetrcParseError):
            found = None
        if found:
            user, _, password = found
    if user is not None:
        token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password or '')}"
        request.add_header("Authorization", "Basic " + b64encode(token.encode()).decode())
    proxies = {k.lower().removesuffix("_proxy"): v for k, v in env.items()
               if k.lower() in ("http_proxy", "https_proxy") and v}
    cafile = ca_bundle or env.get("SSL_CERT_FILE") or None
    try:  # a bundle rewritten in place is read again
        stamp = os.stat(cafile).st_mtime_ns if cafile else 0
    except OSError:
        stamp = 0  # load_verify_locations says what is wrong with it
    context = _context(cafile, stamp)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=60) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        if missing_ok and exc.code == 404:
            return None
        raise BuildError(stage, f"{redact(url)} answered HTTP {exc.code}",
                         fix="check the index URL and its credentials") from None
    except OSError as exc:
        raise BuildError(stage, f"could not read {redact(url)}: {exc}",
                         fix="check the network, the proxy and the index URL") from None
