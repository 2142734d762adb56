"""Default layer names and owner labels: unique per project, stack and resource, the same everywhere."""

from __future__ import annotations

import hashlib
import re

from pulumi_lambda_layers.limits import LAYER_NAME_LIMIT

OWNER_LIMIT = 80  # characters of the owner label in the description marker (256 in all)
_DIGEST = 8  # hex digits: 4 billion to one against two different resources meeting by chance
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_NOT_OWNER = re.compile(r"[^A-Za-z0-9._-]+")


def _digest(project: str, stack: str, resource: str, length: int) -> str:
    # NUL cannot occur in any of the three, so ("a-b", "c") and ("a", "b-c") never hash alike.
    return hashlib.sha256(f"{project}\0{stack}\0{resource}".encode()).hexdigest()[:length]


def default_layer_name(project: str, stack: str, resource: str) -> str:
    """`<project>-<stack>-<resource>-<8 hex digits>`, cut to fit Lambda's 140 characters.

    Every character Lambda refuses becomes '-', which could make two triples read alike
    ("a.b" and "a-b"); the digest over the exact triple keeps them apart, so two stacks (or two
    projects) never share a layer by accident. Only names go in, so every machine and every run
    gives the same name.
    """
    readable = _NOT_NAME.sub("-", f"{project}-{stack}-{resource}").strip("-") or "layer"
    room = LAYER_NAME_LIMIT - _DIGEST - 1
    return f"{readable[:room].rstrip('-')}-{_digest(project, stack, resource, _DIGEST)}"


def owner_label(project: str, stack: str, resource: str) -> str:
    """Who published a version, as its description marker records it: `project/stack/resource`
    when that is short and plain, else a cut of it plus `~` and a digest of the exact triple.
    Names only: no account, user or machine, so it is the same wherever the stack deploys from."""
    parts = [_NOT_OWNER.sub("-", part) or "-" for part in (project, stack, resource)]
    plain = "/".join(parts)
    if plain == f"{project}/{stack}/{resource}" and len(plain) <= OWNER_LIMIT:
        return plain
    digest = _digest(project, stack, resource, 12)
    return f"{plain[:OWNER_LIMIT - len(digest) - 1]}~{digest}"
