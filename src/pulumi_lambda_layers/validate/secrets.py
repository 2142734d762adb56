"""Credential files a layer must not carry: netrc, index and registry tokens, keys."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterable

from pulumi_lambda_layers.validate.report import Finding, error
from pulumi_lambda_layers.validate.stream import UNREADABLE

_HEAD = 8 * 1024  # bytes read of a candidate file; every other file is judged by its name only

_URL_CREDENTIALS = re.compile(rb"[a-z][a-z0-9+.-]*://[^/\s@:]+(?::[^/\s@]*)?@", re.I)
_PIP_PASSWORD = re.compile(rb"^[ \t]*password[ \t]*[=:][ \t]*\S", re.I | re.M)
# `//registry/:_authToken=...`, `_auth=...`; `${NPM_TOKEN}` is read from the environment by npm.
_NPM_TOKEN = re.compile(rb"^[ \t]*(?:\S*:)?(?:_authToken|_auth|_password)[ \t]*=[ \t]*"
                        rb"(?!\$\{[A-Za-z_][A-Za-z0-9_]*\}[ \t]*$)\S", re.M)
_AWS_SECRET = re.compile(rb"^[ \t]*aws_secret_access_key[ \t]*=[ \t]*\S", re.I | re.M)
_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_DOCKER_AUTH = re.compile(rb'"(?:auth|identitytoken|registrytoken|password)"\s*:\s*"[^"]')

_Rule = tuple[str, Callable[[bytes], bool] | None]  # what it is; a test of its head (None: any)


def _rule(parts: list[str]) -> _Rule | None:
    """The rule for a zip path (split on '/'), or None for a file that is never a credential."""
    name = parts[-1].lower()
    parent = parts[-2].lower() if len(parts) > 1 else ""
    if name in (".netrc", "_netrc"):
        return "a netrc file (logins and passwords for hosts)", None
    if name == ".pypirc":
        return "a .pypirc (package index upload credentials)", None
    if name == ".git-credentials":
        return "a .git-credentials file (git passwords and tokens)", None
    if name in ("pip.conf", "pip.ini"):
        return (f"a {name} with a password or credentials in an index URL",
                lambda head: bool(_PIP_PASSWORD.search(head) or _URL_CREDENTIALS.search(head)))
    if name == ".npmrc":
        return "an .npmrc with a registry auth token", lambda head: bool(_NPM_TOKEN.search(head))
    if parent == ".aws" and name == "credentials":
        return "AWS credentials", None
    if parent == ".aws" and name == "config":
        return ("an AWS config with aws_secret_access_key",
                lambda head: bool(_AWS_SECRET.search(head)))
    if parent == ".docker" and name == "config.json":
        return ("a Docker config with registry logins (auths)",
                lambda head: b'"auths"' in head and bool(_DOCKER_AUTH.search(head)))
    if name in ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"):
        return "an SSH private key", None
    if name.endswith((".pem", ".key")):
        return "a private key", lambda head: bool(_PRIVATE_KEY.search(head))
    return None


def check_credentials(zf: zipfile.ZipFile, files: Iterable[zipfile.ZipInfo]) -> list[Finding]:
    """Credential files, by name; the few candidates are confirmed from their first 8 KiB."""
    findings: list[Finding] = []
    for info in files:
        rule = _rule(info.filename.split("/"))
        if rule is None or info.file_size == 0:
            continue
        what, test = rule
        if test is not None:
            try:
                with zf.open(info) as member:
                    head = member.read(_HEAD)
            except UNREADABLE:
                continue  # the binary check reports an unreadable entry
            if not test(head):
                continue
        path = info.filename
        findings.append(error(
            "credentials", path,
            f"{what}: whoever can use the layer can read it, so it is never published; remove "
            f"it, or exclude it with exclude=['{path}'] / --exclude '{path}'"))
    return findings
