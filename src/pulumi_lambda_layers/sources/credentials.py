"""Credentials in URLs (index tokens, basic-auth passwords): redacted in everything persisted or
printed, and put back at apply time from the file the user keeps them in.

`https://ci-bot:TOKEN@host/simple` is shown, stored and hashed as `https://ci-bot:***@host/simple`
(a user-less `https://TOKEN@host` as `https://***@host`): the Pulumi state, `packages`, the
content hash's canonical form, log lines and error messages. Rotating a token so changes neither
the content hash nor the diff. The provider, which runs on the same machine as the program, takes
the real URL again from the source file (`restore`); tokens uv reads itself (UV_INDEX_URL,
PIP_INDEX_URL, netrc) never pass through here at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

MASK = "***"
# scheme://userinfo@host (host kept in the match: it tells two indexes' masked URLs apart).
# userinfo may not hold '/', '?', '#', '@' or whitespace (RFC 3986; an '@'
# in a password is written %40).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/?#@\s:'\"]*)"
                       r"(?::(?P<password>[^/?#@\s'\"]*))?@(?P<host>[^/?#@\s'\"]*)")


def _mask(m: re.Match[str]) -> str:
    scheme, host = m.group("scheme"), m.group("host")
    if m.group("password") is None:  # a bare token: https://TOKEN@host
        return f"{scheme}{MASK}@{host}" if m.group("user") != MASK else m.group(0)
    return f"{scheme}{m.group('user')}:{MASK}@{host}"


def redact(text: str) -> str:
    """text with the credentials of every URL in it replaced by ***."""
    if "@" not in text:  # the common case, cheap
        return text
    return _USERINFO.sub(_mask, text)


def has_credentials(text: str) -> bool:
    """Whether any URL in text carries a user or password (other than an already masked one)."""
    return redact(text) != text


def masked(text: str) -> bool:
    """Whether text holds a URL whose credentials were masked by redact."""
    return MASK in text and any(MASK in m.group(0) for m in _USERINFO.finditer(text))


def redact_files(files: Mapping[str, str]) -> dict[str, str]:
    """install_files (name -> text) with every URL's credentials masked."""
    return {name: redact(text) for name, text in files.items()}


def restore(files: Mapping[str, str], sources: Iterable[Path]) -> dict[str, str]:
    """install_files with each masked URL replaced by the real one from the first source file
    holding a URL that masks to it. SpecError naming the file when none does any more (the token
    moved elsewhere, or the line is gone): the real value is never in the state to fall back on."""
    masked = {m.group(0) for text in files.values() if MASK in text
              for m in _USERINFO.finditer(text) if MASK in m.group(0)}
    if not masked:
        return dict(files)
    paths = list(sources)
    real: dict[str, str] = {}
    for path in paths:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in _USERINFO.finditer(text):
            real.setdefault(redact(m.group(0)), m.group(0))
    missing = sorted(masked - set(real))
    if missing:
        from pulumi_lambda_layers.errors import SpecError  # errors imports redact from here

        where = paths[0] if paths else Path("?")
        raise SpecError("credentials", f"{where} no longer holds a URL matching "
                        f"{', '.join(missing)}: the state keeps credentials masked, never their "
                        "value, so the build takes them from that file",
                        f"keep the URL with its credentials in {where.name}, or give the index "
                        "through UV_INDEX_URL / PIP_INDEX_URL or ~/.netrc, which uv reads itself")
    return {name: _USERINFO.sub(lambda m: real.get(m.group(0), m.group(0)), text)
            for name, text in files.items()}
